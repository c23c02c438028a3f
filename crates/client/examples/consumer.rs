//! Consumes the queue "orders" until SIGTERM or Ctrl-C; an `Err` would nack.
use event_broker_client::{shutdown_signal, Client, Consumer, LeasedEvent};

#[tokio::main]
async fn main() -> Result<(), event_broker_client::Error> {
    // EVENT_BROKER_URL, EVENT_BROKER_TOKEN, EVENT_BROKER_CA, or http://127.0.0.1:3000
    let client = Client::builder().from_env().build()?;
    let handle = |event: LeasedEvent| async move {
        println!("event {}: {}", event.id, event.payload.get());
        Ok::<(), String>(())
    };
    let consumer = Consumer::new(client, "orders");
    let report = consumer.run(handle, shutdown_signal()).await?;
    eprintln!("{report:?}");
    Ok(())
}
