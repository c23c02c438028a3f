//! Signals: the first SIGTERM or SIGINT starts a graceful shutdown, a second
//! one exits at once (the log is crash-safe either way).

use std::io;

use signal_hook::consts::{SIGINT, SIGTERM};
use signal_hook::iterator::Signals;
use tokio_util::sync::CancellationToken;

/// Exit code after a second signal: 128 + SIGINT, as shells report it.
const EXIT_AT_ONCE: i32 = 130;

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
                std::process::exit(EXIT_AT_ONCE);
            }
        })?;
    Ok(())
}
