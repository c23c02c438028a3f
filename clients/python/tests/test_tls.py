"""HTTPS against the real broker (``TLS_CERT``, ``TLS_KEY``) with
certificates made by ``openssl`` here: the client trusts the CA it is given
(``ca=`` or ``EVENT_BROKER_CA``), a certificate it cannot verify is
ConnectionFailed, and with ``TLS_CLIENT_CA`` only a client presenting a
certificate (``identity=``) is served."""

from __future__ import annotations

import asyncio
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from conftest import Broker
from event_broker import AsyncClient, Client, ConnectionFailed


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


@pytest.fixture(scope="module")
def client_certificates(certificates: Path) -> Path:
    """A second CA for clients, and one client's certificate and key in one file."""
    d = certificates
    ec = ["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes"]
    _openssl("req", "-x509", *ec, "-keyout", "client-ca.key", "-out", "client-ca.pem", "-days", "2",
             "-subj", "/CN=client CA", "-addext", "basicConstraints=critical,CA:TRUE",
             "-addext", "keyUsage=critical,keyCertSign,cRLSign", cwd=d)  # fmt: skip
    _openssl("req", *ec, "-keyout", "client.key", "-out", "client.csr", "-subj", "/CN=worker-1", cwd=d)
    (d / "client.ext").write_text("basicConstraints=CA:FALSE\nkeyUsage=critical,digitalSignature\nextendedKeyUsage=clientAuth\n")
    _openssl("x509", "-req", "-in", "client.csr", "-CA", "client-ca.pem", "-CAkey", "client-ca.key",
             "-CAcreateserial", "-out", "client.pem", "-days", "2", "-extfile", "client.ext", cwd=d)  # fmt: skip
    (d / "identity.pem").write_text((d / "client.pem").read_text() + (d / "client.key").read_text())
    return d


@pytest.fixture
def tls_broker(tmp_path: Path, certificates: Path) -> Iterator[Broker]:
    """The real broker serving HTTPS with the test's certificate."""
    b = Broker(tmp_path, TLS_CERT=str(certificates / "server.pem"), TLS_KEY=str(certificates / "server.key"))
    b.start()
    yield b
    b.stop()


@pytest.fixture
def mtls_broker(tmp_path: Path, client_certificates: Path) -> Iterator[Broker]:
    """The real broker asking every client for a certificate of the client CA."""
    d = client_certificates
    b = Broker(tmp_path, TLS_CERT=str(d / "server.pem"), TLS_KEY=str(d / "server.key"),
               TLS_CLIENT_CA=str(d / "client-ca.pem"))  # fmt: skip
    b.probe_identity = d / "identity.pem"
    b.start()
    yield b
    b.stop()


def test_the_ca_file_is_trusted(tls_broker: Broker, certificates: Path) -> None:
    with Client(tls_broker.url, ca=certificates / "ca.pem") as client:
        assert client.health().status == "ok"
        assert client.enqueue("tls", {"n": 1}).id == 0
        assert client.status().config["TLS_CERT"].endswith("server.pem")


def test_the_ca_comes_from_the_environment(
    tls_broker: Broker, certificates: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("EVENT_BROKER_CA", str(certificates / "ca.pem"))
    with Client(tls_broker.url) as client:
        assert client.health().status == "ok"


def test_an_unverifiable_certificate_is_connection_failed(tls_broker: Broker, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("EVENT_BROKER_CA", raising=False)
    with Client(tls_broker.url, timeout=5) as client:  # the system's CAs do not know the test CA
        with pytest.raises(ConnectionFailed) as e:
            client.health()
    assert "CERTIFICATE_VERIFY_FAILED" in e.value.message or "certificate" in e.value.message.lower()


def test_the_async_client_takes_the_ca_too(tls_broker: Broker, certificates: Path) -> None:
    async def go() -> str:
        async with AsyncClient(tls_broker.url, ca=certificates / "ca.pem") as client:
            return (await client.health()).status

    assert asyncio.run(go()) == "ok"


def test_with_a_client_ca_only_a_client_with_a_certificate_is_served(
    mtls_broker: Broker, client_certificates: Path
) -> None:
    d = client_certificates
    with Client(mtls_broker.url, ca=d / "ca.pem", identity=d / "identity.pem") as client:
        assert client.list_queues() == []
    with Client(mtls_broker.url, ca=d / "ca.pem", timeout=5) as anonymous:
        with pytest.raises(ConnectionFailed):
            anonymous.list_queues()


def test_a_missing_ca_file_is_refused_at_once(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError):
        Client("https://127.0.0.1:1", ca=tmp_path / "missing.pem")
