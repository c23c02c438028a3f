//! What a request may ask for: the range of every number, the length of
//! every text and list a request carries, worded once. The broker checks the
//! values against these; the API states the same words when a value is not
//! even of the right type, so a client reads one sentence per field
//! whichever layer refused it.

use std::fmt;

use super::consume::{MAX_ERROR_CHARS, MAX_VISIBILITY_TIMEOUT};
use super::dlq::MAX_DLQ_PAGE;
use super::produce::{MAX_DELAY_MS, MAX_IDEMPOTENCY_KEY_CHARS};
use super::subscription::{MAX_CONCURRENCY, MAX_WEBHOOK_TIMEOUT_MS};
use super::{BrokerError, Limits};

/// Whole numbers from `min` to `max`, of `unit` (plural; empty for a bare count).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Whole {
    /// The least allowed.
    pub min: u64,
    /// The most allowed.
    pub max: u64,
    /// What the number counts, e.g. `milliseconds`.
    pub unit: &'static str,
}

impl Whole {
    /// A duration in milliseconds.
    pub const fn millis(min: u64, max: u64) -> Whole {
        Whole {
            min,
            max,
            unit: "milliseconds",
        }
    }

    /// A plain count.
    pub const fn count(min: u64, max: u64) -> Whole {
        Whole { min, max, unit: "" }
    }

    /// Whether `n` is allowed.
    pub fn contains(&self, n: u64) -> bool {
        (self.min..=self.max).contains(&n)
    }

    /// `Ok(n)` when allowed, else [`Whole::refuse`].
    pub fn check(&self, field: &str, n: u64) -> Result<u64, BrokerError> {
        if self.contains(n) {
            return Ok(n);
        }
        Err(self.refuse(field, n))
    }

    /// The error for `n` in `field`: what is allowed and what was got.
    pub fn refuse(&self, field: impl Into<String>, n: u64) -> BrokerError {
        BrokerError::invalid(field, format!("expected {self}, got {n}"))
    }
}

impl fmt::Display for Whole {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a whole number")?;
        if !self.unit.is_empty() {
            write!(f, " of {}", self.unit)?;
        }
        write!(f, " from {} to {}", self.min, self.max)
    }
}

/// Numbers, whole or not, from `min` to `max`.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Number {
    /// The least allowed.
    pub min: f64,
    /// The most allowed.
    pub max: f64,
}

impl Number {
    /// Whether `x` is allowed; never a value that is not finite.
    pub fn contains(&self, x: f64) -> bool {
        x.is_finite() && (self.min..=self.max).contains(&x)
    }

    /// `Ok(x)` when allowed, else the error naming `field`.
    pub fn check(&self, field: &str, x: f64) -> Result<f64, BrokerError> {
        if self.contains(x) {
            return Ok(x);
        }
        Err(BrokerError::invalid(
            field,
            format!("expected {self}, got {x}"),
        ))
    }
}

impl fmt::Display for Number {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "a number from {:.1} to {:.1}", self.min, self.max)
    }
}

/// A text of `min` to `max` characters (Unicode scalar values).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Text {
    /// The fewest characters allowed.
    pub min: usize,
    /// The most characters allowed.
    pub max: usize,
}

impl Text {
    /// Whether `text` is allowed.
    pub fn allows(&self, text: &str) -> bool {
        (self.min..=self.max).contains(&text.chars().count())
    }

    /// `Ok` when `text` is allowed, else [`Text::refuse`].
    pub fn check(&self, field: &str, text: &str) -> Result<(), BrokerError> {
        if self.allows(text) {
            return Ok(());
        }
        Err(self.refuse(field, text))
    }

    /// The error for `text` in `field`: what is allowed and how long it was.
    pub fn refuse(&self, field: impl Into<String>, text: &str) -> BrokerError {
        let chars = text.chars().count();
        BrokerError::invalid(field, format!("expected {self}, got {chars} characters"))
    }
}

impl fmt::Display for Text {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.min == 0 {
            write!(f, "a string of at most {} characters", self.max)
        } else {
            write!(f, "a string of {} to {} characters", self.min, self.max)
        }
    }
}

