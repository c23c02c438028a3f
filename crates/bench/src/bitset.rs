//! A fixed set of sequence numbers shared by the consumers of a run, one bit
//! each, so that checking a million events costs 125 KiB and no lock.

use std::sync::atomic::{AtomicU64, Ordering};

/// The sequence numbers `0..len` seen so far.
#[derive(Debug)]
pub struct Bitset {
    words: Vec<AtomicU64>,
    len: u64,
}

impl Bitset {
    /// An empty set of `0..len`.
    pub fn new(len: u64) -> Self {
        Bitset {
            words: (0..len.div_ceil(64)).map(|_| AtomicU64::new(0)).collect(),
            len,
        }
    }

    /// Adds `seq`: `Some(true)` when it was not there yet, `Some(false)` when
    /// it was, `None` when it is out of range (not an event of this run).
    pub fn insert(&self, seq: u64) -> Option<bool> {
        if seq >= self.len {
            return None;
        }
        let bit = 1u64 << (seq % 64);
        let before = self.words[(seq / 64) as usize].fetch_or(bit, Ordering::Relaxed);
        Some(before & bit == 0)
    }

    /// How many numbers of `0..len` are in the set.
    pub fn count(&self) -> u64 {
        self.words
            .iter()
            .map(|w| u64::from(w.load(Ordering::Relaxed).count_ones()))
            .sum()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_number_is_new_once_and_out_of_range_is_refused() {
        let set = Bitset::new(130);
        assert_eq!(set.insert(0), Some(true));
        assert_eq!(set.insert(129), Some(true));
        assert_eq!(set.insert(129), Some(false));
        assert_eq!(set.insert(130), None);
        assert_eq!(set.count(), 2);
    }
}
