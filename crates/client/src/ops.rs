//! One method per operation of the OpenAPI document, named after its
//! `operationId` in snake case (`enqueueEvents` is
//! [`Client::enqueue_events`]), so that a check can hold the client to the
//! document. Convenience methods sit beside them.

use std::time::Duration;

use percent_encoding::{utf8_percent_encode, AsciiSet, NON_ALPHANUMERIC};
use reqwest::Method;
use serde::Serialize;
use serde_json::Value;

use crate::client::{Call, Client, RetryPolicy};
use crate::error::{Error, ErrorCode, Result};
use crate::types::*;

/// What stays as it is in a path segment: the characters of queue names.
const SEGMENT: &AsciiSet = &NON_ALPHANUMERIC.remove(b'-').remove(b'_').remove(b'.');

/// `/queues/{queue}` with the name escaped, so that no name can reach another route.
fn queue_path(queue: &str, rest: &str) -> String {
    format!("/queues/{}{rest}", utf8_percent_encode(queue, SEGMENT))
}

#[derive(Serialize)]
struct Receipts<'a> {
    receipts: &'a [String],
}

#[derive(Serialize)]
struct ExtendIn<'a> {
    receipts: &'a [String],
    #[serde(skip_serializing_if = "Option::is_none")]
    visibility_timeout_ms: Option<u64>,
}

#[derive(Serialize)]
struct CheckpointIn<'a> {
    name: &'a str,
}

#[derive(serde::Deserialize)]
struct LeaseOut {
    events: Vec<LeasedEvent>,
}

impl Client {
    // ----- producing -----

    /// `enqueueEvents` with a batch: all stored, or none.
    pub async fn enqueue_events(&self, queue: &str, events: &[NewEvent]) -> Result<EnqueuedBatch> {
        self.call(&Call::with_body(
            Method::POST,
            queue_path(queue, "/events"),
            events,
        ))
        .await
    }

    /// `enqueueEvents` with one event.
    pub async fn enqueue(&self, queue: &str, event: &NewEvent) -> Result<Enqueued> {
        self.call(&Call::with_body(
            Method::POST,
            queue_path(queue, "/events"),
            event,
        ))
        .await
    }

    // ----- consuming -----

    /// `leaseEvents`: events under a lease, maybe none; a long poll when
    /// `wait_ms` is set.
    pub async fn lease_events(
        &self,
        queue: &str,
        request: &LeaseRequest,
    ) -> Result<Vec<LeasedEvent>> {
        let mut call = Call::with_body(Method::POST, queue_path(queue, "/lease"), request);
        call.wait = Duration::from_millis(request.wait_ms.unwrap_or(0));
        let out: LeaseOut = self.call(&call).await?;
        Ok(out.events)
    }

    /// `ackEvents`: one result per receipt, in order. When every receipt
    /// failed the broker answers 409 `lease_lost` with the results; they are
    /// given here as results too, so the statuses say what happened.
    pub async fn ack_events(&self, queue: &str, receipts: &[String]) -> Result<Vec<SettleResult>> {
        let body = Receipts { receipts };
        settled(
            self.call(&Call::with_body(
                Method::POST,
                queue_path(queue, "/ack"),
                &body,
            ))
            .await,
        )
    }

    /// `nackEvents`: the deliveries failed; one result per receipt, as for an ack.
    pub async fn nack_events(&self, queue: &str, nack: &Nack) -> Result<Vec<SettleResult>> {
        settled(
            self.call(&Call::with_body(
                Method::POST,
                queue_path(queue, "/nack"),
                nack,
            ))
            .await,
        )
    }

    /// `extendLeases`: the leases now end `visibility_timeout` from now
    /// (default the queue's); one result per receipt, as for an ack.
    pub async fn extend_leases(
        &self,
        queue: &str,
        receipts: &[String],
        visibility_timeout: Option<Duration>,
    ) -> Result<Vec<SettleResult>> {
        let body = ExtendIn {
            receipts,
            visibility_timeout_ms: visibility_timeout.map(millis),
        };
        settled(
            self.call(&Call::with_body(
                Method::POST,
                queue_path(queue, "/extend"),
                &body,
            ))
            .await,
        )
    }

