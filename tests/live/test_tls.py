"""TLS on `python -m server serve --ssl-certfile/--ssl-keyfile`: TLS 1.2+ only, HSTS only over TLS."""

from __future__ import annotations

import contextlib
import socket
import ssl
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

from server.cli import tls_context
from tests.live.server_process import (
    Certificates,
    make_certificates,
    migrated_sqlite,
)
from tests.live.servers import Server

pytestmark = pytest.mark.slow
HSTS = "max-age=31536000; includeSubDomains"


@pytest.fixture(scope="module")
def certificates(tmp_path_factory: pytest.TempPathFactory) -> Certificates:
    return make_certificates(tmp_path_factory.mktemp("certs"))


@pytest.fixture(scope="module")
def database_url(tmp_path_factory: pytest.TempPathFactory) -> str:
    return migrated_sqlite(tmp_path_factory.mktemp("tls-db"))


@pytest.fixture(scope="module")
def https_server(
    certificates: Certificates, database_url: str, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Server]:
    server = Server(
        {"TOLLGATE_DATABASE_URL": database_url},
        tmp_path_factory.mktemp("tls-logs"),
        tls=certificates,
    )
    yield server
    server.stop()


def _handshake(server: Server, context: ssl.SSLContext) -> str | None:
    """Complete a TLS handshake with the server and return the negotiated version."""
    with (
        socket.create_connection(("127.0.0.1", server.port), timeout=5) as raw,
        context.wrap_socket(raw, server_hostname="127.0.0.1") as tls,
    ):
        return tls.version()


def _client(certificates: Certificates, maximum: ssl.TLSVersion) -> ssl.SSLContext:
    context = certificates.client_context()
    # OpenSSL 3 refuses TLS < 1.2 at security level 1+; level 0 lets the client really offer
    # TLS 1.0/1.1, so a refusal below can only come from the server.
    context.set_ciphers("DEFAULT:@SECLEVEL=0")
    context.minimum_version = ssl.TLSVersion.TLSv1
    context.maximum_version = maximum
    return context


def test_healthz_works_over_https_with_hsts(https_server: Server) -> None:
    with https_server.client() as http:
        response = http.get("/healthz")
        assert response.status_code == 200
        assert response.headers["strict-transport-security"] == HSTS
        graphql = http.post("/graphql", json={"query": "{ __typename }"})
        assert graphql.status_code == 200
        assert graphql.json()["data"] == {"__typename": "Query"}
        assert graphql.headers["strict-transport-security"] == HSTS


def test_the_certificate_is_verified(https_server: Server) -> None:
    untrusting = ssl.create_default_context()  # system CAs only: our test CA is unknown
    with pytest.raises(ssl.SSLCertVerificationError):
        _handshake(https_server, untrusting)


@pytest.mark.filterwarnings("ignore:ssl.TLSVersion.TLSv1:DeprecationWarning")
def test_tls_1_2_and_1_3_clients_are_served(
    https_server: Server, certificates: Certificates
) -> None:
    assert _handshake(https_server, certificates.client_context()) == "TLSv1.3"
    assert _handshake(https_server, _client(certificates, ssl.TLSVersion.TLSv1_2)) == "TLSv1.2"


def _permissive_handshake(certificates: Certificates, context: ssl.SSLContext) -> str | None:
    """Handshake with an in-process server that accepts TLS 1.0+ (a control)."""
    server_context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    server_context.load_cert_chain(certificates.cert, certificates.key)
    server_context.set_ciphers("DEFAULT:@SECLEVEL=0")
    server_context.minimum_version = ssl.TLSVersion.TLSv1
    with socket.create_server(("127.0.0.1", 0)) as listener:
        listener.settimeout(5)

        def accept() -> None:
            conn, _ = listener.accept()
            with contextlib.suppress(OSError), server_context.wrap_socket(conn, server_side=True):
                pass

        thread = threading.Thread(target=accept, daemon=True)
        thread.start()
        port = listener.getsockname()[1]
        with (
            socket.create_connection(("127.0.0.1", port), timeout=5) as raw,
            context.wrap_socket(raw, server_hostname="127.0.0.1") as tls,
        ):
            version = tls.version()
        thread.join(timeout=5)
    return version


@pytest.mark.filterwarnings("ignore:ssl.TLSVersion.TLSv1:DeprecationWarning")
@pytest.mark.parametrize("maximum", ["TLSv1_1", "TLSv1"])
def test_clients_capped_below_tls_1_2_are_refused(
    https_server: Server, certificates: Certificates, maximum: str
) -> None:
    client = _client(certificates, ssl.TLSVersion[maximum])
    # Control: this client really speaks the old protocol to a server that allows it...
    assert _permissive_handshake(certificates, client) == maximum.replace("_", ".")
    # ...and ours refuses it.
    with pytest.raises(ssl.SSLError):
        _handshake(https_server, client)


@pytest.mark.filterwarnings("ignore:ssl.TLSVersion.TLSv1:DeprecationWarning")
def test_tls_context_sets_tls_1_2_as_the_floor() -> None:
    def loose() -> ssl.SSLContext:
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        context.minimum_version = ssl.TLSVersion.TLSv1
        return context

    assert tls_context(None, loose).minimum_version is ssl.TLSVersion.TLSv1_2


def test_plain_http_sends_no_hsts_even_with_a_spoofed_forwarded_proto(
    database_url: str, tmp_path: Path
) -> None:
    server = Server({"TOLLGATE_DATABASE_URL": database_url}, tmp_path)
    try:
        with server.client() as http:
            plain = http.get("/healthz")
            assert plain.status_code == 200
            assert "strict-transport-security" not in plain.headers
            assert plain.headers["x-content-type-options"] == "nosniff"
            spoofed = http.get("/healthz", headers={"X-Forwarded-Proto": "https"})
            assert "strict-transport-security" not in spoofed.headers
    finally:
        server.stop()
