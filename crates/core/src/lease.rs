//! Receipts: the handle a consumer gets with each delivery.
//!
//! A receipt is `<event id>.<lease serial>.<tag>`: the tag is the first 128
//! bits of HMAC-SHA256 over the id and serial, in hex, under a key drawn at
//! random when the broker opens. Serials count up by one per lease, so
//! without the tag anyone could name the next lease of an event; with it, a
//! receipt works only if this broker wrote it, and one consumer cannot ack,
//! nack or extend a lease it was not given. The key is never stored, so a
//! restart invalidates every receipt, as it does every lease (leases are not
//! logged). Serials also start at a random point of 2^63 at startup.
//!
//! The tag costs no memory: a lease keeps its serial only, and a check
//! computes the tag again (one MAC per receipt issued and per one checked).

use std::cmp::Reverse;
use std::fmt;
use std::str::FromStr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use hmac::{Hmac, KeyInit, Mac};
use sha2::Sha256;
use subtle::ConstantTimeEq;

use super::flow::{Limiters, Rates};
use super::queue::Status;
use super::state::{Event, Now, State};
use event_broker_clock::Clock;

/// Bytes of the MAC a receipt carries.
const TAG_BYTES: usize = 16;

/// Names one lease of one event.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Receipt {
    /// The event.
    pub id: u64,
    /// The lease.
    pub serial: u64,
    /// The broker's MAC of `id` and `serial`.
    pub tag: [u8; TAG_BYTES],
}

impl fmt::Display for Receipt {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // Written whole into one buffer: `to_string` then makes one
        // allocation of the right size, where piece by piece it grows its
        // string five times, which cost more than the MAC.
        const DIGITS: &[u8; 16] = b"0123456789abcdef";
        let mut text = [0u8; 20 + 1 + 20 + 1 + 2 * TAG_BYTES];
        let mut len = 0;
        let mut put = |bytes: &[u8]| {
            text[len..len + bytes.len()].copy_from_slice(bytes);
            len += bytes.len();
        };
        put(itoa::Buffer::new().format(self.id).as_bytes());
        put(b".");
        put(itoa::Buffer::new().format(self.serial).as_bytes());
        put(b".");
        for byte in self.tag {
            put(&[
                DIGITS[usize::from(byte >> 4)],
                DIGITS[usize::from(byte & 0xf)],
            ]);
        }
        f.write_str(std::str::from_utf8(&text[..len]).expect("digits are ASCII"))
    }
}

/// A receipt string that is not `<id>.<serial>.<tag>`.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("not a receipt: {0:?}")]
pub struct BadReceipt(pub String);

impl FromStr for Receipt {
    type Err = BadReceipt;
    fn from_str(s: &str) -> Result<Self, BadReceipt> {
        let bad = || BadReceipt(s.chars().take(80).collect());
        let mut parts = s.split('.');
        let (Some(id), Some(serial), Some(hex), None) =
            (parts.next(), parts.next(), parts.next(), parts.next())
        else {
            return Err(bad());
        };
        let digits = |part: &str| !part.is_empty() && part.bytes().all(|b| b.is_ascii_digit());
        if !digits(id) || !digits(serial) || hex.len() != 2 * TAG_BYTES {
            return Err(bad());
        }
        let mut tag = [0u8; TAG_BYTES];
        for (byte, pair) in tag.iter_mut().zip(hex.as_bytes().chunks_exact(2)) {
            *byte = (nibble(pair[0]).ok_or_else(bad)? << 4) | nibble(pair[1]).ok_or_else(bad)?;
        }
        Ok(Receipt {
            id: id.parse().map_err(|_| bad())?,
            serial: serial.parse().map_err(|_| bad())?,
            tag,
        })
    }
}

/// A lowercase hex digit's value: receipts are written in lowercase only.
fn nibble(c: u8) -> Option<u8> {
    match c {
        b'0'..=b'9' => Some(c - b'0'),
        b'a'..=b'f' => Some(c - b'a' + 10),
        _ => None,
    }
}

/// The per-process key receipts are signed with.
#[derive(Clone)]
pub(crate) struct ReceiptKey {
    /// Keyed once: each tag clones the state with the key already absorbed,
    /// so it costs two SHA-256 blocks.
    mac: Hmac<Sha256>,
}

