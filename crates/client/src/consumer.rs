//! The consumer loop: the part every user of a queue would otherwise write
//! again, and most would get the heartbeat or the shutdown wrong.
//!
//! A [`Consumer`] runs at most `concurrency` handlers, and holds at most
//! `prefetch` more events leased ahead, so a free handler never waits for a
//! lease's round trip. It keeps up to two long polls on their way, each
//! asking for a good share of the room left (at most `max`), so an idle
//! consumer costs two requests per `wait`. Each event runs its handler in a
//! task of its own:
//!
//! - while any handler runs, every lease the consumer holds is extended each
//!   third of the visibility timeout, so a handler may take as long as it
//!   needs and its event is not delivered again meanwhile;
//! - `Ok` acks the event; `Err` nacks it with the error's text, and a panic
//!   nacks it with the panic's message; the broker's backoff then applies.
//!   Acks and nacks go through one task that batches them ([`settle`]);
//! - two events of one ordering group never run at once: an event whose
//!   group is running waits, its lease extended, for the one before it;
//! - a lease answered 429 or 503, a broker that is down or an answer that
//!   does not parse is tried again after a backoff (100 ms doubling to 5 s,
//!   jittered, never shorter than `Retry-After`): the loop never spins. A
//!   refused token or request ends the run with the error, since waiting
//!   does not mend it.
//!
//! Shutdown (the `shutdown` future given to [`Consumer::run`] completing)
//! stops leasing and drops the long polls on their way; events leased ahead
//! or waiting for their group are nacked with `delay_ms: 0` at once, running handlers get
//! `shutdown_grace` to finish (and are acked or nacked as usual), and those
//! still running then are stopped and nacked with `delay_ms: 0`. The run
//! returns once every settle is sent. An event a dropped long poll had
//! already leased is not lost: it comes back when its lease runs out.
//!
//! [`settle`]: crate::settle

use std::collections::{HashMap, HashSet, VecDeque};
use std::fmt::Display;
use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::mpsc;
use tokio::task::{JoinError, JoinHandle, JoinSet};
use tokio::time::{sleep_until, Instant};

use crate::backoff::Backoff;
use crate::client::Client;
use crate::error::{ErrorCode, Result};
use crate::settle::{self, Settle, MAX_RECEIPTS};
use crate::types::{LeaseRequest, LeasedEvent, SettleStatus};

/// The broker's default lease length, for a queue that does not exist yet.
const DEFAULT_VISIBILITY: Duration = Duration::from_secs(30);
/// The longest error text a nack keeps.
const MAX_ERROR_CHARS: usize = 4096;
/// Events asked for in one lease, by default.
const DEFAULT_MAX: usize = 100;
/// Leases on their way at once: while one is answered, the next is asked.
const POLLS: usize = 2;

/// How a [`Consumer`] works.
#[derive(Debug, Clone)]
pub struct ConsumerOptions {
    /// Handlers running at once (and events held at once). Default 8.
    pub concurrency: usize,
    /// Events asked for in one lease. Default 100.
    pub max: Option<u32>,
    /// Events leased ahead of a free handler, so that handlers never wait
    /// for a lease's round trip. Default 100; 0 leases only for free
    /// handlers, which leaves the rest to other consumers when handlers are slow.
    pub prefetch: usize,
    /// The lease length; default the queue's setting (30 s for a queue that
    /// does not exist yet). Leases are extended each third of it.
    pub visibility_timeout: Option<Duration>,
    /// The long poll's wait. Default 20 s.
    pub wait: Duration,
    /// How long running handlers may take to finish at shutdown. Default 30 s.
    pub shutdown_grace: Duration,
}

impl Default for ConsumerOptions {
    fn default() -> Self {
        ConsumerOptions {
            concurrency: 8,
            max: None,
            prefetch: 100,
            visibility_timeout: None,
            wait: Duration::from_secs(20),
            shutdown_grace: Duration::from_secs(30),
        }
    }
}

