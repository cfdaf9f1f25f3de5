"""Pure ASGI middleware of the HTTP edge (no BaseHTTPMiddleware: contextvars must flow)."""

from __future__ import annotations

import time
from typing import Any

import orjson
from starlette.middleware.gzip import GZipMiddleware
from starlette.types import ASGIApp, Message, Receive, Scope, Send

_SECURITY_HEADERS = (
    (b"x-content-type-options", b"nosniff"),
    (b"referrer-policy", b"no-referrer"),
    (b"x-frame-options", b"DENY"),
    (b"cross-origin-resource-policy", b"same-origin"),
    (b"content-security-policy", b"default-src 'none'; frame-ancestors 'none'"),
)
_HSTS = (b"strict-transport-security", b"max-age=31536000; includeSubDomains")


class SecurityHeadersMiddleware:
    """nosniff, referrer policy, frame denial; HSTS only when served over TLS. A header the
    response already has is kept (GraphiQL's page sets its own Content-Security-Policy);
    HSTS always replaces."""

    def __init__(self, app: ASGIApp, *, hsts: bool = False) -> None:
        self.app = app
        self.hsts = hsts

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        hsts = self.hsts or scope.get("scheme") == "https"

        async def send_with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                raw = list(message.get("headers") or ())
                present = {name.lower() for name, _ in raw}
                raw += [h for h in _SECURITY_HEADERS if h[0] not in present]
                if hsts:
                    raw = [h for h in raw if h[0].lower() != _HSTS[0]]
                    raw.append(_HSTS)
                message["headers"] = raw
            await send(message)

        await self.app(scope, receive, send_with_headers)


class BodySizeLimitMiddleware:
    """Refuse bodies over ``max_bytes`` with 413, by Content-Length or while streaming."""

    def __init__(self, app: ASGIApp, *, max_bytes: int) -> None:
        self.app = app
        self.max_bytes = max_bytes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        for key, value in scope["headers"]:
            if key == b"content-length":
                try:
                    declared = int(value)
                except ValueError:
                    declared = 0
                if declared > self.max_bytes:
                    await self._refuse(send, declared)
                    return
        received = 0
        refused = False

        async def limited_receive() -> Message:
            nonlocal received, refused
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > self.max_bytes:
                    refused = True
                    raise _TooLarge(received)
            return message

        try:
            await self.app(scope, limited_receive, send)
        except _TooLarge as too_large:
            await self._refuse(send, too_large.size)

    async def _refuse(self, send: Send, size: int) -> None:
        body = orjson.dumps(
            {
                "errors": [
                    {
                        "message": f"The request body is {size} bytes, over the limit of {self.max_bytes}.",
                        "extensions": {
                            "code": "DOCUMENT_TOO_LARGE",
                            "observed": size,
                            "limit": self.max_bytes,
                        },
                    }
                ]
            }
        )
        await send(
            {
                "type": "http.response.start",
                "status": 413,
                "headers": [
                    (b"content-type", b"application/json; charset=utf-8"),
                    (b"content-length", str(len(body)).encode()),
                ],
            }
        )
        await send({"type": "http.response.body", "body": body})


class _TooLarge(Exception):
    def __init__(self, size: int) -> None:
        super().__init__(size)
        self.size = size


class HTTPMetricsMiddleware:
    """Observe every HTTP request's duration by method, route and status."""

    ROUTES = ("/graphql", "/healthz", "/readyz", "/metrics", "/graphiql")

    def __init__(self, app: ASGIApp, *, metrics: Any) -> None:
        self.app = app
        self.metrics = metrics

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or self.metrics is None:
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        status = 500

        async def send_with_status(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            await send(message)

        try:
            await self.app(scope, receive, send_with_status)
        finally:
            path = scope.get("path", "")
            route = next((r for r in self.ROUTES if path.startswith(r)), "other")
            self.metrics.observe_http(scope["method"], route, status, time.perf_counter() - started)


class CompressionMiddleware(GZipMiddleware):
    """starlette's GZipMiddleware for clients that accept gzip. The others (most API
    clients send no Accept-Encoding) skip its identity responder, which holds back every
    response start and re-reads its list of excluded content types per request, for a send
    that only adds ``Vary: Accept-Encoding`` to the start, as the identity responder does
    for a response it would have compressed (here also to small ones: harmless, and a
    cache keyed on it stays right)."""

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or _accepts_gzip(scope):
            await super().__call__(scope, receive, send)
            return

        async def send_with_vary(message: Message) -> None:
            if message["type"] == "http.response.start" and message.get("status") != 206:
                message["headers"] = _with_vary(list(message.get("headers") or ()))
            await send(message)

        await self.app(scope, receive, send_with_vary)


def _accepts_gzip(scope: Scope) -> bool:
    for name, value in scope["headers"]:
        if name == b"accept-encoding":
            return b"gzip" in value
    return False


def _with_vary(headers: list[tuple[bytes, bytes]]) -> list[tuple[bytes, bytes]]:
    """``headers`` varying on Accept-Encoding too (not for an already encoded body)."""
    names = [name.lower() for name, _ in headers]
    if b"content-encoding" in names:
        return headers
    if b"vary" not in names:
        headers.append((b"vary", b"Accept-Encoding"))
        return headers
    index = names.index(b"vary")
    name, value = headers[index]
    if b"accept-encoding" not in value.lower():
        headers[index] = (name, value + b", Accept-Encoding")
    return headers
