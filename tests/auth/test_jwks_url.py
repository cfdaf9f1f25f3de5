"""Keys from a JWKS URL (PyJWT's PyJWKClient): cached, refetched on an unknown kid, rotated.

A real HTTP server on 127.0.0.1 publishes the key set; the test rotates its key and counts
how often the verifier fetched it.
"""

from __future__ import annotations

import asyncio
import json
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from auth import AuthError, JWTSettings, Role, TokenVerifier, mint_token
from tests.auth.jwt_helpers import TENANT, USER, KeyPair, public_jwk


class JWKSServer:
    """Serves ``keys`` as a JWKS document and counts the requests; ``delay`` slows each
    answer and ``down`` answers 503."""

    def __init__(self) -> None:
        self.keys: list[dict[str, Any]] = []
        self.fetches = 0
        self.delay = 0.0
        self.down = False
        self.lock = threading.Lock()
        outer = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                with outer.lock:
                    outer.fetches += 1
                    body = json.dumps({"keys": outer.keys}).encode()
                time.sleep(outer.delay)
                if outer.down:
                    self.send_error(503)
                    return
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *args: Any) -> None:
                pass

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}/.well-known/jwks.json"
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)

    def publish(self, *keys: dict[str, Any]) -> None:
        with self.lock:
            self.keys = list(keys)


@pytest.fixture
def jwks_server() -> Iterator[JWKSServer]:
    server = JWKSServer()
    server.thread.start()
    try:
        yield server
    finally:
        server.httpd.shutdown()
        server.httpd.server_close()
        server.thread.join(timeout=5)


def _settings(url: str, **overrides: Any) -> JWTSettings:
    values: dict[str, Any] = {
        "secret": None,
        "algorithms": ("RS256",),
        "jwks_url": url,
        "jwks_cooldown_seconds": 0.2,
    }
    values.update(overrides)
    return JWTSettings(**values)


def _token(settings: JWTSettings, pair: KeyPair, kid: str) -> str:
    return mint_token(
        settings,
        subject=str(USER),
        tenant_id=TENANT,
        role=Role.CUSTOMER,
        private_key_pem=pair.private_pem,
        kid=kid,
    )


def test_keys_are_cached_and_a_rotated_key_is_fetched_on_its_first_token(
    jwks_server: JWKSServer, rsa_keys: KeyPair, rsa_keys_2: KeyPair
) -> None:
    settings = _settings(jwks_server.url)
    jwks_server.publish(public_jwk(rsa_keys, alg="RS256", kid="k1"))
    verifier = TokenVerifier(settings)
    old = _token(settings, rsa_keys, "k1")
    for _ in range(20):
        assert verifier.verify(old).subject == str(USER)
    assert jwks_server.fetches == 1  # cached

    # The provider rotates: k2 replaces k1. The first k2 token refetches the set.
    jwks_server.publish(public_jwk(rsa_keys_2, alg="RS256", kid="k2"))
    time.sleep(0.25)  # past the cooldown that follows every fetch
    new = _token(settings, rsa_keys_2, "k2")
    assert verifier.verify(new).subject == str(USER)
    assert jwks_server.fetches == 2
    for _ in range(20):
        verifier.verify(new)
    assert jwks_server.fetches == 2
    # k1 is gone from the refetched set: its tokens are refused.
    time.sleep(0.25)
    with pytest.raises(AuthError, match="unknown signing key"):
        verifier.verify(old)


def test_unknown_kids_refetch_at_most_once_per_cooldown(
    jwks_server: JWKSServer, rsa_keys: KeyPair
) -> None:
    settings = _settings(jwks_server.url, jwks_cooldown_seconds=30)
    jwks_server.publish(public_jwk(rsa_keys, alg="RS256", kid="k1"))
    verifier = TokenVerifier(settings)
    verifier.verify(_token(settings, rsa_keys, "k1"))
    for index in range(50):
        with pytest.raises(AuthError, match="unknown signing key"):
            verifier.verify(_token(settings, rsa_keys, f"forged-{index}"))
    assert jwks_server.fetches == 1


def test_unreachable_jwks_url_refuses_tokens_without_a_traceback(rsa_keys: KeyPair) -> None:
    settings = _settings("http://127.0.0.1:9/jwks.json", jwks_timeout_seconds=0.5)
    verifier = TokenVerifier(settings)
    with pytest.raises(AuthError, match="signing keys unavailable"):
        verifier.verify(_token(settings, rsa_keys, "k1"))


