//! Webhook subscriptions: at most one per queue, kept in the log like
//! everything else, so they survive restarts and travel with checkpoints.

use std::borrow::Cow;

use base64::Engine as _;

use super::record::{Record, Subscribed};
use super::rules;
use super::{check_queue_name, Broker, BrokerError, Core};

/// A queue's webhook subscription.
pub type Subscription = Subscribed<'static>;

/// The longest a webhook call may take: 5 minutes.
pub const MAX_WEBHOOK_TIMEOUT_MS: u64 = 300_000;

/// Most deliveries at once of one subscription.
pub(crate) const MAX_CONCURRENCY: u32 = 1024;

/// What `subscribe` is asked for; `None` takes the default.
#[derive(Debug, Clone, Default)]
pub struct SubscriptionRequest {
    /// Where events are POSTed: an absolute http or https URL.
    pub url: String,
    /// Deliveries at once; `WORKER_COUNT` when `None`.
    pub concurrency: Option<u32>,
    /// How long one delivery may take (ms); 10 s when `None`.
    pub timeout_ms: Option<u64>,
    /// The Standard Webhooks signing secret, `whsec_` then base64 of 24 to 64 bytes.
    pub secret: Option<String>,
}

impl Broker {
    /// Sets or replaces the webhook subscription of `queue`; it is in the
    /// log when this returns. The queue need not exist yet.
    pub async fn subscribe(
        &self,
        queue: &str,
        request: SubscriptionRequest,
    ) -> Result<Subscription, BrokerError> {
        check_queue_name(queue)?;
        let subscription = self.checked(queue, request)?;
        let record = Record::Subscribe(subscription.clone());
        self.write_subscription(|_| Some(record)).await?;
        Ok(subscription)
    }

    /// Removes the webhook subscription of `queue`; false when it had none.
    pub async fn unsubscribe(&self, queue: &str) -> Result<bool, BrokerError> {
        check_queue_name(queue)?;
        self.write_subscription(|core| {
            core.state
                .subscriptions
                .contains_key(queue)
                .then_some(Record::Unsubscribe {
                    queue: Cow::Borrowed(queue),
                })
        })
        .await
    }

    /// Writes the record `decide` makes of the state, if any, and tells the
    /// watchers once it is in the log; whether there was one.
    async fn write_subscription<'r>(
        &self,
        decide: impl FnOnce(&Core) -> Option<Record<'r>>,
    ) -> Result<bool, BrokerError> {
        self.check_writable()?;
        let _one_at_a_time = self.subscribing.lock().await;
        let pending = {
            let mut core = self.shared.lock();
            let Some(record) = decide(&core) else {
                return Ok(false);
            };
            self.submit(&mut core, vec![record], Box::new(|_: &mut Core, r| r))
        };
        pending.result().await?;
        self.subscriptions_changed.send_modify(|n| *n += 1);
        Ok(true)
    }

    /// The webhook subscription of `queue`, if it has one.
    pub fn subscription(&self, queue: &str) -> Result<Option<Subscription>, BrokerError> {
        check_queue_name(queue)?;
        let core = self.shared.lock();
        Ok(core.state.subscriptions.get(queue).map(|(s, _)| s.clone()))
    }

    /// Every webhook subscription, by queue name.
    pub fn subscriptions(&self) -> Vec<Subscription> {
        let core = self.shared.lock();
        core.state
            .subscriptions
            .values()
            .map(|(s, _)| s.clone())
            .collect()
    }

    /// Changes whenever a subscription is set or removed.
    pub fn watch_subscriptions(&self) -> tokio::sync::watch::Receiver<u64> {
        self.subscriptions_changed.subscribe()
    }

    /// Writes the subscriptions kept in `segment` again, so that it can be
    /// deleted. Blocks on the log; not for async contexts.
    pub(super) fn relocate_subscriptions(&self, segment: u64) -> Result<(), BrokerError> {
        let _one_at_a_time = self.subscribing.blocking_lock();
        let pending = {
            let mut core = self.shared.lock();
            let copies = core.state.subscriptions_in(segment);
            if copies.is_empty() {
                return Ok(());
            }
            self.check_writable()?;
            let records = copies.into_iter().map(Record::Subscribe).collect();
            self.submit(&mut core, records, Box::new(|_: &mut Core, r| r))
        };
        pending.wait()
    }

    fn checked(
        &self,
        queue: &str,
        request: SubscriptionRequest,
    ) -> Result<Subscription, BrokerError> {
        check_url(&request.url)?;
        let concurrency = request.concurrency.unwrap_or(self.limits.worker_count);
        rules::CONCURRENCY.check("concurrency", u64::from(concurrency))?;
        let timeout_ms = request.timeout_ms.unwrap_or(10_000);
        rules::WEBHOOK_TIMEOUT_MS.check("timeout_ms", timeout_ms)?;
        if let Some(secret) = &request.secret {
            signing_key(secret)?;
        }
        Ok(Subscribed {
            queue: Cow::Owned(queue.to_string()),
            url: Cow::Owned(request.url),
            concurrency,
            timeout_ms,
            secret: request.secret.map(Cow::Owned),
        })
    }
}

