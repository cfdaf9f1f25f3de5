"""The variants harness builds the configurations it claims and computes its ratios right."""

from __future__ import annotations

import os
import sqlite3
from pathlib import Path

import orjson
import pytest

from bench import variants
from bench.run import BIG_CAPACITY
from guards.limits import Limits, Mode
from persisted_queries import load_manifest
from server.settings import Settings

DB = Path("/tmp/bench.db")


def settings_for(config: str, monkeypatch: pytest.MonkeyPatch) -> Settings:
    """The Settings the server process would read from the harness's environment."""
    env = variants.server_env(DB, config, base={"TOLLGATE_REDIS_URL": "redis://elsewhere"})
    for key in [k for k in os.environ if k.startswith("TOLLGATE_")]:
        monkeypatch.delenv(key)
    for key, value in env.items():
        if key.startswith("TOLLGATE_"):
            monkeypatch.setenv(key, value)
    return Settings()


def test_inherited_tollgate_variables_do_not_leak_into_a_server() -> None:
    env = variants.server_env(DB, "default", base={"TOLLGATE_REDIS_URL": "x", "PATH": "/bin"})
    assert "TOLLGATE_REDIS_URL" not in env
    assert env["PATH"] == "/bin"
    assert env["TOLLGATE_DATABASE_URL"] == f"sqlite+aiosqlite:///{DB}"
    assert env["TOLLGATE_WORKERS"] == "1"