def test_a_key_of_another_algorithm_is_refused(
    jwks_server: JWKSServer, ec_keys: KeyPair, rsa_keys: KeyPair
) -> None:
    jwks_server.publish(public_jwk(ec_keys, alg="ES256", kid="ec"))
    verifier = TokenVerifier(_settings(jwks_server.url))
    ec_settings = _settings(jwks_server.url, algorithms=("ES256",))
    with pytest.raises(AuthError):
        verifier.verify(_token(ec_settings, ec_keys, "ec"))


@settings(max_examples=30, deadline=None)
@given(url=st.text(max_size=30).filter(lambda u: not u.startswith(("http://", "https://"))))
def test_jwks_url_must_be_http(url: str) -> None:
    with pytest.raises(ValueError):
        _settings(url)


def test_settings_read_the_jwks_url_from_the_environment(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from server.settings import Settings

    monkeypatch.setenv("TOLLGATE_JWT_JWKS_URL", "https://idp.example/jwks.json")
    monkeypatch.setenv("TOLLGATE_JWT_ALGORITHMS", "RS256")
    jwt_settings = Settings(env="production").jwt()
    assert jwt_settings.jwks_url == "https://idp.example/jwks.json"
    assert jwt_settings.secret is None


async def test_a_slow_jwks_fetch_never_blocks_the_event_loop(
    jwks_server: JWKSServer, rsa_keys: KeyPair
) -> None:
    """A fetch runs in a thread: other requests keep being served while it waits (it used to
    run on the event loop, stopping every request of the worker for up to the timeout)."""
    settings = _settings(jwks_server.url, jwks_timeout_seconds=5)
    jwks_server.publish(public_jwk(rsa_keys, alg="RS256", kid="k1"))
    jwks_server.delay = 0.6
    verifier = TokenVerifier(settings)
    token = _token(settings, rsa_keys, "k1")
    assert verifier.may_fetch(token)
    ticks = 0
    running = True

    async def ticker() -> None:
        nonlocal ticks
        while running:
            ticks += 1
            await asyncio.sleep(0.01)

    task = asyncio.create_task(ticker())
    try:
        principal = await verifier.verify_async(token)
    finally:
        running = False
        await task
    assert principal.subject == str(USER)
    assert ticks >= 10, ticks  # the loop ran on while the key set was fetched
    assert not verifier.may_fetch(token)  # cached: later tokens are verified inline


def test_keys_seen_before_outlive_an_unreachable_jwks_url(
    jwks_server: JWKSServer, rsa_keys: KeyPair, rsa_keys_2: KeyPair
) -> None:
    """The URL going down after the cache expired keeps known keys working and is not asked
    again within the cooldown; a key never seen is refused."""
    settings = _settings(jwks_server.url, jwks_cache_seconds=0.2, jwks_cooldown_seconds=30)
    jwks_server.publish(public_jwk(rsa_keys, alg="RS256", kid="k1"))
    verifier = TokenVerifier(settings)
    known = _token(settings, rsa_keys, "k1")
    verifier.verify(known)
    jwks_server.down = True
    time.sleep(0.3)  # the cached set expires
    for _ in range(5):
        assert verifier.verify(known).subject == str(USER)
    with pytest.raises(AuthError, match="signing keys unavailable"):
        verifier.verify(_token(settings, rsa_keys_2, "k2"))
    assert jwks_server.fetches == 2  # one failed fetch, then nothing within the cooldown


def test_a_key_refused_once_stays_refused_while_the_url_is_down(
    jwks_server: JWKSServer, rsa_keys: KeyPair
) -> None:
    """A key the URL served with an algorithm this server does not accept is refused, and
    remains refused from the keys kept for an outage: only keys that passed are kept."""
    settings = _settings(jwks_server.url, jwks_cache_seconds=0.2, jwks_cooldown_seconds=30)
    jwks_server.publish(public_jwk(rsa_keys, alg="RS384", kid="k1"))
    verifier = TokenVerifier(settings)
    token = _token(settings, rsa_keys, "k1")
    with pytest.raises(AuthError, match="algorithm not allowed"):
        verifier.verify(token)
    jwks_server.down = True
    time.sleep(0.3)  # the cached set expires; the next look-up fails and cools down
    for _ in range(3):
        with pytest.raises(AuthError):
            verifier.verify(token)
