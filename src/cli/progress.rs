//! A progress line on stderr for long runs, rewritten in place at most
//! twice a second, and only when stderr is a terminal: a script's stderr
//! gets no carriage returns.

use std::io::{IsTerminal, Write};
use std::time::{Duration, Instant};

/// Counts something and shows it.
pub struct Progress {
    what: &'static str,
    count: u64,
    shown: Option<Instant>,
    terminal: bool,
}

impl Progress {
    /// A line counting `what` (`"events produced"`).
    pub fn new(what: &'static str) -> Self {
        Progress {
            what,
            count: 0,
            shown: None,
            terminal: std::io::stderr().is_terminal(),
        }
    }

    /// `n` more.
    pub fn add(&mut self, n: u64) {
        self.count += n;
        if self.terminal
            && self
                .shown
                .is_none_or(|at| at.elapsed() >= Duration::from_millis(500))
        {
            self.shown = Some(Instant::now());
            eprint!("\r{} {}", self.count, self.what);
            let _ = std::io::stderr().flush();
        }
    }

    /// Ends the line.
    pub fn finish(&self) {
        if self.terminal && self.shown.is_some() {
            eprintln!("\r{} {}", self.count, self.what);
        }
    }
}
