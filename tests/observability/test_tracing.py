"""Tracing: phase spans, GraphQL semconv attributes, parent/child, sampling, OTLP, no-op."""

from __future__ import annotations

from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler
from typing import Any

import pytest
from opentelemetry import trace
from opentelemetry.sdk.trace import ReadableSpan
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import SpanKind, StatusCode

from observability.tracing import (
    ATTR_COST_ACTUAL,
    ATTR_COST_REQUESTED,
    ATTR_DOCUMENT,
    ATTR_DOCUMENT_ID,
    ATTR_OPERATION_NAME,
    ATTR_OPERATION_TYPE,
    PHASES,
    OperationTracer,
    configure_tracing,
    instrument_redis,
    instrument_sqlalchemy,
    sanitize_document,
)
from tests.live.servers import http_thread
from tests.observability._services import require_service

DOCUMENT = 'query Login { login(email: "a@b.c", password: "hunter2", n: 3) { token } }'


@pytest.fixture
def exporter() -> InMemorySpanExporter:
    return InMemorySpanExporter()


@pytest.fixture
def tracer(exporter: InMemorySpanExporter) -> OperationTracer:
    return OperationTracer(configure_tracing(exporter=exporter))


def by_name(exporter: InMemorySpanExporter) -> dict[str, ReadableSpan]:
    return {span.name: span for span in exporter.get_finished_spans()}


def test_request_with_phases_and_operation_span(
    tracer: OperationTracer, exporter: InMemorySpanExporter
) -> None:
    with tracer.request_span("POST", "/graphql") as request:
        for phase in PHASES[:4]:
            with tracer.phase(phase):
                pass
        with tracer.operation_span() as operation:
            tracer.set_operation(operation, "ListOrders", "query", "sha256:abc", document=DOCUMENT)
            tracer.set_cost(operation, 52, 12)
            with tracer.phase("graphql.execute"):
                pass
        tracer.set_operation(request, "ListOrders", "query", "sha256:abc")
        tracer.set_http_status(request, 200)

    spans = by_name(exporter)
    assert set(spans) == {"POST /graphql", "query", *PHASES}
    root = spans["POST /graphql"]
    assert root.kind == SpanKind.SERVER and root.parent is None
    assert root.attributes is not None
    assert root.attributes["http.request.method"] == "POST"
    assert root.attributes["http.route"] == "/graphql"
    assert root.attributes["http.response.status_code"] == 200
    assert root.attributes[ATTR_OPERATION_NAME] == "ListOrders"
    root_id = root.context.span_id
    for phase in PHASES[:4]:
        assert spans[phase].parent is not None and spans[phase].parent.span_id == root_id
        assert spans[phase].kind == SpanKind.INTERNAL
    op = spans["query"]  # renamed from "GraphQL Operation" to the type (semconv)
    assert op.parent is not None and op.parent.span_id == root_id
    assert spans["graphql.execute"].parent is not None
    assert spans["graphql.execute"].parent.span_id == op.context.span_id
    assert op.attributes == {
        ATTR_OPERATION_NAME: "ListOrders",
        ATTR_OPERATION_TYPE: "query",
        ATTR_DOCUMENT_ID: "sha256:abc",
        ATTR_COST_REQUESTED: 52,
        ATTR_COST_ACTUAL: 12,
    }
    assert {s.context.trace_id for s in spans.values()} == {root.context.trace_id}


def test_document_is_recorded_only_when_enabled_and_sanitized(
    exporter: InMemorySpanExporter,
) -> None:
    tracer = OperationTracer(configure_tracing(exporter=exporter), record_document=True)
    with tracer.operation_span() as span:
        tracer.set_operation(span, "Login", "mutation", None, document=DOCUMENT)
    (finished,) = exporter.get_finished_spans()
    assert finished.name == "mutation"
    assert finished.attributes is not None
    document = finished.attributes[ATTR_DOCUMENT]
    assert isinstance(document, str)
    assert "hunter2" not in document and "a@b.c" not in document and "3" not in document
    assert document.startswith("query Login { login ( email : ? password : ? n : ? ) { token } }")
    text = repr(finished.attributes)
    assert "variables" not in text


def test_sanitize_document_handles_block_strings_bad_input_and_size() -> None:
    assert sanitize_document('{ a(s: """secret""", f: 1.5) }') == "{ a ( s : ? f : ? ) }"
    assert sanitize_document('{ a(s: "unterminated') is None
    assert len(sanitize_document("{ " + "field " * 5000 + "}", max_chars=100) or "") == 100


def test_errors_and_exceptions_mark_spans_failed(
    tracer: OperationTracer, exporter: InMemorySpanExporter
) -> None:
    with tracer.request_span("POST", "/graphql") as request:
        with tracer.phase("graphql.cost") as cost:
            tracer.set_error(cost, "COST_LIMIT_EXCEEDED")
        with pytest.raises(RuntimeError), tracer.phase("graphql.execute"):
            raise RuntimeError("boom")
        tracer.set_http_status(request, 503)
    spans = by_name(exporter)
    assert spans["graphql.cost"].status.status_code == StatusCode.ERROR
    assert spans["graphql.cost"].attributes == {"error.type": "COST_LIMIT_EXCEEDED"}
    assert spans["graphql.execute"].status.status_code == StatusCode.ERROR
    assert spans["POST /graphql"].status.status_code == StatusCode.ERROR


