//! Prometheus metrics: one registry and every handle, owned here and shared
//! through the API state; no globals. Queue and log figures are read from
//! the broker at each scrape, so they cannot drift from the truth, and the
//! series of a queue that no longer exists are dropped at that scrape.
//! Histogram bounds are round figures (`le="0.0025"`), which a reader of
//! the exposition can take in at a glance and a query can name.

use std::collections::{HashMap, HashSet};
use std::ffi::CString;
use std::os::unix::ffi::OsStrExt;
use std::path::Path;
use std::time::Duration;

use prometheus::core::{Collector, MetricVec, MetricVecBuilder};
use prometheus::{
    Encoder, Histogram, HistogramOpts, HistogramVec, IntCounterVec, IntGauge, IntGaugeVec, Opts,
    Registry, TextEncoder,
};

use crate::worker::{DeliveryObserver, Outcome};
use event_broker_core::WalObserver;
use event_broker_core::{Broker, QueueStats};

/// Seconds at 1, 2.5 and 5 times each power of ten; each histogram of
/// durations takes the stretch of it that fits what it measures.
const SECONDS: [f64; 22] = [
    0.00005, 0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0,
    2.5, 5.0, 10.0, 25.0, 50.0, 100.0, 250.0, 500.0,
];

/// Records per group commit, at 1, 2 and 5 times each power of ten: a
/// count, so no bound falls between two whole numbers.
const RECORDS: [f64; 13] = [
    1.0, 2.0, 5.0, 10.0, 20.0, 50.0, 100.0, 200.0, 500.0, 1000.0, 2000.0, 5000.0, 10000.0,
];

/// The bounds of [`SECONDS`] from `first` to `last`, both included.
fn seconds(first: f64, last: f64) -> Vec<f64> {
    SECONDS
        .into_iter()
        .filter(|&b| (first..=last).contains(&b))
        .collect()
}

/// Every metric the broker exports.
pub struct Metrics {
    registry: Registry,
    http_requests: IntCounterVec,
    http_duration: HistogramVec,
    fsync_seconds: Histogram,
    commit_records: Histogram,
    queue_depth: IntGaugeVec,
    queue_utilization: prometheus::GaugeVec,
    queue_totals: IntCounterVec,
    queue_throttled: IntCounterVec,
    wal_segments: IntGauge,
    wal_bytes: IntGauge,
    wal_failed: IntGauge,
    webhook_calls: IntCounterVec,
    webhook_seconds: HistogramVec,
    cpu_seconds: prometheus::Counter,
    oldest_ready_age: prometheus::GaugeVec,
    disk_available: IntGauge,
    disk_size: IntGauge,
    ready: IntGauge,
    log_lines_dropped: prometheus::IntCounter,
    queue_paused: IntGaugeVec,
}

impl Default for Metrics {
    fn default() -> Self {
        Metrics::new()
    }
}

fn must<T>(made: prometheus::Result<T>) -> T {
    // Names and labels are constants of this file: a failure is a bug here.
    made.expect("metric definitions are valid")
}

