//! Signals: the first SIGTERM or SIGINT starts a graceful shutdown, a second
//! one exits at once (the log is crash-safe either way), after giving the
//! log lines still buffered 100 ms to reach stderr.

use std::io;
use std::time::Duration;

use signal_hook::consts::{SIGINT, SIGTERM};
use signal_hook::iterator::Signals;
use tokio_util::sync::CancellationToken;

use crate::log_writer;

/// Exit code after a second signal: 128 + SIGINT, as shells report it.
const EXIT_AT_ONCE: i32 = 130;

/// How long an exit at once waits for buffered log lines: they say why the
/// broker stopped, but a stderr that blocks must not delay the exit.
const EXIT_FLUSH: Duration = Duration::from_millis(100);

/// Cancels `token` on the first SIGTERM or SIGINT; exits on the second.
pub fn cancel_on_signal(token: CancellationToken) -> io::Result<()> {
    let mut signals = Signals::new([SIGTERM, SIGINT])?;
    std::thread::Builder::new()
        .name("signals".into())
        .spawn(move || {
            let mut signals = signals.forever();
            if let Some(signal) = signals.next() {
                tracing::info!(
                    signal,
                    "shutting down: finishing requests, then flushing the log"
                );
                token.cancel();
            }
            if let Some(signal) = signals.next() {
                tracing::warn!(signal, "second signal: exiting at once");
                if let Some(logs) = log_writer::installed() {
                    logs.flush_within(EXIT_FLUSH);
                }
                std::process::exit(EXIT_AT_ONCE);
            }
        })?;
    Ok(())
}