    // ----- queues -----

    /// `listQueues`: every queue with its counts and settings.
    pub async fn list_queues(&self) -> Result<Vec<Queue>> {
        let out: QueuesOut = self.call(&Call::get("/queues".into())).await?;
        Ok(out.queues)
    }

    /// `getQueue`: one queue; [`ErrorCode::NotFound`] when it does not exist.
    pub async fn get_queue(&self, queue: &str) -> Result<Queue> {
        self.call(&Call::get(queue_path(queue, ""))).await
    }

    /// `putQueueSettings`: the queue's settings, whole; makes the queue.
    pub async fn put_queue_settings(
        &self,
        queue: &str,
        settings: &SettingsUpdate,
    ) -> Result<Queue> {
        self.call(&Call::with_body(
            Method::PUT,
            queue_path(queue, ""),
            settings,
        ))
        .await
    }

    /// `patchQueueSettings`: the fields named, the rest kept.
    pub async fn patch_queue_settings(
        &self,
        queue: &str,
        settings: &SettingsUpdate,
    ) -> Result<Queue> {
        self.call(&Call::with_body(
            Method::PATCH,
            queue_path(queue, ""),
            settings,
        ))
        .await
    }

    /// `deleteQueue`: the queue, its events, settings and subscription.
    pub async fn delete_queue(&self, queue: &str) -> Result<()> {
        self.call_empty(&Call::new(Method::DELETE, queue_path(queue, "")))
            .await
    }

    /// `pauseQueue`: leases answer nothing until it is resumed.
    pub async fn pause_queue(&self, queue: &str) -> Result<Queue> {
        self.call(&Call::new(Method::POST, queue_path(queue, "/pause")))
            .await
    }

    /// `resumeQueue`.
    pub async fn resume_queue(&self, queue: &str) -> Result<Queue> {
        self.call(&Call::new(Method::POST, queue_path(queue, "/resume")))
            .await
    }

    /// `browseEvents`: a page of the queue's events, without leasing them.
    pub async fn browse_events(&self, queue: &str, query: &BrowseQuery) -> Result<BrowsePage> {
        let mut params = Vec::new();
        if let Some(state) = query.state {
            params.push(("state", state.as_str().to_owned()));
        }
        if let Some(limit) = query.limit {
            params.push(("limit", limit.to_string()));
        }
        if let Some(after) = query.after {
            params.push(("after", after.to_string()));
        }
        if let Some(payload) = query.payload {
            params.push(("payload", payload.to_string()));
        }
        let mut call = Call::get(queue_path(queue, "/events"));
        call.query = &params;
        self.call(&call).await
    }

    /// `getEvent`: one live event of the queue.
    pub async fn get_event(&self, queue: &str, id: u64) -> Result<BrowsedEvent> {
        self.call(&Call::get(queue_path(queue, &format!("/events/{id}"))))
            .await
    }

    /// `cancelEvent`: the event is dropped, in any state.
    pub async fn cancel_event(&self, queue: &str, id: u64) -> Result<()> {
        self.call_empty(&Call::new(
            Method::DELETE,
            queue_path(queue, &format!("/events/{id}")),
        ))
        .await
    }

    // ----- dead letters -----

    /// `listDeadLetters`: a page of the DLQ, `limit` 1 to 1000, after an id.
    pub async fn list_dead_letters(
        &self,
        queue: &str,
        limit: Option<u32>,
        after: Option<u64>,
    ) -> Result<DeadLetterPage> {
        let mut params = Vec::new();
        if let Some(limit) = limit {
            params.push(("limit", limit.to_string()));
        }
        if let Some(after) = after {
            params.push(("after", after.to_string()));
        }
        let mut call = Call::get(queue_path(queue, "/dlq"));
        call.query = &params;
        self.call(&call).await
    }

    /// `redriveDeadLetters`: back to ready with attempts reset; the number redriven.
    pub async fn redrive_dead_letters(&self, queue: &str, which: &Selection) -> Result<u64> {
        let out: Redriven = self
            .call(&Call::with_body(
                Method::POST,
                queue_path(queue, "/dlq/redrive"),
                which,
            ))
            .await?;
        Ok(out.redriven)
    }