/// What a run came to.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct ConsumerReport {
    /// Events whose handler returned `Ok`.
    pub succeeded: u64,
    /// Events whose handler returned `Err` or panicked.
    pub failed: u64,
    /// Events handed back at shutdown without their handler finishing.
    pub released: u64,
    /// Acks the broker took.
    pub acked: u64,
    /// Nacks the broker took.
    pub nacked: u64,
    /// Acks and nacks that came after the lease was gone (the event is
    /// delivered again), or that could not be sent.
    pub lost: u64,
}

/// A consumer of one queue. See the module's documentation.
#[derive(Debug, Clone)]
pub struct Consumer {
    client: Client,
    queue: String,
    options: ConsumerOptions,
}

/// An event the consumer holds: leased, running or waiting for its group.
struct Held {
    receipt: String,
    group: Option<String>,
}

impl Consumer {
    /// A consumer of `queue` with the default options.
    pub fn new(client: Client, queue: impl Into<String>) -> Self {
        Consumer {
            client,
            queue: queue.into(),
            options: ConsumerOptions::default(),
        }
    }

    /// A consumer with these options.
    pub fn with_options(mut self, options: ConsumerOptions) -> Self {
        self.options = options;
        self
    }

    /// Handlers running at once.
    pub fn concurrency(mut self, concurrency: usize) -> Self {
        self.options.concurrency = concurrency.max(1);
        self
    }

    /// Events asked for in one lease.
    pub fn max(mut self, max: u32) -> Self {
        self.options.max = Some(max.max(1));
        self
    }

    /// Events leased ahead of a free handler.
    pub fn prefetch(mut self, prefetch: usize) -> Self {
        self.options.prefetch = prefetch;
        self
    }

    /// The lease length.
    pub fn visibility_timeout(mut self, timeout: Duration) -> Self {
        self.options.visibility_timeout = Some(timeout);
        self
    }

    /// The long poll's wait (at most 60 s).
    pub fn wait(mut self, wait: Duration) -> Self {
        self.options.wait = wait.min(Duration::from_secs(60));
        self
    }

    /// How long running handlers may take to finish at shutdown.
    pub fn shutdown_grace(mut self, grace: Duration) -> Self {
        self.options.shutdown_grace = grace;
        self
    }

    /// Runs `handler` on the queue's events until `shutdown` completes (for
    /// example [`shutdown_signal`]), then shuts down as the module says.
    /// Ends early with the error when the broker refuses the consumer's
    /// token or requests.
    pub async fn run<H, F, E>(
        self,
        handler: H,
        shutdown: impl Future<Output = ()>,
    ) -> Result<ConsumerReport>
    where
        H: Fn(LeasedEvent) -> F + Send + Sync + 'static,
        F: Future<Output = std::result::Result<(), E>> + Send + 'static,
        E: Display + Send + 'static,
    {
        let visibility = self.visibility().await;
        let (settle_tx, settle_rx) = mpsc::unbounded_channel();
        let settler = tokio::spawn(settle::run(
            self.client.clone(),
            self.queue.clone(),
            settle_rx,
            visibility,
        ));
        let mut run = Run {
            consumer: &self,
            handler: Arc::new(handler),
            visibility,
            settle: settle_tx,
            held: HashMap::new(),
            running: JoinSet::new(),
            tasks: HashMap::new(),
            groups: HashSet::new(),
            waiting: HashMap::new(),
            ahead: VecDeque::new(),
            extends: Vec::new(),
            report: ConsumerReport::default(),
        };
        let outcome = run.serve(shutdown).await;
        let mut report = run.report;
        for extend in run.extends.drain(..) {
            extend.abort();
        }
        drop(run);
        if let Ok(settled) = settler.await {
            report.acked = settled.acked;
            report.nacked = settled.nacked;
            report.lost = settled.lost;
        }
        outcome.map(|()| report)
    }

