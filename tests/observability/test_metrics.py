"""Prometheus metrics: names, bounded labels, rendering, multiprocess aggregation."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
from prometheus_client import CollectorRegistry
from prometheus_client.parser import text_string_to_metric_families

from observability.metrics import (
    Metrics,
    mark_process_dead,
    multiprocess_active,
    render_multiprocess,
    wipe_multiprocess_dir,
)

REPO_ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture
def metrics() -> Metrics:
    return Metrics(CollectorRegistry())


def sample(m: Metrics, name: str, **labels: str) -> float | None:
    return m.registry.get_sample_value(name, labels)


def test_every_instrument_is_exposed_with_its_labels(metrics: Metrics) -> None:
    metrics.observe_http("POST", "/graphql", 200, 0.012)
    metrics.operation(
        "ListOrders", "query", "OK", registered=True, cost_requested=52, cost_actual=12
    )
    metrics.refusal("COST_LIMIT_EXCEEDED")
    metrics.ratelimit_decision("throttled", "user")
    metrics.pq_lookup(hit=True)
    metrics.pq_lookup(hit=False)
    metrics.dataloader_batch("OrderByIdLoader", 17)
    metrics.dependency_error("redis", "timeout")
    metrics.deprecated_field("Order.total", "web")

    assert (
        sample(
            metrics,
            "tollgate_http_request_duration_seconds_count",
            method="POST",
            route="/graphql",
            status="200",
        )
        == 1
    )
    assert (
        sample(
            metrics,
            "tollgate_graphql_operations_total",
            operation_name="ListOrders",
            operation_type="query",
            outcome="OK",
        )
        == 1
    )
    assert sample(metrics, "tollgate_graphql_cost_requested_sum", operation_name="ListOrders") == 52
    assert sample(metrics, "tollgate_graphql_cost_actual_sum", operation_name="ListOrders") == 12
    assert (
        sample(
            metrics,
            "tollgate_graphql_cost_requested_bucket",
            operation_name="ListOrders",
            le="100.0",
        )
        == 1
    )
    assert (
        sample(
            metrics, "tollgate_graphql_refusals_total", code="COST_LIMIT_EXCEEDED", mode="enforce"
        )
        == 1
    )
    assert (
        sample(metrics, "tollgate_ratelimit_decisions_total", decision="throttled", policy="user")
        == 1
    )
    assert sample(metrics, "tollgate_pq_registry_lookups_total", result="hit") == 1
    assert sample(metrics, "tollgate_pq_registry_lookups_total", result="miss") == 1
    assert sample(metrics, "tollgate_dataloader_batch_size_sum", loader="OrderByIdLoader") == 17
    assert (
        sample(metrics, "tollgate_dependency_errors_total", dependency="redis", kind="timeout") == 1
    )
    assert (
        sample(
            metrics, "tollgate_deprecated_field_usage_total", field="Order.total", client_name="web"
        )
        == 1
    )

    body, content_type = metrics.render()
    assert content_type.startswith("text/plain; version=0.0.4")
    families = {f.name: f for f in text_string_to_metric_families(body.decode())}
    for name in (
        "tollgate_http_request_duration_seconds",
        "tollgate_graphql_operations",
        "tollgate_graphql_cost_requested",
        "tollgate_graphql_cost_actual",
        "tollgate_graphql_refusals",
        "tollgate_ratelimit_decisions",
        "tollgate_pq_registry_lookups",
        "tollgate_dataloader_batch_size",
        "tollgate_dependency_errors",
        "tollgate_deprecated_field_usage",
        "tollgate_http_requests_in_progress",
    ):
        assert name in families, name


def test_operation_names_are_bounded_to_registered_operations(metrics: Metrics) -> None:
    assert Metrics.bound_operation_name("ListOrders", registered=True) == "ListOrders"
    assert Metrics.bound_operation_name("ListOrders", registered=False) == "other"
    assert Metrics.bound_operation_name(None, registered=True) == "anonymous"
    assert Metrics.bound_operation_name("bad name\n", registered=True) == "other"
    for i in range(50):
        metrics.operation(f"AdHoc{i}", "query", "OK", registered=False, cost_requested=1)
    names = {
        s.labels["operation_name"]
        for f in metrics.registry.collect()
        if f.name == "tollgate_graphql_operations"
        for s in f.samples
    }
    assert names == {"other"}


def test_client_controlled_labels_cannot_explode(metrics: Metrics) -> None:
    for i in range(500):
        metrics.deprecated_field("Order.total", f"client-{i}")
        metrics.observe_http(f"M{i}", f"/x{i}", 200, 0.001)
    clients = {
        s.labels["client_name"]
        for f in metrics.registry.collect()
        if f.name == "tollgate_deprecated_field_usage"
        for s in f.samples
    }
    assert len(clients) <= 51 and "other" in clients
    methods = {
        s.labels["method"]
        for f in metrics.registry.collect()
        if f.name == "tollgate_http_request_duration_seconds"
        for s in f.samples
    }
    assert methods == {"other"}
    assert metrics.bound_operation_type("weird") == "unknown"


def test_tenant_or_user_ids_are_not_labels(metrics: Metrics) -> None:
    for family in metrics.registry.collect():
        for s in family.samples:
            assert not {"tenant", "subject", "user", "user_id", "tenant_id"} & s.labels.keys()


def test_unknown_decisions_and_dependencies_are_refused(metrics: Metrics) -> None:
    with pytest.raises(ValueError):
        metrics.ratelimit_decision("maybe", "user")
    with pytest.raises(ValueError):
        metrics.dependency_error("kafka", "down")


def test_default_registry_is_private_and_has_process_metrics() -> None:
    first, second = Metrics(), Metrics()  # no duplicate-registration error
    first.refusal("THROTTLED")
    assert (
        second.registry.get_sample_value(
            "tollgate_graphql_refusals_total", {"code": "THROTTLED", "mode": "enforce"}
        )
        is None
    )
    body, _ = first.render()
    assert b"python_info" in body


def test_openmetrics_is_negotiated(metrics: Metrics) -> None:
    body, content_type = metrics.render("application/openmetrics-text; version=1.0.0")
    assert content_type.startswith("application/openmetrics-text")
    assert body.endswith(b"# EOF\n")


@pytest.mark.skipif(multiprocess_active(), reason="this process already runs in multiprocess mode")
def test_multiprocess_dir_without_the_environment_is_refused(tmp_path: Path) -> None:
    with pytest.raises(RuntimeError, match="PROMETHEUS_MULTIPROC_DIR"):
        Metrics(multiprocess_dir=str(tmp_path))


WORKER = textwrap.dedent(
    """
    import os, sys
    from observability.metrics import Metrics
    m = Metrics(multiprocess_dir=sys.argv[1])
    n = int(sys.argv[2])
    for _ in range(n):
        m.operation("ListOrders", "query", "OK", registered=True, cost_requested=10, cost_actual=4)
        m.observe_http("POST", "/graphql", 200, 0.02)
    m.ratelimit_decision("allowed", "user")
    m.http_requests_in_progress.inc()
    print(os.getpid())
    """
)

RENDER = textwrap.dedent(
    """
    import sys
    from observability.metrics import Metrics
    body, content_type = Metrics(multiprocess_dir=sys.argv[1]).render()
    sys.stdout.write(content_type + "\\n" + body.decode())
    """
)


def run_python(code: str, *args: str, env_dir: Path) -> str:
    env = {**os.environ, "PROMETHEUS_MULTIPROC_DIR": str(env_dir), "PYTHONPATH": str(REPO_ROOT)}
    done = subprocess.run(
        [sys.executable, "-c", code, *args],
        cwd=REPO_ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    return done.stdout


def values_of(text: str) -> dict[tuple[str, frozenset[tuple[str, str]]], float]:
    return {
        (s.name, frozenset(s.labels.items())): s.value
        for family in text_string_to_metric_families(text)
        for s in family.samples
    }


def test_multiprocess_render_sums_two_real_worker_processes(tmp_path: Path) -> None:
    mp_dir = tmp_path / "prom"
    mp_dir.mkdir()
    (mp_dir / "counter_99999.db").write_bytes(b"junk")
    wipe_multiprocess_dir(str(mp_dir))
    assert not (mp_dir / "counter_99999.db").exists()

    pid_a = int(run_python(WORKER, str(mp_dir), "3", env_dir=mp_dir))
    pid_b = int(run_python(WORKER, str(mp_dir), "4", env_dir=mp_dir))
    assert pid_a != pid_b
    assert (mp_dir / f"counter_{pid_a}.db").exists() and (mp_dir / f"counter_{pid_b}.db").exists()

    # A third process (the one a scrape lands on) renders the sum of both.
    output = run_python(RENDER, str(mp_dir), env_dir=mp_dir)
    content_type, _, body = output.partition("\n")
    assert content_type.startswith("text/plain; version=0.0.4")
    got = values_of(body)
    op = frozenset(
        {("operation_name", "ListOrders"), ("operation_type", "query"), ("outcome", "OK")}
    )
    assert got[("tollgate_graphql_operations_total", op)] == 7
    assert (
        got[("tollgate_graphql_cost_requested_sum", frozenset({("operation_name", "ListOrders")}))]
        == 70
    )
    http = frozenset({("method", "POST"), ("route", "/graphql"), ("status", "200")})
    assert got[("tollgate_http_request_duration_seconds_count", http)] == 7
    assert (
        got[
            (
                "tollgate_ratelimit_decisions_total",
                frozenset({("decision", "allowed"), ("policy", "user")}),
            )
        ]
        == 2
    )
    assert got[("tollgate_http_requests_in_progress", frozenset())] == 2

    # Both workers exited: their live gauges go, their counters stay in the sum.
    mark_process_dead(pid_a, str(mp_dir))
    mark_process_dead(pid_b, str(mp_dir))
    body, _ = render_multiprocess(str(mp_dir))
    after = values_of(body.decode())
    assert after[("tollgate_graphql_operations_total", op)] == 7
    assert after.get(("tollgate_http_requests_in_progress", frozenset()), 0) == 0


def test_measured_refusals_keep_their_code_and_carry_the_mode(metrics: Metrics) -> None:
    metrics.refusal("TOKEN_LIMIT_EXCEEDED", mode="measure")
    metrics.refusal("TOKEN_LIMIT_EXCEEDED")
    for mode in ("measure", "enforce"):
        assert (
            sample(
                metrics, "tollgate_graphql_refusals_total", code="TOKEN_LIMIT_EXCEEDED", mode=mode
            )
            == 1
        )
    with pytest.raises(ValueError):
        metrics.refusal("TOKEN_LIMIT_EXCEEDED", mode="off")
