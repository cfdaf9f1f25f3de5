"""Structured logging: one JSON line per event, redaction, T21 log-injection escaping."""

from __future__ import annotations

import io
import logging
from collections.abc import Iterator
from typing import Any

import orjson
import pytest
import structlog
from _pytest.logging import LogCaptureHandler
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from observability.logging import (
    OPERATION_FIELDS,
    REDACTED,
    configure_logging,
    get_logger,
    log_operation,
)
from observability.request_id import RequestIdMiddleware, current_request_id
from observability.tracing import OperationTracer, configure_tracing

CAPTURED = ("uvicorn", "uvicorn.error", "uvicorn.access", "gunicorn.error")


@pytest.fixture
def log_stream() -> Iterator[io.StringIO]:
    """Configure JSON logging into a buffer; restore structlog and stdlib logging afterwards."""
    root = logging.getLogger()
    saved_root = (list(root.handlers), root.level)
    saved = {
        name: (list(logging.getLogger(name).handlers), logging.getLogger(name).propagate)
        for name in CAPTURED
    }
    stream = io.StringIO()
    configure_logging(level="DEBUG", stream=stream)
    try:
        yield stream
    finally:
        structlog.reset_defaults()
        root.handlers[:] = saved_root[0]
        root.setLevel(saved_root[1])
        for name, (handlers, propagate) in saved.items():
            logger = logging.getLogger(name)
            logger.handlers[:] = handlers
            logger.propagate = propagate


def lines(stream: io.StringIO) -> list[dict[str, Any]]:
    text = stream.getvalue()
    assert text.endswith("\n")
    # splitlines() also breaks on U+2028, U+0085, \x1c...: a forged line would show up here.
    raw = text.splitlines()
    return [orjson.loads(line) for line in raw]


def test_log_operation_emits_one_line_with_every_field(log_stream: io.StringIO) -> None:
    log_operation(
        tenant="acme",
        subject="user-1",
        client_name="web",
        client_version="1.2.3",
        operation_name="ListOrders",
        operation_type="query",
        document_id="sha256:abc",
        cost_requested=52,
        cost_actual=12,
        outcome="OK",
        http_status=200,
        latency_ms=3.25,
        sql_statements=2,
    )
    (line,) = lines(log_stream)
    assert set(OPERATION_FIELDS) <= line.keys()
    assert line["operation_name"] == "ListOrders"
    assert line["cost_requested"] == 52 and line["cost_actual"] == 12
    assert line["latency_ms"] == 3.25
    assert line["outcome"] == "OK"
    assert line["level"] == "info"
    assert line["event"] == "graphql.operation"
    assert line["logger"] == "tollgate.operation"
    assert "ts" in line


def test_missing_fields_are_null_and_request_id_comes_from_context(
    log_stream: io.StringIO,
) -> None:
    token = current_request_id.set("req-42")
    try:
        log_operation(outcome="THROTTLED", http_status=429)
    finally:
        current_request_id.reset(token)
    (line,) = lines(log_stream)
    assert line["request_id"] == "req-42"
    assert line["tenant"] is None and line["cost_actual"] is None
    assert line["outcome"] == "THROTTLED"


def test_internal_errors_log_at_error_level(log_stream: io.StringIO) -> None:
    log_operation(outcome="INTERNAL_SERVER_ERROR", http_status=200)
    log_operation(outcome="OK", http_status=503)
    assert [line["level"] for line in lines(log_stream)] == ["error", "error"]


def test_t21_operation_name_with_newline_and_fake_json_stays_one_line(
    log_stream: io.StringIO,
) -> None:
    forged = 'Evil\n{"level":"info","event":"graphql.operation","tenant":"victim"}'
    log_operation(
        operation_name=forged + "\r\u2028\u2029\x85\x1b[31m\x00",
        client_name="app\r\n{}",
        user_agent="ua\n{}",
        outcome="OK",
    )
    assert log_stream.getvalue().count("\n") == 1
    (line,) = lines(log_stream)
    assert line["operation_name"].startswith(forged)
    assert line["operation_name"].endswith("\r\u2028\u2029\x85\x1b[31m\x00")
    assert line["client_name"] == "app\r\n{}"
    assert line["tenant"] is None


def test_t21_stdlib_records_and_tracebacks_are_json_too(log_stream: io.StringIO) -> None:
    try:
        raise ValueError('bad\n{"forged": true}')
    except ValueError:
        logging.getLogger("strawberry.execution").exception("failed %s", "op\nname")
    logging.getLogger("uvicorn.error").warning("x\r\ny")
    parsed = lines(log_stream)
    assert len(parsed) == 2
    assert parsed[0]["event"] == "failed op\nname"
    assert parsed[0]["logger"] == "strawberry.execution"
    assert "ValueError" in parsed[0]["exception"]
    assert parsed[1]["logger"] == "uvicorn.error" and parsed[1]["level"] == "warning"