impl Metrics {
    /// A registry with every metric, process metrics included.
    pub fn new() -> Metrics {
        let registry = Registry::new();
        let http_requests = must(IntCounterVec::new(
            Opts::new("http_requests_total", "HTTP requests answered"),
            &["method", "route", "status"],
        ));
        let http_duration = must(HistogramVec::new(
            HistogramOpts::new(
                "http_request_duration_seconds",
                "Time to answer a request. Long polls (lease with wait_ms > 0) are \
                 left out, as their time is mostly the wait the client asked for; \
                 http_requests_total counts them",
            )
            .buckets(seconds(0.0001, 10.0)),
            &["method", "route"],
        ));
        let fsync_seconds = must(Histogram::with_opts(
            HistogramOpts::new(
                "event_broker_wal_fsync_seconds",
                "Duration of one fdatasync",
            )
            .buckets(seconds(0.00005, 1.0)),
        ));
        let commit_records = must(Histogram::with_opts(
            HistogramOpts::new(
                "event_broker_wal_records_per_commit",
                "Records written by one group commit",
            )
            .buckets(RECORDS.to_vec()),
        ));
        // Not `event_broker_queue_events`: beside the counter
        // `event_broker_queue_events_total`, a gauge of that name reads as
        // the counter's base name.
        let queue_depth = must(IntGaugeVec::new(
            Opts::new(
                "event_broker_queue_depth",
                "Events a queue holds now, by state: ready, delayed, in_flight, dead",
            ),
            &["queue", "state"],
        ));
        let queue_utilization = must(prometheus::GaugeVec::new(
            Opts::new(
                "event_broker_queue_utilization",
                "Pending events (ready, delayed, in flight) over the queue's max_size \
                 (QUEUE_MAX_SIZE unless it sets its own)",
            ),
            &["queue"],
        ));
        let queue_totals = must(IntCounterVec::new(
            Opts::new(
                "event_broker_queue_events_total",
                "Events of a queue by what happened to them, since the process started",
            ),
            &["queue", "event"],
        ));
        let queue_throttled = must(IntCounterVec::new(
            Opts::new(
                "event_broker_queue_throttled_total",
                "Leases (of consumers and webhook workers) that a flow limit cut short \
                 while events were ready, by limit: max_in_flight, rate_limit, group_rate_limit",
            ),
            &["queue", "limit"],
        ));
        let wal_segments = must(IntGauge::new("event_broker_wal_segments", "Segment files"));
        let wal_bytes = must(IntGauge::new(
            "event_broker_wal_bytes",
            "Bytes in segment files",
        ));
        let wal_failed = must(IntGauge::new(
            "event_broker_wal_failed",
            "1 when the log refuses writes after a storage failure",
        ));
        let webhook_calls = must(IntCounterVec::new(
            Opts::new(
                "event_broker_webhook_deliveries_total",
                "Webhook calls by outcome: delivered (2xx, acked) or failed (nacked)",
            ),
            &["queue", "outcome"],
        ));
        let webhook_seconds = must(HistogramVec::new(
            HistogramOpts::new(
                "event_broker_webhook_duration_seconds",
                "Time from lease to ack or nack of one webhook delivery",
            )
            // Past the longest webhook timeout, 300 s.
            .buckets(seconds(0.001, 500.0)),
            &["queue"],
        ));
        let cpu_seconds = must(prometheus::Counter::new(
            "event_broker_cpu_seconds_total",
            "User and system CPU time of the process, to the microsecond \
             (process_cpu_seconds_total counts whole seconds)",
        ));
        let oldest_ready_age = must(prometheus::GaugeVec::new(
            Opts::new(
                "event_broker_queue_oldest_ready_age_seconds",
                "How long the ready event that has waited longest has been visible \
                 (since its enqueue, or since its delay, backoff or redrive ended); 0 when none is ready",
            ),
            &["queue"],
        ));
        let disk_available = must(IntGauge::new(
            "event_broker_disk_available_bytes",
            "Bytes free to unprivileged users on the data directory's filesystem",
        ));
        let disk_size = must(IntGauge::new(
            "event_broker_disk_size_bytes",
            "Size of the data directory's filesystem",
        ));
        let ready = must(IntGauge::new(
            "event_broker_ready",
            "1 when /api/health/ready answers 200, 0 when the log failed or the broker shuts down",
        ));
        let log_lines_dropped = must(prometheus::IntCounter::new(
            "event_broker_log_lines_dropped_total",
            "Log lines dropped because stderr did not take them and the buffer was full",
        ));
        let queue_paused = must(IntGaugeVec::new(
            Opts::new(
                "event_broker_queue_paused",
                "1 while the queue is paused (its leases answer no events), else 0",
            ),
            &["queue"],
        ));
        let build_info = must(IntGaugeVec::new(
            Opts::new(
                "event_broker_build_info",
                "Always 1; the version as a label",
            ),
            &["version"],
        ));
        build_info
            .with_label_values(&[env!("CARGO_PKG_VERSION")])
            .set(1);
        for c in [
            Box::new(http_requests.clone()) as Box<dyn prometheus::core::Collector>,
            Box::new(http_duration.clone()),
            Box::new(fsync_seconds.clone()),
            Box::new(commit_records.clone()),
            Box::new(queue_depth.clone()),
            Box::new(queue_utilization.clone()),
            Box::new(queue_totals.clone()),
            Box::new(queue_throttled.clone()),
            Box::new(wal_segments.clone()),
            Box::new(wal_bytes.clone()),
            Box::new(wal_failed.clone()),
            Box::new(webhook_calls.clone()),
            Box::new(webhook_seconds.clone()),
            Box::new(cpu_seconds.clone()),
            Box::new(oldest_ready_age.clone()),
            Box::new(disk_available.clone()),
            Box::new(disk_size.clone()),
            Box::new(ready.clone()),
            Box::new(log_lines_dropped.clone()),
            Box::new(queue_paused.clone()),
            Box::new(build_info),
            Box::new(prometheus::process_collector::ProcessCollector::for_self()),
        ] {
            must(registry.register(c));
        }
        Metrics {
            registry,
            http_requests,
            http_duration,
            fsync_seconds,
            commit_records,
            queue_depth,
            queue_utilization,
            queue_totals,
            queue_throttled,
            wal_segments,
            wal_bytes,
            wal_failed,
            webhook_calls,
            webhook_seconds,
            cpu_seconds,
            oldest_ready_age,
            disk_available,
            disk_size,
            ready,
            log_lines_dropped,
            queue_paused,
        }
    }