    /// The lease length to ask for: given, or the queue's.
    async fn visibility(&self) -> Duration {
        if let Some(v) = self.options.visibility_timeout {
            return v;
        }
        match self.client.get_queue(&self.queue).await {
            Ok(queue) => Duration::from_millis(queue.settings.visibility_timeout_ms),
            Err(e) => {
                if e.code() != Some(&ErrorCode::NotFound) {
                    tracing::warn!(error = %e, "cannot read the queue's visibility timeout; leasing for {DEFAULT_VISIBILITY:?}");
                }
                DEFAULT_VISIBILITY
            }
        }
    }
}

/// The state of one run, owned by its loop.
struct Run<'a, H> {
    consumer: &'a Consumer,
    handler: Arc<H>,
    visibility: Duration,
    settle: mpsc::UnboundedSender<Settle>,
    /// Every event held, by id.
    held: HashMap<u64, Held>,
    running: JoinSet<std::result::Result<(), String>>,
    /// The event of each running task.
    tasks: HashMap<tokio::task::Id, u64>,
    /// Groups with an event running.
    groups: HashSet<String>,
    /// Events waiting for their group, in lease order.
    waiting: HashMap<String, VecDeque<LeasedEvent>>,
    /// Events leased ahead, waiting for a free handler, in lease order.
    ahead: VecDeque<LeasedEvent>,
    extends: Vec<JoinHandle<()>>,
    report: ConsumerReport,
}