fn check_url(text: &str) -> Result<(), BrokerError> {
    let bad = |why: &str| BrokerError::invalid("url", format!("expected {why}"));
    let url = url::Url::parse(text).map_err(|e| {
        bad(&format!(
            "an absolute http:// or https:// URL, got text that is not one ({e})"
        ))
    })?;
    if !matches!(url.scheme(), "http" | "https") {
        return Err(bad("an http:// or https:// URL"));
    }
    if url.host_str().is_none_or(str::is_empty) {
        return Err(bad("a URL with a host"));
    }
    if !url.username().is_empty() || url.password().is_some() {
        // Credentials in a URL end up in logs; a secret signs the requests instead.
        return Err(bad("a URL without user name or password"));
    }
    Ok(())
}

/// The HMAC key of a Standard Webhooks secret: the bytes after `whsec_`,
/// base64-decoded, 24 to 64 of them.
pub fn signing_key(secret: &str) -> Result<Vec<u8>, BrokerError> {
    let bad = || {
        BrokerError::invalid(
            "secret",
            "expected \"whsec_\" followed by the base64 of 24 to 64 random bytes",
        )
    };
    let encoded = secret.strip_prefix("whsec_").ok_or_else(bad)?;
    let key = base64::engine::general_purpose::STANDARD
        .decode(encoded)
        .map_err(|_| bad())?;
    if !(24..=64).contains(&key.len()) {
        return Err(bad());
    }
    Ok(key)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls_must_be_absolute_http_without_credentials() {
        assert!(check_url("http://127.0.0.1:9000/hook").is_ok());
        assert!(check_url("https://hooks.example.com/x?y=1").is_ok());
        for bad in [
            "",
            "/hook",
            "ftp://example.com/",
            "http://user:pw@example.com/",
            "mailto:a@b.c",
        ] {
            let err = check_url(bad).unwrap_err().to_string();
            assert!(err.starts_with("url: "), "{bad:?}: {err}");
        }
    }

    #[test]
    fn secrets_are_whsec_base64_of_24_to_64_bytes() {
        let b64 = |n: usize| base64::engine::general_purpose::STANDARD.encode(vec![7u8; n]);
        assert_eq!(
            signing_key(&format!("whsec_{}", b64(24))).unwrap().len(),
            24
        );
        assert_eq!(
            signing_key(&format!("whsec_{}", b64(64))).unwrap().len(),
            64
        );
        for bad in [
            b64(32),
            format!("whsec_{}", b64(23)),
            format!("whsec_{}", b64(65)),
            "whsec_not base64!".to_string(),
        ] {
            let err = signing_key(&bad).unwrap_err().to_string();
            assert!(err.starts_with("secret: "), "{bad:?}: {err}");
        }
    }
}
