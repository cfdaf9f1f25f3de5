"""The soak's pure parts: the operation mix, error classification, percentiles, the summary."""

from __future__ import annotations

import random
import uuid
from collections import Counter
from pathlib import Path

import orjson
import pytest

from bench import soak
from bench.soak import OK, THROTTLED, Caller, Mix, Sample, classify, percentile, summarise
from tests.services import REDIS_URL, require_redis

THROTTLED_BODY = {
    "errors": [{"message": "Throttled", "extensions": {"code": "THROTTLED", "retryAfter": 2}}]
}


# --------------------------------------------------------------------------- the mix


def test_mix_draws_each_operation_in_proportion_to_its_weight() -> None:
    mix = Mix(soak.DEFAULT_MIX)
    rng = random.Random(42)
    draws = Counter(mix.pick(rng) for _ in range(40_000))
    assert set(draws) == {name for name, _ in soak.DEFAULT_MIX}
    for name, share in mix.shares().items():
        assert draws[name] / 40_000 == pytest.approx(share, abs=0.01), name
    assert sum(mix.shares().values()) == pytest.approx(1.0)
    assert mix.shares()["CreateOrder"] == pytest.approx(0.05)


def test_mix_is_reproducible_from_the_seed_and_never_picks_a_zero_share() -> None:
    mix = Mix([("A", 1), ("B", 3)])
    first = [mix.pick(random.Random("s:1")) for _ in range(5)]
    assert first == [mix.pick(random.Random("s:1")) for _ in range(5)]
    assert {Mix([("Only", 7)]).pick(random.Random(i)) for i in range(50)} == {"Only"}
    with pytest.raises(ValueError):
        Mix([("A", 0)])
    with pytest.raises(ValueError):
        Mix([])


def test_parse_mix_reads_name_weight_pairs_and_refuses_nonsense() -> None:
    assert soak.parse_mix("OrdersPage=3, CreateOrder=1") == (("OrdersPage", 3), ("CreateOrder", 1))
    for bad in ("", "OrdersPage", "OrdersPage=0", "A=1,A=2", "=3", "A=x"):
        with pytest.raises(ValueError):
            soak.parse_mix(bad)


def test_default_mix_names_only_contract_operations() -> None:
    for name, _ in soak.DEFAULT_MIX:
        assert (soak.run.OPERATIONS_DIR / f"{name}.graphql").exists(), name


def test_create_order_bodies_use_unique_keys_and_the_products_currency() -> None:
    caller = Caller("acme", "customer", "t", (("UHJvZHVjdDox", "EUR"), ("UHJvZHVjdDoy", "USD")))
    rng = random.Random(1)
    bodies = [
        orjson.loads(soak.request_body("CreateOrder", "mutation", caller, rng, f"k-{i}"))
        for i in range(20)
    ]
    inputs = [body["variables"]["input"] for body in bodies]
    assert len({item["idempotencyKey"] for item in inputs}) == 20
    prices = dict(caller.products)
    for item in inputs:
        (line,) = item["items"]
        assert line["quantity"] == 1
        assert prices[line["productId"]] == item["currency"]
    assert all(body["operationName"] == "CreateOrder" for body in bodies)
    page = orjson.loads(soak.request_body("OrdersPage", "query", caller, rng, "unused"))
    assert page["variables"] == {"first": 20}


# --------------------------------------------------------------------------- classification


