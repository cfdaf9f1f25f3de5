"""Structured JSON logging (structlog + orjson) with redaction and one line per operation."""

from __future__ import annotations

import logging
import re
import sys
from collections.abc import Iterable, Mapping, MutableMapping
from typing import Any, TextIO

import orjson
import structlog
from opentelemetry import trace

from observability.request_id import get_request_id

REDACTED = "[REDACTED]"
# Keys (case-insensitive, anywhere in the event) whose values are never logged.
DEFAULT_REDACT_PATTERN = (
    r"authorization|passw(or)?d|secret|cookie|api[-_]?key|credential|session[-_]?id"
    r"|variables|e[-_]?mail|token$|jwt|bearer"
)
DEFAULT_MAX_STRING = 2048
# Client-controlled fields get tighter limits.
FIELD_LIMITS: Mapping[str, int] = {
    "operation_name": 200,
    "client_name": 128,
    "client_version": 64,
    "document_id": 256,
    "tenant": 128,
    "subject": 128,
    "outcome": 64,
    "user_agent": 256,
    "event": 512,
    "exception": 32768,
}
OPERATION_FIELDS = (
    "request_id",
    "tenant",
    "subject",
    "client_name",
    "client_version",
    "operation_name",
    "operation_type",
    "document_id",
    "cost_requested",
    "cost_actual",
    "outcome",
    "http_status",
    "latency_ms",
    "sql_statements",
)
OPERATION_LOGGER = "tollgate.operation"
# Loggers that install their own handlers; sent through the root (JSON) handler instead.
CAPTURED_LOGGERS = ("uvicorn", "uvicorn.error", "gunicorn.error")
# uvicorn writes its access line whenever this logger has a handler, even through the root:
# the per-operation line is the access log, so this one is kept off (no handler, no
# propagation), as `serve`'s access_log=False means.
SILENCED_LOGGERS = ("uvicorn.access",)

# orjson escapes U+0000-U+001F but leaves these raw; some log viewers and Python's
# str.splitlines() treat them as line breaks, so escape them too (same decoded string).
_RAW_LINE_BREAKS = (
    ("\u2028".encode(), b"\\u2028"),
    ("\u2029".encode(), b"\\u2029"),
    ("\x85".encode(), b"\\u0085"),
)
_SCALARS = frozenset({int, float, bool})
_SEQUENCES = (list, tuple, set, frozenset)
_CONTROL_CHARS = re.compile(r"[\x00-\x1f\x7f-\x9f\u2028\u2029]")


def _json_default(value: object) -> str:
    return str(value)


def render_json(_logger: object, _name: str, event_dict: MutableMapping[str, Any]) -> str:
    """Render an event as exactly one line of JSON (structlog renderer)."""
    line = orjson.dumps(event_dict, default=_json_default, option=orjson.OPT_NON_STR_KEYS)
    for raw, escaped in _RAW_LINE_BREAKS:
        if raw in line:
            line = line.replace(raw, escaped)
    return line.decode()