    /// Counts one answered request; `route` is the route template, never
    /// the raw path. `took` is `None` for a long poll, which the duration
    /// histogram leaves out.
    pub fn request(&self, method: &str, route: &str, status: &str, took: Option<Duration>) {
        self.http_requests
            .with_label_values(&[method, route, status])
            .inc();
        if let Some(took) = took {
            self.http_duration
                .with_label_values(&[method, route])
                .observe(took.as_secs_f64());
        }
    }

    /// The text exposition of every metric, read from `broker` now;
    /// `ready` is what readiness would answer.
    pub fn render(&self, broker: &Broker, ready: bool) -> String {
        self.queues(&broker.queues());
        let wal = broker.log_status();
        self.wal_segments.set(wal.segments as i64);
        self.wal_bytes.set(wal.bytes as i64);
        self.wal_failed.set(i64::from(wal.failure.is_some()));
        self.ready.set(i64::from(ready));
        match disk_space(broker.data_dir()) {
            Ok(disk) => {
                self.disk_available.set(disk.available as i64);
                self.disk_size.set(disk.size as i64);
            }
            // The gauges keep their last reading; the log says why they stopped.
            Err(e) => tracing::warn!(error = %e, "statvfs of the data directory failed"),
        }
        if let Some(cpu) = cpu_seconds() {
            // A counter only grows: it catches up by the difference.
            self.cpu_seconds
                .inc_by((cpu - self.cpu_seconds.get()).max(0.0));
        }
        if let Some(logs) = crate::log_writer::installed() {
            let dropped = logs.lines_dropped();
            self.log_lines_dropped
                .inc_by(dropped.saturating_sub(self.log_lines_dropped.get()));
        }
        self.encode()
    }

    /// The text exposition of the registry as it stands.
    fn encode(&self) -> String {
        let mut out = Vec::new();
        if let Err(e) = TextEncoder::new().encode(&self.registry.gather(), &mut out) {
            tracing::error!(error = %e, "encoding metrics failed");
        }
        String::from_utf8(out).unwrap_or_default()
    }

    /// Sets the series of each queue in `queues` (every queue there is) and
    /// drops those of queues not among them.
    fn queues(&self, queues: &[QueueStats]) {
        for q in queues {
            self.queue(q);
        }
        let live: HashSet<&str> = queues.iter().map(|q| q.name.as_str()).collect();
        drop_gone_queues(&self.queue_depth, &live);
        drop_gone_queues(&self.queue_utilization, &live);
        drop_gone_queues(&self.queue_totals, &live);
        drop_gone_queues(&self.queue_throttled, &live);
        drop_gone_queues(&self.oldest_ready_age, &live);
        drop_gone_queues(&self.queue_paused, &live);
        drop_gone_queues(&self.webhook_calls, &live);
        drop_gone_queues(&self.webhook_seconds, &live);
    }

    fn queue(&self, q: &QueueStats) {
        let name = q.name.as_str();
        for (state, n) in [
            ("ready", q.ready),
            ("delayed", q.delayed),
            ("in_flight", q.in_flight),
            ("dead", q.dead),
        ] {
            self.queue_depth
                .with_label_values(&[name, state])
                .set(n as i64);
        }
        self.oldest_ready_age
            .with_label_values(&[name])
            .set(q.oldest_ready_age_ms as f64 / 1000.0);
        let pending = q.ready + q.delayed + q.in_flight;
        self.queue_utilization
            .with_label_values(&[name])
            .set(pending as f64 / q.settings.max_size.max(1) as f64);
        self.queue_paused
            .with_label_values(&[name])
            .set(i64::from(q.settings.paused));
        for (event, total) in [
            ("enqueued", q.enqueued_total),
            ("delivered", q.delivered_total),
            ("acked", q.acked_total),
            ("nacked", q.nacked_total),
            ("expired", q.expired_total),
            ("dead_lettered", q.dead_lettered_total),
            ("redriven", q.redriven_total),
            ("ttl_expired", q.ttl_expired_total),
        ] {
            // Totals only grow: the counter catches up by the difference.
            let counter = self.queue_totals.with_label_values(&[name, event]);
            counter.inc_by(total.saturating_sub(counter.get()));
        }
        let throttled = &q.throttled;
        for (limit, total) in [
            ("max_in_flight", throttled.max_in_flight),
            ("rate_limit", throttled.rate_limit),
            ("group_rate_limit", throttled.group_rate_limit),
        ] {
            let counter = self.queue_throttled.with_label_values(&[name, limit]);
            counter.inc_by(total.saturating_sub(counter.get()));
        }
    }
}

