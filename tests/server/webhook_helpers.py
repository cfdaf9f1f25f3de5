"""A local webhook receiver (127.0.0.1 only) and GraphQL helpers for the webhook tests."""

from __future__ import annotations

import asyncio
import contextlib
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler
from typing import Any

import httpx
import orjson

from tests.live.servers import http_thread
from tests.server.conftest import Tokens, gql

CREATE_ENDPOINT = """mutation($input: WebhookEndpointCreateInput!) {
  webhookEndpointCreate(input: $input) {
    endpoint { id url topics status } secret userErrors { field message code } } }"""
DELETE_ENDPOINT = """mutation($id: ID!) { webhookEndpointDelete(input: {id: $id}) {
  deletedId userErrors { field message code } } }"""
CREATE_PRODUCT = """mutation($input: CreateProductInput!) { createProduct(input: $input) {
  product { id version } userErrors { code message } } }"""
CREATE_ORDER = """mutation($input: CreateOrderInput!) { createOrder(input: $input) {
  order { id version status } userErrors { code message } } }"""
CONFIRM_ORDER = """mutation($id: ID!, $v: Int!) { confirmOrder(input: {id: $id, expectedVersion: $v}) {
  order { id version status } userErrors { code message } } }"""
CANCEL_ORDER = """mutation($id: ID!, $v: Int!) { cancelOrder(input: {id: $id, expectedVersion: $v}) {
  order { id version status } userErrors { code message } } }"""


@dataclass
class Received:
    """One request the receiver got."""

    headers: dict[str, str]
    body: bytes


@dataclass
class Receiver:
    """Records every POST; answers ``status`` (settable), after ``delay`` seconds."""

    url: str = ""
    status: int = 200
    delay: float = 0.0
    location: str | None = None
    started: int = 0
    received: list[Received] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def snapshot(self) -> list[Received]:
        with self.lock:
            return list(self.received)

    def delivered(self) -> list[Received]:
        """The requests answered with a 2xx (what the worker counts as delivered)."""
        with self.lock:
            return [r for r in self.received if r.headers.get("x-answered") == "2xx"]


@contextlib.contextmanager
def receiver() -> Iterator[Receiver]:
    """A receiver on 127.0.0.1 (a free port) in a thread."""
    state = Receiver()

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            length = int(self.headers.get("content-length") or 0)
            body = self.rfile.read(length)
            with state.lock:
                state.started += 1
            if state.delay:
                time.sleep(state.delay)
            status = state.status
            headers = {k.lower(): v for k, v in self.headers.items()}
            headers["x-answered"] = "2xx" if 200 <= status < 300 else str(status)
            with state.lock:
                state.received.append(Received(headers, body))
            # The worker may have given up already (timeouts, shutdown): a closed pipe is fine.
            with contextlib.suppress(BrokenPipeError, ConnectionResetError):
                self.send_response(status)
                if state.location:
                    self.send_header("Location", state.location)
                self.send_header("Content-Length", "2")
                self.end_headers()
                self.wfile.write(b"ok")

        def log_message(self, *args: Any) -> None:
            pass

    with http_thread(Handler) as base:
        state.url = base + "/hook"
        yield state


async def post(
    client: httpx.AsyncClient, query: str, variables: dict[str, Any], headers: dict[str, str]
) -> dict[str, Any]:
    response = await gql(client, query, variables, headers)
    body: dict[str, Any] = response.json()
    assert response.status_code == 200 and "errors" not in body, body
    return body["data"]  # type: ignore[no-any-return]


async def register(
    client: httpx.AsyncClient, tokens: Tokens, url: str, topics: list[str], tenant: str = "acme"
) -> dict[str, Any]:
    data = await post(
        client,
        CREATE_ENDPOINT,
        {"input": {"url": url, "topics": topics}},
        tokens.headers("ADMIN", tenant),
    )
    payload = data["webhookEndpointCreate"]
    assert payload["userErrors"] == [], payload
    return payload  # type: ignore[no-any-return]


async def unregister(
    client: httpx.AsyncClient, tokens: Tokens, endpoint_id: str, tenant: str = "acme"
) -> None:
    data = await post(client, DELETE_ENDPOINT, {"id": endpoint_id}, tokens.headers("ADMIN", tenant))
    assert data["webhookEndpointDelete"]["userErrors"] == []


async def new_product(client: httpx.AsyncClient, tokens: Tokens, stock: int = 100) -> str:
    sku = f"WH-{uuid.uuid4().hex[:10]}"
    data = await post(
        client,
        CREATE_PRODUCT,
        {
            "input": {
                "sku": sku,
                "name": f"Hooked {sku}",
                "price": "5.00",
                "currency": "USD",
                "stock": stock,
            }
        },
        tokens.headers("ADMIN"),
    )
    return str(data["createProduct"]["product"]["id"])


async def order_life(client: httpx.AsyncClient, tokens: Tokens, product_id: str) -> str:
    """Create, confirm and cancel one order; returns its id."""
    created = await post(
        client,
        CREATE_ORDER,
        {
            "input": {
                "idempotencyKey": uuid.uuid4().hex,
                "currency": "USD",
                "items": [{"productId": product_id, "quantity": 2}],
                "note": "leave it at the door",
            }
        },
        tokens.headers("CUSTOMER"),
    )
    order = created["createOrder"]["order"]
    confirmed = await post(
        client, CONFIRM_ORDER, {"id": order["id"], "v": order["version"]}, tokens.headers("STAFF")
    )
    order = confirmed["confirmOrder"]["order"]
    cancelled = await post(
        client, CANCEL_ORDER, {"id": order["id"], "v": order["version"]}, tokens.headers("STAFF")
    )
    assert cancelled["cancelOrder"]["order"]["status"] == "CANCELLED"
    return str(order["id"])


async def wait_until(check: Callable[[], bool], limit: float = 20.0, step: float = 0.05) -> None:
    """Poll ``check`` until it holds; fail after ``limit`` seconds."""
    deadline = time.monotonic() + limit
    while not check():
        if time.monotonic() > deadline:
            raise AssertionError(f"not reached within {limit} s")
        await asyncio.sleep(step)


def payload(received: Received) -> dict[str, Any]:
    return orjson.loads(received.body)  # type: ignore[no-any-return]