impl fmt::Debug for ReceiptKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("ReceiptKey(..)")
    }
}

impl ReceiptKey {
    /// A fresh key of 256 bits from the operating system's random source.
    pub fn random() -> Self {
        // Two version-4 UUIDs: uuid's fast-rng draws them from a CSPRNG
        // seeded by the OS (getrandom), 122 random bits each.
        let mut key = [0u8; 32];
        key[..16].copy_from_slice(uuid::Uuid::new_v4().as_bytes());
        key[16..].copy_from_slice(uuid::Uuid::new_v4().as_bytes());
        ReceiptKey {
            mac: Hmac::<Sha256>::new_from_slice(&key).expect("HMAC takes a key of any length"),
        }
    }

    fn tag(&self, id: u64, serial: u64) -> [u8; TAG_BYTES] {
        let mut mac = self.mac.clone();
        mac.update(&id.to_le_bytes());
        mac.update(&serial.to_le_bytes());
        let full = mac.finalize().into_bytes();
        let mut tag = [0u8; TAG_BYTES];
        tag.copy_from_slice(&full[..TAG_BYTES]);
        tag
    }

    /// The receipt of lease `serial` of event `id`.
    pub fn sign(&self, id: u64, serial: u64) -> Receipt {
        Receipt {
            id,
            serial,
            tag: self.tag(id, serial),
        }
    }

    /// Whether this key wrote `receipt`; in constant time, so timing tells
    /// nothing of how much of a forged tag was right.
    pub fn verify(&self, receipt: &Receipt) -> bool {
        self.tag(receipt.id, receipt.serial)
            .ct_eq(&receipt.tag)
            .into()
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
    pub serial: u64,
    pub expires_wall: u64,
    /// When the event expires (Unix ms), if it does.
    pub expires_at: Option<u64>,
}

/// The next event a lease would take, taken from its order.
#[derive(Debug, Clone, Copy)]
struct Pick {
    id: u64,
    event: Event,
    /// Its group, if it has one.
    group: Option<u32>,
}

/// Leases live in memory only: what the state does with them.
impl State {
    /// Leases up to `max` ready events of queue `q`, highest priority
    /// first, then by turns across its groups (`group` module), then
    /// oldest visible first; within its `max_in_flight` and rate limits,
    /// whose limiters [`State::fit_limiters`] made. An event past its
    /// expiry is left for the reaper to expire.
    pub fn lease(&mut self, q: u32, max: usize, timeout: Duration, now: Now) -> Vec<Leased> {
        self.promote(q, now.wall);
        // Checked once: a queue none of whose events expires pays nothing more.
        let expiring = self.queues[q as usize].expiring_events > 0;
        let queue = &mut self.queues[q as usize];
        queue.rate_wait = None;
        let room = match queue.flow.max_in_flight {
            Some(most) => u64::from(most).saturating_sub(queue.stats.in_flight) as usize,
            None => usize::MAX,
        };
        let want = max.min(room);
        let mut out = Vec::new();
        // Groups out of their own rate: offered again once this lease is done.
        let mut held = Vec::new();
        while out.len() < want {
            let Some(pick) = self.pick(q, now.wall, expiring) else {
                break;
            };
            let queue = &mut self.queues[q as usize];
            if let Some(limiters) = &queue.limiters {
                let name = pick
                    .group
                    .and_then(|g| queue.groups.get(g))
                    .map(|g| &g.name);
                let taken = name.map_or(Ok(()), |name| limiters.take_group(name));
                if let Err(at) = taken {
                    queue.hold(at);
                    queue.stats.throttled.group_rate_limit += u64::from(held.is_empty());
                    held.extend(pick.group);
                    continue;
                }
                if let Err(at) = limiters.take() {
                    queue.hold(at);
                    queue.stats.throttled.rate_limit += 1;
                    self.unpick(q, pick);
                    break;
                }
            }
            out.push(self.give(q, pick, timeout, now));
        }
        for g in held {
            self.offer(q, g);
        }
        let queue = &mut self.queues[q as usize];
        if want < max && out.len() == want && queue.stats.ready > 0 {
            queue.stats.throttled.max_in_flight += 1;
        }
        out
    }

