"""Request ids: accept a sane incoming `X-Request-ID`, else generate one, and echo it."""

from __future__ import annotations

import re
from contextvars import ContextVar

import uuid_utils

from observability._asgi import ASGIApp, Message, Receive, Scope, Send

# Only these characters, so an id can never carry CR/LF, quotes or spaces into logs
# or headers; 128 chars covers UUIDs, W3C trace ids and most proxies' formats.
_VALID_REQUEST_ID = re.compile(r"[A-Za-z0-9._:-]{1,128}")

current_request_id: ContextVar[str | None] = ContextVar("current_request_id", default=None)


def get_request_id() -> str | None:
    """Return the id of the request being served in this context, if any."""
    return current_request_id.get()


def new_request_id() -> str:
    """Return a fresh request id: a UUIDv7 as 32 hex chars (time-ordered, unguessable)."""
    return uuid_utils.uuid7().hex


def is_valid_request_id(value: str) -> bool:
    """Tell whether an incoming id is acceptable (1-128 chars of `[A-Za-z0-9._:-]`)."""
    return _VALID_REQUEST_ID.fullmatch(value) is not None


class RequestIdMiddleware:
    """Pure ASGI middleware that assigns every HTTP/WebSocket request an id.

    The id is the incoming header when well formed, else a new UUIDv7. It is stored in
    `scope["state"]["request_id"]` and in the `current_request_id` contextvar for the
    duration of the call, and echoed in the response header.

    Example:
        app = RequestIdMiddleware(app, header="x-request-id")
    """

    def __init__(self, app: ASGIApp, header: str = "x-request-id") -> None:
        self.app = app
        # ASGI servers deliver header names lower-cased.
        self._header = header.lower().encode("latin-1")

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        """Serve one ASGI call with a request id bound."""
        scope_type = scope["type"]
        if scope_type != "http" and scope_type != "websocket":
            await self.app(scope, receive, send)
            return

        request_id: str | None = None
        for name, value in scope.get("headers") or ():
            if name == self._header:
                candidate = value.decode("latin-1")
                if is_valid_request_id(candidate):
                    request_id = candidate
                break
        if request_id is None:
            request_id = new_request_id()

        state = scope.get("state")
        if state is None:
            state = scope["state"] = {}
        state["request_id"] = request_id

        header_name = self._header
        header_value = request_id.encode("latin-1")

        async def send_with_request_id(message: Message) -> None:
            if message["type"] == "http.response.start" or message["type"] == "websocket.accept":
                headers = [
                    (k, v) for k, v in message.get("headers") or () if k.lower() != header_name
                ]
                headers.append((header_name, header_value))
                message["headers"] = headers
            await send(message)

        token = current_request_id.set(request_id)
        try:
            await self.app(scope, receive, send_with_request_id)
        finally:
            current_request_id.reset(token)
