//! Push delivery: for every queue with a webhook subscription, a set of
//! tasks lease its events one at a time and POST each to the subscriber.
//! A 2xx answer acks; anything else, a timeout or a connection error nacks,
//! so failed pushes follow the same backoff and dead-letter rules as pulls.
//! The pool follows the subscriptions as they are set, replaced or removed.
//!
//! Unless `WEBHOOK_ALLOW_PRIVATE` is set, calls reach public addresses only
//! ([`event_broker_core::address`]): a literal address is checked before the
//! call, a host name's addresses once resolved, at connect time. Calls then
//! go straight to the receiver, never through an `HTTP(S)_PROXY`, which
//! would resolve names where the check cannot see. Of an answer, at most
//! 64 KiB is read.

mod push;
mod resolve;
mod signature;

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;

use event_broker_core::{Broker, Subscription};
pub use push::Outcome;
pub use signature::Signer;

/// Told about every finished webhook call (metrics, tests).
pub trait DeliveryObserver: Send + Sync {
    /// One call to `queue`'s subscriber ended with `outcome` after `took`.
    fn delivered(&self, queue: &str, outcome: &Outcome, took: Duration);
}

/// Delivers the events of subscribed queues to their webhooks.
pub struct WorkerPool {
    broker: Arc<Broker>,
    client: reqwest::Client,
    observer: Option<Arc<dyn DeliveryObserver>>,
}

/// The tasks serving one subscription.
struct Running {
    subscription: Subscription,
    stop: CancellationToken,
}

impl WorkerPool {
    /// A pool over `broker`; `observer` hears of every call.
    pub fn new(
        broker: Arc<Broker>,
        observer: Option<Arc<dyn DeliveryObserver>>,
    ) -> reqwest::Result<WorkerPool> {
        let mut client = reqwest::Client::builder()
            // A redirect would send the event somewhere the subscriber did not name.
            .redirect(reqwest::redirect::Policy::none())
            .user_agent(concat!("event-broker/", env!("CARGO_PKG_VERSION")));
        if !broker.limits().webhook_allow_private {
            client = client
                .no_proxy()
                .dns_resolver(Arc::new(resolve::PublicOnly));
        }
        let client = client.build()?;
        Ok(WorkerPool {
            broker,
            client,
            observer,
        })
    }

    /// Runs until `shutdown`, then stops leasing and returns once every call
    /// in progress has finished and been acked or nacked.
    pub async fn run(self, shutdown: CancellationToken) {
        let mut changes = self.broker.watch_subscriptions();
        let mut running: HashMap<String, Running> = HashMap::new();
        let mut tasks = JoinSet::new();
        loop {
            changes.mark_unchanged();
            self.reconcile(&mut running, &mut tasks, &shutdown);
            tokio::select! {
                changed = changes.changed() => if changed.is_err() { break },
                () = shutdown.cancelled() => break,
                Some(Err(e)) = tasks.join_next(), if !tasks.is_empty() => {
                    tracing::error!(error = %e, "a webhook delivery task failed");
                }
            }
        }
        for r in running.values() {
            r.stop.cancel();
        }
        while tasks.join_next().await.is_some() {}
    }

    /// Starts tasks for new or changed subscriptions and stops those of
    /// removed or changed ones.
    fn reconcile(
        &self,
        running: &mut HashMap<String, Running>,
        tasks: &mut JoinSet<()>,
        shutdown: &CancellationToken,
    ) {
        let wanted: HashMap<String, Subscription> = self
            .broker
            .subscriptions()
            .into_iter()
            .map(|s| (s.queue.to_string(), s))
            .collect();
        running.retain(|queue, r| {
            let keep = wanted.get(queue) == Some(&r.subscription);
            if !keep {
                // Its tasks finish the call in progress, then stop.
                r.stop.cancel();
            }
            keep
        });
        for (queue, subscription) in wanted {
            if running.contains_key(&queue) {
                continue;
            }
            let stop = shutdown.child_token();
            let pusher = match push::Pusher::new(
                self.broker.clone(),
                self.client.clone(),
                &subscription,
                self.observer.clone(),
            ) {
                Ok(pusher) => Arc::new(pusher),
                Err(e) => {
                    tracing::error!(queue, error = %e, "cannot deliver this subscription");
                    continue;
                }
            };
            for _ in 0..subscription.concurrency {
                tasks.spawn(pusher.clone().run(stop.clone()));
            }
            tracing::info!(
                queue,
                url = %subscription.url,
                concurrency = subscription.concurrency,
                "delivering to webhook"
            );
            running.insert(queue, Running { subscription, stop });
        }
    }
}
