//! Inputs a fuzz run of `fuzz/` stopped on (docs/ARCHITECTURE.md,
//! "Fuzzing"), each kept as a test with the bytes as they were found.

mod common;

use axum::body::Body;
use axum::http::{Request, StatusCode};
use common::api::Api;

/// The payload `api_bodies` had enqueued when it stopped on the answer of a
/// later lease: a number whose exponent puts it far beyond a float's range.
const BEYOND_A_FLOAT: &str = "2222e222222221";

/// The harness parsed 2xx bodies into `serde_json::Value`, which refuses
/// such a number; the JSON grammar does not, and API.md promises a payload
/// back byte for byte. So it is taken, and every route that shows it shows
/// it as it was sent, without a 5xx for a log that looks damaged.
#[tokio::test]
async fn a_payload_number_beyond_a_float_is_stored_and_handed_back_byte_for_byte() {
    let api = Api::new();
    let body = format!(r#"{{"payload":{BEYOND_A_FLOAT}}}"#);
    let (status, answer) = api.post("/api/queues/orders/events", &body).await;
    assert_eq!(status, StatusCode::CREATED, "{answer}");

    let lease = api.lease_text("orders", r#"{"max": 1}"#).await;
    let shown = format!(r#""payload":{BEYOND_A_FLOAT}"#);
    assert!(lease.contains(&shown), "{lease}");
    let receipt = lease
        .split(r#""receipt":""#)
        .nth(1)
        .and_then(|rest| rest.split('"').next())
        .expect("the lease answer names a receipt");

    // No retries in these limits: the nack sends the event to the DLQ.
    let nack = format!(r#"{{"receipts":["{receipt}"]}}"#);
    let (status, answer) = api.post("/api/queues/orders/nack", &nack).await;
    assert_eq!(status, StatusCode::OK, "{answer}");
    let get = Request::get("/api/queues/orders/dlq")
        .body(Body::empty())
        .unwrap();
    let (status, dlq, _) = api.exchange(get).await;
    let dlq = String::from_utf8(dlq).unwrap();
    assert_eq!(status, StatusCode::OK, "{dlq}");
    assert!(dlq.contains(&shown), "{dlq}");
}
