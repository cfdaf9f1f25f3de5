"""OpenTelemetry tracing: one request span, a few phase spans, GraphQL semconv attributes.

Nothing per resolver (Strawberry's OpenTelemetryExtension makes a span per resolved field
per list item and records raw arguments: ~8x slower and leaky). With tracing off, every
method here is a no-op costing about one attribute check.

Optional instrumentation hooks (`instrument_sqlalchemy`, `instrument_redis`) use
`opentelemetry-instrumentation-sqlalchemy` / `-redis` when importable and do nothing
otherwise; they are not dependencies of the project.
"""

from __future__ import annotations

import contextlib
import importlib
from collections.abc import Iterable, Iterator
from contextlib import AbstractContextManager, nullcontext
from typing import Any
from urllib.parse import urlsplit

from opentelemetry import trace
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import (
    BatchSpanProcessor,
    SimpleSpanProcessor,
    SpanExporter,
)
from opentelemetry.sdk.trace.sampling import ALWAYS_ON, ParentBased, Sampler, TraceIdRatioBased
from opentelemetry.trace import Span, SpanKind, Status, StatusCode
from opentelemetry.trace.propagation.tracecontext import TraceContextTextMapPropagator

INSTRUMENTATION_NAME = "tollgate"


@contextlib.contextmanager
def _span(tracer: Any, name: str, **options: Any) -> Iterator[Span]:
    """A span that marks failures by exception type only.

    Exception messages can quote the caller's document (literals, personal data), so spans
    never record them: the status says which exception class ended the span, and
    ``set_error`` adds the error code.
    """
    with tracer.start_as_current_span(
        name, record_exception=False, set_status_on_exception=False, **options
    ) as span:
        try:
            yield span
        except BaseException as exc:
            span.set_status(Status(StatusCode.ERROR, type(exc).__name__))
            raise


PHASES = ("graphql.gate", "graphql.parse", "graphql.validate", "graphql.cost", "graphql.execute")
GRAPHQL_OPERATION_SPAN = "GraphQL Operation"
# OTel semconv (GraphQL spans): graphql.operation.name / .type / graphql.document.
ATTR_OPERATION_NAME = "graphql.operation.name"
ATTR_OPERATION_TYPE = "graphql.operation.type"
ATTR_DOCUMENT = "graphql.document"
# No semconv attribute exists for these; kept in our own namespace.
ATTR_DOCUMENT_ID = "tollgate.graphql.document_id"
ATTR_COST_REQUESTED = "tollgate.graphql.cost.requested"
ATTR_COST_ACTUAL = "tollgate.graphql.cost.actual"
MAX_DOCUMENT_CHARS = 2048
MAX_NAME_CHARS = 200

_NOOP: AbstractContextManager[None] = nullcontext()
_TRACE_HEADERS = (b"traceparent", b"tracestate")


def configure_tracing(
    *,
    service_name: str = "tollgate",
    otlp_endpoint: str | None = None,
    exporter: SpanExporter | None = None,
    sample_ratio: float = 1.0,
    batch: bool | None = None,
) -> TracerProvider | None:
    """Build a TracerProvider, or return None (tracing off) when there is nowhere to export.

    The provider is NOT installed globally: pass it to `OperationTracer` and the hooks.
    Call `provider.shutdown()` at exit to flush.

    Args:
        service_name: the `service.name` resource attribute.
        otlp_endpoint: OTLP/HTTP collector URL; a base URL such as `http://otel:4318` gets
            `/v1/traces` appended. Exported through a BatchSpanProcessor.
        exporter: an exporter to use as well (tests: `InMemorySpanExporter`), through a
            SimpleSpanProcessor unless `batch=True`.
        sample_ratio: head sampling ratio in [0, 1]; parent-based, so a sampled incoming
            `traceparent` is honoured.
        batch: force the processor for `exporter` (default: simple).
    """
    if otlp_endpoint is None and exporter is None:
        return None
    if not 0.0 <= sample_ratio <= 1.0:
        raise ValueError(f"sample_ratio must be within [0, 1], got {sample_ratio}")
    root: Sampler = ALWAYS_ON if sample_ratio >= 1.0 else TraceIdRatioBased(sample_ratio)
    provider = TracerProvider(
        resource=Resource.create({"service.name": service_name}),
        sampler=ParentBased(root),
    )
    if exporter is not None:
        processor = BatchSpanProcessor(exporter) if batch else SimpleSpanProcessor(exporter)
        provider.add_span_processor(processor)
    if otlp_endpoint is not None:
        from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter

        provider.add_span_processor(
            BatchSpanProcessor(OTLPSpanExporter(endpoint=_traces_url(otlp_endpoint)))
        )
    return provider


