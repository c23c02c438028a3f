"""HTTPS with a CA file: the client trusts the CA it is given (``ca=`` or
``EVENT_BROKER_CA``), and a certificate it cannot verify is ConnectionFailed.

The broker speaks plain HTTP (TLS is a proxy's job in front of it), so the
server here is a small HTTPS stand-in answering ``/api/health``, with a
certificate made by ``openssl`` for the test."""

from __future__ import annotations

import http.server
import shutil
import ssl
import subprocess
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

from event_broker import Client, ConnectionFailed


def _openssl(*args: str, cwd: Path) -> None:
    subprocess.run(["openssl", *args], cwd=cwd, check=True, capture_output=True)


@pytest.fixture(scope="module")
def certificates(tmp_path_factory: pytest.TempPathFactory) -> Path:
    assert shutil.which("openssl"), "the TLS tests make their certificates with openssl"
    d = tmp_path_factory.mktemp("tls")
    ec = ["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes"]
    _openssl("req", "-x509", *ec, "-keyout", "ca.key", "-out", "ca.pem", "-days", "2", "-subj", "/CN=test CA",
             "-addext", "basicConstraints=critical,CA:TRUE", "-addext", "keyUsage=critical,keyCertSign,cRLSign",
             cwd=d)  # fmt: skip
    _openssl("req", *ec, "-keyout", "server.key", "-out", "server.csr", "-subj", "/CN=127.0.0.1", cwd=d)
    (d / "server.ext").write_text(
        "subjectAltName=IP:127.0.0.1\nbasicConstraints=CA:FALSE\n"
        "keyUsage=critical,digitalSignature\nextendedKeyUsage=serverAuth\n"
    )
    _openssl("x509", "-req", "-in", "server.csr", "-CA", "ca.pem", "-CAkey", "ca.key", "-CAcreateserial",
             "-out", "server.pem", "-days", "2", "-extfile", "server.ext", cwd=d)  # fmt: skip
    return d


class _Health(http.server.BaseHTTPRequestHandler):
    def do_GET(self) -> None:
        body = b'{"status":"ok"}'
        self.send_response(200 if self.path == "/api/health" else 404)
        self.send_header("content-type", "application/json")
        self.send_header("content-length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args: object) -> None:
        pass


@pytest.fixture
def https_url(certificates: Path) -> Iterator[str]:
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _Health)
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(certificates / "server.pem", certificates / "server.key")
    server.socket = context.wrap_socket(server.socket, server_side=True)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield f"https://127.0.0.1:{server.server_address[1]}"
    server.shutdown()


def test_the_ca_file_is_trusted(https_url: str, certificates: Path) -> None:
    with Client(https_url, ca=certificates / "ca.pem") as client:
        assert client.health().status == "ok"


def test_the_ca_comes_from_the_environment(
    https_url: str, certificates: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("EVENT_BROKER_CA", str(certificates / "ca.pem"))
    with Client(https_url) as client:
        assert client.health().status == "ok"


def test_an_unverifiable_certificate_is_connection_failed(https_url: str, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("EVENT_BROKER_CA", raising=False)
    with Client(https_url, timeout=5) as client:  # the system's CAs do not know the test CA
        with pytest.raises(ConnectionFailed) as e:
            client.health()
    assert "CERTIFICATE_VERIFY_FAILED" in e.value.message or "certificate" in e.value.message.lower()


def test_a_missing_ca_file_is_refused_at_once(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError):
        Client("https://127.0.0.1:1", ca=tmp_path / "missing.pem")
