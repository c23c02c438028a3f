//! One subscription's delivery loop: lease an event, POST it, ack or nack.

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use tokio_util::sync::CancellationToken;

use super::{DeliveryObserver, Signer};
use crate::event_json::{EventJson, EventTimes};
use event_broker_core::address::non_public;
use event_broker_core::log_throttle::Throttle;
use event_broker_core::{signing_key, Broker, BrokerError, Delivery, ReceiptStatus, Subscription};

/// How long one lease request waits for an event before asking again.
const POLL: Duration = Duration::from_secs(30);

/// Added to the call's timeout for the lease, so that the lease outlives the
/// call and the ack or nack after it.
const LEASE_MARGIN: Duration = Duration::from_secs(30);

/// The most of an answer read. A short answer is read to its end, so that
/// its connection serves the next call; of a longer one the rest is left
/// unread and its connection closed, so that a receiver that answers
/// without end holds neither memory nor a delivery task.
const MAX_ANSWER_BYTES: usize = 64 << 10;

/// The most of a failed answer's body quoted in the delivery's error.
const QUOTED_BYTES: usize = 256;

/// How one webhook call ended; the event was acked or nacked after it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Outcome {
    /// The event.
    pub id: u64,
    /// Its delivery attempt, starting at 1.
    pub attempt: u32,
    /// The subscriber's answer, when it answered.
    pub status: Option<u16>,
    /// Why the delivery failed; `None` when it was acked.
    pub error: Option<String>,
}

/// Delivers one subscription's events; shared by its tasks.
pub(super) struct Pusher {
    broker: Arc<Broker>,
    client: reqwest::Client,
    queue: String,
    url: reqwest::Url,
    timeout: Duration,
    signer: Option<Signer>,
    observer: Option<Arc<dyn DeliveryObserver>>,
    /// Why every call fails at once: the URL names an address that is not
    /// public, and `WEBHOOK_ALLOW_PRIVATE` is not set.
    refused: Option<String>,
    /// When this queue's tasks last logged a failed call.
    failures: Mutex<Throttle>,
}

impl Pusher {
    pub fn new(
        broker: Arc<Broker>,
        client: reqwest::Client,
        subscription: &Subscription,
        observer: Option<Arc<dyn DeliveryObserver>>,
    ) -> Result<Pusher, BrokerError> {
        let url = reqwest::Url::parse(&subscription.url)
            .map_err(|e| BrokerError::invalid("url", e.to_string()))?;
        let signer = match &subscription.secret {
            Some(secret) => Some(Signer::new(signing_key(secret)?)),
            None => None,
        };
        // Set while the setting allowed it, or before the rule: the
        // resolver never sees a literal address, so it is checked here.
        let refused = match url.host() {
            _ if broker.limits().webhook_allow_private => None,
            Some(url::Host::Ipv4(ip)) => non_public(ip.into()),
            Some(url::Host::Ipv6(ip)) => non_public(ip.into()),
            _ => None,
        }
        .map(|why| {
            format!(
                "webhook call refused: the URL's address is {why}, not public; \
                 WEBHOOK_ALLOW_PRIVATE=true allows it"
            )
        });
        Ok(Pusher {
            broker,
            client,
            queue: subscription.queue.to_string(),
            url,
            timeout: Duration::from_millis(subscription.timeout_ms),
            signer,
            observer,
            refused,
            failures: Mutex::new(Throttle::default()),
        })
    }

    /// Delivers events one at a time until `stop`; a call in progress is
    /// finished, acked or nacked first.
    pub async fn run(self: Arc<Self>, stop: CancellationToken) {
        let lease = Some(self.timeout + LEASE_MARGIN);
        loop {
            let leased = tokio::select! {
                biased;
                () = stop.cancelled() => return,
                got = self.broker.lease_wait(&self.queue, 1, lease, POLL) => got,
            };
            match leased {
                Ok(events) => {
                    for event in events {
                        self.deliver(event).await;
                    }
                }
                // The subscription was checked when set, so this is an event
                // that could not be read back. It stays leased, so the next
                // lease takes the next event: no retry loop on the same one.
                Err(e) => {
                    tracing::error!(queue = %self.queue, error = %e, "webhook worker cannot lease");
                }
            }
        }
    }

