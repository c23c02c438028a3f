"""Throughput of the Python client, for the docs.

Measures, against one broker:

- produce, single events: sequential ``enqueue`` calls from one client;
- produce, batches of 100: sequential ``enqueue_batch`` calls;
- consume: a :class:`~event_broker.Consumer` with its defaults (8 handler
  threads, leases of up to 8, long polls) and a handler that does nothing,
  draining every event produced above; timed from start until the last ack.

Usage::

    python bench.py --url http://127.0.0.1:3000          # a running broker
    python bench.py --spawn ../../target/release/event-broker  # starts its own

Prints events per second for each. Figures depend on the broker's
``WAL_FSYNC`` (every answer waits for an fsync by default) and the machine.
"""

from __future__ import annotations

import argparse
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager

import httpx

from event_broker import Client, Consumer, LeasedEvent, NewEvent


@contextmanager
def spawned(binary: str) -> Iterator[str]:
    """A broker of the bench's own, on a free port and a temporary data dir."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    data = tempfile.mkdtemp(prefix="event-broker-bench-")
    env = {
        "PATH": os.environ.get("PATH", ""),
        "PORT": str(port),
        "BIND_ADDR": "127.0.0.1",
        "DATA_DIR": data,
        "LOG_LEVEL": "warn",
    }
    process = subprocess.Popen([binary], env=env)
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 20
        while True:
            try:
                if httpx.get(f"{url}/api/health/ready", timeout=1).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            if time.monotonic() > deadline or process.poll() is not None:
                sys.exit("the broker did not become ready")
            time.sleep(0.02)
        yield url
    finally:
        process.terminate()
        process.wait(timeout=15)
        shutil.rmtree(data, ignore_errors=True)


def rate(n: int, seconds: float) -> str:
    return f"{n / seconds:>10,.0f} events/s  ({n} events in {seconds:.2f} s)"


def bench(url: str, singles: int, batches: int) -> None:
    queue = f"bench-{uuid.uuid4().hex[:8]}"
    payload = {"order": 42, "customer": "c-1", "items": [1, 2, 3]}
    with Client(url) as client:
        started = time.perf_counter()
        for _ in range(singles):
            client.enqueue(queue, payload)
        print(f"produce, single events:   {rate(singles, time.perf_counter() - started)}")

        started = time.perf_counter()
        batch = [NewEvent(payload)] * 100
        for _ in range(batches):
            client.enqueue_batch(queue, batch)
        print(f"produce, batches of 100:  {rate(batches * 100, time.perf_counter() - started)}")

        total = singles + batches * 100
        done = threading.Event()
        count = 0
        lock = threading.Lock()

        def handle(event: LeasedEvent) -> None:
            nonlocal count
            with lock:
                count += 1
                if count >= total:
                    done.set()

        consumer = Consumer(client, queue, handle)
        thread = threading.Thread(target=consumer.run)
        started = time.perf_counter()
        thread.start()
        done.wait()
        # Until the broker has every ack, not just until the last handler ran.
        while client.get_queue(queue).acked_total < total:
            time.sleep(0.005)
        elapsed = time.perf_counter() - started
        consumer.stop()
        thread.join()
        print(f"consume, Consumer default: {rate(total, elapsed)}")
        client.delete_queue(queue)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--url", default=os.environ.get("EVENT_BROKER_URL", "http://127.0.0.1:3000"))
    parser.add_argument("--spawn", metavar="BINARY", help="start this broker binary instead of using --url")
    parser.add_argument("--singles", type=int, default=2000, help="single events to produce")
    parser.add_argument("--batches", type=int, default=200, help="batches of 100 to produce")
    args = parser.parse_args()
    if args.spawn:
        with spawned(args.spawn) as url:
            bench(url, args.singles, args.batches)
    else:
        bench(args.url, args.singles, args.batches)


if __name__ == "__main__":
    main()
