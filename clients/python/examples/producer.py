"""Produce to the queue "orders": one event, then a batch stored all or nothing."""

from event_broker import Client, NewEvent

with Client() as client:  # EVENT_BROKER_URL / EVENT_BROKER_TOKEN, or http://127.0.0.1:3000
    one = client.enqueue("orders", {"order": 42}, idempotency_key="order-42", headers={"source": "web"})
    print("stored", one.id, "(a duplicate)" if one.duplicate else "")
    batch = client.enqueue_batch(
        "orders",
        [NewEvent({"order": n}, group=f"customer-{n % 3}", priority=n % 2) for n in range(43, 53)],
    )
    print("stored", batch.ids)
