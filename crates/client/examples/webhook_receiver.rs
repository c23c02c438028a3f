//! A webhook receiver: serves POST /hook on RECEIVER_ADDR (default
//! 127.0.0.1:8080), checks each call's Standard Webhooks signature and
//! timestamp with WEBHOOK_SECRET, and answers 204 (the broker acks) or 401
//! (the broker retries). Subscribe a queue to it with
//! `PUT /api/queues/{queue}/subscription` and the same secret.
use axum::body::Bytes;
use axum::http::{HeaderMap, StatusCode};
use axum::routing::post;
use axum::Router;
use event_broker_client::WebhookVerifier;

#[tokio::main]
async fn main() -> std::io::Result<()> {
    let secret =
        std::env::var("WEBHOOK_SECRET").expect("WEBHOOK_SECRET: the subscription's whsec_ secret");
    let verifier = WebhookVerifier::new(&secret).expect("WEBHOOK_SECRET is whsec_ and base64");
    let hook = move |headers: HeaderMap, body: Bytes| {
        let verifier = verifier.clone();
        async move { check(&verifier, &headers, &body) }
    };
    let addr = std::env::var("RECEIVER_ADDR").unwrap_or_else(|_| "127.0.0.1:8080".into());
    let listener = tokio::net::TcpListener::bind(&addr).await?;
    eprintln!("listening on {addr}");
    axum::serve(listener, Router::new().route("/hook", post(hook))).await
}

fn check(verifier: &WebhookVerifier, headers: &HeaderMap, body: &[u8]) -> StatusCode {
    match verifier.verify(headers, body) {
        Ok(()) => {
            let id = headers
                .get("webhook-id")
                .and_then(|v| v.to_str().ok())
                .unwrap_or("?");
            println!("verified {id}: {}", String::from_utf8_lossy(body));
            StatusCode::NO_CONTENT
        }
        Err(e) => {
            eprintln!("refused: {e}");
            StatusCode::UNAUTHORIZED
        }
    }
}
