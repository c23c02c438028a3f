//! The JSON log line, in the shape of tracing-subscriber's JSON format
//! (`timestamp`, `level`, `fields`, `target`), built in one buffer per
//! thread. tracing-subscriber's own format sends each fragment through an
//! adapter that checks it is UTF-8 and serialises every field through a
//! map: about 19,000 instructions for a request's line, a fifth of all the
//! broker spent on a single-event request (callgrind). serde_json still
//! escapes every string and formats every number; the date and time of day
//! are formatted once a second.
//!
//! One addition to that shape: a field named `json.<name>` holds JSON text,
//! which is written as that JSON under `<name>` (see [`RAW_JSON`]), so that
//! the startup line's `config` is an object a log pipeline can query, not a
//! string to unescape.

use std::cell::RefCell;
use std::fmt::{self, Write as _};

use tracing::field::{Field, Visit};
use tracing::{Event, Subscriber};
use tracing_subscriber::fmt::format::Writer;
use tracing_subscriber::fmt::{FmtContext, FormatEvent, FormatFields};
use tracing_subscriber::registry::LookupSpan;

/// The prefix of a field that holds JSON text: `json.config = %value`
/// comes out as `"config":{...}`. Text that is not JSON comes out as a
/// string, so a line is always valid JSON.
pub const RAW_JSON: &str = "json.";

/// Formats each event as one JSON object on a line.
#[derive(Debug, Default, Clone, Copy)]
pub struct JsonLines;

thread_local! {
    /// The line being built, and a scratch string for values formatted with `Debug`.
    static BUFFERS: RefCell<(Vec<u8>, String)> = const { RefCell::new((Vec::new(), String::new())) };
    /// A second since the epoch and its date and time, `2026-11-23T21:40:00`.
    static SECOND: RefCell<(u64, String)> = const { RefCell::new((u64::MAX, String::new())) };
}

/// Appends the time as RFC 3339 in UTC with microseconds, as
/// tracing-subscriber writes it: `2026-11-23T21:40:00.173401Z`.
fn timestamp(line: &mut Vec<u8>, now: std::time::SystemTime) {
    let since_epoch = now
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap_or_default();
    let secs = since_epoch.as_secs();
    SECOND.with(|second| {
        let mut second = second.borrow_mut();
        if second.0 != secs {
            let whole = std::time::UNIX_EPOCH + std::time::Duration::from_secs(secs);
            second.1 = humantime::format_rfc3339_seconds(whole).to_string();
            second.1.pop(); // the `Z`
            second.0 = secs;
        }
        line.extend_from_slice(second.1.as_bytes());
    });
    let mut fraction = *b".000000Z";
    let mut micros = since_epoch.subsec_micros();
    for digit in fraction[1..7].iter_mut().rev() {
        *digit = b'0' + (micros % 10) as u8;
        micros /= 10;
    }
    line.extend_from_slice(&fraction);
}

impl<S, N> FormatEvent<S, N> for JsonLines
where
    S: Subscriber + for<'a> LookupSpan<'a>,
    N: for<'a> FormatFields<'a> + 'static,
{
    fn format_event(
        &self,
        _ctx: &FmtContext<'_, S, N>,
        mut writer: Writer<'_>,
        event: &Event<'_>,
    ) -> fmt::Result {
        BUFFERS.with(|buffers| {
            // A log call made while formatting (from a value's Debug) gets buffers of its own.
            let mut fresh = Default::default();
            let mut borrowed = buffers.try_borrow_mut();
            let (line, scratch) = match borrowed.as_deref_mut() {
                Ok(buffers) => buffers,
                Err(_) => &mut fresh,
            };
            line.clear();
            format_line(line, scratch, event)?;
            writer.write_str(std::str::from_utf8(line).map_err(|_| fmt::Error)?)
        })
    }
}

fn format_line(line: &mut Vec<u8>, scratch: &mut String, event: &Event<'_>) -> fmt::Result {
    let meta = event.metadata();
    line.extend_from_slice(b"{\"timestamp\":\"");
    timestamp(line, std::time::SystemTime::now());
    line.extend_from_slice(b"\",\"level\":\"");
    line.extend_from_slice(meta.level().as_str().as_bytes());
    line.extend_from_slice(b"\",\"fields\":{");
    let mut fields = Fields {
        line,
        scratch,
        first: true,
        failed: false,
    };
    event.record(&mut fields);
    if fields.failed {
        return Err(fmt::Error);
    }
    line.extend_from_slice(b"},\"target\":");
    json_str(line, meta.target())?;
    line.extend_from_slice(b"}\n");
    Ok(())
}

