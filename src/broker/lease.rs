//! Receipts: the handle a consumer gets with each delivery.
//!
//! A receipt is `<event id>.<lease serial>`. Serials are unique within the
//! broker's run and start at a random point of 2^63 at startup, so a receipt
//! from before a restart matches a lease made after it only by a negligible
//! chance, whatever the wall clock did in between.

use std::cmp::Reverse;
use std::fmt;
use std::str::FromStr;
use std::time::{Duration, Instant};

use super::queue::Status;
use super::state::{Event, Now, State};

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

/// A current lease of an event.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Lease {
    pub serial: u64,
    pub deadline: Instant,
    pub expires_wall: u64,
}

/// A delivery decided by [`State::lease`].
#[derive(Debug, Clone, Copy)]
pub(crate) struct Leased {
    pub event: Event,
    pub id: u64,
    pub receipt: Receipt,
    pub expires_wall: u64,
}

/// Leases live in memory only: what the state does with them.
impl State {
    /// Leases up to `max` ready events of queue `q`, oldest visible first.
    pub fn lease(&mut self, q: u32, max: usize, timeout: Duration, now: Now) -> Vec<Leased> {
        self.promote(q, now.wall);
        let mut out = Vec::new();
        while out.len() < max {
            let Some(Reverse((time, id))) = self.queues[q as usize].ready.pop() else {
                break;
            };
            let Some(event) = self.events.get(&id).copied() else {
                continue;
            };
            if event.status != Status::Ready || event.time != time {
                continue;
            }
            let serial = self.next_serial;
            self.next_serial += 1;
            let lease = Lease {
                serial,
                deadline: now.mono + timeout,
                expires_wall: now.wall + timeout.as_millis() as u64,
            };
            self.leases.insert(id, lease);
            self.set_status(id, Status::InFlight);
            self.queues[q as usize].stats.delivered_total += 1;
            out.push(Leased {
                event,
                id,
                receipt: Receipt { id, serial },
                expires_wall: lease.expires_wall,
            });
        }
        out
    }

    /// Why `receipt` does not name a current lease in queue `q`, if it does not.
    /// `q` is `None` for a queue that does not exist.
    pub fn check_receipt(&self, q: Option<u32>, receipt: &Receipt) -> ReceiptStatus {
        match self.events.get(&receipt.id) {
            Some(e) if Some(e.queue) != q => ReceiptStatus::NotFound,
            Some(e) if e.status == Status::InFlight => match self.leases.get(&receipt.id) {
                Some(lease) if lease.serial == receipt.serial => ReceiptStatus::Ok,
                _ => ReceiptStatus::LeaseLost,
            },
            Some(_) => ReceiptStatus::LeaseLost,
            // Gone: acked or purged, if it was ever there.
            None if receipt.id < self.next_id => ReceiptStatus::LeaseLost,
            None => ReceiptStatus::NotFound,
        }
    }

    /// Gives a current lease a new deadline.
    pub fn extend(
        &mut self,
        q: u32,
        receipt: &Receipt,
        timeout: Duration,
        now: Now,
    ) -> ReceiptStatus {
        let status = self.check_receipt(Some(q), receipt);
        if status == ReceiptStatus::Ok {
            let lease = Lease {
                serial: receipt.serial,
                deadline: now.mono + timeout,
                expires_wall: now.wall + timeout.as_millis() as u64,
            };
            self.leases.insert(receipt.id, lease);
            self.queues[q as usize].deadlines.push(Reverse((
                lease.deadline,
                receipt.id,
                receipt.serial,
            )));
        }
        status
    }

    /// Takes every lease past its deadline: the events are marked settling
    /// while their failure is written. Returns (id, failures before this one).
    pub fn expire(&mut self, now: Instant) -> Vec<(u64, u32)> {
        let mut out = Vec::new();
        for q in 0..self.queues.len() {
            loop {
                let queue = &mut self.queues[q];
                let Some(&Reverse((deadline, id, serial))) = queue.deadlines.peek() else {
                    break;
                };
                if deadline > now {
                    break;
                }
                queue.deadlines.pop();
                if self.is_current_lease(id, serial, deadline) {
                    self.set_status(id, Status::Settling);
                    out.push((id, self.events[&id].failures));
                }
            }
            let (leases, events) = (&self.leases, &self.events);
            self.queues[q].compact_deadlines(|id, serial| {
                leases.get(&id).is_some_and(|l| l.serial == serial)
                    && events
                        .get(&id)
                        .is_some_and(|e| e.status == Status::InFlight)
            });
        }
        out
    }

    fn is_current_lease(&self, id: u64, serial: u64, deadline: Instant) -> bool {
        let in_flight = self
            .events
            .get(&id)
            .is_some_and(|e| e.status == Status::InFlight);
        let lease = self.leases.get(&id);
        in_flight && lease.is_some_and(|l| l.serial == serial && l.deadline == deadline)
    }

    /// The next moment a lease expires or a delayed event becomes due.
    pub fn next_due(&self, now: Now) -> Option<Instant> {
        let mut next: Option<Instant> = None;
        let mut consider = |at: Instant| next = Some(next.map_or(at, |n| n.min(at)));
        for queue in &self.queues {
            if let Some(Reverse((deadline, _, _))) = queue.deadlines.peek() {
                consider(*deadline);
            }
            if let Some(Reverse((time, _))) = queue.delayed.peek() {
                consider(now.mono + Duration::from_millis(time.saturating_sub(now.wall)));
            }
        }
        next
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
