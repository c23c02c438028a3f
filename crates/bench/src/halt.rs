//! Ending a run before its count or duration: the first reason is kept (a
//! queue that stays full, a worker that lost the broker, Ctrl-C) and every
//! worker stops at its next step, so that the run still ends with its
//! summary and its cleanup.

use std::sync::Mutex;

use tokio_util::sync::CancellationToken;

use super::BenchError;

/// Whether, and why, a run is to end early; shared by all its workers.
#[derive(Debug, Default)]
pub struct Halt {
    stopped: CancellationToken,
    why: Mutex<Option<BenchError>>,
}

impl Halt {
    /// Ends the run for `why`, unless it is ending for another reason already.
    pub fn stop(&self, why: BenchError) {
        let mut first = self.why.lock().unwrap_or_else(|e| e.into_inner());
        if first.is_none() {
            *first = Some(why);
        }
        self.stopped.cancel();
    }

    /// Whether the run is to end.
    pub fn is_stopped(&self) -> bool {
        self.stopped.is_cancelled()
    }

    /// Completes once the run is to end.
    pub async fn stopped(&self) {
        self.stopped.cancelled().await;
    }

    /// Why the run ended early, if it did; taken once.
    pub fn take(&self) -> Option<BenchError> {
        self.why.lock().unwrap_or_else(|e| e.into_inner()).take()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_first_reason_is_kept() {
        let halt = Halt::default();
        assert!(!halt.is_stopped());
        halt.stop(BenchError::Interrupted);
        halt.stop(BenchError::Token);
        assert!(halt.is_stopped());
        assert!(matches!(halt.take(), Some(BenchError::Interrupted)));
        assert!(halt.take().is_none());
    }
}
