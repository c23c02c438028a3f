//! The summary of a run, as a table or as one JSON object.
//!
//! JSON keys (stable; new keys may be added, none renamed):
//!
//! - every workload: `workload`, `queue`, `queues`, `events`, `requests`, `errors`,
//!   `throttled`, `seconds`, `events_per_sec`, `requests_per_sec`,
//!   `latency_ms` (`p50`, `p90`, `p99`, `p999`, `max`),
//!   `broker_cpu_s_per_million`, `broker_cpu_seconds`, `broker_rss_bytes`
//!   (`null` when the broker's metrics are unavailable);
//! - `consume`: `prefill_seconds`, `acked`, `missing`, `duplicates`;
//! - `e2e`: `sent`, `received`, `missing`, `duplicates`, `e2e_latency_ms`;
//! - `mixed`: `produced`, `consumed`, `consume_events_per_sec`,
//!   `consume_latency_ms`, `max_rss_bytes`, `depth`.

use std::io::{self, Write};

use hdrhistogram::Histogram;
use serde::Serialize;

use super::phase::PhaseEnd;
use super::tally::Counts;

/// Latency percentiles in milliseconds.
#[derive(Debug, Default, Clone, Copy, Serialize)]
pub struct Percentiles {
    /// Median.
    pub p50: f64,
    /// 90th percentile.
    pub p90: f64,
    /// 99th percentile.
    pub p99: f64,
    /// 99.9th percentile.
    pub p999: f64,
    /// Highest.
    pub max: f64,
}

impl Percentiles {
    /// Reads a histogram of microseconds.
    pub fn of(h: &Histogram<u64>) -> Percentiles {
        let ms = |micros: u64| micros as f64 / 1000.0;
        Percentiles {
            p50: ms(h.value_at_quantile(0.5)),
            p90: ms(h.value_at_quantile(0.9)),
            p99: ms(h.value_at_quantile(0.99)),
            p999: ms(h.value_at_quantile(0.999)),
            max: ms(h.max()),
        }
    }

    fn row(&self) -> String {
        format!(
            "p50 {:.2}  p90 {:.2}  p99 {:.2}  p99.9 {:.2}  max {:.2}",
            self.p50, self.p90, self.p99, self.p999, self.max
        )
    }
}

/// The summary of one run.
#[derive(Debug, Serialize)]
pub struct Report {
    /// `produce`, `consume`, `e2e` or `mixed`.
    pub workload: &'static str,
    /// The queue the run used; with `queues` above 1, the name its queues
    /// `<queue>-0` .. `<queue>-<queues - 1>` are numbered after.
    pub queue: String,
    /// How many queues the run loaded in parallel.
    pub queues: usize,
    /// Events stored (produce, mixed), acked (consume) or received (e2e).
    pub events: u64,
    /// Requests answered 2xx; `latency_ms` is theirs.
    pub requests: u64,
    /// Failed requests: non-2xx other than 429, broken connections, wrong answers.
    pub errors: u64,
    /// 429 answers, each retried.
    pub throttled: u64,
    /// Length of the timed phase.
    pub seconds: f64,
    /// `events / seconds`.
    pub events_per_sec: f64,
    /// `requests / seconds`.
    pub requests_per_sec: f64,
    /// Per request; for e2e and mixed, of the produce requests.
    pub latency_ms: Percentiles,
    /// The broker's CPU seconds in the timed phase per million `events`.
    pub broker_cpu_s_per_million: Option<f64>,
    /// The broker's CPU seconds in the timed phase.
    pub broker_cpu_seconds: Option<f64>,
    /// The broker's resident memory at the end.
    pub broker_rss_bytes: Option<u64>,
    /// What only this workload reports.
    #[serde(flatten)]
    pub detail: Detail,
}

