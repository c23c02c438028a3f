"""A consumer process for the SIGTERM test: ``python consumer_process.py URL
QUEUE LOG``. Its handler writes ``start <id>``, sleeps a second, then
writes ``done <id>`` to LOG; it exits once the consumer's run returns."""

from __future__ import annotations

import sys
import time

from event_broker import Client, Consumer, LeasedEvent


def main() -> None:
    url, queue, log_path = sys.argv[1:4]
    log = open(log_path, "a", buffering=1)

    def handle(event: LeasedEvent) -> None:
        log.write(f"start {event.id}\n")
        time.sleep(1.0)
        log.write(f"done {event.id}\n")

    with Client(url) as client:
        Consumer(client, queue, handle, concurrency=4, wait_ms=1000, shutdown_grace=10).run()
    log.write("exit\n")


if __name__ == "__main__":
    main()
