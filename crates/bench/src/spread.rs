//! A run over several queues. `--queues N` spreads a workload's workers
//! round-robin over the queues `<queue>-0` .. `<queue>-<N-1>` (worker `j`
//! on queue `j mod N`; with N = 1, the one queue itself), and each queue is
//! given its own share of the events, numbered from 0 as one queue's are, so
//! that a run loads N queues in parallel the way it loads one: prefilled,
//! checked and emptied queue by queue, each within `QUEUE_MAX_SIZE`.

use super::BenchError;

/// The queues of a run of `n` queues named after `base`.
pub fn names(base: &str, n: u32) -> Vec<String> {
    if n <= 1 {
        return vec![base.to_string()];
    }
    (0..n).map(|i| format!("{base}-{i}")).collect()
}

/// `total` events split over `parts` queues, the first `total mod parts`
/// one event more than the others.
pub fn shares(total: u64, parts: usize) -> Vec<u64> {
    let parts = parts.max(1) as u64;
    (0..parts)
        .map(|i| total / parts + u64::from(i < total % parts))
        .collect()
}

/// The queue of worker `worker` among `queues`.
pub fn queue_of(worker: usize, queues: usize) -> usize {
    worker % queues.max(1)
}

/// Refuses fewer workers than queues: a queue without a worker would get
/// no load, or never be drained.
pub fn check_workers(flag: &'static str, workers: u32, queues: u32) -> Result<(), BenchError> {
    if workers < queues {
        return Err(BenchError::FewerWorkersThanQueues {
            flag,
            workers,
            queues,
        });
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_queue_keeps_its_name_and_several_are_numbered_after_it() {
        assert_eq!(names("q", 1), ["q"]);
        assert_eq!(names("q", 3), ["q-0", "q-1", "q-2"]);
    }

    #[test]
    fn shares_add_up_to_the_total_and_differ_by_at_most_one() {
        assert_eq!(shares(10, 4), [3, 3, 2, 2]);
        assert_eq!(shares(8, 4), [2, 2, 2, 2]);
        assert_eq!(shares(2, 4), [1, 1, 0, 0]);
        assert_eq!(shares(7, 1), [7]);
        let (workers, queues) = (8, 3);
        let per_queue: Vec<usize> = (0..queues)
            .map(|q| (0..workers).filter(|&w| queue_of(w, queues) == q).count())
            .collect();
        assert_eq!(per_queue, [3, 3, 2]);
    }

    #[test]
    fn every_queue_needs_a_worker() {
        assert!(check_workers("--producers", 4, 4).is_ok());
        let err = check_workers("--consumers", 2, 4).unwrap_err();
        assert_eq!(
            err.to_string(),
            "--queues 4 needs at least 4 --consumers, one for each queue; 2 were asked for"
        );
    }
}