/// The keys of one workload.
#[derive(Debug, Serialize)]
#[serde(untagged)]
pub enum Detail {
    /// Nothing beyond the common keys.
    Produce {},
    /// The exactly-once check of a drained queue.
    Consume {
        /// How long the untimed prefill took.
        prefill_seconds: f64,
        /// Events acked at least once.
        acked: u64,
        /// Events of the prefill never acked.
        missing: u64,
        /// Deliveries of an event already delivered.
        duplicates: u64,
    },
    /// Publish-to-receive latency at a fixed rate.
    E2e {
        /// Events the broker stored.
        sent: u64,
        /// Events delivered at least once.
        received: u64,
        /// Events stored and never acked.
        missing: u64,
        /// Deliveries of an event already delivered.
        duplicates: u64,
        /// From when each event was due to be sent to when a consumer had it.
        e2e_latency_ms: Percentiles,
    },
    /// Producers and consumers together.
    Mixed {
        /// Events stored.
        produced: u64,
        /// Events acked.
        consumed: u64,
        /// `consumed / seconds`.
        consume_events_per_sec: f64,
        /// Per lease or ack request.
        consume_latency_ms: Percentiles,
        /// The highest broker memory read during the run.
        max_rss_bytes: Option<u64>,
        /// Events of the queue neither acked nor dead at the end.
        depth: Option<u64>,
    },
}

/// Bytes as MiB with one decimal.
pub fn mib(bytes: u64) -> String {
    format!("{:.1} MiB", bytes as f64 / (1024.0 * 1024.0))
}

fn or_na<T>(value: Option<T>, show: impl Fn(T) -> String) -> String {
    value.map_or_else(|| "n/a".to_string(), show)
}

/// What every workload measures in its timed phase.
#[derive(Debug, Clone, Copy)]
pub struct Measured<'a> {
    /// The counts of the side the summary is about.
    pub counts: Counts,
    /// Its requests' latency, in microseconds.
    pub latency: &'a Histogram<u64>,
    /// The phase's length and the broker's figures.
    pub end: &'a PhaseEnd,
}

impl Report {
    /// The summary of a run of `workload` on `queues` queues named after
    /// `queue`.
    pub fn new(
        workload: &'static str,
        queue: &str,
        queues: usize,
        m: Measured<'_>,
        detail: Detail,
    ) -> Report {
        Report {
            workload,
            queue: queue.to_string(),
            queues,
            events: m.counts.events,
            requests: m.counts.requests,
            errors: m.counts.errors,
            throttled: m.counts.throttled,
            seconds: m.end.seconds,
            events_per_sec: m.counts.events as f64 / m.end.seconds,
            requests_per_sec: m.counts.requests as f64 / m.end.seconds,
            latency_ms: Percentiles::of(m.latency),
            broker_cpu_s_per_million: m.end.cpu_s_per_million,
            broker_cpu_seconds: m.end.cpu_seconds,
            broker_rss_bytes: m.end.rss_bytes,
            detail,
        }
    }

    /// Events that should have come back and did not, for the workloads
    /// that check it.
    pub fn missing(&self) -> Option<(u64, u64)> {
        match self.detail {
            Detail::Consume { missing, acked, .. } => Some((missing, acked + missing)),
            Detail::E2e { missing, sent, .. } => Some((missing, sent)),
            _ => None,
        }
    }

    /// Writes the summary to `out`: a table, or one line of JSON.
    pub fn write(&self, out: &mut impl Write, json: bool) -> io::Result<()> {
        if json {
            serde_json::to_writer(&mut *out, self)?;
            return writeln!(out);
        }
        for (name, value) in self.rows() {
            writeln!(out, "{name:<24}{value}")?;
        }
        Ok(())
    }

    fn rows(&self) -> Vec<(&'static str, String)> {
        let mut rows = vec![
            ("workload", self.workload.to_string()),
            ("queue", self.queue_names()),
            ("queues", self.queues.to_string()),
            ("duration", format!("{:.2} s", self.seconds)),
            ("events", self.events.to_string()),
            ("events/s", format!("{:.0}", self.events_per_sec)),
            ("requests", self.requests.to_string()),
            ("requests/s", format!("{:.0}", self.requests_per_sec)),
            ("errors", self.errors.to_string()),
            ("throttled (429)", self.throttled.to_string()),
            ("latency ms", self.latency_ms.row()),
        ];
        rows.extend(self.detail_rows());
        let cpu = match (self.broker_cpu_s_per_million, self.broker_cpu_seconds) {
            (Some(per_million), Some(total)) => {
                format!("{per_million:.2}  ({total:.2} CPU s in all)")
            }
            _ => "n/a".to_string(),
        };
        rows.push(("broker CPU s/M events", cpu));
        rows.push(("broker RSS", or_na(self.broker_rss_bytes, mib)));
        rows
    }

