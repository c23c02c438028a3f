//! Checking a webhook call the broker made, as its receiver: the Standard
//! Webhooks signature (<https://www.standardwebhooks.com>) over
//! `{webhook-id}.{webhook-timestamp}.{body}` with the subscription's
//! `whsec_` secret, and the timestamp within a tolerance of now, so that a
//! captured request cannot be replayed later. Several signatures in one
//! header (a rotation) pass when any one matches; tags are compared in
//! constant time.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use base64::Engine as _;
use hmac::{Hmac, KeyInit, Mac};
use reqwest::header::HeaderMap;
use sha2::Sha256;
use subtle::ConstantTimeEq;

/// The tolerance the Standard Webhooks libraries use.
pub const DEFAULT_TOLERANCE: Duration = Duration::from_secs(300);

/// Why a webhook call was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum WebhookError {
    /// The secret is not `whsec_` and base64.
    #[error("the secret is not whsec_ followed by base64")]
    BadSecret,
    /// A header is missing or not text.
    #[error("the {0} header is missing")]
    MissingHeader(&'static str),
    /// `webhook-timestamp` is not a number of seconds.
    #[error("webhook-timestamp is not a whole number of seconds")]
    BadTimestamp,
    /// The timestamp is further from now than the tolerance.
    #[error("webhook-timestamp is {0} s away from now, past the tolerance")]
    StaleTimestamp(u64),
    /// No signature matches.
    #[error("no v1 signature matches")]
    BadSignature,
}

/// Verifies calls signed with one secret.
#[derive(Clone)]
pub struct WebhookVerifier {
    key: Vec<u8>,
    tolerance: Duration,
}

impl std::fmt::Debug for WebhookVerifier {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("WebhookVerifier")
            .field("tolerance", &self.tolerance)
            .finish_non_exhaustive()
    }
}

impl WebhookVerifier {
    /// A verifier of the subscription's secret (`whsec_...`).
    pub fn new(secret: &str) -> Result<Self, WebhookError> {
        let encoded = secret.strip_prefix("whsec_").unwrap_or(secret);
        let key = base64::engine::general_purpose::STANDARD
            .decode(encoded)
            .map_err(|_| WebhookError::BadSecret)?;
        if key.is_empty() {
            return Err(WebhookError::BadSecret);
        }
        Ok(WebhookVerifier {
            key,
            tolerance: DEFAULT_TOLERANCE,
        })
    }

    /// Another tolerance for the timestamp's distance from now.
    pub fn tolerance(mut self, tolerance: Duration) -> Self {
        self.tolerance = tolerance;
        self
    }

    /// Checks a call's headers and raw body, now.
    pub fn verify(&self, headers: &HeaderMap, body: &[u8]) -> Result<(), WebhookError> {
        let now = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| d.as_secs());
        self.verify_at(headers, body, now)
    }

    /// Checks a call as of `now` (Unix seconds).
    pub fn verify_at(
        &self,
        headers: &HeaderMap,
        body: &[u8],
        now: u64,
    ) -> Result<(), WebhookError> {
        let header = |name: &'static str| {
            headers
                .get(name)
                .and_then(|v| v.to_str().ok())
                .ok_or(WebhookError::MissingHeader(name))
        };
        let id = header("webhook-id")?;
        let timestamp = header("webhook-timestamp")?;
        let signatures = header("webhook-signature")?;
        let seconds: u64 = timestamp
            .trim()
            .parse()
            .map_err(|_| WebhookError::BadTimestamp)?;
        let distance = now.abs_diff(seconds);
        if distance > self.tolerance.as_secs() {
            return Err(WebhookError::StaleTimestamp(distance));
        }
        let expected = self.tag(id, timestamp.trim(), body);
        let matches = signatures.split_whitespace().any(|signature| {
            let Some(encoded) = signature.strip_prefix("v1,") else {
                return false;
            };
            base64::engine::general_purpose::STANDARD
                .decode(encoded)
                .is_ok_and(|tag| bool::from(tag.ct_eq(&expected)))
        });
        if matches {
            Ok(())
        } else {
            Err(WebhookError::BadSignature)
        }
    }

    fn tag(&self, id: &str, timestamp: &str, body: &[u8]) -> Vec<u8> {
        let mut mac =
            Hmac::<Sha256>::new_from_slice(&self.key).expect("HMAC takes a key of any length");
        mac.update(id.as_bytes());
        mac.update(b".");
        mac.update(timestamp.as_bytes());
        mac.update(b".");
        mac.update(body);
        mac.finalize().into_bytes().to_vec()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use reqwest::header::HeaderValue;

    const SECRET: &str = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw";
    const BODY: &[u8] = br#"{"test": 2432232314}"#;
    const AT: u64 = 1_614_265_330;

    fn headers(signature: &str) -> HeaderMap {
        let mut h = HeaderMap::new();
        h.insert(
            "webhook-id",
            HeaderValue::from_static("msg_p5jXN8AQM9LWM0D4loKWxJek"),
        );
        h.insert(
            "webhook-timestamp",
            HeaderValue::from_str(&AT.to_string()).unwrap(),
        );
        h.insert(
            "webhook-signature",
            HeaderValue::from_str(signature).unwrap(),
        );
        h
    }

    /// The example of the Standard Webhooks reference libraries.
    #[test]
    fn the_reference_example_passes_and_any_change_fails() {
        let v = WebhookVerifier::new(SECRET).unwrap();
        let good = "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE=";
        assert_eq!(v.verify_at(&headers(good), BODY, AT), Ok(()));
        assert_eq!(
            v.verify_at(&headers(&format!("v1,bm9wZQ== {good}")), BODY, AT),
            Ok(())
        );
        assert_eq!(
            v.verify_at(&headers(good), b"{\"test\": 1}", AT),
            Err(WebhookError::BadSignature)
        );
        assert_eq!(
            v.verify_at(&headers("v1,bm9wZQ=="), BODY, AT),
            Err(WebhookError::BadSignature)
        );
        assert_eq!(
            v.verify_at(&headers(good), BODY, AT + 301),
            Err(WebhookError::StaleTimestamp(301))
        );
        assert_eq!(
            v.verify_at(&headers(good), BODY, AT - 301),
            Err(WebhookError::StaleTimestamp(301))
        );
        assert_eq!(
            v.verify_at(&HeaderMap::new(), BODY, AT),
            Err(WebhookError::MissingHeader("webhook-id"))
        );
        assert_eq!(
            WebhookVerifier::new("whsec_!!").unwrap_err(),
            WebhookError::BadSecret
        );
    }
}