/// A list of `min` to `max` items, each a `noun` (plural).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Count {
    /// The fewest items allowed.
    pub min: usize,
    /// The most items allowed.
    pub max: usize,
    /// What the items are, e.g. `receipts`.
    pub noun: &'static str,
}

impl Count {
    /// `Ok` when `len` items are allowed, else the error naming `field`.
    pub fn check(&self, field: &str, len: usize) -> Result<(), BrokerError> {
        if (self.min..=self.max).contains(&len) {
            return Ok(());
        }
        Err(BrokerError::invalid(
            field,
            format!("expected {self}, got {len} {}", self.noun),
        ))
    }
}

impl fmt::Display for Count {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "an array of {} to {} {}", self.min, self.max, self.noun)
    }
}

/// `delay_ms` of an event or a nack: up to 30 days.
pub const DELAY_MS: Whole = Whole::millis(0, MAX_DELAY_MS);

/// `visibility_timeout_ms` of a lease or an extend: up to 12 hours.
pub const VISIBILITY_TIMEOUT_MS: Whole =
    Whole::millis(1, MAX_VISIBILITY_TIMEOUT.as_millis() as u64);

/// A day in milliseconds: the longest retry delay.
const DAY_MS: u64 = 86_400_000;

/// `MAX_RETRIES`, and `max_retries` of a queue.
pub const MAX_RETRIES: Whole = Whole::count(0, 1_000);

/// `BASE_BACKOFF_MS` and `MAX_BACKOFF_MS`, and a queue's `base_backoff_ms`
/// and `max_backoff_ms`: up to a day.
pub const BACKOFF_MS: Whole = Whole::millis(0, DAY_MS);

/// `BACKOFF_MULTIPLIER`, and `backoff_multiplier` of a queue.
pub const BACKOFF_MULTIPLIER: Number = Number {
    min: 1.0,
    max: 100.0,
};

/// `QUEUE_MAX_SIZE`, and `max_size` of a queue.
pub const QUEUE_MAX_SIZE: Whole = Whole::count(1, 100_000_000);

/// `message_ttl_ms` of a queue and `ttl_ms` of an event: 1 ms to 30 days.
pub const MESSAGE_TTL_MS: Whole = Whole::millis(1, MAX_DELAY_MS);

/// `priority` of an event: higher is delivered first.
pub const PRIORITY: Whole = Whole::count(0, u8::MAX as u64);

/// `idempotency_key` of an event.
pub const IDEMPOTENCY_KEY: Text = Text {
    min: 1,
    max: MAX_IDEMPOTENCY_KEY_CHARS,
};

/// `group` of an event.
pub const GROUP: Text = Text { min: 1, max: 128 };

/// `group_concurrency` of a queue: events of one group in flight at once.
pub const GROUP_CONCURRENCY: Whole = Whole::count(1, 10_000);

/// `max_in_flight` of a queue.
pub const MAX_IN_FLIGHT: Whole = Whole::count(1, 1_000_000);

/// `rate_limit_per_s`, `rate_limit_burst` and `group_rate_limit_per_s` of a queue.
pub const RATE: Whole = Whole::count(1, 1_000_000);

/// `error` of a nack.
pub const NACK_ERROR: Text = Text {
    min: 0,
    max: MAX_ERROR_CHARS,
};

/// `limit` of a dead-letter listing.
pub const DLQ_LIMIT: Whole = Whole::count(1, MAX_DLQ_PAGE as u64);

/// `concurrency` of a webhook subscription.
pub const CONCURRENCY: Whole = Whole::count(1, MAX_CONCURRENCY as u64);

/// `timeout_ms` of a webhook subscription: up to 5 minutes.
pub const WEBHOOK_TIMEOUT_MS: Whole = Whole::millis(1, MAX_WEBHOOK_TIMEOUT_MS);

