"""Prometheus metrics with bounded labels, correct with several worker processes."""

from __future__ import annotations

import glob
import os
import re
from typing import Any

from prometheus_client import (
    CollectorRegistry,
    Counter,
    Gauge,
    GCCollector,
    Histogram,
    PlatformCollector,
    ProcessCollector,
    multiprocess,
    values,
)
from prometheus_client.exposition import choose_encoder

# OpenTelemetry's advised buckets for http.server.request.duration (seconds).
HTTP_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.075, 0.1, 0.25, 0.5, 0.75, 1.0, 2.5, 5.0, 7.5, 10.0)
COST_BUCKETS = (1, 2, 5, 10, 25, 50, 100, 250, 500, 1000, 2500, 5000, 10000)
BATCH_BUCKETS = (1, 2, 5, 10, 25, 50, 100, 250, 500, 1000)

OTHER = "other"
_MAX_CHILDREN = 4096  # remembered labelled children (every label set here is bounded)
ANONYMOUS = "anonymous"
OPERATION_TYPES = frozenset({"query", "mutation", "subscription"})
HTTP_METHODS = frozenset({"GET", "POST", "HEAD", "OPTIONS", "PUT", "PATCH", "DELETE"})
RATELIMIT_DECISIONS = frozenset({"allowed", "throttled", "error"})
DEPENDENCIES = frozenset({"database", "redis"})
WEBHOOK_OUTCOMES = frozenset({"delivered", "retry", "failed", "disabled", "lost"})
RESPONSE_CACHE_EVENTS = frozenset(
    {"hit", "miss", "bypass", "store", "eviction", "invalidation", "dropped", "error"}
)
LIMIT_MODES = frozenset({"enforce", "measure"})
_GRAPHQL_NAME = re.compile(r"[_A-Za-z][_0-9A-Za-z]{0,99}")
_CODE = re.compile(r"[A-Za-z][A-Za-z0-9_]{0,63}")
_LABEL_TEXT = re.compile(r"[A-Za-z0-9_.:@/ +-]{1,100}")
# Per-process cap on distinct values of labels whose values the server does not fully
# control (client names, loaders, policies); further values become "other".
MAX_DISTINCT_VALUES = 100


def mark_process_dead(pid: int, path: str) -> None:
    """Drop a dead worker's live-gauge files (call from the supervisor on worker exit)."""
    multiprocess.mark_process_dead(pid, path)


def wipe_multiprocess_dir(path: str) -> None:
    """Create `path` and delete stale `*.db` files; call ONCE before any worker starts."""
    os.makedirs(path, exist_ok=True)
    for stale in glob.glob(os.path.join(path, "*.db")):
        os.remove(stale)


def multiprocess_active() -> bool:
    """Tell whether prometheus-client writes values to PROMETHEUS_MULTIPROC_DIR files."""
    return bool(getattr(values.ValueClass, "_multiprocess", False))


def render_multiprocess(path: str, accept: str | None = None) -> tuple[bytes, str]:
    """Render the sum over every process that wrote to `path` (body, content type)."""
    registry = CollectorRegistry(auto_describe=True)
    multiprocess.MultiProcessCollector(registry, path=path)
    encoder, content_type = choose_encoder(accept or "")
    return encoder(registry), content_type


class _BoundedLabel:
    """Keeps a label's value set bounded: the first N distinct well-formed values, else other."""

    def __init__(self, pattern: re.Pattern[str], limit: int = MAX_DISTINCT_VALUES) -> None:
        self._pattern = pattern
        self._limit = limit
        self._seen: set[str] = set()

    def __call__(self, value: str | None) -> str:
        if not value:
            return OTHER
        if value in self._seen:
            return value
        if len(self._seen) >= self._limit or self._pattern.fullmatch(value) is None:
            return OTHER
        self._seen.add(value)
        return value


