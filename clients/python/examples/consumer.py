"""Consume the queue "orders": print each event; an exception would nack it."""

from event_broker import Client, Consumer, LeasedEvent


def handle(event: LeasedEvent) -> None:
    print(f"event {event.id} (attempt {event.attempt}): {event.payload}")


with Client() as client:  # EVENT_BROKER_URL / EVENT_BROKER_TOKEN, or http://127.0.0.1:3000
    Consumer(client, "orders", handle, concurrency=8).run()  # SIGTERM or Ctrl-C stops it cleanly
