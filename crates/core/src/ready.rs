//! A queue's ready events in delivery order: highest priority first, then
//! by (visible time, id).
//!
//! One [`Order`] per priority in use, highest first, rather than one order
//! keyed by priority as well: events of one priority still arrive in order
//! of their key, so each stays a run that never touches its heap, and a
//! queue whose events all have priority 0 has one order, as before.

use std::cmp::Reverse;

use super::order::Order;

/// Ready keys `(visible time, id)` by priority.
#[derive(Debug, Default)]
pub(crate) struct ReadyOrder {
    /// Highest priority first; an order is dropped once empty unless it is
    /// the last one, so that a queue of one priority keeps its runs' room.
    levels: Vec<(u8, Order<(u64, u64)>)>,
}

impl ReadyOrder {
    #[cfg(test)]
    pub fn len(&self) -> usize {
        self.levels.iter().map(|(_, order)| order.len()).sum()
    }

    pub fn push(&mut self, priority: u8, key: (u64, u64)) {
        let at = self.levels.iter().position(|(p, _)| *p <= priority);
        let order = match at {
            Some(i) if self.levels[i].0 == priority => &mut self.levels[i].1,
            _ => {
                let i = at.unwrap_or(self.levels.len());
                self.levels.insert(i, (priority, Order::new()));
                &mut self.levels[i].1
            }
        };
        order.push(Reverse(key));
    }

    /// The next key to deliver, with its priority.
    pub fn pop(&mut self) -> Option<(u8, (u64, u64))> {
        loop {
            let (priority, order) = self.levels.first_mut()?;
            if let Some(Reverse(key)) = order.pop() {
                return Some((*priority, key));
            }
            if self.levels.len() == 1 {
                return None;
            }
            self.levels.remove(0);
        }
    }

    /// The key [`ReadyOrder::pop`] would take, with its priority.
    pub fn first(&self) -> Option<(u8, (u64, u64))> {
        self.levels
            .iter()
            .find_map(|(p, order)| order.peek().map(|Reverse(key)| (*p, *key)))
    }

    /// Each priority's first key, highest priority first; `pop_at` takes it.
    pub fn fronts(&self) -> impl Iterator<Item = (usize, (u64, u64))> + '_ {
        self.levels
            .iter()
            .enumerate()
            .filter_map(|(i, (_, order))| order.peek().map(|Reverse(key)| (i, *key)))
    }

    /// Drops the first key of the `level`th priority that [`Self::fronts`] named.
    pub fn pop_at(&mut self, level: usize) {
        self.levels[level].1.pop();
    }

    pub fn shrink(&mut self, above: usize) {
        for (_, order) in &mut self.levels {
            order.shrink(above);
        }
    }

    #[cfg(test)]
    pub fn heap_capacity(&self) -> usize {
        self.levels.iter().map(|(_, o)| o.heap_capacity()).sum()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    proptest! {
        #[test]
        fn pops_by_priority_then_key(keys in proptest::collection::vec((0u8..4, 0u64..50), 0..300)) {
            let mut ready = ReadyOrder::default();
            for (id, (priority, time)) in keys.iter().enumerate() {
                ready.push(priority * 60, (*time, id as u64));
            }
            prop_assert_eq!(ready.len(), keys.len());
            let mut want: Vec<(Reverse<u8>, u64, u64)> = keys
                .iter()
                .enumerate()
                .map(|(id, (p, t))| (Reverse(p * 60), *t, id as u64))
                .collect();
            want.sort_unstable();
            let mut got = Vec::new();
            while let Some((priority, (time, id))) = ready.pop() {
                got.push((Reverse(priority), time, id));
            }
            prop_assert_eq!(got, want);
        }
    }

    #[test]
    fn a_queue_of_one_priority_keeps_one_order() {
        let mut ready = ReadyOrder::default();
        ready.push(0, (1, 1));
        assert_eq!(ready.pop(), Some((0, (1, 1))));
        assert_eq!(ready.pop(), None);
        assert_eq!(ready.levels.len(), 1);
        ready.push(7, (2, 2));
        ready.push(0, (1, 3));
        assert_eq!(
            ready.fronts().collect::<Vec<_>>(),
            [(0, (2, 2)), (1, (1, 3))]
        );
        assert_eq!(ready.pop(), Some((7, (2, 2))));
        assert_eq!(ready.pop(), Some((0, (1, 3))));
        assert_eq!(ready.levels.len(), 1, "the emptied level went");
    }
}