class Redactor:
    """structlog processor replacing values of sensitive keys with "[REDACTED]" at any depth.

    Also truncates long strings (tighter limits for client-controlled fields) and, when
    `escape_controls` is set (non-JSON output), escapes control characters.
    """

    def __init__(
        self,
        pattern: str = DEFAULT_REDACT_PATTERN,
        *,
        max_string: int = DEFAULT_MAX_STRING,
        field_limits: Mapping[str, int] = FIELD_LIMITS,
        escape_controls: bool = False,
    ) -> None:
        self._pattern = re.compile(pattern, re.IGNORECASE)
        self._max_string = max_string
        self._field_limits = field_limits
        self._escape_controls = escape_controls
        self._decisions: dict[str, bool] = {}
        self._min_limit = min([max_string, *field_limits.values()])

    def _is_sensitive(self, key: str) -> bool:
        decision = self._decisions.get(key)
        if decision is None:
            decision = self._pattern.search(key) is not None
            if len(self._decisions) < 4096:
                self._decisions[key] = decision
        return decision

    def _clean(self, value: Any, limit: int, depth: int) -> Any:
        cls = type(value)
        if cls is str:
            if len(value) > limit:
                value = value[:limit] + "...[truncated]"
            if self._escape_controls:
                value = _CONTROL_CHARS.sub(_escape_match, value)
            return value
        if cls in _SCALARS or value is None:
            return value
        if depth > 8:
            return "[TOO DEEP]"
        if isinstance(value, Mapping):
            return {
                k: REDACTED
                if isinstance(k, str) and self._is_sensitive(k)
                else self._clean(v, self._max_string, depth + 1)
                for k, v in value.items()
            }
        if isinstance(value, _SEQUENCES):
            return [self._clean(v, self._max_string, depth + 1) for v in value]
        if isinstance(value, str):
            return self._clean(str(value), limit, depth)
        return value

    def __call__(
        self, _logger: object, _name: str, event_dict: MutableMapping[str, Any]
    ) -> MutableMapping[str, Any]:
        """Redact and truncate one event in place."""
        decisions = self._decisions
        limits = self._field_limits
        for key, value in event_dict.items():
            sensitive = decisions.get(key)
            if sensitive is None:
                sensitive = self._is_sensitive(key)
            if sensitive:
                event_dict[key] = REDACTED
                continue
            cls = type(value)
            if cls is str:
                # Fast path: most values are short strings needing nothing.
                if len(value) > self._min_limit or self._escape_controls:
                    event_dict[key] = self._clean(value, limits.get(key, self._max_string), 0)
            elif cls not in _SCALARS and value is not None:
                event_dict[key] = self._clean(value, limits.get(key, self._max_string), 0)
        return event_dict


def _escape_match(match: re.Match[str]) -> str:
    return f"\\u{ord(match.group()):04x}"


class _NamedWriteLogger(structlog.WriteLogger):
    """A WriteLogger that remembers the name it was requested under."""

    def __init__(self, file: TextIO, name: str | None) -> None:
        super().__init__(file)
        self.name = name


class _NamedWriteLoggerFactory:
    def __init__(self, file: TextIO) -> None:
        self._file = file

    def __call__(self, *args: Any) -> _NamedWriteLogger:
        name = args[0] if args and isinstance(args[0], str) else None
        return _NamedWriteLogger(self._file, name)


def _add_logger_name(
    logger: object, _name: str, event_dict: MutableMapping[str, Any]
) -> MutableMapping[str, Any]:
    name = getattr(logger, "name", None)
    if name is not None and "logger" not in event_dict:
        event_dict["logger"] = name
    return event_dict


def add_request_id(
    _logger: object, _name: str, event_dict: MutableMapping[str, Any]
) -> MutableMapping[str, Any]:
    """Add the current request id (from `RequestIdMiddleware`) unless the event has one."""
    if event_dict.get("request_id") is None:
        request_id = get_request_id()
        if request_id is not None:
            event_dict["request_id"] = request_id
    return event_dict


def add_trace_context(
    _logger: object, _name: str, event_dict: MutableMapping[str, Any]
) -> MutableMapping[str, Any]:
    """Add the current OpenTelemetry trace and span ids (hex) when a span is active."""
    context = trace.get_current_span().get_span_context()
    if context.is_valid:
        event_dict["trace_id"] = format(context.trace_id, "032x")
        event_dict["span_id"] = format(context.span_id, "016x")
    return event_dict