/// The webhook URLs a subscription takes, as the OpenAPI document states
/// them: `http://` or `https://` (in any case), a host name or an IPv4
/// address, an optional port from 1 to 65535, then an optional path and
/// query of URL characters. Host names are labels of letters, digits and
/// single hyphens inside, the last starting with a letter; so no user name
/// or password, no IPv6 address, and no punycode (`xn--`) label. The
/// subscription's check holds a URL to exactly this, so that the document
/// and the server agree on every string.
pub const WEBHOOK_URL_PATTERN: &str = concat!(
    r"^[Hh][Tt][Tt][Pp][Ss]?://",
    r"(?:(?:25[0-5]|2[0-4][0-9]|1[0-9]{2}|[1-9]?[0-9])(?:\.(?:25[0-5]|2[0-4][0-9]|1[0-9]{2}|[1-9]?[0-9])){3}",
    r"|(?:[A-Za-z0-9](?:-?[A-Za-z0-9])*\.)*[A-Za-z](?:-?[A-Za-z0-9])*)",
    r"(?::(?:[1-9][0-9]{0,3}|[1-5][0-9]{4}|6[0-4][0-9]{3}|65[0-4][0-9]{2}|655[0-2][0-9]|6553[0-5]))?",
    r"(?:/(?:[A-Za-z0-9._~!$&'()*+,;=:@/-]|%[0-9A-Fa-f]{2})*)?",
    r"(?:\?(?:[A-Za-z0-9._~!$&'()*+,;=:@/?-]|%[0-9A-Fa-f]{2})*)?$",
);

/// The secrets a subscription takes, as the OpenAPI document states them:
/// `whsec_` and the canonical base64, with padding, of 24 to 64 bytes; the
/// last character before `=` or `==` leaves no bits over.
pub const WEBHOOK_SECRET_PATTERN: &str = concat!(
    r"^whsec_(?:(?:[A-Za-z0-9+/]{4}){8,20}",
    r"(?:[A-Za-z0-9+/][AQgw]==|[A-Za-z0-9+/]{2}[AEIMQUYcgkosw048]=)?",
    r"|(?:[A-Za-z0-9+/]{4}){21}(?:[A-Za-z0-9+/][AQgw]==)?)$",
);

impl Limits {
    /// Events in one enqueue: 1 to `MAX_BATCH`.
    pub fn events(&self) -> Count {
        Count {
            min: 1,
            max: self.max_batch,
            noun: "events",
        }
    }

    /// Receipts in one ack, nack or extend: 1 to `MAX_BATCH`.
    pub fn receipts(&self) -> Count {
        Count {
            min: 1,
            max: self.max_batch,
            noun: "receipts",
        }
    }

    /// `max` of a lease: 1 to `MAX_BATCH`.
    pub fn lease_max(&self) -> Whole {
        Whole::count(1, self.max_batch as u64)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ranges_read_as_sentences() {
        assert_eq!(
            DELAY_MS.to_string(),
            "a whole number of milliseconds from 0 to 2592000000"
        );
        assert_eq!(DLQ_LIMIT.to_string(), "a whole number from 1 to 1000");
        assert_eq!(
            IDEMPOTENCY_KEY.to_string(),
            "a string of 1 to 256 characters"
        );
        assert_eq!(
            NACK_ERROR.to_string(),
            "a string of at most 4096 characters"
        );
        let limits = Limits::default();
        assert_eq!(
            limits.receipts().to_string(),
            "an array of 1 to 1000 receipts"
        );
    }

    #[test]
    fn a_refusal_names_the_field_the_range_and_the_value() {
        let err = DLQ_LIMIT.check("limit", 0).unwrap_err();
        assert_eq!(
            err.to_string(),
            "limit: expected a whole number from 1 to 1000, got 0"
        );
        let err = IDEMPOTENCY_KEY
            .check("events[2].idempotency_key", "")
            .unwrap_err();
        assert_eq!(
            err.to_string(),
            "events[2].idempotency_key: expected a string of 1 to 256 characters, got 0 characters"
        );
        assert_eq!(DELAY_MS.check("delay_ms", 5).unwrap(), 5);
        let err = BACKOFF_MULTIPLIER
            .check("backoff_multiplier", 0.5)
            .unwrap_err();
        assert_eq!(
            err.to_string(),
            "backoff_multiplier: expected a number from 1.0 to 100.0, got 0.5"
        );
        assert!(!BACKOFF_MULTIPLIER.contains(f64::NAN));
    }
}
