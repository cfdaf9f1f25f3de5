"""RequestIdMiddleware: accept, reject, generate, echo, contextvar scope (raw ASGI)."""

from __future__ import annotations

import re
from typing import Any

import pytest

from observability.request_id import (
    RequestIdMiddleware,
    get_request_id,
    is_valid_request_id,
    new_request_id,
)

Message = dict[str, Any]


class Recorder:
    """A minimal ASGI app that records what it saw and answers 200."""

    def __init__(self, extra_headers: list[tuple[bytes, bytes]] | None = None) -> None:
        self.seen_state: dict[str, Any] | None = None
        self.seen_contextvar: str | None = None
        self.extra_headers = extra_headers or []

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        self.seen_state = scope.get("state")
        self.seen_contextvar = get_request_id()
        if scope["type"] == "lifespan":
            return
        headers = [(b"content-type", b"text/plain"), *self.extra_headers]
        await send({"type": "http.response.start", "status": 200, "headers": headers})
        await send({"type": "http.response.body", "body": b"ok"})


async def call(
    app: Any,
    headers: list[tuple[bytes, bytes]] | None = None,
    scope_extra: dict[str, Any] | None = None,
) -> tuple[list[Message], dict[str, Any]]:
    scope: dict[str, Any] = {
        "type": "http",
        "method": "GET",
        "path": "/healthz",
        "headers": headers or [],
        **(scope_extra or {}),
    }
    sent: list[Message] = []

    async def receive() -> Message:
        return {"type": "http.request", "body": b"", "more_body": False}

    async def send(message: Message) -> None:
        sent.append(message)

    await app(scope, receive, send)
    return sent, scope


def response_ids(sent: list[Message]) -> list[bytes]:
    start = next(m for m in sent if m["type"] == "http.response.start")
    return [v for k, v in start["headers"] if k == b"x-request-id"]


@pytest.mark.parametrize(
    "incoming",
    ["abc", "0af7651916cd43dd8448eb211c80319c", "req-1.2:3_x", "a" * 128],
)
async def test_well_formed_incoming_id_is_kept_stored_and_echoed(incoming: str) -> None:
    inner = Recorder()
    sent, scope = await call(RequestIdMiddleware(inner), [(b"x-request-id", incoming.encode())])
    assert inner.seen_state == {"request_id": incoming}
    assert inner.seen_contextvar == incoming
    assert response_ids(sent) == [incoming.encode()]
    assert scope["state"]["request_id"] == incoming


@pytest.mark.parametrize(
    "incoming",
    [
        b"",
        b"a" * 129,
        b"has space",
        b"evil\r\nSet-Cookie: x=1",
        b'{"json":1}',
        b"\xc3\xa9t\xc3\xa9",
        b'id\n{"level":"error"}',
    ],
)
async def test_malformed_incoming_id_is_replaced_by_a_generated_one(incoming: bytes) -> None:
    inner = Recorder()
    sent, _ = await call(RequestIdMiddleware(inner), [(b"x-request-id", incoming)])
    (echoed,) = response_ids(sent)
    assert echoed != incoming
    assert re.fullmatch(rb"[0-9a-f]{32}", echoed)
    assert inner.seen_contextvar == echoed.decode()


async def test_missing_header_generates_unique_ids_and_keeps_existing_state() -> None:
    inner = Recorder()
    app = RequestIdMiddleware(inner)
    sent1, _ = await call(app, scope_extra={"state": {"lifespan_thing": 1}})
    assert inner.seen_state is not None and inner.seen_state["lifespan_thing"] == 1
    sent2, _ = await call(app)
    assert response_ids(sent1) != response_ids(sent2)


async def test_contextvar_is_reset_after_the_request() -> None:
    assert get_request_id() is None
    await call(RequestIdMiddleware(Recorder()), [(b"x-request-id", b"outer-1")])
    assert get_request_id() is None


async def test_app_supplied_request_id_header_is_replaced_not_duplicated() -> None:
    inner = Recorder(extra_headers=[(b"x-request-id", b"spoofed")])
    sent, _ = await call(RequestIdMiddleware(inner), [(b"x-request-id", b"real-1")])
    assert response_ids(sent) == [b"real-1"]


async def test_custom_header_name_is_matched_case_insensitively() -> None:
    inner = Recorder()
    sent, _ = await call(
        RequestIdMiddleware(inner, header="X-Correlation-ID"), [(b"x-correlation-id", b"corr-9")]
    )
    start = sent[0]
    assert (b"x-correlation-id", b"corr-9") in start["headers"]
    assert inner.seen_contextvar == "corr-9"


async def test_non_http_scopes_pass_through_untouched() -> None:
    inner = Recorder()
    scope: dict[str, Any] = {"type": "lifespan"}

    async def receive() -> Message:
        return {"type": "lifespan.startup"}

    async def send(message: Message) -> None:
        pass

    await RequestIdMiddleware(inner)(scope, receive, send)
    assert "state" not in scope
    assert inner.seen_contextvar is None


def test_validation_rules() -> None:
    assert is_valid_request_id("a")
    assert is_valid_request_id("A-Z.0_9:x")
    assert not is_valid_request_id("")
    assert not is_valid_request_id("x" * 129)
    assert not is_valid_request_id("a/b")
    generated = new_request_id()
    assert is_valid_request_id(generated) and len(generated) == 32