impl<H, F, E> Run<'_, H>
where
    H: Fn(LeasedEvent) -> F + Send + Sync + 'static,
    F: Future<Output = std::result::Result<(), E>> + Send + 'static,
    E: Display + Send + 'static,
{
    async fn serve(&mut self, shutdown: impl Future<Output = ()>) -> Result<()> {
        let options = self.consumer.options.clone();
        let mut shutdown = std::pin::pin!(shutdown);
        // Leases on their way, and how many events each asked for.
        let mut polls: JoinSet<Result<Vec<LeasedEvent>>> = JoinSet::new();
        let mut asking: HashMap<tokio::task::Id, usize> = HashMap::new();
        let limit = options.concurrency + options.prefetch;
        let max = options
            .max
            .map_or(DEFAULT_MAX, |m| m as usize)
            .clamp(1, MAX_RECEIPTS);
        let mut backoff = Backoff::new();
        let mut next_poll = Instant::now();
        let mut stopping: Option<Instant> = None;
        let mut failure = None;
        // A zero period would panic; the broker refuses such a lease anyway.
        let mut heartbeat =
            tokio::time::interval((self.visibility / 3).max(Duration::from_millis(1)));
        heartbeat.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        heartbeat.reset();

        loop {
            while stopping.is_none() && polls.len() < POLLS && Instant::now() >= next_poll {
                let asked: usize = asking.values().sum();
                let room = limit.saturating_sub(self.held.len() + asked);
                // A lease asks for a good share of what fits, not for each
                // slot as it frees: fewer, larger leases.
                if room == 0 || room < max.min(limit).div_ceil(2) {
                    break;
                }
                let n = room.min(max);
                let task = polls.spawn(self.lease(n));
                asking.insert(task.id(), n);
            }
            if stopping.is_some() && self.running.is_empty() {
                break;
            }
            tokio::select! {
                () = &mut shutdown, if stopping.is_none() => {
                    stopping = Some(Instant::now() + options.shutdown_grace);
                    polls.abort_all();
                    self.release_waiting();
                }
                Some(answer) = polls.join_next_with_id() => {
                    let task = match &answer {
                        Ok((id, _)) => *id,
                        Err(e) => e.id(),
                    };
                    asking.remove(&task);
                    match answer {
                        Ok((_, Ok(events))) => {
                            backoff.reset();
                            if stopping.is_some() {
                                // Arrived after all: hand them straight back.
                                for event in events {
                                    self.report.released += 1;
                                    let _ = self.settle.send(nack(event.receipt, "consumer shut down".into(), Some(0)));
                                }
                            } else {
                                for event in events {
                                    self.take(event);
                                }
                                self.dispatch();
                            }
                        }
                        Ok((_, Err(e))) if e.is_fatal() => {
                            tracing::error!(error = %e, "the broker refuses this consumer; stopping");
                            failure = Some(e);
                            stopping = Some(Instant::now() + options.shutdown_grace);
                            polls.abort_all();
                            self.release_waiting();
                        }
                        Ok((_, Err(e))) => {
                            let wait = backoff.fail(e.retry_after());
                            tracing::warn!(error = %e, "leasing failed; trying again in {wait:?}");
                            next_poll = Instant::now() + wait;
                        }
                        Err(join) if join.is_cancelled() => {}
                        Err(join) => {
                            let wait = backoff.fail(None);
                            tracing::warn!(error = %join, "the lease task failed; trying again in {wait:?}");
                            next_poll = Instant::now() + wait;
                        }
                    }
                }
                Some(done) = self.running.join_next_with_id() => {
                    self.finished(done);
                    if stopping.is_none() {
                        self.dispatch();
                    }
                }
                _ = heartbeat.tick() => self.extend(),
                () = sleep_until(next_poll), if stopping.is_none() && next_poll > Instant::now() => {}
                () = sleep_until(stopping.unwrap_or_else(Instant::now)), if stopping.is_some() => {
                    // Grace is over: stop what still runs and hand it back.
                    self.running.abort_all();
                    while let Some(done) = self.running.join_next_with_id().await {
                        self.finished(done);
                    }
                }
            }
        }
        match failure {
            Some(e) => Err(e),
            None => Ok(()),
        }
    }

    /// A lease of at most `n` events.
    fn lease(&self, n: usize) -> impl Future<Output = Result<Vec<LeasedEvent>>> + Send + 'static {
        let request = LeaseRequest {
            max: Some(n as u32),
            visibility_timeout_ms: Some(millis(self.visibility)),
            wait_ms: Some(millis(self.consumer.options.wait)),
        };
        let client = self.consumer.client.clone();
        let queue = self.consumer.queue.clone();
        async move { client.lease_events(&queue, &request).await }
    }

    /// Starts events leased ahead while handlers are free; an event whose
    /// group is running waits for it instead.
    fn dispatch(&mut self) {
        while self.running.len() < self.consumer.options.concurrency {
            let Some(event) = self.ahead.pop_front() else {
                return;
            };
            match &event.group {
                Some(group) if self.groups.contains(group) => {
                    self.waiting
                        .entry(group.clone())
                        .or_default()
                        .push_back(event);
                }
                Some(group) => {
                    self.groups.insert(group.clone());
                    self.start(event);
                }
                None => self.start(event),
            }
        }
    }

    /// A leased event: held, its lease extended, until it runs and settles.
    fn take(&mut self, event: LeasedEvent) {
        self.held.insert(
            event.id,
            Held {
                receipt: event.receipt.clone(),
                group: event.group.clone(),
            },
        );
        self.ahead.push_back(event);
    }

    fn start(&mut self, event: LeasedEvent) {
        let id = event.id;
        let handler = Arc::clone(&self.handler);
        let task = self
            .running
            .spawn(async move { handler(event).await.map_err(|e| e.to_string()) });
        self.tasks.insert(task.id(), id);
    }

    /// A handler task ended: settle its event and start the next of its group.
    fn finished(
        &mut self,
        done: std::result::Result<(tokio::task::Id, std::result::Result<(), String>), JoinError>,
    ) {
        let (task, outcome) = match done {
            Ok((task, outcome)) => (task, Ok(outcome)),
            Err(e) => (e.id(), Err(e)),
        };
        let Some(id) = self.tasks.remove(&task) else {
            return;
        };
        let Some(held) = self.held.remove(&id) else {
            return;
        };
        let settle = match outcome {
            Ok(Ok(())) => {
                self.report.succeeded += 1;
                Settle::Ack(held.receipt)
            }
            Ok(Err(error)) => {
                self.report.failed += 1;
                nack(held.receipt, error, None)
            }
            Err(e) if e.is_panic() => {
                self.report.failed += 1;
                nack(
                    held.receipt,
                    format!("handler panicked: {}", panic_text(e)),
                    None,
                )
            }
            Err(_) => {
                self.report.released += 1;
                nack(
                    held.receipt,
                    "consumer shut down before the handler finished".into(),
                    Some(0),
                )
            }
        };
        // The settler only stops after the run: a send cannot fail here.
        let _ = self.settle.send(settle);
        if let Some(group) = held.group {
            match self.waiting.get_mut(&group).and_then(VecDeque::pop_front) {
                Some(next) => self.start(next),
                None => {
                    self.waiting.remove(&group);
                    self.groups.remove(&group);
                }
            }
        }
    }

    /// At shutdown: the events waiting for their group go back at once.
    fn release_waiting(&mut self) {
        let mut events: Vec<LeasedEvent> = self.ahead.drain(..).collect();
        events.extend(self.waiting.drain().flat_map(|(_, events)| events));
        for event in events {
            if let Some(held) = self.held.remove(&event.id) {
                self.report.released += 1;
                let _ = self
                    .settle
                    .send(nack(held.receipt, "consumer shut down".into(), Some(0)));
            }
        }
    }

    /// Extends every lease held, in the background.
    fn extend(&mut self) {
        self.extends.retain(|t| !t.is_finished());
        if self.held.is_empty() {
            return;
        }
        let receipts: Vec<String> = self.held.values().map(|h| h.receipt.clone()).collect();
        let client = self.consumer.client.clone();
        let queue = self.consumer.queue.clone();
        let visibility = self.visibility;
        self.extends.push(tokio::spawn(async move {
            for chunk in receipts.chunks(MAX_RECEIPTS) {
                match client.extend_leases(&queue, chunk, Some(visibility)).await {
                    Ok(results) => {
                        for r in results.iter().filter(|r| r.status != SettleStatus::Ok) {
                            tracing::warn!(receipt = %r.receipt, status = ?r.status, "a lease could not be extended: its event will be delivered again");
                        }
                    }
                    Err(e) => tracing::warn!(error = %e, "extending leases failed; trying again at the next beat"),
                }
            }
        }));
    }
}