/// Removes from `vec` every label set whose `queue` is not in `live`. The
/// label sets are read back from the vector itself, so that series made
/// between scrapes (webhook calls) go too.
fn drop_gone_queues<T: MetricVecBuilder>(vec: &MetricVec<T>, live: &HashSet<&str>) {
    for family in vec.collect() {
        for metric in family.get_metric() {
            let labels: HashMap<&str, &str> = metric
                .get_label()
                .iter()
                .map(|pair| (pair.name(), pair.value()))
                .collect();
            if labels.get("queue").is_some_and(|q| !live.contains(q)) {
                // An error means a scrape at the same time removed it first.
                let _already_gone = vec.remove(&labels);
            }
        }
    }
}

/// Room on a filesystem, in bytes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct DiskSpace {
    /// Free to unprivileged users (what the broker, not root, may still write).
    available: u64,
    size: u64,
}

/// The room on the filesystem holding `path`, from statvfs(3).
fn disk_space(path: &Path) -> std::io::Result<DiskSpace> {
    let c_path = CString::new(path.as_os_str().as_bytes())?;
    let mut stat = std::mem::MaybeUninit::<libc::statvfs>::uninit();
    // SAFETY: `c_path` is NUL-terminated and statvfs writes a whole struct on success.
    let stat = unsafe {
        if libc::statvfs(c_path.as_ptr(), stat.as_mut_ptr()) != 0 {
            return Err(std::io::Error::last_os_error());
        }
        stat.assume_init()
    };
    // Blocks are counted in fragment-size units (statvfs(3)); the casts
    // widen on 32-bit targets, where the fields are narrower.
    #[allow(clippy::unnecessary_cast)]
    let unit = stat.f_frsize as u64;
    #[allow(clippy::unnecessary_cast)]
    Ok(DiskSpace {
        available: stat.f_bavail as u64 * unit,
        size: stat.f_blocks as u64 * unit,
    })
}

/// User plus system CPU time of this process, from getrusage(2).
fn cpu_seconds() -> Option<f64> {
    let mut usage = std::mem::MaybeUninit::<libc::rusage>::uninit();
    // SAFETY: getrusage writes a whole rusage into the pointer on success.
    let usage = unsafe {
        if libc::getrusage(libc::RUSAGE_SELF, usage.as_mut_ptr()) != 0 {
            return None;
        }
        usage.assume_init()
    };
    let secs = |t: libc::timeval| t.tv_sec as f64 + t.tv_usec as f64 / 1e6;
    Some(secs(usage.ru_utime) + secs(usage.ru_stime))
}

impl WalObserver for Metrics {
    fn committed(&self, records: usize, _bytes: usize) {
        self.commit_records.observe(records as f64);
    }
    fn synced(&self, took: Duration) {
        self.fsync_seconds.observe(took.as_secs_f64());
    }
}