/// Appends `value` as JSON.
fn json<T: serde::Serialize + ?Sized>(line: &mut Vec<u8>, value: &T) -> fmt::Result {
    serde_json::to_writer(line, value).map_err(|_| fmt::Error)
}

/// Appends `text` as a JSON string: as it is when nothing in it needs
/// escaping (field names, routes, request ids), else through serde_json.
fn json_str(line: &mut Vec<u8>, text: &str) -> fmt::Result {
    if needs_escape(text) {
        return json(line, text);
    }
    line.push(b'"');
    line.extend_from_slice(text.as_bytes());
    line.push(b'"');
    Ok(())
}

/// Whether a byte of `text` has to be escaped in a JSON string. Every byte
/// is looked at, with no early exit, so that the compiler can check many at
/// a time: a request line scans a dozen strings and field names, and this
/// takes about 300 instructions off it (callgrind).
fn needs_escape(text: &str) -> bool {
    text.bytes().fold(false, |found, b| {
        found | (b < 0x20) | (b == b'"') | (b == b'\\')
    })
}

/// Appends `text` as the JSON it holds, on one line; as a string when it is
/// not JSON.
fn raw_json(line: &mut Vec<u8>, text: &str) -> fmt::Result {
    if serde_json::from_str::<serde::de::IgnoredAny>(text).is_err() {
        return json_str(line, text);
    }
    if text.bytes().any(|b| b == b'\n' || b == b'\r') {
        // Whitespace between tokens: written again compactly.
        let value: serde_json::Value = serde_json::from_str(text).map_err(|_| fmt::Error)?;
        return json(line, &value);
    }
    line.extend_from_slice(text.as_bytes());
    Ok(())
}

/// Writes an event's fields as the members of a JSON object.
struct Fields<'a> {
    line: &'a mut Vec<u8>,
    scratch: &'a mut String,
    first: bool,
    failed: bool,
}

impl Fields<'_> {
    fn key(&mut self, field: &Field) {
        self.key_named(field.name());
    }

    fn key_named(&mut self, name: &str) {
        if !self.first {
            self.line.push(b',');
        }
        self.first = false;
        self.failed |= json_str(self.line, name).is_err();
        self.line.push(b':');
    }

    fn member<T: serde::Serialize + ?Sized>(&mut self, field: &Field, value: &T) {
        self.key(field);
        self.failed |= json(self.line, value).is_err();
    }

    fn member_str(&mut self, field: &Field, value: &str) {
        if let Some(name) = field.name().strip_prefix(RAW_JSON) {
            self.key_named(name);
            self.failed |= raw_json(self.line, value).is_err();
            return;
        }
        self.key(field);
        self.failed |= json_str(self.line, value).is_err();
    }
}

impl Visit for Fields<'_> {
    fn record_f64(&mut self, field: &Field, value: f64) {
        self.member(field, &value);
    }
    fn record_i64(&mut self, field: &Field, value: i64) {
        self.member(field, &value);
    }
    fn record_u64(&mut self, field: &Field, value: u64) {
        self.member(field, &value);
    }
    fn record_bool(&mut self, field: &Field, value: bool) {
        self.member(field, &value);
    }
    fn record_str(&mut self, field: &Field, value: &str) {
        self.member_str(field, value);
    }
    fn record_debug(&mut self, field: &Field, value: &dyn fmt::Debug) {
        let mut text = std::mem::take(self.scratch);
        text.clear();
        self.failed |= write!(text, "{value:?}").is_err();
        self.member_str(field, &text);
        *self.scratch = text;
    }
}

/// A writer that keeps what is logged, for tests of log lines.
#[cfg(test)]
pub(crate) mod capture {
    use std::sync::{Arc, Mutex};

    use tracing_subscriber::fmt::MakeWriter;

