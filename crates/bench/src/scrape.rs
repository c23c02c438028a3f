//! The broker's own figures: its process's CPU time and resident memory from
//! `GET /api/metrics` (the prometheus crate's process collector), and a
//! queue's depth from `GET /api/queues/{queue}`. Either may be unavailable
//! (metrics behind another path, a platform without the process collector);
//! the summary then says `n/a` rather than failing the run.

use super::client::{Conn, Target};
use super::payload::QueueCounts;
use super::BenchError;

/// The broker's process at one moment.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct BrokerSample {
    /// CPU time, user and system, since the process started.
    pub cpu_seconds: f64,
    /// Resident memory.
    pub rss_bytes: u64,
}

/// Reads the process gauges out of a Prometheus text exposition.
pub fn parse_metrics(text: &str) -> Option<BrokerSample> {
    Some(BrokerSample {
        // The broker's own counter is to the microsecond; the process
        // collector's counts whole seconds.
        cpu_seconds: sample(text, "event_broker_cpu_seconds_total")
            .or_else(|| sample(text, "process_cpu_seconds_total"))?,
        rss_bytes: sample(text, "process_resident_memory_bytes")? as u64,
    })
}

/// The value of the unlabelled sample `name`; the exposition may follow it
/// with a timestamp.
fn sample(text: &str, name: &str) -> Option<f64> {
    text.lines().find_map(|line| {
        let rest = line.strip_prefix(name)?.strip_prefix(' ')?;
        rest.split_whitespace().next()?.parse().ok()
    })
}

/// A connection of its own for the broker's figures, so that reading them
/// never waits behind a worker's request.
pub struct Scraper {
    conn: Conn,
}

impl Scraper {
    /// Connects to the broker.
    pub async fn open(target: &Target) -> Result<Scraper, BenchError> {
        Ok(Scraper {
            conn: Conn::open(target).await?,
        })
    }

    /// The broker's process figures now, if it exports them.
    pub async fn sample(&mut self) -> Option<BrokerSample> {
        let answer = self.conn.get("/api/metrics").await.ok()?;
        if !answer.status.is_success() {
            return None;
        }
        parse_metrics(std::str::from_utf8(&answer.body).ok()?)
    }

    /// Events of `queue` not yet acked or dead: ready, delayed and in flight.
    pub async fn depth(&mut self, queue: &str) -> Option<u64> {
        let answer = self.conn.get(&format!("/api/queues/{queue}")).await.ok()?;
        if !answer.status.is_success() {
            return None;
        }
        let counts: QueueCounts = serde_json::from_slice(&answer.body).ok()?;
        Some(counts.ready + counts.delayed + counts.in_flight)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn process_gauges_are_read_from_the_exposition() {
        let text =
            "# HELP process_cpu_seconds_total Total user and system CPU time spent in seconds.\n\
            # TYPE process_cpu_seconds_total counter\n\
            process_cpu_seconds_total_other 99\n\
            process_cpu_seconds_total 12.34\n\
            process_resident_memory_bytes 4.5056e+07 1700000000000\n";
        assert_eq!(
            parse_metrics(text),
            Some(BrokerSample {
                cpu_seconds: 12.34,
                rss_bytes: 45_056_000
            })
        );
    }

    #[test]
    fn an_exposition_without_process_gauges_gives_nothing() {
        assert_eq!(parse_metrics("http_requests_total{route=\"/\"} 3\n"), None);
    }
}