impl DeliveryObserver for Metrics {
    fn delivered(&self, queue: &str, outcome: &Outcome, took: Duration) {
        let result = if outcome.error.is_none() {
            "delivered"
        } else {
            "failed"
        };
        self.webhook_calls.with_label_values(&[queue, result]).inc();
        self.webhook_seconds
            .with_label_values(&[queue])
            .observe(took.as_secs_f64());
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn stats(name: &str) -> QueueStats {
        QueueStats {
            name: name.to_string(),
            ready: 1,
            ..QueueStats::default()
        }
    }

    fn failed() -> Outcome {
        Outcome {
            id: 1,
            attempt: 1,
            status: Some(500),
            error: Some("webhook answered 500".into()),
        }
    }

    /// Whether `bound` is 1, 2, 2.5 or 5 times a power of ten, as written.
    fn is_round(bound: &str) -> bool {
        let digits: String = bound.chars().filter(|c| c.is_ascii_digit()).collect();
        let significant = digits.trim_start_matches('0').trim_end_matches('0');
        ["1", "2", "25", "5"].contains(&significant)
    }

    #[test]
    fn every_histogram_bound_is_a_round_figure() {
        let metrics = Metrics::new();
        let took = Duration::from_millis(3);
        metrics.request("POST", "/api/queues/{queue}/events", "201", Some(took));
        metrics.synced(took);
        metrics.committed(3, 100);
        metrics.delivered("q", &failed(), took);
        let text = metrics.encode();
        let bounds: Vec<&str> = text
            .split("le=\"")
            .skip(1)
            .filter_map(|rest| rest.split('"').next())
            .filter(|&b| b != "+Inf")
            .collect();
        assert!(bounds.len() > 40, "{text}");
        for bound in bounds {
            assert!(is_round(bound), "le=\"{bound}\" is not a round figure");
        }
        assert!(text.contains(r#"le="0.00025""#), "{text}");
        assert!(text.contains(r#"le="10""#), "{text}");
    }

    #[test]
    fn a_long_poll_is_counted_but_not_timed() {
        let metrics = Metrics::new();
        let route = "/api/queues/{queue}/lease";
        metrics.request("POST", route, "200", None);
        metrics.request("POST", route, "200", Some(Duration::from_millis(1)));
        let text = metrics.encode();
        assert!(
            text.contains(r#"http_requests_total{method="POST",route="/api/queues/{queue}/lease",status="200"} 2"#),
            "{text}"
        );
        assert!(
            text.contains(r#"http_request_duration_seconds_count{method="POST",route="/api/queues/{queue}/lease"} 1"#),
            "{text}"
        );
    }

    #[test]
    fn queue_counts_are_a_depth_gauge_apart_from_the_totals_counter() {
        let metrics = Metrics::new();
        metrics.queues(&[stats("orders")]);
        let text = metrics.encode();
        assert!(
            text.contains("# TYPE event_broker_queue_depth gauge"),
            "{text}"
        );
        assert!(
            text.contains(r#"event_broker_queue_depth{queue="orders",state="ready"} 1"#),
            "{text}"
        );
        assert!(
            text.contains("# TYPE event_broker_queue_events_total counter"),
            "{text}"
        );
        assert!(!text.contains("event_broker_queue_events{"), "{text}");
    }

    #[test]
    fn a_paused_queue_shows_as_paused_and_its_fill_against_its_own_max_size() {
        let metrics = Metrics::new();
        let mut paused = stats("held");
        paused.settings.paused = true;
        paused.settings.max_size = 4;
        metrics.queues(&[paused, stats("open")]);
        let text = metrics.encode();
        for line in [
            r#"event_broker_queue_paused{queue="held"} 1"#,
            r#"event_broker_queue_paused{queue="open"} 0"#,
            r#"event_broker_queue_utilization{queue="held"} 0.25"#,
        ] {
            assert!(text.contains(line), "{line}:\n{text}");
        }
    }

    #[test]
    fn a_queue_that_is_gone_loses_its_series_at_the_next_scrape() {
        let metrics = Metrics::new();
        metrics.queues(&[stats("kept"), stats("gone")]);
        metrics.delivered("gone", &failed(), Duration::from_millis(2));
        metrics.delivered("kept", &failed(), Duration::from_millis(2));
        let text = metrics.encode();
        assert!(text.contains(r#"queue="gone""#), "{text}");

        metrics.queues(&[stats("kept")]);
        let text = metrics.encode();
        assert!(!text.contains(r#"queue="gone""#), "{text}");
        for family in [
            "event_broker_queue_depth{",
            "event_broker_queue_utilization{",
            "event_broker_queue_events_total{",
            "event_broker_queue_oldest_ready_age_seconds{",
            "event_broker_queue_paused{",
            "event_broker_webhook_deliveries_total{",
            "event_broker_webhook_duration_seconds_count{",
        ] {
            assert!(
                text.lines()
                    .any(|l| l.starts_with(family) && l.contains(r#"queue="kept""#)),
                "{family} lost the queue still there:\n{text}"
            );
        }

        metrics.queues(&[]);
        assert!(!metrics.encode().contains("queue="));
    }

    #[test]
    fn disk_space_of_a_real_directory_is_some_of_its_size() {
        let dir = tempfile::tempdir().expect("temp dir");
        let disk = disk_space(dir.path()).expect("statvfs");
        assert!(disk.size > 0);
        assert!(disk.available <= disk.size);
    }

    #[test]
    fn disk_space_of_a_missing_directory_is_an_error() {
        let dir = tempfile::tempdir().expect("temp dir");
        assert!(disk_space(&dir.path().join("missing")).is_err());
    }
}
