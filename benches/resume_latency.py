#!/usr/bin/env python3
"""How soon long polls waiting on a paused queue get events once it is resumed.

Starts the release broker on a free loopback port with a fresh data
directory, fills a queue and pauses it, sends CONSUMERS long polls
(`wait_ms` 30000), and once they have waited WAIT_S seconds resumes the
queue. Prints, for each round, the time from sending the resume to each
poll's answer, in milliseconds.

    benches/resume_latency.py [BINARY] [ROUNDS]   # default target/release/event-broker, 5
"""

import json
import os
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request

CONSUMERS = 8
WAIT_S = 0.5


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def post(url, body=None):
    data = None if body is None else json.dumps(body).encode()
    request = urllib.request.Request(url, data=data, method="POST")
    if data is not None:
        request.add_header("content-type", "application/json")
    with urllib.request.urlopen(request, timeout=60) as answer:
        return json.loads(answer.read() or b"null")


def round_trip(base, queue):
    q = f"{base}/api/queues/{queue}"
    post(f"{q}/events", [{"payload": i} for i in range(CONSUMERS * 4)])
    post(f"{q}/pause")
    answered = [None] * CONSUMERS

    def poll(i):
        events = post(f"{q}/lease", {"max": 1, "wait_ms": 30000})["events"]
        answered[i] = (time.monotonic(), len(events))

    threads = [threading.Thread(target=poll, args=(i,)) for i in range(CONSUMERS)]
    for t in threads:
        t.start()
    time.sleep(WAIT_S)
    assert all(a is None for a in answered), "a poll answered while paused"
    sent = time.monotonic()
    post(f"{q}/resume")
    for t in threads:
        t.join()
    assert all(n == 1 for _, n in answered), answered
    return [(at - sent) * 1000 for at, _ in answered]


def main():
    binary = sys.argv[1] if len(sys.argv) > 1 else "target/release/event-broker"
    rounds = int(sys.argv[2]) if len(sys.argv) > 2 else 5
    port = free_port()
    with tempfile.TemporaryDirectory() as data:
        env = dict(os.environ, PORT=str(port), BIND_ADDR="127.0.0.1", DATA_DIR=data, LOG_LEVEL="warn")
        server = subprocess.Popen([binary], env=env)
        base = f"http://127.0.0.1:{port}"
        try:
            for _ in range(100):
                try:
                    urllib.request.urlopen(f"{base}/api/health/ready", timeout=1)
                    break
                except OSError:
                    time.sleep(0.1)
            worst = []
            for r in range(rounds):
                ms = round_trip(base, f"resume-{r}")
                worst.append(max(ms))
                print(f"round {r}: median {statistics.median(ms):.2f} ms, max {max(ms):.2f} ms over {CONSUMERS} polls")
            print(f"max over rounds: median {statistics.median(worst):.2f} ms, worst {max(worst):.2f} ms")
        finally:
            server.terminate()
            server.wait()


if __name__ == "__main__":
    main()