def _traces_url(endpoint: str) -> str:
    path = urlsplit(endpoint).path.rstrip("/")
    if path.endswith("/v1/traces"):
        return endpoint
    return endpoint.rstrip("/") + "/v1/traces"


def sanitize_document(document: str, max_chars: int = MAX_DOCUMENT_CHARS) -> str | None:
    """Return the document with every literal replaced by `?` (semconv's sanitized form).

    Tokens are joined by single spaces and the result truncated to `max_chars`; None when
    the text does not lex.
    """
    from graphql import GraphQLError, Source, TokenKind
    from graphql.language.lexer import Lexer

    literal_kinds = {TokenKind.STRING, TokenKind.BLOCK_STRING, TokenKind.INT, TokenKind.FLOAT}
    lexer = Lexer(Source(document))
    parts: list[str] = []
    size = 0
    try:
        token = lexer.advance()
        while token.kind != TokenKind.EOF:
            if token.kind in literal_kinds:
                text = "?"
            elif token.value is not None:
                text = token.value
            else:
                text = token.kind.value
            parts.append(text)
            size += len(text) + 1
            if size > max_chars:
                break
            token = lexer.advance()
    except GraphQLError:
        return None
    return " ".join(parts)[:max_chars]


class OperationTracer:
    """The server's tracing API: request span, phase spans, GraphQL operation attributes.

    With `provider=None` every method is a no-op (context managers yield None).

    Example:
        tracer = OperationTracer(configure_tracing(exporter=exporter))
        with tracer.request_span("POST", "/graphql", headers=scope["headers"]) as span:
            with tracer.phase("graphql.parse"):
                ...
            tracer.set_operation(span, "ListOrders", "query", document_id="sha256:...")
    """

    def __init__(self, provider: TracerProvider | None, *, record_document: bool = False) -> None:
        self.provider = provider
        self.enabled = provider is not None
        self.record_document = record_document
        self._propagator = TraceContextTextMapPropagator()
        self._tracer = provider.get_tracer(INSTRUMENTATION_NAME) if provider is not None else None

    def request_span(
        self,
        method: str,
        route: str,
        *,
        headers: Iterable[tuple[bytes, bytes]] | None = None,
    ) -> AbstractContextManager[Span | None]:
        """Open the SERVER span for one HTTP request, continuing an incoming `traceparent`.

        `headers` are ASGI headers (lower-case byte pairs); only traceparent/tracestate are
        read.
        """
        if self._tracer is None:
            return _NOOP
        parent = None
        if headers is not None:
            carrier = {
                name.decode("latin-1"): value.decode("latin-1")
                for name, value in headers
                if name in _TRACE_HEADERS
            }
            if carrier:
                parent = self._propagator.extract(carrier)
        return _span(
            self._tracer,
            f"{method} {route}",
            context=parent,
            kind=SpanKind.SERVER,
            attributes={"http.request.method": method, "http.route": route},
        )

    def operation_span(self) -> AbstractContextManager[Span | None]:
        """Open the span of one GraphQL operation, renamed to its type by `set_operation`."""
        if self._tracer is None:
            return _NOOP
        return _span(self._tracer, GRAPHQL_OPERATION_SPAN, kind=SpanKind.INTERNAL)

    def phase(self, name: str) -> AbstractContextManager[Span | None]:
        """Open a child span for one phase of the request path (see `PHASES`)."""
        if self._tracer is None:
            return _NOOP
        return _span(self._tracer, name, kind=SpanKind.INTERNAL)

    def set_operation(
        self,
        span: Span | None,
        name: str | None,
        operation_type: str | None,
        document_id: str | None = None,
        *,
        document: str | None = None,
    ) -> None:
        """Set `graphql.operation.*` on a span; never variables.

        `graphql.document` (sanitized: literals replaced by `?`) is recorded only when the
        tracer was built with `record_document=True`. An operation span is renamed to the
        operation type, as semconv asks (the client-chosen name stays out of span names).
        """
        if span is None or not span.is_recording():
            return
        attributes: dict[str, Any] = {}
        if name:
            attributes[ATTR_OPERATION_NAME] = name[:MAX_NAME_CHARS]
        if operation_type:
            attributes[ATTR_OPERATION_TYPE] = operation_type
            if getattr(span, "name", None) == GRAPHQL_OPERATION_SPAN:
                span.update_name(operation_type)
        if document_id:
            attributes[ATTR_DOCUMENT_ID] = document_id[:MAX_NAME_CHARS]
        if document is not None and self.record_document:
            sanitized = sanitize_document(document)
            if sanitized is not None:
                attributes[ATTR_DOCUMENT] = sanitized
        span.set_attributes(attributes)

    def set_cost(self, span: Span | None, requested: float | None, actual: float | None) -> None:
        """Record the operation's requested and actual cost on a span."""
        if span is None or not span.is_recording():
            return
        if requested is not None:
            span.set_attribute(ATTR_COST_REQUESTED, requested)
        if actual is not None:
            span.set_attribute(ATTR_COST_ACTUAL, actual)

    def set_http_status(self, span: Span | None, status: int) -> None:
        """Record the response status; 5xx marks the server span as an error."""
        if span is None or not span.is_recording():
            return
        span.set_attribute("http.response.status_code", status)
        if status >= 500:
            span.set_attribute("error.type", str(status))
            span.set_status(Status(StatusCode.ERROR))

    def set_error(self, span: Span | None, code: str) -> None:
        """Mark a span as failed with an error code such as `COST_LIMIT_EXCEEDED`."""
        if span is None or not span.is_recording():
            return
        span.set_attribute("error.type", code)
        span.set_status(Status(StatusCode.ERROR, code))

    def current_trace_id(self) -> str | None:
        """Return the current trace id as 32 hex chars, if a span is active."""
        context = trace.get_current_span().get_span_context()
        return format(context.trace_id, "032x") if context.is_valid else None


