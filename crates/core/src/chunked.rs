//! A first-in first-out queue kept in chunks of fixed size: growing it
//! allocates one chunk and never moves what it holds, where a `VecDeque`
//! copies its whole buffer each time it doubles, which with millions of
//! entries held the state lock for tens of milliseconds. Emptied chunks are
//! freed as it drains.

use std::collections::VecDeque;

/// Entries per chunk.
const CHUNK: usize = 4096;

#[derive(Debug)]
pub(crate) struct ChunkedDeque<T> {
    /// Entries in order, in full chunks but for the first and last.
    chunks: VecDeque<VecDeque<T>>,
    len: usize,
}

impl<T> Default for ChunkedDeque<T> {
    fn default() -> Self {
        ChunkedDeque {
            chunks: VecDeque::new(),
            len: 0,
        }
    }
}

impl<T> ChunkedDeque<T> {
    pub fn len(&self) -> usize {
        self.len
    }

    pub fn front(&self) -> Option<&T> {
        self.chunks.front()?.front()
    }

    pub fn back(&self) -> Option<&T> {
        self.chunks.back()?.back()
    }

    pub fn front_mut(&mut self) -> Option<&mut T> {
        self.chunks.front_mut()?.front_mut()
    }

    pub fn back_mut(&mut self) -> Option<&mut T> {
        self.chunks.back_mut()?.back_mut()
    }

    pub fn push_back(&mut self, value: T) {
        self.len += 1;
        match self.chunks.back_mut() {
            Some(chunk) if chunk.len() < CHUNK => chunk.push_back(value),
            _ => {
                let mut chunk = VecDeque::with_capacity(CHUNK);
                chunk.push_back(value);
                self.chunks.push_back(chunk);
            }
        }
    }

    pub fn pop_front(&mut self) -> Option<T> {
        let chunk = self.chunks.front_mut()?;
        let value = chunk.pop_front()?;
        if chunk.is_empty() {
            self.chunks.pop_front();
        }
        self.len -= 1;
        Some(value)
    }

    /// Keeps only the entries `keep` accepts, in their order.
    pub fn retain(&mut self, mut keep: impl FnMut(&T) -> bool) {
        let mut kept = ChunkedDeque::default();
        for chunk in std::mem::take(&mut self.chunks) {
            for value in chunk.into_iter().filter(&mut keep) {
                kept.push_back(value);
            }
        }
        *self = kept;
    }

    /// Gives back the room of the chunk list once it holds under a quarter
    /// of what it has room for; the chunks themselves go as they empty.
    pub fn shrink(&mut self, above: usize) {
        if self.chunks.capacity() > above && self.chunks.capacity() > 4 * self.chunks.len() {
            self.chunks.shrink_to(2 * self.chunks.len());
        }
    }

    /// Chunks allocated.
    #[cfg(test)]
    pub fn chunks(&self) -> usize {
        self.chunks.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn chunks_are_freed_as_it_drains() {
        let mut deque = ChunkedDeque::default();
        for i in 0..3 * CHUNK {
            deque.push_back(i);
        }
        assert_eq!(deque.chunks(), 3);
        for i in 0..=CHUNK {
            assert_eq!(deque.pop_front(), Some(i));
        }
        assert_eq!(deque.chunks(), 2);
        assert_eq!(
            (deque.front(), deque.back()),
            (Some(&(CHUNK + 1)), Some(&(3 * CHUNK - 1)))
        );
    }

    proptest! {
        // Runs long enough to cross several chunks, so fewer of them.
        #![proptest_config(ProptestConfig::with_cases(32))]
        #[test]
        fn behaves_as_a_vec_deque(ops in proptest::collection::vec(0u8..100, 1..20_000)) {
            let mut deque = ChunkedDeque::default();
            let mut model = VecDeque::new();
            for (i, op) in ops.into_iter().enumerate() {
                match op {
                    0..=59 => {
                        deque.push_back(i);
                        model.push_back(i);
                    }
                    60..=98 => prop_assert_eq!(deque.pop_front(), model.pop_front()),
                    _ => {
                        deque.retain(|v| v % 3 != 0);
                        model.retain(|v| v % 3 != 0);
                    }
                }
                prop_assert_eq!(deque.len(), model.len());
                prop_assert_eq!(deque.front(), model.front());
                prop_assert_eq!(deque.back(), model.back());
            }
        }
    }
}
