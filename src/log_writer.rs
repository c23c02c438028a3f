//! Where log lines go: stderr, through a buffer that a thread of its own
//! writes out 20 ms after the first line waiting in it (nginx's buffered
//! access log, in effect). A request's line costs an append to memory, not a
//! write call or a thread wake-up: under load one write carries hundreds of
//! lines, and at most 50 writes a second happen however busy the broker is.

use std::io::Write;
use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::thread::JoinHandle;
use std::time::Duration;

use tracing_subscriber::fmt::MakeWriter;

/// How long a line may wait in the buffer.
const FLUSH_AFTER: Duration = Duration::from_millis(20);

/// Past this many bytes waiting, the writer is woken at once.
const EAGER_BYTES: usize = 256 << 10;

#[derive(Default)]
struct Buffer {
    lines: Vec<u8>,
    closed: bool,
}

#[derive(Default)]
struct Shared {
    buffer: Mutex<Buffer>,
    filled: Condvar,
}

impl Shared {
    fn lock(&self) -> MutexGuard<'_, Buffer> {
        // A panic while appending leaves bytes, not broken invariants.
        self.buffer.lock().unwrap_or_else(|e| e.into_inner())
    }
}

/// Makes the writers that `tracing_subscriber::fmt` writes each line with.
#[derive(Clone)]
pub struct BufferedStderr {
    shared: Arc<Shared>,
}

/// Writes out what is left and stops the thread when dropped.
pub struct FlushGuard {
    shared: Arc<Shared>,
    thread: Option<JoinHandle<()>>,
}

/// A buffered stderr and the guard that flushes it at exit.
pub fn buffered_stderr() -> std::io::Result<(BufferedStderr, FlushGuard)> {
    let shared = Arc::new(Shared::default());
    let flusher = shared.clone();
    let thread = std::thread::Builder::new()
        .name("log-writer".into())
        .spawn(move || write_out(&flusher, &mut std::io::stderr()))?;
    Ok((
        BufferedStderr {
            shared: shared.clone(),
        },
        FlushGuard {
            shared,
            thread: Some(thread),
        },
    ))
}

fn write_out(shared: &Shared, out: &mut impl Write) {
    let mut spare = Vec::new();
    loop {
        let mut buffer = shared.lock();
        while buffer.lines.is_empty() && !buffer.closed {
            buffer = shared
                .filled
                .wait(buffer)
                .unwrap_or_else(|e| e.into_inner());
        }
        // Let more lines join this write, unless the buffer fills or closes first.
        let (mut buffer, _) = shared
            .filled
            .wait_timeout_while(buffer, FLUSH_AFTER, |b| {
                !b.closed && b.lines.len() < EAGER_BYTES
            })
            .unwrap_or_else(|e| e.into_inner());
        std::mem::swap(&mut buffer.lines, &mut spare);
        let closed = buffer.closed;
        drop(buffer);
        // Nowhere to report a failed write of the log itself.
        let _ = out.write_all(&spare).and_then(|()| out.flush());
        spare.clear();
        if closed && shared.lock().lines.is_empty() {
            return;
        }
    }
}

/// One line being logged.
pub struct LineWriter<'a> {
    shared: &'a Shared,
}

impl Write for LineWriter<'_> {
    fn write(&mut self, bytes: &[u8]) -> std::io::Result<usize> {
        let mut buffer = self.shared.lock();
        let before = buffer.lines.len();
        buffer.lines.extend_from_slice(bytes);
        // The writer waits for the first line, then for the buffer to fill.
        let wake = before == 0 || (before < EAGER_BYTES && buffer.lines.len() >= EAGER_BYTES);
        drop(buffer);
        if wake {
            self.shared.filled.notify_one();
        }
        Ok(bytes.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl<'a> MakeWriter<'a> for BufferedStderr {
    type Writer = LineWriter<'a>;

    fn make_writer(&'a self) -> Self::Writer {
        LineWriter {
            shared: &self.shared,
        }
    }
}

impl Drop for FlushGuard {
    fn drop(&mut self) {
        self.shared.lock().closed = true;
        self.shared.filled.notify_one();
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_line_is_written_once_in_order_by_the_time_the_guard_is_dropped() {
        let shared = Arc::new(Shared::default());
        let out = Arc::new(Mutex::new(Vec::new()));
        let (flusher, sink) = (shared.clone(), out.clone());
        let thread = std::thread::spawn(move || {
            let mut written = Vec::new();
            write_out(&flusher, &mut written);
            sink.lock().unwrap().extend(written);
        });
        let guard = FlushGuard {
            shared: shared.clone(),
            thread: Some(thread),
        };
        let make = BufferedStderr { shared };
        for n in 0..1000 {
            writeln!(make.make_writer(), "line {n}").unwrap();
        }
        drop(guard);
        let text = String::from_utf8(out.lock().unwrap().clone()).unwrap();
        let expected: String = (0..1000).map(|n| format!("line {n}\n")).collect();
        assert_eq!(text, expected);
    }
}