def _optional(module: str) -> Any:
    try:
        return importlib.import_module(module)
    except ImportError:
        return None


def instrument_sqlalchemy(engine: Any, provider: TracerProvider | None) -> bool:
    """Trace SQL statements of `engine` (sync or async) if the instrumentation is installed.

    Needs `opentelemetry-instrumentation-sqlalchemy`. Its instrumentor is process-wide and
    also wraps `create_engine`; only the first call per process applies, later calls
    return False. Its declared support stops below SQLAlchemy 2.1 (0.66b1), whose event
    API it uses unchanged, so the version check is skipped. Statements are recorded
    as sent (parameterised, without bound values). Returns whether it was applied.
    """
    if provider is None:
        return False
    module = _optional("opentelemetry.instrumentation.sqlalchemy")
    if module is None:
        return False
    sync_engine = getattr(engine, "sync_engine", engine)
    result = module.SQLAlchemyInstrumentor().instrument(
        engine=sync_engine, tracer_provider=provider, skip_dep_check=True
    )
    return result is not None


def instrument_redis(provider: TracerProvider | None, client: Any = None) -> bool:
    """Trace Redis commands (one client, or all clients when `client` is None) if possible.

    Needs `opentelemetry-instrumentation-redis`; command arguments are sanitized by it.
    Leave the rate limiter's client uninstrumented: it has its own metrics. Returns
    whether instrumentation was applied.
    """
    if provider is None:
        return False
    module = _optional("opentelemetry.instrumentation.redis")
    if module is None:
        return False
    if client is not None:
        module.RedisInstrumentor.instrument_client(client, tracer_provider=provider)
    else:
        module.RedisInstrumentor().instrument(tracer_provider=provider)
    return True
