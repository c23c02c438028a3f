//! A priority queue of keys, smallest first, that grows without ever moving
//! what it holds: the drop-in for a `BinaryHeap<Reverse<K>>` that a queue's
//! ready, delayed and lease orders use.
//!
//! Keys nearly always arrive in order: events become ready as they are
//! enqueued, by (time, id), and leases of one length expire in the order
//! they were given. Those go to the back of a run, a [`ChunkedDeque`], so
//! pushing and popping are a few instructions and growing allocates one
//! chunk, where a heap's one array is copied whole each time it doubles: at
//! ten million events that copy held the state lock for tens of
//! milliseconds. The few keys that arrive out of order (a retry, an
//! extended lease, a clock set back) go to a small heap beside it, and a pop
//! takes the smaller of the two fronts.
//!
//! Keys of (time, id) keep their run as [`Spans`]: one entry for each run
//! of consecutive ids at one time, such as a batch.

use std::cmp::Reverse;
use std::collections::BinaryHeap;
use std::time::Instant;

use super::chunked::ChunkedDeque;
use super::group::Turn;
use super::spans::Spans;

/// Keys in order, oldest first: what an [`Order`] keeps its run in.
pub(crate) trait Run<K>: Default {
    fn len(&self) -> usize;
    fn front(&self) -> Option<&Reverse<K>>;
    fn back(&self) -> Option<K>;
    /// Adds a key no smaller than [`Run::back`].
    fn push_back(&mut self, key: K);
    fn pop_front(&mut self) -> Option<Reverse<K>>;
    fn retain(&mut self, keep: &mut dyn FnMut(&Reverse<K>) -> bool);
    fn shrink(&mut self, above: usize);
}

impl<K: Copy> Run<K> for ChunkedDeque<Reverse<K>> {
    fn len(&self) -> usize {
        ChunkedDeque::len(self)
    }

    fn front(&self) -> Option<&Reverse<K>> {
        ChunkedDeque::front(self)
    }

    fn back(&self) -> Option<K> {
        ChunkedDeque::back(self).map(|key| key.0)
    }

    fn push_back(&mut self, key: K) {
        ChunkedDeque::push_back(self, Reverse(key));
    }

    fn pop_front(&mut self) -> Option<Reverse<K>> {
        ChunkedDeque::pop_front(self)
    }

    fn retain(&mut self, keep: &mut dyn FnMut(&Reverse<K>) -> bool) {
        ChunkedDeque::retain(self, keep);
    }

    fn shrink(&mut self, above: usize) {
        ChunkedDeque::shrink(self, above);
    }
}

/// A key an [`Order`] can hold, and the run it keeps such keys in.
pub(crate) trait Key: Ord + Copy {
    type Run: Run<Self>;
}

impl Key for (u64, u64) {
    type Run = Spans;
}

impl Key for (Instant, u64, u64) {
    type Run = ChunkedDeque<Reverse<Self>>;
}

impl Key for Turn {
    type Run = ChunkedDeque<Reverse<Self>>;
}

/// Of two fronts of orders smallest first, whether the left one goes
/// first (ties go left); `None` when both are empty.
pub(crate) fn first_is_left<K: Ord>(
    left: Option<&Reverse<K>>,
    right: Option<&Reverse<K>>,
) -> Option<bool> {
    match (left, right) {
        (Some(a), Some(b)) => Some(a.0 <= b.0),
        (Some(_), None) => Some(true),
        (None, Some(_)) => Some(false),
        (None, None) => None,
    }
}

/// Keys smallest first.
#[derive(Debug)]
pub(crate) struct Order<K: Key> {
    /// Keys in order.
    run: K::Run,
    /// Keys that came out of order.
    out_of_order: BinaryHeap<Reverse<K>>,
}

impl<K: Key> Default for Order<K> {
    fn default() -> Self {
        Order {
            run: K::Run::default(),
            out_of_order: BinaryHeap::new(),
        }
    }
}

impl<K: Key> Order<K> {
    pub fn new() -> Self {
        Self::default()
    }

    pub fn len(&self) -> usize {
        self.run.len() + self.out_of_order.len()
    }

    pub fn push(&mut self, key: Reverse<K>) {
        if self.run.back().is_some_and(|back| back > key.0) {
            self.out_of_order.push(key);
        } else {
            self.run.push_back(key.0);
        }
    }

    /// Whether the smallest key is the run's (else the heap's).
    fn front_is_run(&self) -> Option<bool> {
        first_is_left(self.run.front(), self.out_of_order.peek())
    }

    pub fn peek(&self) -> Option<&Reverse<K>> {
        if self.front_is_run()? {
            self.run.front()
        } else {
            self.out_of_order.peek()
        }
    }

    pub fn pop(&mut self) -> Option<Reverse<K>> {
        if self.front_is_run()? {
            self.run.pop_front()
        } else {
            self.out_of_order.pop()
        }
    }

    /// Keeps only the keys `keep` accepts; their order stays.
    pub fn retain(&mut self, mut keep: impl FnMut(&Reverse<K>) -> bool) {
        self.run.retain(&mut keep);
        self.out_of_order.retain(keep);
    }

    /// Gives back the room of an out-of-order heap that shrank to under a
    /// quarter of it; the run gives its room back chunk by chunk as it goes.
    pub fn shrink(&mut self, above: usize) {
        let h = &mut self.out_of_order;
        if h.capacity() > above && h.capacity() > 4 * h.len() {
            h.shrink_to(2 * h.len());
        }
        self.run.shrink(above);
    }

    /// Room held for keys in the out-of-order heap.
    #[cfg(test)]
    pub fn heap_capacity(&self) -> usize {
        self.out_of_order.capacity()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[derive(Debug, Clone)]
    enum Op {
        Push(u64),
        Pop,
        Retain(u64),
    }

    fn op() -> impl Strategy<Value = Op> {
        prop_oneof![
            6 => (0u64..1_000).prop_map(Op::Push),
            3 => Just(Op::Pop),
            1 => (2u64..5).prop_map(Op::Retain),
        ]
    }

    proptest! {
        #[test]
        fn pops_what_a_binary_heap_pops(ops in proptest::collection::vec(op(), 1..3_000), rising in any::<bool>()) {
            let mut order = Order::new();
            let mut heap = BinaryHeap::new();
            let mut n = 0u64;
            for op in ops {
                match op {
                    Op::Push(k) => {
                        // Mostly rising keys, as the broker pushes them, at
                        // times shared by several in a row.
                        let k = if rising { n += 1; n / 4 + k % 2 } else { k };
                        order.push(Reverse((k, n)));
                        heap.push(Reverse((k, n)));
                    }
                    Op::Pop => prop_assert_eq!(order.pop(), heap.pop()),
                    Op::Retain(m) => {
                        order.retain(|Reverse((k, _))| k % m != 0);
                        heap.retain(|Reverse((k, _))| k % m != 0);
                    }
                }
                prop_assert_eq!(order.len(), heap.len());
                prop_assert_eq!(order.peek(), heap.peek());
            }
            while let Some(k) = heap.pop() {
                prop_assert_eq!(order.pop(), Some(k));
            }
            prop_assert_eq!(order.len(), 0);
        }
    }

    #[test]
    fn keys_in_order_never_touch_the_heap() {
        let mut order = Order::new();
        for k in 0..20_000u64 {
            order.push(Reverse((k / 3, k)));
        }
        assert_eq!(order.heap_capacity(), 0);
        for k in 0..20_000u64 {
            assert_eq!(order.pop(), Some(Reverse((k / 3, k))));
        }
    }
}
