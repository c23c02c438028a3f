//! Where log lines go: stderr, through a buffer that a thread of its own
//! writes out 20 ms after the first line waiting in it (nginx's buffered
//! access log, in effect). A request's line costs an append to memory, not a
//! write call or a thread wake-up: under load one write carries hundreds of
//! lines, and at most 50 writes a second happen however busy the broker is.
//!
//! The buffer holds at most 8 MiB. When stderr blocks (a full pipe nobody
//! reads, a stopped terminal), lines past that are dropped and counted, not
//! held: a stalled log must not grow the process without bound, nor stall
//! the requests that log. The count is `event_broker_log_lines_dropped_total`.
//! Once stderr takes writes again, lines flow as before.
//!
//! The process has one such writer, as it has one tracing subscriber:
//! [`installed`] reaches it from the signal thread, which flushes it before
//! an exit at once, and from the metrics, which read its count at a scrape.

use std::io::Write;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Condvar, Mutex, MutexGuard, OnceLock};
use std::thread::JoinHandle;
use std::time::Duration;

use tracing_subscriber::fmt::MakeWriter;

/// How long a line may wait in the buffer.
const FLUSH_AFTER: Duration = Duration::from_millis(20);

/// Past this many bytes waiting, the writer is woken at once.
const EAGER_BYTES: usize = 256 << 10;

/// Most bytes waiting to be written; a line that would go past it is dropped.
const MAX_WAITING_BYTES: usize = 8 << 20;

#[derive(Default)]
struct Buffer {
    lines: Vec<u8>,
    closed: bool,
    /// The writer thread is writing lines it took out of `lines`.
    writing: bool,
    /// Someone waits for the lines to be written: no batching meanwhile.
    hurry: bool,
}

struct Shared {
    buffer: Mutex<Buffer>,
    filled: Condvar,
    /// Notified after every write of the writer thread.
    drained: Condvar,
    /// Most bytes `lines` may hold.
    limit: usize,
    /// Lines dropped because `lines` was full.
    dropped: AtomicU64,
}

impl Shared {
    fn with_limit(limit: usize) -> Shared {
        Shared {
            buffer: Mutex::default(),
            filled: Condvar::new(),
            drained: Condvar::new(),
            limit,
            dropped: AtomicU64::new(0),
        }
    }

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

/// Reaches a log writer from elsewhere: to flush it, or to read its count
/// of dropped lines.
#[derive(Clone)]
pub struct LogHandle {
    shared: Arc<Shared>,
}

/// The writer `buffered_stderr` made first in this process.
static INSTALLED: OnceLock<LogHandle> = OnceLock::new();

/// The process's buffered stderr, once [`buffered_stderr`] has made it.
pub fn installed() -> Option<&'static LogHandle> {
    INSTALLED.get()
}