    /// The bytes written so far, shared by every clone.
    #[derive(Clone, Default)]
    pub struct Captured(Arc<Mutex<Vec<u8>>>);

    impl Captured {
        /// What was written, as text.
        pub fn text(&self) -> String {
            String::from_utf8(self.0.lock().unwrap().clone()).unwrap()
        }

        /// A subscriber writing our JSON lines here.
        pub fn json_lines(&self) -> impl tracing::Subscriber + Send + Sync {
            tracing_subscriber::fmt()
                .with_writer(self.clone())
                .event_format(super::JsonLines)
                .finish()
        }

        /// Takes what this thread logs, as JSON lines, until the guard drops.
        ///
        /// A scoped subscriber (`set_default`) loses lines when tests run in
        /// parallel: tracing decides once per callsite, for the whole process,
        /// whether it is enabled, and while at most one subscriber is
        /// registered it asks the subscriber of the thread that reaches the
        /// callsite first. A test without one would disable the callsite for
        /// every test. So one subscriber is installed for the process, and it
        /// writes each thread's lines to that thread's capture, if any.
        pub fn this_thread(&self) -> ThreadCapture {
            static INSTALLED: std::sync::Once = std::sync::Once::new();
            INSTALLED.call_once(|| {
                let subscriber = tracing_subscriber::fmt()
                    .with_writer(|| ThreadSink)
                    .event_format(super::JsonLines)
                    .finish();
                // Another test binary's setup may have installed one first;
                // then lines go there and the capture finds none, loudly.
                let _ = tracing::subscriber::set_global_default(subscriber);
            });
            SINK.with(|sink| *sink.borrow_mut() = Some(self.clone()));
            ThreadCapture(())
        }
    }

    thread_local! {
        static SINK: std::cell::RefCell<Option<Captured>> = const { std::cell::RefCell::new(None) };
    }

    /// While it lives, this thread's lines go to its capture.
    pub struct ThreadCapture(());

    impl Drop for ThreadCapture {
        fn drop(&mut self) {
            SINK.with(|sink| *sink.borrow_mut() = None);
        }
    }

    /// Writes to the capture of the thread that logs, or nowhere.
    struct ThreadSink;

    impl std::io::Write for ThreadSink {
        fn write(&mut self, bytes: &[u8]) -> std::io::Result<usize> {
            SINK.with(|sink| {
                if let Some(out) = sink.borrow_mut().as_mut() {
                    out.write_all(bytes)?;
                }
                Ok(bytes.len())
            })
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }

    impl std::io::Write for Captured {
        fn write(&mut self, bytes: &[u8]) -> std::io::Result<usize> {
            self.0.lock().unwrap().extend_from_slice(bytes);
            Ok(bytes.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }

    impl<'a> MakeWriter<'a> for Captured {
        type Writer = Captured;
        fn make_writer(&'a self) -> Captured {
            self.clone()
        }
    }
}

#[cfg(test)]
mod tests {
    use serde_json::Value;

    use super::capture::Captured;
    use super::*;

    fn log_some_events() {
        let method = axum::http::Method::POST;
        let client: std::net::SocketAddr = "10.0.0.7:51234".parse().unwrap();
        tracing::info!(
            method = %method,
            route = "/api/queues/{queue}/events",
            queue = Some("orders"),
            status = 429u16,
            code = Some("queue_full"),
            duration_us = 182u64,
            client = Some(tracing::field::display(client)),
            request_id = "a\"b\\c\nd",
            "request"
        );
        // The fields a 2xx answer on a route without a queue leaves out.
        tracing::info!(
            method = %method,
            route = "/api/health",
            queue = None::<&str>,
            status = 200u16,
            code = None::<&str>,
            duration_us = 9u64,
            client = None::<tracing::field::DisplayValue<std::net::SocketAddr>>,
            request_id = "",
            "request"
        );
        tracing::warn!(bytes = -3i64, big = u128::MAX, ok = true, error = ?Some("x"), "cut a \"torn\" write");
        tracing::error!(ratio = f64::NAN, "ünïcode ✓");
    }