    /// Leases `pick`.
    fn give(&mut self, q: u32, pick: Pick, timeout: Duration, now: Now) -> Leased {
        let Pick { id, event, group } = pick;
        let serial = self.next_serial;
        self.next_serial += 1;
        let queue = &mut self.queues[q as usize];
        match group.and_then(|g| queue.groups.get_mut(g)) {
            Some(group) => group.last_served = serial,
            None => queue.ungrouped_served = serial,
        }
        let lease = Lease {
            serial,
            deadline: now.mono + timeout,
            expires_wall: now.wall + timeout.as_millis() as u64,
        };
        self.leases.insert(id, lease);
        self.set_status(id, Status::InFlight);
        self.queues[q as usize].stats.delivered_total += 1;
        let expires_at = match self.queues[q as usize].expiring_events > 0 {
            true => self.expires.get(&id).copied(),
            false => None,
        };
        Leased {
            event,
            id,
            serial,
            expires_wall: lease.expires_wall,
            expires_at,
        }
    }

    /// Takes the next event to lease from its order: the ready order's
    /// first, or in a queue with groups whichever of that and the first
    /// group's turn comes first.
    fn pick(&mut self, q: u32, now: u64, expiring: bool) -> Option<Pick> {
        if self.queues[q as usize].groups.is_empty() {
            loop {
                let (_, (time, id)) = self.queues[q as usize].ready.pop()?;
                if let Some(pick) = self.ungrouped(q, id, time, now, expiring) {
                    return Some(pick);
                }
            }
        }
        let ungrouped = loop {
            let Some((priority, (time, id))) = self.queues[q as usize].ready.first() else {
                break None;
            };
            if let Some(pick) = self.ungrouped(q, id, time, now, expiring) {
                break Some((priority, pick));
            }
            self.queues[q as usize].ready.pop();
        };
        let turn = self.first_turn(q, now);
        let queue = &self.queues[q as usize];
        let ungrouped_first = match (ungrouped, turn) {
            (None, None) => return None,
            (Some(_), None) => true,
            (None, Some(_)) => false,
            (Some((priority, u)), Some(turn)) => {
                let own = (
                    Reverse(priority),
                    queue.ungrouped_served,
                    u.event.time,
                    u.id,
                );
                own < (turn.0, turn.1, turn.2, turn.3)
            }
        };
        match (ungrouped_first, ungrouped, turn) {
            (true, Some((_, pick)), _) => {
                self.queues[q as usize].ready.pop();
                Some(pick)
            }
            (_, _, Some((_, _, _, id, g))) => {
                self.take_turn(q, g);
                let event = self.events[&id];
                Some(Pick {
                    id,
                    event,
                    group: Some(g),
                })
            }
            _ => None,
        }
    }

    /// Ready event `id`, if the ready order's entry `(time, id)` is current
    /// and the event is not past its expiry.
    fn ungrouped(&self, q: u32, id: u64, time: u64, now: u64, expiring: bool) -> Option<Pick> {
        let event = self.events.get(&id).copied()?;
        if event.status != Status::Ready || event.time != time {
            return None;
        }
        if expiring && self.is_expired(id, q, now) {
            return None;
        }
        Some(Pick {
            id,
            event,
            group: None,
        })
    }

    /// Puts back what [`State::pick`] took.
    fn unpick(&mut self, q: u32, pick: Pick) {
        match pick.group {
            Some(g) => self.offer(q, g),
            None => {
                let key = (pick.event.time, pick.id);
                self.queues[q as usize].ready.push(pick.event.priority, key);
            }
        }
    }

    /// Makes queue `q`'s rate limiters for its flow settings, on `clock`,
    /// unless it has them: a change of its rates starts them again.
    pub fn fit_limiters(&mut self, q: u32, clock: &Arc<dyn Clock>) {
        let queue = &mut self.queues[q as usize];
        let rates = Rates::of(&queue.flow);
        if queue.limiters.as_ref().map(|l| l.rates()) != rates {
            queue.limiters = rates.map(|rates| Limiters::new(rates, clock));
        }
    }