def test_incoming_traceparent_is_continued(
    tracer: OperationTracer, exporter: InMemorySpanExporter
) -> None:
    trace_id = "4bf92f3577b34da6a3ce929d0e0e4736"
    parent_id = "00f067aa0ba902b7"
    headers = [
        (b"content-type", b"application/json"),
        (b"traceparent", f"00-{trace_id}-{parent_id}-01".encode()),
    ]
    with tracer.request_span("POST", "/graphql", headers=headers):
        pass
    (span,) = exporter.get_finished_spans()
    assert format(span.context.trace_id, "032x") == trace_id
    assert span.parent is not None and format(span.parent.span_id, "016x") == parent_id


def test_sample_ratio_zero_records_nothing_and_helpers_stay_quiet(
    exporter: InMemorySpanExporter,
) -> None:
    tracer = OperationTracer(configure_tracing(exporter=exporter, sample_ratio=0.0))
    with tracer.request_span("POST", "/graphql") as span:
        assert span is not None and not span.is_recording()
        tracer.set_operation(span, "X", "query", "id")
        with tracer.phase("graphql.parse"):
            pass
    assert exporter.get_finished_spans() == ()
    with pytest.raises(ValueError):
        configure_tracing(exporter=exporter, sample_ratio=1.5)


def test_configure_tracing_never_installs_a_global_provider(exporter: InMemorySpanExporter) -> None:
    before = trace.get_tracer_provider()
    configure_tracing(exporter=exporter)
    assert trace.get_tracer_provider() is before


def test_no_endpoint_and_no_exporter_means_no_provider_and_no_ops() -> None:
    assert configure_tracing() is None
    tracer = OperationTracer(None)
    assert not tracer.enabled
    with tracer.request_span("POST", "/graphql") as span:
        assert span is None
        with tracer.phase("graphql.parse") as phase:
            assert phase is None
        with tracer.operation_span() as op:
            assert op is None
        tracer.set_operation(span, "X", "query", "id", document=DOCUMENT)
        tracer.set_cost(span, 1, 1)
        tracer.set_http_status(span, 500)
        tracer.set_error(span, "TIMEOUT")
    assert tracer.current_trace_id() is None


class _Collector(BaseHTTPRequestHandler):
    received: list[tuple[str, str, int]] = []

    def do_POST(self) -> None:
        length = int(self.headers.get("content-length", "0"))
        self.rfile.read(length)
        self.received.append((self.path, self.headers.get("content-type", ""), length))
        self.send_response(200)
        self.send_header("content-length", "0")
        self.end_headers()

    def log_message(self, *args: Any) -> None:
        pass


@pytest.fixture
def collector() -> Iterator[tuple[str, list[tuple[str, str, int]]]]:
    received: list[tuple[str, str, int]] = []
    _Collector.received = received
    with http_thread(_Collector) as base_url:
        yield base_url, received


def test_otlp_endpoint_exports_batches_over_http(
    collector: tuple[str, list[tuple[str, str, int]]],
) -> None:
    base_url, received = collector
    provider = configure_tracing(otlp_endpoint=base_url, service_name="tollgate-test")
    assert provider is not None
    tracer = OperationTracer(provider)
    with tracer.request_span("POST", "/graphql"), tracer.phase("graphql.parse"):
        pass
    assert provider.force_flush(timeout_millis=10_000)
    provider.shutdown()
    assert received, "the collector received nothing"
    path, content_type, length = received[0]
    assert path == "/v1/traces"
    assert content_type == "application/x-protobuf"
    assert length > 0


def test_instrumentation_hooks_are_no_ops_without_provider() -> None:
    assert instrument_sqlalchemy(object(), None) is False
    assert instrument_redis(None) is False


def test_sqlalchemy_hook_traces_statements_when_installed(exporter: InMemorySpanExporter) -> None:
    pytest.importorskip("opentelemetry.instrumentation.sqlalchemy")
    import sqlalchemy

    engine = sqlalchemy.create_engine("sqlite://")
    provider = configure_tracing(exporter=exporter)
    assert instrument_sqlalchemy(engine, provider) is True
    with engine.connect() as conn:
        conn.execute(sqlalchemy.text("select 1"))
    assert any(
        "select" in span.name.lower() or "sqlite" in span.name.lower()
        for span in exporter.get_finished_spans()
    )


def test_redis_hook_traces_commands_of_one_client_when_installed(
    exporter: InMemorySpanExporter,
) -> None:
    pytest.importorskip("opentelemetry.instrumentation.redis")
    require_service("Redis", "127.0.0.1", 6379)
    import redis

    client = redis.Redis(host="127.0.0.1", port=6379, socket_timeout=2)
    provider = configure_tracing(exporter=exporter)
    try:
        assert instrument_redis(provider, client) is True
        client.set("observability-test:key", "secret-value", ex=10)
        client.delete("observability-test:key")
    finally:
        client.close()
    spans = by_name(exporter)
    assert {"SET", "DEL"} <= spans.keys()
    assert "secret-value" not in repr(spans["SET"].attributes)