def test_uvicorn_access_lines_stay_off(log_stream: io.StringIO) -> None:
    """`serve` runs uvicorn with access_log=False: the operation line is the access log.

    uvicorn decides per connection with `hasHandlers()` on its access logger; a logger that
    propagates to the root JSON handler would write a second line for every request (and cost
    the request path a stdlib LogRecord and a second render).
    """
    access = logging.getLogger("uvicorn.access")
    # pytest hangs its capture handlers on every logger that does not propagate; uvicorn's
    # own check is hasHandlers(), which outside pytest sees none of these.
    own = [h for h in access.handlers if not isinstance(h, LogCaptureHandler)]
    assert own == [] and not access.propagate
    access.info('%s - "%s %s HTTP/%s" %d', "127.0.0.1:1", "POST", "/graphql", "1.1", 200)
    log_operation(operation_name="Q", outcome="OK", http_status=200)
    parsed = lines(log_stream)
    assert [p["event"] for p in parsed] == ["graphql.operation"]


def test_long_operation_names_are_truncated(log_stream: io.StringIO) -> None:
    log_operation(operation_name="Q" * 10_000, document_id="d" * 10_000)
    (line,) = lines(log_stream)
    assert line["operation_name"].startswith("Q" * 200)
    assert len(line["operation_name"]) < 250
    assert len(line["document_id"]) < 300


def test_sensitive_keys_are_redacted_at_any_depth(log_stream: io.StringIO) -> None:
    get_logger("tests.redaction").info(
        "request",
        authorization="Bearer eyJhbGciOi",
        headers={"Authorization": "Bearer x", "Cookie": "sid=1", "user-agent": "curl"},
        variables={"password": "hunter2", "first": 10},
        payload=[{"user": {"email": "a@b.c", "passwd": "x", "id": 7}}],
        access_token="t",
        refreshToken="t",
        client_secret="s",
        api_key="k",
        X_Api_Key="k",
        cost=10,
        token_count=42,
        tokens=42,
    )
    (line,) = lines(log_stream)
    text = log_stream.getvalue()
    for secret in ("eyJhbGciOi", "hunter2", "a@b.c", "sid=1"):
        assert secret not in text
    assert line["authorization"] == REDACTED
    assert line["headers"] == {"Authorization": REDACTED, "Cookie": REDACTED, "user-agent": "curl"}
    assert line["variables"] == REDACTED
    assert line["payload"] == [{"user": {"email": REDACTED, "passwd": REDACTED, "id": 7}}]
    for key in ("access_token", "refreshToken", "client_secret", "api_key", "X_Api_Key"):
        assert line[key] == REDACTED
    assert line["cost"] == 10
    assert line["token_count"] == 42 and line["tokens"] == 42  # guard numbers stay visible
    assert line["logger"] == "tests.redaction"


def test_level_filtering_and_non_json_values(log_stream: io.StringIO) -> None:
    stream = io.StringIO()
    configure_logging(level="WARNING", stream=stream)
    log = get_logger("tests.level")
    log.info("dropped")
    log.warning("kept", obj=object(), data=b"bytes", items=(1, "a"))
    (line,) = lines(stream)
    assert line["event"] == "kept"
    assert line["obj"].startswith("<object object")
    assert line["items"] == [1, "a"]


def test_unknown_level_is_refused() -> None:
    with pytest.raises(ValueError, match="unknown log level"):
        configure_logging(level="LOUD", stream=io.StringIO())


def test_console_mode_escapes_control_characters(log_stream: io.StringIO) -> None:
    stream = io.StringIO()
    configure_logging(json=False, stream=stream)
    get_logger("tests.console").info("op", operation_name='x\n{"forged":1}', password="p")
    text = stream.getvalue()
    assert text.count("\n") == 1
    assert "\\u000a" in text
    assert "p'" not in text and REDACTED in text


def test_lines_carry_the_trace_id_of_the_current_span(log_stream: io.StringIO) -> None:
    exporter = InMemorySpanExporter()
    provider = configure_tracing(exporter=exporter)
    tracer = OperationTracer(provider)
    with tracer.request_span("POST", "/graphql") as span:
        log_operation(outcome="OK")
    assert span is not None
    (line,) = lines(log_stream)
    assert line["trace_id"] == format(span.get_span_context().trace_id, "032x")
    assert line["span_id"] == format(span.get_span_context().span_id, "016x")


async def test_request_id_middleware_feeds_the_log_line(log_stream: io.StringIO) -> None:
    async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
        log_operation(outcome="OK", http_status=200)
        await send({"type": "http.response.start", "status": 200, "headers": []})
        await send({"type": "http.response.body", "body": b""})

    sent: list[dict[str, Any]] = []

    async def receive() -> dict[str, Any]:
        return {"type": "http.request", "body": b""}

    async def send(message: dict[str, Any]) -> None:
        sent.append(message)

    scope = {"type": "http", "method": "POST", "path": "/graphql", "headers": []}
    await RequestIdMiddleware(app)(scope, receive, send)
    # Other loggers (asyncio at DEBUG) may write too; all lines are JSON either way.
    (line,) = [line for line in lines(log_stream) if line["logger"] == "tollgate.operation"]
    echoed = dict(sent[0]["headers"])[b"x-request-id"].decode()
    assert line["request_id"] == echoed


def test_operation_lines_follow_a_new_configuration(log_stream: io.StringIO) -> None:
    """The operation logger is bound once per configuration, never kept past one."""
    log_operation(operation_name="First", outcome="OK")
    second = io.StringIO()
    configure_logging(level="DEBUG", stream=second)
    log_operation(operation_name="Second", outcome="OK")
    assert [p["operation_name"] for p in lines(log_stream)] == ["First"]
    assert [p["operation_name"] for p in lines(second)] == ["Second"]