fn nack(receipt: String, mut error: String, delay_ms: Option<u64>) -> Settle {
    if let Some((cut, _)) = error.char_indices().nth(MAX_ERROR_CHARS) {
        error.truncate(cut);
    }
    Settle::Nack {
        receipt,
        error,
        delay_ms,
    }
}

fn panic_text(e: JoinError) -> String {
    let payload = e.into_panic();
    if let Some(s) = payload.downcast_ref::<&str>() {
        (*s).to_owned()
    } else if let Some(s) = payload.downcast_ref::<String>() {
        s.clone()
    } else {
        "a panic without a message".to_owned()
    }
}

fn millis(d: Duration) -> u64 {
    u64::try_from(d.as_millis()).unwrap_or(u64::MAX)
}

/// Completes at the first SIGTERM or SIGINT (Ctrl-C): the usual `shutdown`
/// of [`Consumer::run`] in a service.
pub async fn shutdown_signal() {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{signal, SignalKind};
        match signal(SignalKind::terminate()) {
            Ok(mut term) => {
                tokio::select! {
                    _ = term.recv() => {}
                    _ = tokio::signal::ctrl_c() => {}
                }
            }
            Err(_) => {
                let _ = tokio::signal::ctrl_c().await;
            }
        }
    }
    #[cfg(not(unix))]
    {
        let _ = tokio::signal::ctrl_c().await;
    }
}