@pytest.mark.parametrize(
    ("status", "payload", "expected"),
    [
        (200, {"data": {"viewer": {"id": "x"}}}, OK),
        (
            200,
            {"data": {"createOrder": {"userErrors": [{"code": "INSUFFICIENT_STOCK"}]}}},
            OK,
        ),
        (429, THROTTLED_BODY, THROTTLED),
        (200, THROTTLED_BODY, THROTTLED),
        (429, {"errors": []}, "http 429 without THROTTLED"),
        (500, {"errors": [{"extensions": {"code": "INTERNAL_SERVER_ERROR"}}]}, "http 500"),
        (503, THROTTLED_BODY, "http 503"),
        (401, None, "http 401"),
        (0, None, "http 0"),
        (
            200,
            {"data": None, "errors": [{"message": "x", "extensions": {"code": "TIMEOUT"}}]},
            "graphql TIMEOUT",
        ),
        (
            200,
            {"data": {"viewer": None}, "errors": [{"extensions": {"code": "FORBIDDEN"}}]},
            "graphql FORBIDDEN",
        ),
        (
            429,
            {"errors": [*THROTTLED_BODY["errors"], {"message": "no code"}]},
            "graphql NO_CODE",
        ),
        (200, {"data": None}, "http 200 without data"),
        (200, ["not", "an", "object"], "http 200: body is not a JSON object"),
    ],
)
def test_only_200_and_429_with_throttled_or_user_errors_are_acceptable(
    status: int, payload: object, expected: str
) -> None:
    outcome = classify(status, payload)
    assert outcome == expected
    assert soak.is_error(outcome) is (expected not in (OK, THROTTLED))


def test_user_error_codes_are_collected_from_every_payload() -> None:
    payload = {
        "data": {
            "createOrder": {
                "userErrors": [{"code": "INSUFFICIENT_STOCK"}, {"code": "INVALID_INPUT"}]
            },
            "viewer": {"id": "x"},
        }
    }
    assert soak.user_error_codes(payload) == ["INSUFFICIENT_STOCK", "INVALID_INPUT"]
    assert soak.user_error_codes(THROTTLED_BODY) == []
    assert soak.user_error_codes(None) == []


# --------------------------------------------------------------------------- percentiles


def test_percentile_is_nearest_rank() -> None:
    values = [float(v) for v in range(1, 101)]  # 1..100
    assert percentile(values, 50) == 50.0
    assert percentile(values, 99) == 99.0
    assert percentile(values, 100) == 100.0
    assert percentile(values, 0.5) == 1.0
    assert percentile([7.0], 99) == 7.0
    assert percentile([1.0, 2.0, 3.0, 4.0], 50) == 2.0
    assert percentile([1.0, 2.0, 3.0, 4.0], 51) == 3.0
    assert percentile([], 50) is None
    for bad in (0, -1, 100.5):
        with pytest.raises(ValueError):
            percentile(values, bad)


def test_percentile_tail_is_not_hidden_by_a_small_sample() -> None:
    # One slow request in 50 is the slowest 2%: p99 must report it, p50 must not.
    values = sorted([0.01] * 49 + [2.0])
    assert percentile(values, 99) == 2.0
    assert percentile(values, 50) == 0.01


# --------------------------------------------------------------------------- the summary


def test_summary_counts_statuses_outcomes_and_non_429_errors() -> None:
    samples = [
        *(Sample("OrdersPage", OK, 200, 0.010 * (i + 1)) for i in range(10)),
        *(Sample("OrdersPage", THROTTLED, 429, 0.001) for _ in range(5)),
        Sample("ViewerProfile", OK, 200, 0.004),
        Sample("ViewerProfile", "graphql TIMEOUT", 200, 9.0),
        Sample("CreateOrder", "exception ReadTimeout", 0, 10.0),
    ]
    summary = summarise(samples, elapsed_s=2.0)
    assert summary["requests"] == 18
    assert (summary["served"], summary["throttled"], summary["errors"]) == (11, 5, 2)
    assert summary["rps"] == 9.0
    assert summary["served_rps"] == 5.5
    assert summary["status_counts"] == {"0": 1, "200": 12, "429": 5}
    assert summary["non_429_errors"] == 2
    assert summary["errors_by_kind"] == {"graphql TIMEOUT": 1, "exception ReadTimeout": 1}
    orders = summary["operations"]["OrdersPage"]
    assert (orders["requests"], orders["served"], orders["throttled"]) == (15, 10, 5)
    # Served latencies leave the quick 429s out; "all" keeps them.
    assert orders["latency_served"]["p50_ms"] == 50.0
    assert orders["latency_served"]["p99_ms"] == 100.0
    assert orders["latency_all"]["p50_ms"] == 30.0
    assert summary["operations"]["CreateOrder"]["latency_served"]["p50_ms"] is None
    text = soak.render(summary)
    assert "non-429 errors: 2" in text
    assert "error graphql TIMEOUT: 1" in text


