//! The timed phase of a run: the broker's figures read at its start and end,
//! and a progress line on stderr every second in between.

use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio::task::JoinHandle;
use tokio::time::MissedTickBehavior;
use tokio_util::sync::CancellationToken;

use super::client::Target;
use super::report::mib;
use super::scrape::{BrokerSample, Scraper};
use super::tally::Tally;
use super::BenchError;
use event_broker_clock::monotonic_now;

/// A named side of the run on the progress line: `("events", producers)`.
pub type Side = (&'static str, Arc<Tally>);

/// A timed phase under way.
pub struct Phase {
    start: Instant,
    scraper: Scraper,
    before: Option<BrokerSample>,
    stop: CancellationToken,
    progress: JoinHandle<Option<u64>>,
}

/// What the phase measured besides the workers' own counts.
#[derive(Debug, Clone, Copy)]
pub struct PhaseEnd {
    /// From the start to the end of the phase.
    pub seconds: f64,
    /// The broker's CPU time in the phase, when it exports it.
    pub cpu_seconds: Option<f64>,
    /// The same per million events.
    pub cpu_s_per_million: Option<f64>,
    /// The broker's resident memory at the end.
    pub rss_bytes: Option<u64>,
    /// The highest resident memory read during the phase.
    pub max_rss_bytes: Option<u64>,
    /// Events of the run's queues neither acked nor dead at the end.
    pub depth: Option<u64>,
}

impl Phase {
    /// Reads the broker's figures and starts the clock and the progress
    /// line; with `scrape_each_second`, the line reads the broker's memory too.
    pub async fn start(
        target: &Target,
        sides: Vec<Side>,
        scrape_each_second: bool,
    ) -> Result<Phase, BenchError> {
        let mut scraper = Scraper::open(target).await?;
        let progress_scraper = if scrape_each_second {
            Some(Scraper::open(target).await?)
        } else {
            None
        };
        let before = scraper.sample().await;
        let start = monotonic_now();
        let stop = CancellationToken::new();
        let progress = tokio::spawn(progress(start, sides, progress_scraper, stop.clone()));
        Ok(Phase {
            start,
            scraper,
            before,
            stop,
            progress,
        })
    }

    /// Stops the clock and reads the broker's figures, the depth summed over
    /// `queues`; `events` is what the CPU time is divided by.
    pub async fn finish(mut self, queues: &[String], events: u64) -> Result<PhaseEnd, BenchError> {
        let seconds = (monotonic_now() - self.start).as_secs_f64();
        self.stop.cancel();
        let progress_max = self.progress.await?;
        let after = self.scraper.sample().await;
        let cpu_seconds = match (self.before, after) {
            (Some(b), Some(a)) => Some((a.cpu_seconds - b.cpu_seconds).max(0.0)),
            _ => None,
        };
        let cpu_s_per_million = cpu_seconds
            .filter(|_| events > 0)
            .map(|cpu| cpu / events as f64 * 1e6);
        let rss_bytes = after.map(|a| a.rss_bytes);
        let mut depth = Some(0);
        for queue in queues {
            let of_queue = self.scraper.depth(queue).await;
            depth = depth.zip(of_queue).map(|(sum, d)| sum + d);
        }
        Ok(PhaseEnd {
            seconds,
            cpu_seconds,
            cpu_s_per_million,
            rss_bytes,
            max_rss_bytes: progress_max.max(rss_bytes),
            depth,
        })
    }
}

/// Prints a progress line each second until `stop`; the highest broker
/// memory it read, when it reads any.
async fn progress(
    start: Instant,
    sides: Vec<Side>,
    mut scraper: Option<Scraper>,
    stop: CancellationToken,
) -> Option<u64> {
    let first = start + Duration::from_secs(1);
    let mut ticks = tokio::time::interval_at(first.into(), Duration::from_secs(1));
    // A late line is printed late, not twice.
    ticks.set_missed_tick_behavior(MissedTickBehavior::Delay);
    let mut last_events: Vec<u64> = vec![0; sides.len()];
    let mut last_at = start;
    let mut max_rss = None;
    loop {
        tokio::select! {
            () = stop.cancelled() => return max_rss,
            _ = ticks.tick() => {}
        }
        let now = monotonic_now();
        let dt = (now - last_at).as_secs_f64();
        last_at = now;
        let mut line = format!("{:6.1}s", (now - start).as_secs_f64());
        let mut errors = 0;
        let mut throttled = 0;
        for ((name, tally), last) in sides.iter().zip(&mut last_events) {
            let counts = tally.counts();
            let rate = (counts.events - *last) as f64 / dt;
            *last = counts.events;
            line += &format!("  {name} {} ({rate:.0}/s)", counts.events);
            errors += counts.errors;
            throttled += counts.throttled;
        }
        line += &format!("  errors {errors}");
        if throttled > 0 {
            line += &format!("  throttled {throttled}");
        }
        if let Some(scraper) = scraper.as_mut() {
            // Memory only: a second of CPU time says little about a run.
            let rss = scraper.sample().await.map(|s| s.rss_bytes);
            max_rss = max_rss.max(rss);
            line += &format!("  broker rss {}", rss.map_or("n/a".into(), mib));
        }
        eprintln!("{line}");
    }
}
