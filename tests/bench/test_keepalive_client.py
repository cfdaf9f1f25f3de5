"""The soak's HTTP client: keep-alive, bounded connections, and a resend when the server
closed an idle connection (as uvicorn does after its keep-alive timeout)."""

from __future__ import annotations

import asyncio
import re

import pytest

from bench.load import ClientError, KeepAliveClient


class _Server:
    """A small HTTP/1.1 server on 127.0.0.1 that echoes the body and counts connections.

    ``close_after`` requests on a connection, it closes that connection *without* answering
    the next one (a keep-alive timeout that raced the request)."""

    def __init__(self, close_after: int | None = None) -> None:
        self.close_after = close_after
        self.connections = 0
        self.requests = 0
        self.server: asyncio.Server | None = None

    async def __aenter__(self) -> str:
        self.server = await asyncio.start_server(self._serve, "127.0.0.1", 0)
        port = self.server.sockets[0].getsockname()[1]
        return f"http://127.0.0.1:{port}/graphql"

    async def __aexit__(self, *exc: object) -> None:
        assert self.server is not None
        self.server.close()
        await self.server.wait_closed()

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.connections += 1
        served = 0
        try:
            while True:
                head = await reader.readuntil(b"\r\n\r\n")
                if self.close_after is not None and served == self.close_after:
                    return  # closed idle: this request gets no byte of an answer
                length = int(re.search(rb"Content-Length: (\d+)", head, re.I).group(1))  # type: ignore[union-attr]
                body = await reader.readexactly(length)
                served += 1
                self.requests += 1
                status = b"429 Too Many Requests" if body == b"throttle" else b"200 OK"
                writer.write(
                    b"HTTP/1.1 " + status + b"\r\nContent-Length: %d\r\n\r\n" % len(body) + body
                )
                await writer.drain()
        except (asyncio.IncompleteReadError, ConnectionError):
            return
        finally:
            writer.close()


async def test_answers_come_back_in_order_over_at_most_the_connections_given() -> None:
    server = _Server()
    async with server as url:
        client = KeepAliveClient(url, connections=4)
        bodies = [b'{"n":%d}' % i for i in range(200)] + [b"throttle"]
        answers = await asyncio.gather(*(client.post(b, {"x-test": "1"}) for b in bodies))
        await client.aclose()
    assert [a[1] for a in answers] == bodies
    assert [a[0] for a in answers] == [200] * 200 + [429]
    assert 1 <= server.connections <= 4
    assert server.requests == 201


async def test_a_connection_closed_while_idle_is_replaced_and_the_request_sent_again() -> None:
    server = _Server(close_after=1)
    async with server as url:
        client = KeepAliveClient(url, connections=1)
        answers = [await client.post(b"%d" % i, {}) for i in range(5)]
        await client.aclose()
    assert answers == [(200, b"%d" % i) for i in range(5)]
    assert server.requests == 5
    assert server.connections == 5  # each connection served one request, then closed


async def test_a_refused_connection_is_a_client_error() -> None:
    async with _Server() as url:
        pass  # closed: nothing listens on the port any more
    client = KeepAliveClient(url, connections=1, timeout_s=2)
    with pytest.raises(ClientError):
        await client.post(b"{}", {})