    /// `purgeDeadLetters`: deleted for good; the number purged.
    pub async fn purge_dead_letters(&self, queue: &str, which: &Selection) -> Result<u64> {
        let out: Purged = self
            .call(&Call::with_body(
                Method::POST,
                queue_path(queue, "/dlq/purge"),
                which,
            ))
            .await?;
        Ok(out.purged)
    }

    // ----- webhooks -----

    /// `putSubscription`: push the queue's events to a URL.
    pub async fn put_subscription(
        &self,
        queue: &str,
        request: &SubscriptionRequest,
    ) -> Result<Subscription> {
        self.call(&Call::with_body(
            Method::PUT,
            queue_path(queue, "/subscription"),
            request,
        ))
        .await
    }

    /// `getSubscription`; [`ErrorCode::NotFound`] when there is none.
    pub async fn get_subscription(&self, queue: &str) -> Result<Subscription> {
        self.call(&Call::get(queue_path(queue, "/subscription")))
            .await
    }

    /// `deleteSubscription`.
    pub async fn delete_subscription(&self, queue: &str) -> Result<()> {
        self.call_empty(&Call::new(
            Method::DELETE,
            queue_path(queue, "/subscription"),
        ))
        .await
    }

    // ----- operations -----

    /// `health`: the process serves.
    pub async fn health(&self) -> Result<()> {
        let _: Value = self.call(&Call::get("/health".into())).await?;
        Ok(())
    }

    /// `ready`: whether the broker takes requests, and why not. A 503 here is
    /// an answer, not an error.
    pub async fn ready(&self) -> Result<Readiness> {
        let call = Call::get("/health/ready".into());
        let once = self.with_retry(RetryPolicy {
            retries: 0,
            max_wait: Duration::ZERO,
        });
        match once.send(&call).await {
            Ok((status, body)) => self.decode(&call.path, status, &body),
            Err(Error::Api(e)) if e.code == ErrorCode::Unavailable => Ok(Readiness {
                status: "unavailable".into(),
                reason: Some(e.message),
            }),
            Err(e) => Err(e),
        }
    }

    /// `status`: version, uptime, queues, the log, the configuration.
    pub async fn status(&self) -> Result<Status> {
        self.call(&Call::get("/status".into())).await
    }

    /// `metrics`: the Prometheus text.
    pub async fn metrics(&self) -> Result<String> {
        let (_, body) = self.send(&Call::get("/metrics".into())).await?;
        String::from_utf8(body.to_vec()).map_err(|e| Error::BadAnswer {
            url: format!("{}/metrics", self.base_url()),
            status: 200,
            detail: e.to_string(),
        })
    }

    /// `openapi`: the API's OpenAPI document.
    pub async fn openapi(&self) -> Result<Value> {
        self.call(&Call::get("/openapi.json".into())).await
    }

    /// `openapi30`: the same document as OpenAPI 3.0.3, for generators
    /// that read only 3.0.
    pub async fn openapi30(&self) -> Result<Value> {
        self.call(&Call::get("/openapi-3.0.json".into())).await
    }

    /// `createCheckpoint`: a consistent copy of the log, named or named by the time.
    pub async fn create_checkpoint(&self, name: Option<&str>) -> Result<Checkpoint> {
        let path = "/admin/checkpoint".to_owned();
        match name {
            Some(name) => {
                self.call(&Call::with_body(Method::POST, path, &CheckpointIn { name }))
                    .await
            }
            None => self.call(&Call::new(Method::POST, path)).await,
        }
    }
}

/// Results of an ack, nack or extend, also when every receipt failed.
fn settled(answer: Result<ResultsOut>) -> Result<Vec<SettleResult>> {
    match answer {
        Ok(out) => Ok(out.results),
        Err(Error::Api(e)) if e.code == ErrorCode::LeaseLost && e.results.is_some() => {
            Ok(e.results.unwrap_or_default())
        }
        Err(e) => Err(e),
    }
}