def test_a_clean_run_reports_zero_errors() -> None:
    samples = [Sample("RateLimitStatus", OK, 200, 0.002), Sample("OrdersPage", THROTTLED, 429, 0)]
    summary = summarise(samples, elapsed_s=1.0)
    assert summary["non_429_errors"] == 0
    assert summary["errors_by_kind"] == {}
    assert soak.render(summary).endswith("non-429 errors: 0")


# --------------------------------------------------------------------------- configuration


def test_server_env_is_the_app_role_shared_redis_and_default_budgets(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("TOLLGATE_USER_CAPACITY", "999999999")
    monkeypatch.setenv("PROMETHEUS_MULTIPROC_DIR", "/elsewhere")
    env = soak.server_env("postgresql+asyncpg://tollgate_app@h/db", "s" * 40, Path("/tmp/m"))
    assert env["TOLLGATE_DATABASE_URL"] == "postgresql+asyncpg://tollgate_app@h/db"
    assert env["TOLLGATE_REDIS_URL"] == soak.REDIS_URL
    assert env["TOLLGATE_ACCESS_LOG"] == "false"
    assert env["PROMETHEUS_MULTIPROC_DIR"] == "/tmp/m"
    # Nothing from the caller's environment changes the budgets under test.
    assert "TOLLGATE_USER_CAPACITY" not in env
    assert not any(key.startswith("TOLLGATE_") for key in soak.base_env())


def test_cli_defaults_match_the_requirement() -> None:
    args = soak.parse_args([])
    assert (args.duration, args.concurrency) == (60.0, 32)
    assert args.output.name == "soak.json"
    with pytest.raises(SystemExit):
        soak.parse_args(["--duration", "0"])


def test_cleanup_deletes_only_the_runs_rate_limit_keys() -> None:
    """Against the real Redis: keys naming the run's tenants go, anyone else's stay."""
    require_redis()
    import redis

    mine, other = uuid.uuid4(), uuid.uuid4()
    keys = {
        f"{soak.RATE_LIMIT_PREFIX}user:user:{mine.hex}:{uuid.uuid4()}": True,
        f"{soak.RATE_LIMIT_PREFIX}tenant:tenant:{mine.hex}": True,
        f"{soak.RATE_LIMIT_PREFIX}user:user:{other.hex}:{uuid.uuid4()}": False,
    }
    client = redis.Redis.from_url(REDIS_URL)
    try:
        for key in keys:
            client.set(key, "1", px=60_000)
        assert soak.delete_rate_limit_keys(REDIS_URL, [str(mine)]) == 2
        for key, deleted in keys.items():
            assert bool(client.exists(key)) is not deleted, key
    finally:
        client.delete(*keys)
        client.close()


def test_overrides_are_tollgate_settings_only_and_win() -> None:
    overrides = soak.parse_overrides(["TOLLGATE_USER_RESTORE_RATE=20", "TOLLGATE_LIMITS={}"])
    assert overrides == {"TOLLGATE_USER_RESTORE_RATE": "20", "TOLLGATE_LIMITS": "{}"}
    env = soak.server_env("u", "s", Path("/m"), {"TOLLGATE_ACCESS_LOG": "true"})
    assert env["TOLLGATE_ACCESS_LOG"] == "true"
    for bad in ("PATH=/tmp", "TOLLGATE_X"):
        with pytest.raises(ValueError):
            soak.parse_overrides([bad])
