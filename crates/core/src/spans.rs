//! The run of an order keyed by (time, id), kept as spans of consecutive
//! ids that share a time.
//!
//! The events of one batch share their visible time and have consecutive
//! ids, and so do most single events of one queue within a millisecond, so
//! a span stands for many keys: a backlog of ten million events from
//! batches of a thousand holds ten thousand spans, not ten million keys.
//! That is memory a restart does not have to be given and fill, and a
//! fresh page is slow to come by on a virtual machine. A span costs 24
//! bytes against a key's 16, so keys that never share one (queues written
//! in turn, one event each) cost half again as much as a plain run would.

use std::cmp::Reverse;

use super::chunked::ChunkedDeque;
use super::order::Run;

/// Keys `(time, first + i)` for `i` in `0..len`.
#[derive(Debug, Clone, Copy)]
struct Span {
    time: u64,
    first: u64,
    len: u32,
}

impl Span {
    fn last(&self) -> (u64, u64) {
        (self.time, self.first + u64::from(self.len) - 1)
    }
}

/// Keys in order, as spans.
#[derive(Debug, Default)]
pub(crate) struct Spans {
    spans: ChunkedDeque<Span>,
    /// The first key, kept whole so that it can be lent out.
    head: Option<Reverse<(u64, u64)>>,
    len: usize,
}

impl Spans {
    fn set_head(&mut self) {
        self.head = self.spans.front().map(|s| Reverse((s.time, s.first)));
    }

    #[cfg(test)]
    pub fn spans(&self) -> usize {
        self.spans.len()
    }
}

impl Run<(u64, u64)> for Spans {
    fn len(&self) -> usize {
        self.len
    }

    fn front(&self) -> Option<&Reverse<(u64, u64)>> {
        self.head.as_ref()
    }

    fn back(&self) -> Option<(u64, u64)> {
        self.spans.back().map(Span::last)
    }

    fn push_back(&mut self, (time, id): (u64, u64)) {
        self.len += 1;
        if let Some(span) = self.spans.back_mut() {
            if span.time == time && span.last().1.checked_add(1) == Some(id) && span.len < u32::MAX
            {
                span.len += 1;
                return;
            }
        }
        self.spans.push_back(Span {
            time,
            first: id,
            len: 1,
        });
        if self.head.is_none() {
            self.set_head();
        }
    }

    fn pop_front(&mut self) -> Option<Reverse<(u64, u64)>> {
        let key = self.head?;
        let span = self.spans.front_mut()?;
        if span.len > 1 {
            span.first += 1;
            span.len -= 1;
        } else {
            self.spans.pop_front();
        }
        self.len -= 1;
        self.set_head();
        Some(key)
    }

    fn retain(&mut self, keep: &mut dyn FnMut(&Reverse<(u64, u64)>) -> bool) {
        let mut kept = Spans::default();
        while let Some(key) = self.pop_front() {
            if keep(&key) {
                kept.push_back(key.0);
            }
        }
        *self = kept;
    }

    fn shrink(&mut self, above: usize) {
        self.spans.shrink(above);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn a_batch_is_one_span() {
        let mut run = Spans::default();
        for id in 10..1_010 {
            run.push_back((7, id));
        }
        run.push_back((7, 2_000));
        run.push_back((8, 2_001));
        assert_eq!((run.len(), run.spans()), (1_002, 3));
        assert_eq!(run.front(), Some(&Reverse((7, 10))));
        assert_eq!(run.back(), Some((8, 2_001)));
        for id in 10..1_010 {
            assert_eq!(run.pop_front(), Some(Reverse((7, id))));
        }
        assert_eq!(run.spans(), 2);
    }

    proptest! {
        #[test]
        fn holds_what_a_deque_of_keys_holds(
            steps in proptest::collection::vec((0u8..4, 0u64..3, 0u8..10), 1..2_000),
        ) {
            let mut run = Spans::default();
            let mut model = std::collections::VecDeque::new();
            let (mut time, mut id) = (0u64, 0u64);
            for (gap, later, op) in steps {
                match op {
                    0..=6 => {
                        time += later;
                        id += u64::from(gap);
                        run.push_back((time, id));
                        model.push_back(Reverse((time, id)));
                        id += 1;
                    }
                    7 | 8 => prop_assert_eq!(run.pop_front(), model.pop_front()),
                    _ => {
                        run.retain(&mut |Reverse((_, id))| id % 3 != 0);
                        model.retain(|Reverse((_, id))| id % 3 != 0);
                    }
                }
                prop_assert_eq!(run.len(), model.len());
                prop_assert_eq!(run.front(), model.front());
                prop_assert_eq!(run.back(), model.back().map(|k| k.0));
            }
        }
    }
}
