"""Fixtures: real brokers, started from the binary for the tests.

The binary is ``EVENT_BROKER_BIN``, else the repository's
``target/debug/event-broker``, else ``target/release/event-broker``. Each
broker gets a free port on 127.0.0.1 and a data directory of its own, and
is ready once ``GET /api/health/ready`` answers 200.
"""

from __future__ import annotations

import os
import re
import signal
import socket
import ssl
import subprocess
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path

import httpx
import pytest

from event_broker import Client

REPO = Path(__file__).resolve().parents[3]


def broker_binary() -> Path:
    """The broker's binary: ``EVENT_BROKER_BIN``, else a build of the repository."""
    explicit = os.environ.get("EVENT_BROKER_BIN")
    if explicit:
        return Path(explicit)
    for profile in ("debug", "release"):
        candidate = REPO / "target" / profile / "event-broker"
        if candidate.exists():
            return candidate
    return REPO / "target" / "debug" / "event-broker"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


class Broker:
    """One broker process, which can be killed and started again on the same
    port and data directory."""

    def __init__(self, workdir: Path, **env: str) -> None:
        self.binary = broker_binary()
        if not self.binary.exists():
            pytest.fail(f"no broker binary at {self.binary}: build it, or set EVENT_BROKER_BIN")
        self.port = free_port()
        self.data_dir = workdir / "data"
        self.log_path = workdir / "broker.log"
        self.extra_env = env
        # For a broker with TLS_CLIENT_CA: the certificate readiness is asked with.
        self.probe_identity: Path | None = None
        self.process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        scheme = "https" if self.extra_env.get("TLS_CERT") else "http"
        return f"{scheme}://127.0.0.1:{self.port}"

    def start(self) -> None:
        env = {
            "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
            "PORT": str(self.port),
            "BIND_ADDR": "127.0.0.1",
            "DATA_DIR": str(self.data_dir),
            "LOG_LEVEL": "warn",
            **self.extra_env,
        }
        log = open(self.log_path, "ab")
        self.process = subprocess.Popen([str(self.binary)], env=env, stdout=log, stderr=log)
        log.close()
        self.wait_ready()

    def wait_ready(self, timeout: float = 20.0) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            assert self.process is not None
            if self.process.poll() is not None:
                pytest.fail(f"the broker exited with {self.process.returncode}: {self.log()}")
            try:
                # Readiness only: the TLS tests check certificates themselves.
                ready = httpx.get(f"{self.url}/api/health/ready", timeout=1.0, verify=self._probe_tls())
                if ready.status_code == 200:
                    return
            except httpx.HTTPError:
                pass
            time.sleep(0.02)
        pytest.fail(f"the broker was not ready within {timeout} s: {self.log()}")

    def _probe_tls(self) -> ssl.SSLContext | bool:
        if self.probe_identity is None:
            return False
        context = ssl.create_default_context()
        context.check_hostname = False
        context.verify_mode = ssl.CERT_NONE
        context.load_cert_chain(self.probe_identity)
        return context

    def kill(self) -> None:
        """SIGKILL: no shutdown, as in a crash."""
        if self.process is not None:
            self.process.send_signal(signal.SIGKILL)
            self.process.wait()

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=15)
            except subprocess.TimeoutExpired:
                self.kill()

    def log(self) -> str:
        try:
            return self.log_path.read_text(errors="replace")[-4000:]
        except OSError:
            return ""


@pytest.fixture(scope="session")
def broker(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Broker]:
    """The broker most tests share; it may call webhooks on 127.0.0.1."""
    b = Broker(tmp_path_factory.mktemp("broker"), WEBHOOK_ALLOW_PRIVATE="true", REAPER_INTERVAL_MS="100")
    b.start()
    yield b
    b.stop()


@pytest.fixture
def own_broker(tmp_path: Path) -> Iterator[Broker]:
    """A broker of the test's own, for tests that kill or configure it."""
    b = Broker(tmp_path, REAPER_INTERVAL_MS="100")
    yield b
    b.stop()


@pytest.fixture
def client(broker: Broker) -> Iterator[Client]:
    with Client(broker.url) as c:
        yield c


@pytest.fixture
def queue(request: pytest.FixtureRequest) -> str:
    """A queue name no other test uses."""
    name = re.sub(r"[^A-Za-z0-9_.-]", "-", request.node.name)[:80]
    return f"{name}-{uuid.uuid4().hex[:8]}"


def wait_until(predicate: Callable[[], bool], timeout: float = 10.0, what: str = "the condition") -> None:
    """Poll ``predicate`` every 20 ms until it holds, failing after ``timeout``."""
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            pytest.fail(f"timed out after {timeout} s waiting for {what}")
        time.sleep(0.02)