def test_default_is_guarded_with_the_memory_limiter_and_observability_on(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    settings = settings_for("default", monkeypatch)
    assert settings.ratelimit and settings.redis_url is None
    assert settings.user_capacity == BIG_CAPACITY and settings.tenant_capacity == BIG_CAPACITY
    assert settings.access_log and settings.metrics and settings.otlp_endpoint is None
    assert Limits.from_mapping(settings.limits) == Limits()


def test_unguarded_switches_off_the_limiter_and_every_named_limit(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    settings = settings_for("unguarded", monkeypatch)
    limits = Limits.from_mapping(settings.limits)
    assert not settings.ratelimit
    for name in ("max_cost", "max_nodes", "max_depth", "max_aliases", "max_tokens"):
        assert getattr(limits, name).mode is Mode.OFF, name
    assert limits.max_bytes.mode is Mode.ENFORCE  # only the brief's limits are switched off


def test_rate_limiter_and_observability_configurations(monkeypatch: pytest.MonkeyPatch) -> None:
    none = settings_for("ratelimit_none", monkeypatch)
    assert not none.ratelimit and Limits.from_mapping(none.limits) == Limits()
    redis = settings_for("ratelimit_redis", monkeypatch)
    assert redis.ratelimit and redis.redis_url == variants.REDIS_URL
    assert redis.user_capacity == BIG_CAPACITY and redis.user_restore_rate >= BIG_CAPACITY
    off = settings_for("observability_off", monkeypatch)
    assert not off.access_log and not off.metrics and off.ratelimit


def test_every_measurement_and_comparison_names_something_that_exists() -> None:
    names = {m.name for m in variants.MEASUREMENTS}
    assert len(names) == len(variants.MEASUREMENTS)
    for m in variants.MEASUREMENTS:
        assert m.config in variants.CONFIGS and m.config in variants.LIMITER_ON
    for c in variants.COMPARISONS:
        assert {c.numerator, c.denominator} <= names, c.name
    # The persisted id is only registered on the DB copy: persisted requests must go there.
    for m in variants.MEASUREMENTS:
        if m.persisted:
            assert m.config in variants.REGISTERED_CONFIGS


def test_persisted_body_carries_the_id_pq_push_registers() -> None:
    path = variants.OPERATIONS_DIR / f"{variants.OPERATION}.graphql"
    text = variants.read_operation(variants.OPERATION, variants.OPERATIONS_DIR)
    (entry,) = load_manifest(path)
    body = orjson.loads(variants.persisted_body(text))
    assert body == {"documentId": entry.id, "variables": {"first": 20}}
    sent = orjson.loads(variants.text_body(text))
    assert sent["query"] == entry.body and sent["operationName"] == "OrdersPage"


def test_summarise_reports_mean_and_spread() -> None:
    assert variants.summarise([90.0, 110.0]) == {
        "mean": 100.0,
        "min": 90.0,
        "max": 110.0,
        "spread_pct": 20.0,
    }
    assert variants.summarise([None, 4.0])["mean"] == 4.0
    assert variants.summarise([None])["mean"] is None


def test_compare_by_throughput_and_by_cpu() -> None:
    comparison = variants.Comparison("a/b", "a", "b", 0.9, "test")
    rps = {"a": [18.0, 20.0], "b": [20.0, 20.0]}
    cpu = {"a": [50.0, 50.0], "b": [40.0, 50.0]}
    result = variants.compare(comparison, rps, cpu)
    assert result["by_rps"] == 0.95 and result["by_rps_per_round"] == [0.9, 1.0]
    # CPU is inverted: a costs 50 ms where b costs 45 on average, so a is at 0.9 of b.
    assert result["by_cpu"] == 0.9 and result["by_cpu_per_round"] == [0.8, 1.0]
    assert result["met_by_rps"] is True and result["met_by_cpu"] is True
    missed = variants.compare(variants.Comparison("x", "a", "b", 1.3, "t"), rps, cpu)
    assert missed["met_by_rps"] is False
    info = variants.compare(variants.Comparison("x", "a", "b", None, "t"), rps, cpu)
    assert info["met_by_rps"] is None and info["by_rps"] == 0.95
    empty = variants.compare(comparison, {"a": [0.0], "b": [10.0]}, {"a": [None], "b": [1.0]})
    assert empty["by_rps"] is None and empty["met_by_cpu"] is None


def test_server_timing_is_parsed_and_shared_out_of_total() -> None:
    header = "pq;dur=1.5, gate;dur=0.5, cost;desc=x;dur=0.2, ratelimit, total;dur=10"
    parsed = variants.parse_server_timing(header)
    assert parsed == {"pq": 1.5, "gate": 0.5, "cost": 0.2, "ratelimit": 0.0, "total": 10.0}
    shares = variants.timing_shares([parsed, {"pq": 0.5, "cost": 0.2, "total": 30.0}])
    assert shares["responses"] == 2
    assert shares["mean_ms"]["total"] == 20.0 and shares["mean_ms"]["gate"] == 0.25
    assert shares["share_of_total"]["pq"] == 0.05 and shares["share_of_total"]["cost"] == 0.01
    assert "total" not in shares["share_of_total"]
    assert variants.share_checks({"s": shares}) == {"s": {"cost": True}}
    assert variants.timing_shares([])["responses"] == 0


def test_copy_database_copies_committed_rows(tmp_path: Path) -> None:
    source, target = tmp_path / "a.db", tmp_path / "b.db"
    with sqlite3.connect(source) as db:
        db.execute("PRAGMA journal_mode=WAL")
        db.execute("CREATE TABLE t (x INTEGER)")
        db.execute("INSERT INTO t VALUES (42)")
    variants.copy_database(source, target)
    with sqlite3.connect(target) as db:
        assert db.execute("SELECT x FROM t").fetchall() == [(42,)]


def test_interleaved_order_visits_each_target_equally_from_shifting_starts() -> None:
    order = variants.interleaved_order(["a", "b", "c"], 3)
    assert order == ["a", "b", "c", "b", "c", "a", "c", "a", "b"]
    assert all(order.count(name) == 3 for name in "abc")
    bursts = variants.interleaved_order(["a", "b"], 5, burst=2)
    assert bursts == ["a", "a", "b", "b", "b", "b", "a", "a", "a", "b"]


def test_sequential_summary_takes_the_median_wall_time() -> None:
    timing = {"pq": 1.0, "total": 10.0}
    summary = variants.sequential_summary([(30.0, timing), (10.0, timing), (20.0, timing)])
    assert summary["wall_ms_median"] == 20.0 and summary["wall_ms_mean"] == 20.0
    assert summary["responses"] == 3 and summary["share_of_total"]["pq"] == 0.1
    walls = variants.sequential_summary([(float(ms), timing) for ms in range(1, 21)])
    assert walls["wall_ms_p10"] == 2.1 and len(walls["wall_ms_deciles"]) == 9
    comparison = variants.Comparison("a/b", "a", "b", 1.3, "t")
    rps = {"a": [1.0], "b": [1.0]}
    result = variants.compare(comparison, rps, rps, {"a": 10.0, "b": 15.0})
    assert result["by_sequential"] == 1.5 and result["met_by_sequential"] is True


def test_only_the_cached_configuration_runs_the_response_cache(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    for config in variants.CONFIGS:
        on = config in ("cached", "cached_redis")
        assert settings_for(config, monkeypatch).response_cache == on, config
    cached = {m.name: m for m in variants.MEASUREMENTS}
    assert cached["cached"].operation == cached["uncached"].operation == "ProductCatalog"
    assert cached["uncached"].config == "default"