class Metrics:
    """The application's Prometheus instruments and their `/metrics` rendering.

    Single process: instruments live in `registry` (a fresh one with process, platform
    and GC collectors by default). Several workers: start every worker with the
    environment variable PROMETHEUS_MULTIPROC_DIR set (before Python starts, so
    prometheus-client picks file-backed values at import) and pass the same directory as
    `multiprocess_dir`; `render()` then sums all workers' files.

    Label values are bounded: operation names only for registered (persisted)
    operations, never tenant or user ids.

    Example:
        metrics = Metrics(multiprocess_dir=settings.prometheus_multiproc_dir)
        metrics.operation("ListOrders", "query", "OK", registered=True)
        body, content_type = metrics.render()
    """

    def __init__(
        self,
        registry: CollectorRegistry | None = None,
        *,
        multiprocess_dir: str | None = None,
        namespace: str = "tollgate",
    ) -> None:
        self._children: dict[tuple[int, tuple[str, ...]], Any] = {}
        if multiprocess_dir is not None:
            env_dir = os.environ.get("PROMETHEUS_MULTIPROC_DIR")
            if not multiprocess_active() or env_dir is None:
                raise RuntimeError(
                    "multiprocess metrics need PROMETHEUS_MULTIPROC_DIR in the environment "
                    "before prometheus_client is imported (set it in the launcher)"
                )
            if os.path.realpath(env_dir) != os.path.realpath(multiprocess_dir):
                raise RuntimeError(
                    f"multiprocess_dir {multiprocess_dir!r} differs from "
                    f"PROMETHEUS_MULTIPROC_DIR {env_dir!r}"
                )
        self.multiprocess_dir = multiprocess_dir
        if registry is None:
            registry = CollectorRegistry(auto_describe=True)
            if multiprocess_dir is None:
                ProcessCollector(registry=registry)
                PlatformCollector(registry=registry)
                GCCollector(registry=registry)
        self.registry = registry
        ns = namespace

        self.http_request_duration_seconds = Histogram(
            "http_request_duration_seconds",
            "HTTP request duration in seconds.",
            ["method", "route", "status"],
            namespace=ns,
            registry=registry,
            buckets=HTTP_BUCKETS,
        )
        self.http_requests_in_progress = Gauge(
            "http_requests_in_progress",
            "HTTP requests being served.",
            namespace=ns,
            registry=registry,
            multiprocess_mode="livesum",
        )
        self.graphql_operations_total = Counter(
            "graphql_operations_total",
            "GraphQL operations by outcome code.",
            ["operation_name", "operation_type", "outcome"],
            namespace=ns,
            registry=registry,
        )
        self.graphql_cost_requested = Histogram(
            "graphql_cost_requested",
            "Static (requested) cost of GraphQL operations, in points.",
            ["operation_name"],
            namespace=ns,
            registry=registry,
            buckets=COST_BUCKETS,
        )
        self.graphql_cost_actual = Histogram(
            "graphql_cost_actual",
            "Actual cost of executed GraphQL operations, in points.",
            ["operation_name"],
            namespace=ns,
            registry=registry,
            buckets=COST_BUCKETS,
        )
        self.graphql_refusals_total = Counter(
            "graphql_refusals_total",
            "Operations refused before execution, by error code and limit mode (enforce, or"
            " measure for what a limit in measure mode would have refused).",
            ["code", "mode"],
            namespace=ns,
            registry=registry,
        )
        self.ratelimit_decisions_total = Counter(
            "ratelimit_decisions_total",
            "Rate-limit decisions by policy.",
            ["decision", "policy"],
            namespace=ns,
            registry=registry,
        )
        self.pq_registry_lookups_total = Counter(
            "pq_registry_lookups_total",
            "Persisted-query registry lookups.",
            ["result"],
            namespace=ns,
            registry=registry,
        )
        self.dataloader_batch_size = Histogram(
            "dataloader_batch_size",
            "Keys per DataLoader batch.",
            ["loader"],
            namespace=ns,
            registry=registry,
            buckets=BATCH_BUCKETS,
        )
        self.dependency_errors_total = Counter(
            "dependency_errors_total",
            "Errors talking to a dependency.",
            ["dependency", "kind"],
            namespace=ns,
            registry=registry,
        )
        self.deprecated_field_usage_total = Counter(
            "deprecated_field_usage_total",
            "Uses of deprecated schema fields by client name.",
            ["field", "client_name"],
            namespace=ns,
            registry=registry,
        )
        self.webhook_attempts_total = Counter(
            "webhook_attempts_total",
            "Webhook delivery attempts by result (success: a 2xx answer).",
            ["result"],
            namespace=ns,
            registry=registry,
        )
        self.webhook_retries_total = Counter(
            "webhook_retries_total",
            "Webhook delivery attempts that were retries of a failed one.",
            namespace=ns,
            registry=registry,
        )
        self.webhook_deliveries_total = Counter(
            "webhook_deliveries_total",
            "Webhook deliveries that reached a final state (delivered or failed).",
            ["outcome"],
            namespace=ns,
            registry=registry,
        )
        self.webhook_endpoints_disabled_total = Counter(
            "webhook_endpoints_disabled_total",
            "Webhook endpoints disabled for failing continuously.",
            namespace=ns,
            registry=registry,
        )
        self.webhook_attempt_duration_seconds = Histogram(
            "webhook_attempt_duration_seconds",
            "Duration of webhook delivery attempts in seconds.",
            namespace=ns,
            registry=registry,
            buckets=HTTP_BUCKETS,
        )
        self.response_cache_events_total = Counter(
            "response_cache_events_total",
            "Response cache events: hit, miss, bypass, store, eviction, invalidation "
            "(one per mutation that invalidated), dropped (responses it dropped), error.",
            ["event"],
            namespace=ns,
            registry=registry,
        )
        self._route = _BoundedLabel(re.compile(r"/[A-Za-z0-9_./{}-]{0,99}"), 50)
        self._code = _BoundedLabel(_CODE)
        self._policy = _BoundedLabel(_CODE, 50)
        self._loader = _BoundedLabel(_CODE)
        self._kind = _BoundedLabel(_CODE, 50)
        self._field = _BoundedLabel(
            re.compile(r"[_A-Za-z][_0-9A-Za-z]{0,99}\.[_A-Za-z][_0-9A-Za-z]{0,99}")
        )
        self._client = _BoundedLabel(_LABEL_TEXT, 50)

    @staticmethod
    def bound_operation_name(name: str | None, registered: bool) -> str:
        """Return a label-safe operation name: the name of a registered operation, else "other".

        A registered anonymous operation is "anonymous".
        """
        if not registered:
            return OTHER
        if not name:
            return ANONYMOUS
        return name if _GRAPHQL_NAME.fullmatch(name) else OTHER

    @staticmethod
    def bound_operation_type(operation_type: str | None) -> str:
        """Return query, mutation or subscription, else "unknown"."""
        return operation_type if operation_type in OPERATION_TYPES else "unknown"

    def _child(self, metric: Any, *values: str) -> Any:
        """``metric.labels(*values)``, remembered: the same few children serve every request
        (labels() validates and locks each time; label values here are bounded sets)."""
        key = (id(metric), values)
        child = self._children.get(key)
        if child is None:
            child = metric.labels(*values)
            if len(self._children) < _MAX_CHILDREN:
                self._children[key] = child
        return child

    def observe_http(self, method: str, route: str, status: int, seconds: float) -> None:
        """Record one HTTP request (route from the server's fixed set, e.g. "/graphql")."""
        self._child(
            self.http_request_duration_seconds,
            method if method in HTTP_METHODS else OTHER,
            self._route(route),
            str(status),
        ).observe(seconds)

    def operation(
        self,
        name: str | None,
        operation_type: str | None,
        outcome: str,
        *,
        registered: bool,
        cost_requested: float | None = None,
        cost_actual: float | None = None,
    ) -> None:
        """Count one GraphQL operation and observe its requested/actual cost when known."""
        label = self.bound_operation_name(name, registered)
        self._child(
            self.graphql_operations_total,
            label,
            self.bound_operation_type(operation_type),
            self._code(outcome),
        ).inc()
        if cost_requested is not None:
            self._child(self.graphql_cost_requested, label).observe(cost_requested)
        if cost_actual is not None:
            self._child(self.graphql_cost_actual, label).observe(cost_actual)

    def refusal(self, code: str, mode: str = "enforce") -> None:
        """Count an operation refused before execution (code is an `extensions.code`); mode
        "measure" counts what a limit in measure mode would have refused."""
        if mode not in LIMIT_MODES:
            raise ValueError(f"unknown limit mode {mode!r}")
        self._child(self.graphql_refusals_total, self._code(code), mode).inc()

    def ratelimit_decision(self, decision: str, policy: str) -> None:
        """Count a rate-limit decision: allowed, throttled or error."""
        if decision not in RATELIMIT_DECISIONS:
            raise ValueError(f"unknown rate-limit decision {decision!r}")
        self._child(self.ratelimit_decisions_total, decision, self._policy(policy)).inc()

    def pq_lookup(self, hit: bool) -> None:
        """Count a persisted-query registry lookup."""
        self._child(self.pq_registry_lookups_total, "hit" if hit else "miss").inc()

    def dataloader_batch(self, loader: str, size: int) -> None:
        """Observe the number of keys in one DataLoader batch."""
        self._child(self.dataloader_batch_size, self._loader(loader)).observe(size)

    def dependency_error(self, dependency: str, kind: str) -> None:
        """Count an error talking to the database or Redis (kind: e.g. timeout, connection)."""
        if dependency not in DEPENDENCIES:
            raise ValueError(f"unknown dependency {dependency!r}")
        self._child(self.dependency_errors_total, dependency, self._kind(kind)).inc()

    def deprecated_field(self, field: str, client_name: str | None) -> None:
        """Count a use of a deprecated field ("Type.field") by a client name."""
        self._child(
            self.deprecated_field_usage_total,
            self._field(field),
            self._client(client_name) if client_name else "unknown",
        ).inc()

    def webhook_attempt(self, outcome: str, ok: bool, seconds: float, *, retried: bool) -> None:
        """Record one webhook attempt; outcome is delivered, retry, failed, disabled or lost."""
        if outcome not in WEBHOOK_OUTCOMES:
            raise ValueError(f"unknown webhook outcome {outcome!r}")
        self._child(self.webhook_attempts_total, "success" if ok else "failure").inc()
        self.webhook_attempt_duration_seconds.observe(seconds)
        if retried:
            self.webhook_retries_total.inc()
        if outcome == "delivered":
            self._child(self.webhook_deliveries_total, "delivered").inc()
        elif outcome in ("failed", "disabled"):
            self._child(self.webhook_deliveries_total, "failed").inc()
        if outcome == "disabled":
            self.webhook_endpoints_disabled_total.inc()

    def response_cache(self, event: str, count: int = 1) -> None:
        """Count response-cache events (see ``RESPONSE_CACHE_EVENTS``)."""
        if event not in RESPONSE_CACHE_EVENTS:
            raise ValueError(f"unknown response-cache event {event!r}")
        if count > 0:
            self._child(self.response_cache_events_total, event).inc(count)

    def render(self, accept: str | None = None) -> tuple[bytes, str]:
        """Return the exposition (body, content type); sums all workers in multiprocess mode.

        `accept` is the scrape's Accept header (OpenMetrics is negotiated when asked).
        """
        if self.multiprocess_dir is not None:
            return render_multiprocess(self.multiprocess_dir, accept)
        encoder, content_type = choose_encoder(accept or "")
        return encoder(self.registry), content_type
