//! Enqueues one event to "orders", then a batch of three, and prints their ids.
use event_broker_client::{Client, NewEvent};
use serde_json::json;

#[tokio::main]
async fn main() -> Result<(), event_broker_client::Error> {
    let client = Client::builder().from_env().build()?;
    let one = NewEvent::new(&json!({"order": 42}))?
        .idempotency_key("order-42")
        .header("source", "example");
    let stored = client.enqueue("orders", &one).await?;
    println!("event {} (duplicate: {})", stored.id, stored.duplicate);
    let batch: Vec<NewEvent> = (43..46)
        .map(|order| NewEvent::new(&json!({ "order": order })))
        .collect::<Result<_, _>>()?;
    let stored = client.enqueue_events("orders", &batch).await?;
    println!("events {:?}", stored.ids);
    Ok(())
}