    /// Why lease `serial` of event `id` is not a current lease in queue `q`,
    /// if it is not. `q` is `None` for a queue that does not exist; `serial`
    /// is `None` for a receipt this broker did not write, which names no
    /// lease and is answered as one of a lease that is over.
    pub fn check_receipt(&self, q: Option<u32>, id: u64, serial: Option<u64>) -> ReceiptStatus {
        match self.events.get(&id) {
            Some(e) if Some(e.queue) != q => ReceiptStatus::NotFound,
            Some(e) if e.status == Status::InFlight => match self.leases.get(&id) {
                Some(lease) if Some(lease.serial) == serial => ReceiptStatus::Ok,
                _ => ReceiptStatus::LeaseLost,
            },
            Some(_) => ReceiptStatus::LeaseLost,
            // Gone by a cancel: as if it had never been.
            None if self.was_cancelled(id) => ReceiptStatus::NotFound,
            // Gone with its queue: as if it had never been.
            None if q.is_some_and(|q| id < self.queues[q as usize].deleted_below) => {
                ReceiptStatus::NotFound
            }
            // Gone: acked or purged, if it was ever there.
            None if id < self.next_id => ReceiptStatus::LeaseLost,
            None => ReceiptStatus::NotFound,
        }
    }

    /// Gives lease `serial` of event `id`, if current, a new deadline.
    pub fn extend(
        &mut self,
        q: u32,
        (id, serial): (u64, u64),
        timeout: Duration,
        now: Now,
    ) -> ReceiptStatus {
        let status = self.check_receipt(Some(q), id, Some(serial));
        if status == ReceiptStatus::Ok {
            let lease = Lease {
                serial,
                deadline: now.mono + timeout,
                expires_wall: now.wall + timeout.as_millis() as u64,
            };
            self.leases.insert(id, lease);
            self.queues[q as usize]
                .deadlines
                .push(Reverse((lease.deadline, id, serial)));
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
                    out.push((id, self.events[&id].failures()));
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

    /// The next moment a lease expires, a delayed event becomes due or a
    /// waiting event expires.
    pub fn next_due(&self, now: Now) -> Option<Instant> {
        let mut next: Option<Instant> = None;
        let mut consider = |at: Instant| next = Some(next.map_or(at, |n| n.min(at)));
        for queue in &self.queues {
            if let Some(Reverse((deadline, _, _))) = queue.deadlines.peek() {
                consider(*deadline);
            }
            let waiting = [queue.delayed.peek(), queue.expiring.peek()];
            for Reverse((time, _)) in waiting.into_iter().flatten() {
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
        let key = ReceiptKey::random();
        let r = key.sign(17, 1_732_000_000_000_001);
        let text = r.to_string();
        let (prefix, tag) = text.rsplit_once('.').unwrap();
        assert_eq!(prefix, "17.1732000000000001");
        assert_eq!(tag.len(), 32, "128 bits of tag in hex");
        assert_eq!(text.parse::<Receipt>(), Ok(r));
        assert!(key.verify(&r));
    }

    #[test]
    fn a_receipt_with_another_serial_or_key_does_not_verify() {
        let key = ReceiptKey::random();
        let r = key.sign(17, 40);
        assert!(!key.verify(&Receipt { serial: 41, ..r }), "the next serial");
        assert!(!key.verify(&Receipt { id: 18, ..r }), "another event");
        let mut flipped = r;
        flipped.tag[15] ^= 1;
        assert!(!key.verify(&flipped), "one bit of the tag");
        assert!(!ReceiptKey::random().verify(&r), "another broker's key");
    }

    #[test]
    fn malformed_receipts_are_refused() {
        let tag = "0123456789abcdef0123456789abcdef";
        for bad in [
            String::new(),
            "17".into(),
            "17.1".into(),
            "17.1.".into(),
            format!(".1.{tag}"),
            format!("17..{tag}"),
            format!("a.1.{tag}"),
            format!("1.b.{tag}"),
            format!("1.2.{tag}.3"),
            format!("-1.2.{tag}"),
            format!("+1.2.{tag}"),
            format!("99999999999999999999.1.{tag}"),
            format!("1.2.{}", &tag[1..]),
            format!("1.2.{tag}0"),
            format!("1.2.{}", tag.to_uppercase()),
            format!("1.2.{}g", &tag[1..]),
        ] {
            assert!(bad.parse::<Receipt>().is_err(), "{bad:?} parsed");
        }
        assert!(format!("1.2.{tag}").parse::<Receipt>().is_ok());
    }
}