    async fn deliver(&self, event: Delivery) {
        let started = Instant::now();
        let body = EventJson::of(&event, false, &mut EventTimes::default())
            .and_then(|json| serde_json::to_vec(&json));
        let (status, error) = match body {
            Ok(body) => self.post(&event, body).await,
            Err(e) => (None, Some(format!("the stored event is not JSON: {e}"))),
        };
        if let Some(why) = &error {
            self.log_failure(&event, status, why);
        }
        let receipts = [event.receipt.to_string()];
        let settled = match &error {
            None => self.broker.ack(&self.queue, &receipts),
            Some(why) => self.broker.nack(&self.queue, &receipts, None, Some(why)),
        };
        let settled = match settled {
            Ok(pending) => pending.result().await,
            Err(e) => Err(e),
        };
        match settled.as_deref() {
            Ok([result]) if result.status == ReceiptStatus::Ok => {}
            Ok(results) => tracing::warn!(
                queue = %self.queue,
                id = event.id,
                results = ?results,
                "the lease ran out during the webhook call; the event will be delivered again"
            ),
            Err(e) => tracing::warn!(
                queue = %self.queue,
                id = event.id,
                error = %e,
                "could not settle a webhook delivery; the event will be delivered again"
            ),
        }
        if let Some(observer) = &self.observer {
            let outcome = Outcome {
                id: event.id,
                attempt: event.attempt,
                status,
                error,
            };
            observer.delivered(&self.queue, &outcome, started.elapsed());
        }
    }

    /// One line for a failed call, at most one a second for the queue.
    fn log_failure(&self, event: &Delivery, status: Option<u16>, why: &str) {
        let now = self.broker.clock().now();
        // A panic while admitting leaves a count, not broken invariants.
        let mut throttle = self.failures.lock().unwrap_or_else(|e| e.into_inner());
        let Some(suppressed) = throttle.admit(now) else {
            return;
        };
        drop(throttle);
        tracing::warn!(
            queue = %self.queue,
            id = event.id,
            attempt = event.attempt,
            status,
            error = why,
            suppressed,
            "webhook delivery failed"
        );
    }

    /// POSTs one event; the subscriber's status and the failure, if any.
    async fn post(&self, event: &Delivery, body: Vec<u8>) -> (Option<u16>, Option<String>) {
        if let Some(why) = &self.refused {
            return (None, Some(why.clone()));
        }
        // Standard Webhooks: the id stays the same across retries of one event.
        let id = format!("evt_{}", event.id);
        let timestamp = self.broker.clock().unix_ms() / 1000;
        let mut request = self
            .client
            .post(self.url.clone())
            .timeout(self.timeout)
            .header(reqwest::header::CONTENT_TYPE, "application/json")
            .header("webhook-id", &id)
            .header("webhook-timestamp", timestamp);
        if let Some(signer) = &self.signer {
            request = request.header("webhook-signature", signer.sign(&id, timestamp, &body));
        }
        let mut answer = match request.body(body).send().await {
            Ok(answer) => answer,
            Err(e) => return (None, Some(self.describe(e))),
        };
        let status = answer.status();
        let start = match read_capped(&mut answer).await {
            Ok(start) => start,
            Err(e) => return (Some(status.as_u16()), Some(self.describe(e))),
        };
        let error = (!status.is_success()).then(|| {
            let mut error = format!("webhook answered {status}");
            quote(&mut error, &start);
            error
        });
        (Some(status.as_u16()), error)
    }

    fn describe(&self, e: reqwest::Error) -> String {
        if e.is_timeout() {
            return format!(
                "webhook did not answer within {} ms",
                self.timeout.as_millis()
            );
        }
        let e = e.without_url();
        let mut text = String::from("webhook call failed");
        let mut cause: Option<&dyn std::error::Error> = Some(&e);
        while let Some(c) = cause {
            text.push_str(": ");
            text.push_str(&c.to_string());
            cause = c.source();
        }
        text
    }
}

/// Reads at most [`MAX_ANSWER_BYTES`] of `answer`; its first
/// [`QUOTED_BYTES`], and whether there was more than that.
async fn read_capped(answer: &mut reqwest::Response) -> reqwest::Result<(Vec<u8>, bool)> {
    let mut start = Vec::new();
    let mut read = 0;
    while read < MAX_ANSWER_BYTES {
        let Some(chunk) = answer.chunk().await? else {
            break;
        };
        read += chunk.len();
        let room = QUOTED_BYTES - start.len();
        start.extend_from_slice(&chunk[..chunk.len().min(room)]);
    }
    Ok((start, read > QUOTED_BYTES))
}

/// Adds `: <the start of the answer>` to `error`, on one line, when the
/// answer had a body: a receiver often says there why it failed.
fn quote(error: &mut String, (start, more): &(Vec<u8>, bool)) {
    let text = String::from_utf8_lossy(start);
    let text: String = text
        .chars()
        .map(|c| if c.is_control() { ' ' } else { c })
        .collect();
    let text = text.trim();
    if text.is_empty() {
        return;
    }
    error.push_str(": ");
    error.push_str(text);
    if *more {
        error.push('…');
    }
}
