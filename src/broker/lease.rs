//! Receipts: the handle a consumer gets with each delivery.
//!
//! A receipt is `<event id>.<lease serial>`. Serials are unique within the
//! broker's run and start at a random point of 2^63 at startup, so a receipt
//! from before a restart matches a lease made after it only by a negligible
//! chance, whatever the wall clock did in between.

use std::fmt;
use std::str::FromStr;

/// Names one lease of one event.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Receipt {
    /// The event.
    pub id: u64,
    /// The lease.
    pub serial: u64,
}

impl fmt::Display for Receipt {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}.{}", self.id, self.serial)
    }
}

/// A receipt string that is not `<id>.<serial>`.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("not a receipt: {0:?}")]
pub struct BadReceipt(pub String);

impl FromStr for Receipt {
    type Err = BadReceipt;
    fn from_str(s: &str) -> Result<Self, BadReceipt> {
        let bad = || BadReceipt(s.chars().take(64).collect());
        let (id, serial) = s.split_once('.').ok_or_else(bad)?;
        let digits = |part: &str| !part.is_empty() && part.bytes().all(|b| b.is_ascii_digit());
        if !digits(id) || !digits(serial) {
            return Err(bad());
        }
        Ok(Receipt {
            id: id.parse().map_err(|_| bad())?,
            serial: serial.parse().map_err(|_| bad())?,
        })
    }
}

/// The outcome for one receipt of an ack, nack or extend.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ReceiptStatus {
    /// Done.
    Ok,
    /// The event exists (or existed) but this is not its current lease.
    LeaseLost,
    /// No such event in this queue.
    NotFound,
}

impl ReceiptStatus {
    /// The name the API uses.
    pub fn as_str(self) -> &'static str {
        match self {
            ReceiptStatus::Ok => "ok",
            ReceiptStatus::LeaseLost => "lease_lost",
            ReceiptStatus::NotFound => "not_found",
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn receipt_round_trips_through_its_text() {
        let r = Receipt {
            id: 17,
            serial: 1_732_000_000_000_001,
        };
        assert_eq!(r.to_string(), "17.1732000000000001");
        assert_eq!(r.to_string().parse::<Receipt>(), Ok(r));
    }

    #[test]
    fn malformed_receipts_are_refused() {
        for bad in [
            "",
            "17",
            "17.",
            ".1",
            "a.1",
            "1.b",
            "1.2.3",
            "-1.2",
            "+1.2",
            "99999999999999999999.1",
        ] {
            assert!(bad.parse::<Receipt>().is_err(), "{bad:?} parsed");
        }
    }
}
