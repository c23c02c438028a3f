//! Webhook subscriptions: at most one per queue, kept in the log like
//! everything else, so they survive restarts and travel with checkpoints.

use std::borrow::Cow;
use std::net::IpAddr;

use base64::Engine as _;

use super::address;
use super::record::{Record, Subscribed};
use super::rules;
use super::settings::settings_in;
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
        let _one_at_a_time = self.forwarded.lock().await;
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

    /// Writes the subscriptions and queue settings kept in `segment` again,
    /// so that it can be deleted. Blocks on the log; not for async contexts.
    pub(super) fn relocate_kept(&self, segment: u64) -> Result<(), BrokerError> {
        let _one_at_a_time = self.forwarded.blocking_lock();
        let pending = {
            let mut core = self.shared.lock();
            let mut records: Vec<Record<'static>> = core
                .state
                .subscriptions_in(segment)
                .into_iter()
                .map(Record::Subscribe)
                .collect();
            records.extend(settings_in(&core.state, segment));
            if records.is_empty() {
                return Ok(());
            }
            self.check_writable()?;
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
        if !self.limits.webhook_allow_private {
            check_public(&request.url)?;
        }
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
    let Some(rest) = strip_http_scheme(text) else {
        return Err(bad("an http:// or https:// URL"));
    };
    let end = rest.find(['/', '?']).unwrap_or(rest.len());
    let (authority, tail) = rest.split_at(end);
    if authority.contains('@') {
        // Credentials in a URL end up in logs; a secret signs the requests instead.
        return Err(bad("a URL without user name or password"));
    }
    let (host, port) = match authority.split_once(':') {
        Some((host, port)) => (host, Some(port)),
        None => (authority, None),
    };
    if !(is_ipv4(host) || is_host_name(host)) {
        return Err(bad(
            "a URL whose host is a name (letters, digits, '.' and '-', the last label \
             starting with a letter) or an IPv4 address",
        ));
    }
    if !port.is_none_or(is_port) {
        return Err(bad("a URL whose port, when given, is from 1 to 65535"));
    }
    if !is_path_and_query(tail) {
        return Err(bad(
            "a URL whose path and query are of letters, digits, -._~!$&'()*+,;=:@/? and %XX escapes",
        ));
    }
    // What the grammar takes always parses; a URL that did not would never
    // be delivered, so it is refused rather than stored.
    url::Url::parse(text).map_err(|e| bad(&format!("a URL that parses ({e})")))?;
    Ok(())
}

/// Refuses a URL whose host is an address that is not public; a host name
/// is checked when a delivery resolves it, as it may change meanwhile.
fn check_public(text: &str) -> Result<(), BrokerError> {
    let ip = match url::Url::parse(text).ok().as_ref().and_then(url::Url::host) {
        Some(url::Host::Ipv4(v4)) => IpAddr::V4(v4),
        Some(url::Host::Ipv6(v6)) => IpAddr::V6(v6),
        _ => return Ok(()),
    };
    match address::non_public(ip) {
        Some(why) => Err(BrokerError::invalid(
            "url",
            format!(
                "expected a URL of a public address, got {ip}, which is {why} \
                 (WEBHOOK_ALLOW_PRIVATE=true allows it)"
            ),
        )),
        None => Ok(()),
    }
}

fn strip_http_scheme(text: &str) -> Option<&str> {
    let (scheme, rest) = text.split_once("://")?;
    let http = scheme.eq_ignore_ascii_case("http") || scheme.eq_ignore_ascii_case("https");
    http.then_some(rest)
}

/// Four decimal numbers from 0 to 255, without leading zeros.
fn is_ipv4(host: &str) -> bool {
    let parts: Vec<&str> = host.split('.').collect();
    parts.len() == 4
        && parts.iter().all(|p| {
            let digits = !p.is_empty() && p.len() <= 3 && p.bytes().all(|b| b.is_ascii_digit());
            digits
                && (p.len() == 1 || !p.starts_with('0'))
                && p.parse::<u16>().is_ok_and(|n| n <= 255)
        })
}

/// Labels of ASCII letters and digits with single hyphens inside, the last
/// starting with a letter (a last label of digits would be read as an IPv4
/// address).
fn is_host_name(host: &str) -> bool {
    let label = |l: &str| {
        let b = l.as_bytes();
        !b.is_empty()
            && b.iter().all(|&c| c.is_ascii_alphanumeric() || c == b'-')
            && b[0] != b'-'
            && b[b.len() - 1] != b'-'
            && !l.contains("--")
    };
    let last = host.rsplit('.').next().unwrap_or("");
    host.split('.').all(label) && last.starts_with(|c: char| c.is_ascii_alphabetic())
}

/// 1 to 65535, without leading zeros.
fn is_port(port: &str) -> bool {
    !port.starts_with('0')
        && port.len() <= 5
        && port.bytes().all(|b| b.is_ascii_digit())
        && port.parse::<u16>().is_ok_and(|n| n >= 1)
}

/// Empty, or `/path`, `?query` or `/path?query` of URL characters, each
/// `%` starting an escape of two hex digits.
fn is_path_and_query(tail: &str) -> bool {
    let (path, query) = match tail.split_once('?') {
        Some((path, query)) => (path, Some(query)),
        None => (tail, None),
    };
    (path.is_empty() || path.starts_with('/'))
        && is_url_text(path, b"")
        && query.is_none_or(|q| is_url_text(q, b"?"))
}

/// Letters, digits, `-._~!$&'()*+,;=:@/`, the bytes of `more`, and
/// `%XX` escapes.
fn is_url_text(text: &str, more: &[u8]) -> bool {
    let mut bytes = text.bytes();
    while let Some(c) = bytes.next() {
        let ok = match c {
            b'%' => {
                bytes.next().is_some_and(|h| h.is_ascii_hexdigit())
                    && bytes.next().is_some_and(|l| l.is_ascii_hexdigit())
            }
            c => {
                c.is_ascii_alphanumeric() || b"-._~!$&'()*+,;=:@/".contains(&c) || more.contains(&c)
            }
        };
        if !ok {
            return false;
        }
    }
    true
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
        for good in [
            "http://127.0.0.1:9000/hook",
            "https://hooks.example.com/x?y=1",
            "HTTPS://Hooks.Example.COM:443",
            "http://localhost?a=b?c",
            "http://a-b.c0/%7e/./../x?%2F",
            "http://0.com:65535/",
        ] {
            assert!(check_url(good).is_ok(), "{good:?}");
        }
        for bad in [
            "",
            "/hook",
            "ftp://example.com/",
            "http://user:pw@example.com/",
            "http://user@example.com/",
            "mailto:a@b.c",
            "http://",
            "http://example.com*",
            "http://a--b.com/",
            "http://-a.com/",
            "http://a.com./",
            "http://a..com/",
            "http://1.2.3/",
            "http://1.2.3.256/",
            "http://01.2.3.4/",
            "http://a.123/",
            "http://[::1]:9000/",
            "http://a.com:0/",
            "http://a.com:080/",
            "http://a.com:65536/",
            "http://a.com:/",
            "http://a.com/x y",
            "http://a.com/#top",
            "http://a.com/é",
            "http://a.com/100%",
            "http://a.com/?q=%zz",
        ] {
            let err = check_url(bad).unwrap_err().to_string();
            assert!(err.starts_with("url: "), "{bad:?}: {err}");
        }
    }

    #[test]
    fn urls_of_addresses_that_are_not_public_are_refused() {
        for (url, why) in [
            ("http://127.0.0.1/hook", "127.0.0.1, which is loopback"),
            (
                "http://169.254.169.254/latest/meta-data/",
                "169.254.169.254, which is link-local",
            ),
            ("http://10.0.0.1:8080/", "10.0.0.1, which is private"),
            ("http://192.168.0.10/", "192.168.0.10, which is private"),
            ("http://0.0.0.0/", "0.0.0.0, which is unspecified"),
            (
                "http://255.255.255.255/",
                "255.255.255.255, which is broadcast",
            ),
            ("http://224.0.0.1/", "224.0.0.1, which is multicast"),
        ] {
            assert!(check_url(url).is_ok(), "{url}: the grammar takes it");
            let err = check_public(url).unwrap_err().to_string();
            assert!(err.starts_with("url: "), "{url}: {err}");
            assert!(err.contains(why), "{url}: {err}");
            assert!(err.contains("WEBHOOK_ALLOW_PRIVATE=true"), "{url}: {err}");
        }
        for url in [
            "http://93.184.215.14/hook",
            "https://hooks.example.com/x",
            // A name is checked once resolved, when a delivery connects.
            "http://localhost:9000/hook",
        ] {
            assert!(check_public(url).is_ok(), "{url}");
        }
    }

    /// The strings of a whole-string pattern; proptest generates from a
    /// pattern without its anchors, which it reads as whole-string anyway.
    fn unanchored(pattern: &str) -> proptest::string::RegexGeneratorStrategy<String> {
        let inner = pattern.strip_prefix('^').and_then(|p| p.strip_suffix('$'));
        proptest::string::string_regex(inner.expect("an anchored pattern")).unwrap()
    }

    proptest::proptest! {
        /// Every string of the documented pattern is taken, so that a
        /// client that follows the document is never refused.
        #[test]
        fn every_url_of_the_documented_pattern_is_taken(
            url in unanchored(rules::WEBHOOK_URL_PATTERN)
        ) {
            proptest::prop_assert!(check_url(&url).is_ok(), "{url:?}: {:?}", check_url(&url));
        }

        /// And every secret.
        #[test]
        fn every_secret_of_the_documented_pattern_is_taken(
            secret in unanchored(rules::WEBHOOK_SECRET_PATTERN)
        ) {
            proptest::prop_assert!(signing_key(&secret).is_ok(), "{secret:?}");
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
            // Bits left over after the last byte: not canonical.
            format!("whsec_{}B=", &b64(26)[..34]),
            format!("whsec_{}", b64(65)),
            "whsec_not base64!".to_string(),
        ] {
            let err = signing_key(&bad).unwrap_err().to_string();
            assert!(err.starts_with("secret: "), "{bad:?}: {err}");
        }
    }
}