    /// The lines each format writes for the same events.
    fn lines(json_lines: bool) -> Vec<Value> {
        let out = Captured::default();
        let builder = tracing_subscriber::fmt().with_writer(out.clone());
        let subscriber: Box<dyn Subscriber + Send + Sync> = if json_lines {
            Box::new(builder.event_format(JsonLines).finish())
        } else {
            Box::new(builder.json().finish())
        };
        tracing::subscriber::with_default(subscriber, log_some_events);
        let text = out.text();
        text.lines()
            .map(|line| serde_json::from_str(line).expect(line))
            .collect()
    }

    #[test]
    fn lines_match_tracing_subscribers_json_format_but_for_the_time() {
        let (ours, theirs) = (lines(true), lines(false));
        assert_eq!(ours.len(), 4);
        for (mut ours, mut theirs) in ours.into_iter().zip(theirs) {
            let stamp = ours["timestamp"].take();
            theirs["timestamp"].take();
            assert_eq!(ours, theirs);
            let stamp = stamp.as_str().unwrap();
            humantime::parse_rfc3339(stamp).expect(stamp);
        }
    }

    #[test]
    fn a_line_is_one_line_with_its_fields_in_order() {
        let out = Captured::default();
        let subscriber = out.json_lines();
        tracing::subscriber::with_default(subscriber, log_some_events);
        let text = out.text();
        let first = text.lines().next().unwrap();
        assert!(first.starts_with("{\"timestamp\":\""), "{first}");
        assert!(
            first.contains(r#""level":"INFO","fields":{"message":"request","method":"POST","route":"/api/queues/{queue}/events","queue":"orders","status":429,"code":"queue_full","duration_us":182,"client":"10.0.0.7:51234","request_id":"a\"b\\c\nd"},"target":"#),
            "{first}"
        );
        let second = text.lines().nth(1).unwrap();
        assert!(
            second.contains(r#""fields":{"message":"request","method":"POST","route":"/api/health","status":200,"duration_us":9,"request_id":""},"#),
            "{second}"
        );
        assert_eq!(text.lines().count(), 4);
    }

    /// The fields of the one line `log` writes in our format.
    fn fields_of(log: impl FnOnce()) -> Value {
        let out = Captured::default();
        let subscriber = out.json_lines();
        tracing::subscriber::with_default(subscriber, log);
        let text = out.text();
        assert_eq!(text.lines().count(), 1, "{text}");
        let mut line: Value = serde_json::from_str(&text).expect(&text);
        line["fields"].take()
    }

    #[test]
    fn a_json_field_is_written_as_the_json_it_holds() {
        let config =
            serde_json::json!({"PORT": "3000", "WAL_FSYNC": "always", "n": [1, 2.5, null]});
        let fields = fields_of(|| tracing::info!(json.config = %config, "starting"));
        assert_eq!(fields["config"], config);
        assert_eq!(fields["message"], "starting");
        assert!(fields.get("json.config").is_none());
    }

    #[test]
    fn a_json_field_on_several_lines_comes_out_on_one() {
        let config = serde_json::json!({"a": {"b": [1, 2]}, "c": "d\ne"});
        let pretty = serde_json::to_string_pretty(&config).unwrap();
        let fields = fields_of(|| tracing::info!(json.config = pretty.as_str(), "starting"));
        assert_eq!(fields["config"], config);
    }

    #[test]
    fn a_json_field_that_holds_no_json_is_a_string() {
        for text in ["{\"cut\":", "not json", "1 2", ""] {
            let fields = fields_of(|| tracing::info!(json.config = text, "starting"));
            assert_eq!(fields["config"], text);
        }
    }

    #[test]
    fn the_time_is_rfc_3339_in_utc_with_microseconds() {
        let at = |micros: u64| std::time::UNIX_EPOCH + std::time::Duration::from_micros(micros);
        for (micros, want) in [
            (1_795_469_403_000_007, "2026-11-23T21:30:03.000007Z"),
            (1_795_469_403_999_999, "2026-11-23T21:30:03.999999Z"),
            (1_795_469_404_120_000, "2026-11-23T21:30:04.120000Z"),
            (0, "1970-01-01T00:00:00.000000Z"),
        ] {
            let mut line = Vec::new();
            timestamp(&mut line, at(micros));
            assert_eq!(String::from_utf8(line).unwrap(), want);
            assert_eq!(
                humantime::format_rfc3339_micros(at(micros)).to_string(),
                want
            );
        }
    }
}
