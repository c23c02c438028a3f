//! A priority queue of keys, smallest first, that grows without ever moving
//! what it holds: the drop-in for a `BinaryHeap<Reverse<K>>` that a queue's
//! ready, delayed and lease orders use.
//!
//! Keys nearly always arrive in order: events become ready as they are
//! enqueued, by (time, id), and leases of one length expire in the order
//! they were given. Those go to the back of a run, a deque kept in chunks
//! of fixed size, so pushing and popping are a few instructions and growing
//! allocates one chunk, where a heap's one array is copied whole each time
//! it doubles: at ten million events that copy held the state lock for tens
//! of milliseconds. The few keys that arrive out of order (a retry, an
//! extended lease, a clock set back) go to a small heap beside it, and a pop
//! takes the smaller of the two fronts.

use std::cmp::Reverse;
use std::collections::{BinaryHeap, VecDeque};

/// Keys per chunk of the run.
const CHUNK: usize = 4096;

/// Keys smallest first.
#[derive(Debug)]
pub(crate) struct Order<K: Ord + Copy> {
    /// Keys in order, in full chunks but for the first and last.
    run: VecDeque<Vec<Reverse<K>>>,
    /// Where the first chunk's keys start: popped keys stay until it empties.
    head: usize,
    /// Keys that came out of order.
    out_of_order: BinaryHeap<Reverse<K>>,
    len: usize,
}

impl<K: Ord + Copy> Default for Order<K> {
    fn default() -> Self {
        Order {
            run: VecDeque::new(),
            head: 0,
            out_of_order: BinaryHeap::new(),
            len: 0,
        }
    }
}

impl<K: Ord + Copy> Order<K> {
    pub fn new() -> Self {
        Self::default()
    }

    pub fn len(&self) -> usize {
        self.len
    }

    fn run_front(&self) -> Option<&Reverse<K>> {
        self.run.front().and_then(|c| c.get(self.head))
    }

    fn run_back(&self) -> Option<&Reverse<K>> {
        self.run.back().and_then(|c| c.last())
    }

    pub fn push(&mut self, key: Reverse<K>) {
        self.len += 1;
        if self.run_back().is_some_and(|back| back.0 > key.0) {
            self.out_of_order.push(key);
            return;
        }
        match self.run.back_mut() {
            Some(chunk) if chunk.len() < CHUNK => chunk.push(key),
            _ => {
                let mut chunk = Vec::with_capacity(CHUNK);
                chunk.push(key);
                self.run.push_back(chunk);
            }
        }
    }

    /// Whether the smallest key is the run's (else the heap's).
    fn front_is_run(&self) -> Option<bool> {
        match (self.run_front(), self.out_of_order.peek()) {
            (Some(a), Some(b)) => Some(a.0 <= b.0),
            (Some(_), None) => Some(true),
            (None, Some(_)) => Some(false),
            (None, None) => None,
        }
    }

    pub fn peek(&self) -> Option<&Reverse<K>> {
        if self.front_is_run()? {
            self.run_front()
        } else {
            self.out_of_order.peek()
        }
    }

    pub fn pop(&mut self) -> Option<Reverse<K>> {
        if !self.front_is_run()? {
            self.len -= 1;
            return self.out_of_order.pop();
        }
        let key = *self.run_front()?;
        self.len -= 1;
        self.head += 1;
        if self.run.front().is_some_and(|c| self.head == c.len()) {
            self.run.pop_front();
            self.head = 0;
        }
        Some(key)
    }

    /// Keeps only the keys `keep` accepts; their order stays.
    pub fn retain(&mut self, mut keep: impl FnMut(&Reverse<K>) -> bool) {
        let mut kept: VecDeque<Vec<Reverse<K>>> = VecDeque::new();
        let head = std::mem::take(&mut self.head);
        for (i, chunk) in std::mem::take(&mut self.run).into_iter().enumerate() {
            let from = if i == 0 { head } else { 0 };
            for key in chunk.into_iter().skip(from).filter(&mut keep) {
                match kept.back_mut() {
                    Some(c) if c.len() < CHUNK => c.push(key),
                    _ => {
                        let mut c = Vec::with_capacity(CHUNK);
                        c.push(key);
                        kept.push_back(c);
                    }
                }
            }
        }
        self.run = kept;
        self.out_of_order.retain(&mut keep);
        self.len = self.run.iter().map(Vec::len).sum::<usize>() + self.out_of_order.len();
    }

    /// Gives back the room of an out-of-order heap that shrank to under a
    /// quarter of it; the run gives its room back chunk by chunk as it goes.
    pub fn shrink(&mut self, above: usize) {
        let h = &mut self.out_of_order;
        if h.capacity() > above && h.capacity() > 4 * h.len() {
            h.shrink_to(2 * h.len());
        }
        if self.run.capacity() > above && self.run.capacity() > 4 * self.run.len() {
            self.run.shrink_to(2 * self.run.len());
        }
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
        Push(u32),
        Pop,
        Retain(u32),
    }

    fn op() -> impl Strategy<Value = Op> {
        prop_oneof![
            6 => (0u32..1_000).prop_map(Op::Push),
            3 => Just(Op::Pop),
            1 => (2u32..5).prop_map(Op::Retain),
        ]
    }

    proptest! {
        #[test]
        fn pops_what_a_binary_heap_pops(ops in proptest::collection::vec(op(), 1..3_000), rising in any::<bool>()) {
            let mut order = Order::new();
            let mut heap = BinaryHeap::new();
            let mut n = 0u32;
            for op in ops {
                match op {
                    Op::Push(k) => {
                        // Mostly rising keys, as the broker pushes them.
                        let k = if rising { n += 1; n * 2 + k % 3 } else { k };
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
        for k in 0..3 * CHUNK as u64 {
            order.push(Reverse(k));
        }
        assert_eq!(order.heap_capacity(), 0);
        assert_eq!(order.run.len(), 3);
        for k in 0..CHUNK as u64 + 1 {
            assert_eq!(order.pop(), Some(Reverse(k)));
        }
        assert_eq!(order.run.len(), 2, "an emptied chunk is freed");
    }
}