/// A buffered stderr and the guard that flushes it at exit. The first one
/// made becomes the process's, which [`installed`] returns.
pub fn buffered_stderr() -> std::io::Result<(BufferedStderr, FlushGuard)> {
    let shared = Arc::new(Shared::with_limit(MAX_WAITING_BYTES));
    let flusher = shared.clone();
    let thread = std::thread::Builder::new()
        .name("log-writer".into())
        .spawn(move || write_out(&flusher, &mut std::io::stderr()))?;
    let _first_wins = INSTALLED.set(LogHandle {
        shared: shared.clone(),
    });
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

impl LogHandle {
    /// Lines dropped so far because the buffer was full.
    pub fn lines_dropped(&self) -> u64 {
        self.shared.dropped.load(Ordering::Relaxed)
    }

    /// Has the writer thread write out every line waiting, without its
    /// usual wait for more, and returns once it has (true) or once
    /// `timeout` has passed (false): a blocked stderr cannot hold up the
    /// caller for longer.
    pub fn flush_within(&self, timeout: Duration) -> bool {
        let mut buffer = self.shared.lock();
        buffer.hurry = true;
        self.shared.filled.notify_one();
        let (mut buffer, _) = self
            .shared
            .drained
            .wait_timeout_while(buffer, timeout, |b| b.writing || !b.lines.is_empty())
            .unwrap_or_else(|e| e.into_inner());
        buffer.hurry = false;
        !buffer.writing && buffer.lines.is_empty()
    }
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
        // Let more lines join this write, unless the buffer fills or closes
        // first, or someone waits for it.
        let (mut buffer, _) = shared
            .filled
            .wait_timeout_while(buffer, FLUSH_AFTER, |b| {
                !b.closed && !b.hurry && b.lines.len() < EAGER_BYTES
            })
            .unwrap_or_else(|e| e.into_inner());
        std::mem::swap(&mut buffer.lines, &mut spare);
        let closed = buffer.closed;
        buffer.writing = true;
        drop(buffer);
        // Nowhere to report a failed write of the log itself.
        let _ = out.write_all(&spare).and_then(|()| out.flush());
        spare.clear();
        let mut buffer = shared.lock();
        buffer.writing = false;
        let done = closed && buffer.lines.is_empty();
        drop(buffer);
        shared.drained.notify_all();
        if done {
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
        if before + bytes.len() > self.shared.limit {
            drop(buffer);
            // Told as written: tracing would only report an error to stderr,
            // the very place that does not take lines now.
            self.shared.dropped.fetch_add(1, Ordering::Relaxed);
            return Ok(bytes.len());
        }
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

    /// A sink whose writes wait until the test opens it, as a write to a
    /// full pipe that nobody reads does.
    #[derive(Clone, Default)]
    struct Gated(Arc<(Mutex<Gate>, Condvar)>);

    #[derive(Default)]
    struct Gate {
        open: bool,
        blocked: bool,
        written: Vec<u8>,
    }

    impl Write for Gated {
        fn write(&mut self, bytes: &[u8]) -> std::io::Result<usize> {
            let (gate, changed) = &*self.0;
            let mut gate = gate.lock().unwrap();
            gate.blocked = !gate.open;
            changed.notify_all();
            let mut gate = changed.wait_while(gate, |g| !g.open).unwrap();
            gate.blocked = false;
            gate.written.extend_from_slice(bytes);
            Ok(bytes.len())
        }

        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }

    impl Gated {
        fn open() -> Gated {
            let sink = Gated::default();
            sink.let_through();
            sink
        }

        /// Returns once the writer thread waits in a write.
        fn wait_blocked(&self) {
            let (gate, changed) = &*self.0;
            let gate = gate.lock().unwrap();
            drop(changed.wait_while(gate, |g| !g.blocked).unwrap());
        }

        fn let_through(&self) {
            self.0 .0.lock().unwrap().open = true;
            self.0 .1.notify_all();
        }

        fn text(&self) -> String {
            String::from_utf8(self.0 .0.lock().unwrap().written.clone()).unwrap()
        }
    }

    /// A writer over `out` holding at most `limit` bytes, its guard and a handle.
    fn writer_over(
        limit: usize,
        out: impl Write + Send + 'static,
    ) -> (BufferedStderr, FlushGuard, LogHandle) {
        let shared = Arc::new(Shared::with_limit(limit));
        let flusher = shared.clone();
        let mut out = out;
        let thread = std::thread::spawn(move || write_out(&flusher, &mut out));
        let guard = FlushGuard {
            shared: shared.clone(),
            thread: Some(thread),
        };
        let handle = LogHandle {
            shared: shared.clone(),
        };
        (BufferedStderr { shared }, guard, handle)
    }

    /// Logs `line` in one write, as tracing writes each line it formats.
    fn log(make: &BufferedStderr, line: &str) {
        make.make_writer().write_all(line.as_bytes()).unwrap();
    }

    /// Opens the sink when dropped, so that a failed assertion ends the
    /// test instead of waiting for the writer thread forever.
    struct OpenAtEnd(Gated);

    impl Drop for OpenAtEnd {
        fn drop(&mut self) {
            self.0.let_through();
        }
    }

    fn lines(range: std::ops::RangeInclusive<u32>) -> String {
        range.map(|n| format!("line {n:04}\n")).collect()
    }

    #[test]
    fn every_line_is_written_once_in_order_by_the_time_the_guard_is_dropped() {
        let sink = Gated::open();
        let (make, guard, _) = writer_over(MAX_WAITING_BYTES, sink.clone());
        for n in 0..1000 {
            log(&make, &format!("line {n:04}\n"));
        }
        drop(guard);
        assert_eq!(sink.text(), lines(0..=999));
    }

    #[test]
    fn while_the_sink_blocks_lines_past_the_bound_are_dropped_and_counted_then_flow_again() {
        let sink = Gated::default();
        // Room for 100 lines of 10 bytes.
        let (make, guard, handle) = writer_over(1000, sink.clone());
        let _open = OpenAtEnd(sink.clone());
        log(&make, "line 0000\n");
        sink.wait_blocked();

        for n in 1..=250 {
            log(&make, &format!("line {n:04}\n"));
        }
        assert_eq!(
            make.shared.lock().lines.len(),
            1000,
            "the buffer is full, not past it"
        );
        assert_eq!(handle.lines_dropped(), 150);

        sink.let_through();
        assert!(handle.flush_within(Duration::from_secs(60)));
        assert_eq!(sink.text(), lines(0..=100), "the lines kept, in order");
        log(&make, "line 9999\n");
        assert!(handle.flush_within(Duration::from_secs(60)));
        assert_eq!(sink.text(), lines(0..=100) + "line 9999\n");
        assert_eq!(handle.lines_dropped(), 150);
        drop(guard);
    }

    #[test]
    fn flush_within_writes_out_every_waiting_line_to_a_sink_that_takes_them() {
        let sink = Gated::open();
        let (make, guard, handle) = writer_over(MAX_WAITING_BYTES, sink.clone());
        for n in 0..1000 {
            log(&make, &format!("line {n:04}\n"));
        }
        // Generous: a sink that takes every write returns long before.
        assert!(handle.flush_within(Duration::from_secs(60)));
        assert_eq!(
            sink.text(),
            lines(0..=999),
            "all out before the guard is dropped"
        );
        drop(guard);
    }

    #[test]
    fn flush_within_returns_by_its_deadline_when_the_sink_blocks() {
        let sink = Gated::default();
        let (make, guard, handle) = writer_over(MAX_WAITING_BYTES, sink.clone());
        let _open = OpenAtEnd(sink.clone());
        log(&make, "line 0000\n");
        sink.wait_blocked();
        log(&make, "line 0001\n");

        let started = event_broker_clock::monotonic_now();
        assert!(!handle.flush_within(Duration::from_millis(100)));
        let took = started.elapsed();
        assert!(took >= Duration::from_millis(100), "{took:?}");
        // Slack for a busy machine; a flush that waited for the sink never returns.
        assert!(took < Duration::from_secs(10), "{took:?}");

        sink.let_through();
        drop(guard);
        assert_eq!(sink.text(), lines(0..=1));
    }
}