def configure_logging(
    *,
    level: str | int = "INFO",
    json: bool = True,
    stream: TextIO | None = None,
    redact_pattern: str = DEFAULT_REDACT_PATTERN,
    capture_loggers: Iterable[str] = CAPTURED_LOGGERS,
) -> None:
    """Configure structlog and the stdlib root logger to write one JSON object per line.

    Args:
        level: minimum level, for structlog and the stdlib root logger.
        json: JSON lines (production); False gives human-readable console lines with
            control characters escaped (development only).
        stream: text stream to write to (default: `sys.stdout` at call time).
        redact_pattern: regex (case-insensitive, searched in each key) of keys to redact.
        capture_loggers: stdlib loggers whose own handlers are removed so that they
            propagate to the root JSON handler (uvicorn installs its own).
    """
    if stream is None:
        stream = sys.stdout
    numeric_level = logging.getLevelName(level.upper()) if isinstance(level, str) else level
    if not isinstance(numeric_level, int):
        raise ValueError(f"unknown log level {level!r}")

    redactor = Redactor(redact_pattern, escape_controls=not json)
    renderer: Any = render_json if json else structlog.dev.ConsoleRenderer(colors=False)
    shared: list[Any] = [
        structlog.contextvars.merge_contextvars,
        add_request_id,
        add_trace_context,
        structlog.processors.add_log_level,
        structlog.processors.TimeStamper(fmt="iso", utc=True, key="ts"),
    ]
    structlog.configure(
        processors=[
            *shared,
            _add_logger_name,
            structlog.processors.format_exc_info,
            redactor,
            renderer,
        ],
        wrapper_class=structlog.make_filtering_bound_logger(numeric_level),
        logger_factory=_NamedWriteLoggerFactory(stream),
        # Re-resolving per call keeps reconfiguration (tests, reloads) effective for
        # loggers created earlier; it costs a few microseconds per line.
        cache_logger_on_first_use=False,
    )

    formatter = structlog.stdlib.ProcessorFormatter(
        foreign_pre_chain=[*shared, structlog.stdlib.add_logger_name],
        processors=[
            structlog.stdlib.ProcessorFormatter.remove_processors_meta,
            structlog.processors.format_exc_info,
            redactor,
            renderer,
        ],
    )
    handler = logging.StreamHandler(stream)
    handler.setFormatter(formatter)
    root = logging.getLogger()
    for old in list(root.handlers):
        root.removeHandler(old)
    root.addHandler(handler)
    root.setLevel(numeric_level)
    for name in capture_loggers:
        captured = logging.getLogger(name)
        for old in list(captured.handlers):
            captured.removeHandler(old)
        captured.propagate = True
    for name in SILENCED_LOGGERS:
        silenced = logging.getLogger(name)
        for old in list(silenced.handlers):
            silenced.removeHandler(old)
        silenced.propagate = False


def get_logger(name: str) -> Any:
    """Return a structlog logger that includes `logger=<name>` in each line."""
    return structlog.get_logger(name)


_bound: list[Any] = []  # [config objects, bound logger] of the operation logger


def _operation_logger() -> Any:
    """The operation logger, bound once per structlog configuration (a lazy proxy binds
    on every call: a new logger and a new writer per line)."""
    config = structlog.get_config()
    current = (config["processors"], config["logger_factory"], config["wrapper_class"])
    if _bound and all(a is b for a, b in zip(_bound[0], current, strict=True)):
        return _bound[1]
    logger = structlog.get_logger(OPERATION_LOGGER).bind()
    _bound[:] = [current, logger]
    return logger


def log_operation(**fields: Any) -> None:
    """Emit ONE JSON line describing a finished GraphQL operation.

    Every field of `OPERATION_FIELDS` is present (null when not given), so lines are
    uniform for log queries; extra fields are kept. `request_id` defaults to the current
    request's. Internal errors (outcome `INTERNAL_SERVER_ERROR` or HTTP 5xx) log at level
    error, everything else at info.

    Example:
        log_operation(tenant="t1", operation_name="ListOrders", outcome="OK", latency_ms=3.2)
    """
    event: dict[str, Any] = {name: fields.pop(name, None) for name in OPERATION_FIELDS}
    if event["request_id"] is None:
        event["request_id"] = get_request_id()
    if "event" in fields:
        fields["detail"] = fields.pop("event")
    event.update(fields)
    outcome = event["outcome"]
    status = event["http_status"]
    logger = _operation_logger()
    if outcome == "INTERNAL_SERVER_ERROR" or (isinstance(status, int) and status >= 500):
        logger.error("graphql.operation", **event)
    else:
        logger.info("graphql.operation", **event)