    fn queue_names(&self) -> String {
        match self.queues {
            0 | 1 => self.queue.clone(),
            n => format!("{0}-0 .. {0}-{1}", self.queue, n - 1),
        }
    }

    fn detail_rows(&self) -> Vec<(&'static str, String)> {
        match &self.detail {
            Detail::Produce {} => vec![],
            Detail::Consume {
                prefill_seconds,
                acked,
                missing,
                duplicates,
            } => vec![
                ("prefill", format!("{prefill_seconds:.2} s")),
                ("acked", acked.to_string()),
                ("missing", missing.to_string()),
                ("duplicates", duplicates.to_string()),
            ],
            Detail::E2e {
                sent,
                received,
                missing,
                duplicates,
                e2e_latency_ms,
            } => vec![
                ("sent", sent.to_string()),
                ("received", received.to_string()),
                ("missing", missing.to_string()),
                ("duplicates", duplicates.to_string()),
                ("publish→receive ms", e2e_latency_ms.row()),
            ],
            Detail::Mixed {
                produced,
                consumed,
                consume_events_per_sec,
                consume_latency_ms,
                max_rss_bytes,
                depth,
            } => vec![
                ("produced", produced.to_string()),
                ("consumed", consumed.to_string()),
                ("consumed/s", format!("{consume_events_per_sec:.0}")),
                ("consume latency ms", consume_latency_ms.row()),
                ("depth at end", or_na(*depth, |d| d.to_string())),
                ("broker max RSS", or_na(*max_rss_bytes, mib)),
            ],
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn report(detail: Detail) -> Report {
        Report {
            workload: "produce",
            queue: "q".into(),
            queues: 1,
            events: 10,
            requests: 10,
            errors: 0,
            throttled: 0,
            seconds: 1.0,
            events_per_sec: 10.0,
            requests_per_sec: 10.0,
            latency_ms: Percentiles::default(),
            broker_cpu_s_per_million: None,
            broker_cpu_seconds: None,
            broker_rss_bytes: Some(1 << 20),
            detail,
        }
    }

    #[test]
    fn json_has_the_common_keys_and_the_workload_keys_at_top_level() {
        let mut out = Vec::new();
        let detail = Detail::Consume {
            prefill_seconds: 0.5,
            acked: 9,
            missing: 1,
            duplicates: 0,
        };
        report(detail).write(&mut out, true).unwrap();
        let v: serde_json::Value = serde_json::from_slice(&out).unwrap();
        assert_eq!(v["latency_ms"]["p999"], 0.0);
        assert_eq!(v["broker_cpu_s_per_million"], serde_json::Value::Null);
        assert_eq!(
            (v["acked"].as_u64(), v["missing"].as_u64()),
            (Some(9), Some(1))
        );
        let mut out = Vec::new();
        report(Detail::Produce {}).write(&mut out, true).unwrap();
        let v: serde_json::Value = serde_json::from_slice(&out).unwrap();
        assert_eq!(v["events"], 10);
    }

    #[test]
    fn the_table_says_n_a_for_figures_the_broker_did_not_give() {
        let mut out = Vec::new();
        report(Detail::Produce {}).write(&mut out, false).unwrap();
        let text = String::from_utf8(out).unwrap();
        assert!(text.contains("broker CPU s/M events   n/a"), "{text}");
        assert!(text.contains("broker RSS              1.0 MiB"), "{text}");
        assert!(text.contains("queue                   q\n"), "{text}");
        assert!(text.contains("queues                  1\n"), "{text}");
    }

    #[test]
    fn a_run_over_several_queues_names_them_and_shows_their_count() {
        let mut spread = report(Detail::Produce {});
        spread.queues = 4;
        let mut out = Vec::new();
        spread.write(&mut out, false).unwrap();
        let text = String::from_utf8(out).unwrap();
        assert!(
            text.contains("queue                   q-0 .. q-3\n"),
            "{text}"
        );
        assert!(text.contains("queues                  4\n"), "{text}");
        let mut out = Vec::new();
        spread.write(&mut out, true).unwrap();
        let v: serde_json::Value = serde_json::from_slice(&out).unwrap();
        assert_eq!(
            (v["queue"].as_str(), v["queues"].as_u64()),
            (Some("q"), Some(4))
        );
    }
}
