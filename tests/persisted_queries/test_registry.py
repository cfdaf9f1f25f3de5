"""The registry's mode table, exact errors, and its list operations, on every store."""

from __future__ import annotations

import asyncio

import pytest

from persisted_queries import (
    ManifestEntry,
    MemoryCache,
    MemoryStore,
    Mode,
    PQError,
    PQRequest,
    Registry,
    Store,
    extract,
    sha256_hex,
)
from tests.persisted_queries.conftest import AsyncPricer, Pricer, operations

OPS = operations()
ORDERS = OPS["OrdersPage"]
ORDERS_ID = sha256_hex(ORDERS)
VIEWER = OPS["ViewerProfile"]
VIEWER_ID = sha256_hex(VIEWER)
ADHOC = "query Adhoc { orders(first: 1) { nodes { internalNote } } }"
ADHOC_ID = sha256_hex(ADHOC)
EXPENSIVE = "query Expensive " + "{ a " * 80 + "}" * 80
NO_CACHE = {"Cache-Control": "private, no-cache, must-revalidate"}


def apq(hash_: str, query: str | None = None) -> PQRequest:
    params: dict[str, object] = {
        "extensions": {"persistedQuery": {"version": 1, "sha256Hash": hash_}}
    }
    if query is not None:
        params["query"] = query
    return extract(params)


def doc(document_id: str, query: str | None = None, field: str = "documentId") -> PQRequest:
    params: dict[str, object] = {field: document_id}
    if query is not None:
        params["query"] = query
    return extract(params)


def text(query: str) -> PQRequest:
    return extract({"query": query})


async def registry_with(
    store: Store,
    mode: Mode,
    *,
    pricer: Pricer | None = None,
    apq_enabled: bool = True,
    cache: MemoryCache | None = None,
) -> Registry:
    registry = Registry(
        store, mode=mode, analyse=pricer or Pricer(), apq_enabled=apq_enabled, cache=cache
    )
    report = await registry.register(
        None,
        [
            ManifestEntry(ORDERS_ID, ORDERS, "OrdersPage"),
            ManifestEntry("ViewerProfile_v1", VIEWER),
        ],
    )
    assert report.refused == []
    return registry


async def expect_error(
    registry: Registry,
    pq: PQRequest,
    code: str,
    message: str,
    status: int,
    *,
    client_name: str | None = None,
    may_run_adhoc: bool = False,
) -> PQError:
    with pytest.raises(PQError) as caught:
        await registry.resolve(pq, client_name=client_name, may_run_adhoc=may_run_adhoc)
    error = caught.value
    assert (error.code, error.status) == (code, status)
    assert message in error.message
    assert error.extensions["code"] == code
    assert error.headers == NO_CACHE
    return error


# -- ids of every form resolve to registered documents ----------------------------------


@pytest.mark.parametrize("mode", list(Mode))
@pytest.mark.parametrize(
    "pq",
    [
        apq(ORDERS_ID),
        apq("sha256:" + ORDERS_ID),
        apq(ORDERS_ID.upper()),
        doc("sha256:" + ORDERS_ID),
        doc(ORDERS_ID, field="doc_id"),
        doc(ORDERS_ID, field="id"),
        apq(ORDERS_ID, ORDERS),
        doc("sha256:" + ORDERS_ID, ORDERS),
        text(ORDERS),  # a registered text sent in full counts as registered
    ],
)
async def test_registered_document_resolves_by_every_id_form(
    store: Store, mode: Mode, pq: PQRequest
) -> None:
    registry = await registry_with(store, mode)
    resolved = await registry.resolve(pq, client_name=None, may_run_adhoc=False)
    assert resolved.text == ORDERS
    assert resolved.registered is True
    assert resolved.source == "list"
    assert resolved.document_id == ORDERS_ID
    assert resolved.cached_key == ORDERS_ID
    assert resolved.operation_name == "OrdersPage"
    assert resolved.cost == ORDERS.count("{") * 7


@pytest.mark.parametrize("field", ["documentId", "doc_id", "id"])
async def test_custom_ids_resolve_and_are_also_reachable_by_sha256(
    store: Store, field: str
) -> None:
    registry = await registry_with(store, Mode.ALLOWLIST)
    by_custom = await registry.resolve(
        doc("ViewerProfile_v1", field=field), client_name=None, may_run_adhoc=False
    )
    by_hash = await registry.resolve(apq(VIEWER_ID), client_name=None, may_run_adhoc=False)
    assert by_custom.text == by_hash.text == VIEWER
    assert by_custom.document_id == by_hash.document_id == "ViewerProfile_v1"
    assert by_custom.operation_name == "ViewerProfile"  # from the analysis


# -- open mode: Apollo's APQ protocol ---------------------------------------------------


async def test_open_mode_apq_miss_then_registration_then_hit() -> None:
    pricer = Pricer()
    registry = await registry_with(MemoryStore(), Mode.OPEN, pricer=pricer)
    await expect_error(
        registry, apq(ADHOC_ID), "PERSISTED_QUERY_NOT_FOUND", "PersistedQueryNotFound", 200
    )
    calls = pricer.calls
    stored = await registry.resolve(apq(ADHOC_ID, ADHOC), client_name=None, may_run_adhoc=False)
    assert pricer.calls == calls + 1  # analysed before it was stored
    assert (stored.text, stored.source, stored.registered) == (ADHOC, "apq", False)
    assert stored.analysis is not None and stored.analysis.ok
    hit = await registry.resolve(apq(ADHOC_ID), client_name="web", may_run_adhoc=False)
    assert (hit.text, hit.source, hit.registered, hit.cached_key) == (ADHOC, "apq", False, ADHOC_ID)
    # The GraphQL-over-HTTP dialect reaches the same APQ document.
    hit = await registry.resolve(doc("sha256:" + ADHOC_ID), client_name=None, may_run_adhoc=False)
    assert hit.text == ADHOC


async def test_open_mode_message_matches_apollo_exactly() -> None:
    registry = await registry_with(MemoryStore(), Mode.OPEN)
    error = await expect_error(
        registry, apq(ADHOC_ID), "PERSISTED_QUERY_NOT_FOUND", "PersistedQueryNotFound", 200
    )
    assert error.message == "PersistedQueryNotFound"  # urql and old Apollo Client match it exactly


async def test_apq_registration_is_shared_through_the_cache() -> None:
    cache, store = MemoryCache(), MemoryStore()
    first = await registry_with(store, Mode.OPEN, cache=cache)
    second = Registry(store, mode=Mode.OPEN, analyse=Pricer(), cache=cache)
    await first.resolve(apq(ADHOC_ID, ADHOC), client_name=None, may_run_adhoc=False)
    hit = await second.resolve(apq(ADHOC_ID), client_name=None, may_run_adhoc=False)
    assert hit.text == ADHOC


@pytest.mark.parametrize("mode", list(Mode))
@pytest.mark.parametrize(
    "pq",
    [
        apq(ORDERS_ID, ORDERS + " "),
        apq(VIEWER_ID, ORDERS),
        doc("sha256:" + VIEWER_ID, ADHOC),
        doc("ViewerProfile_v1", ORDERS),  # a custom id sent with another text
    ],
)
async def test_text_not_matching_its_id_is_a_400_hash_mismatch(
    store: Store, mode: Mode, pq: PQRequest
) -> None:
    registry = await registry_with(store, mode)
    await expect_error(
        registry,
        pq,
        "PERSISTED_QUERY_HASH_MISMATCH",
        "provided sha does not match query",
        400,
        may_run_adhoc=True,
    )


async def test_apq_registration_refused_when_too_costly() -> None:
    registry = await registry_with(MemoryStore(), Mode.OPEN)
    digest = sha256_hex(EXPENSIVE)
    resolved = await registry.resolve(apq(digest, EXPENSIVE), client_name=None, may_run_adhoc=False)
    # Not stored: the server's own checks refuse the text with COST_LIMIT_EXCEEDED.
    assert resolved.source == "adhoc" and resolved.registered is False
    assert resolved.analysis is not None and not resolved.analysis.ok
    assert "exceeds the maximum 500" in (resolved.analysis.reason or "")
    await expect_error(
        registry, apq(digest), "PERSISTED_QUERY_NOT_FOUND", "PersistedQueryNotFound", 200
    )


async def test_apq_disabled_answers_not_supported_and_runs_text_unstored() -> None:
    registry = await registry_with(MemoryStore(), Mode.OPEN, apq_enabled=False)
    await expect_error(
        registry, apq(ADHOC_ID), "PERSISTED_QUERY_NOT_SUPPORTED", "PersistedQueryNotSupported", 200
    )
    resolved = await registry.resolve(apq(ADHOC_ID, ADHOC), client_name=None, may_run_adhoc=False)
    assert (resolved.source, resolved.registered) == ("adhoc", False)
    await expect_error(
        registry, apq(ADHOC_ID), "PERSISTED_QUERY_NOT_SUPPORTED", "PersistedQueryNotSupported", 200
    )
    # Registered documents still resolve through the APQ envelope (Apollo's PQ lists).
    listed = await registry.resolve(apq(ORDERS_ID), client_name=None, may_run_adhoc=False)
    assert listed.registered is True


async def test_unknown_document_id_in_open_mode_is_not_found() -> None:
    registry = await registry_with(MemoryStore(), Mode.OPEN)
    await expect_error(
        registry, doc("nope"), "PERSISTED_QUERY_NOT_FOUND", "PersistedQueryNotFound", 200
    )


@pytest.mark.parametrize("mode", [Mode.OPEN, Mode.AUDIT])
async def test_open_and_audit_run_adhoc_text_flagged_unregistered(mode: Mode) -> None:
    registry = await registry_with(MemoryStore(), mode)
    resolved = await registry.resolve(text(ADHOC), client_name="web", may_run_adhoc=False)
    assert (resolved.text, resolved.registered, resolved.source) == (ADHOC, False, "adhoc")
    assert resolved.document_id is None
    assert resolved.cached_key == ADHOC_ID


async def test_audit_mode_flags_apq_documents_unregistered() -> None:
    registry = await registry_with(MemoryStore(), Mode.AUDIT)
    await registry.resolve(apq(ADHOC_ID, ADHOC), client_name=None, may_run_adhoc=False)
    hit = await registry.resolve(apq(ADHOC_ID), client_name=None, may_run_adhoc=False)
    assert (hit.source, hit.registered) == ("apq", False)


# -- allowlist mode ---------------------------------------------------------------------


@pytest.mark.parametrize(
    "pq", [apq(ADHOC_ID), doc("sha256:" + ADHOC_ID), doc("nope", field="doc_id")]
)
async def test_allowlist_unknown_id_is_not_in_list_never_not_found(pq: PQRequest) -> None:
    registry = await registry_with(MemoryStore(), Mode.ALLOWLIST)
    for may_run_adhoc in (False, True):
        error = await expect_error(
            registry,
            pq,
            "PERSISTED_QUERY_NOT_IN_LIST",
            "is not in the persisted query list",
            404,
            may_run_adhoc=may_run_adhoc,
        )
        assert "PersistedQueryNotFound" not in error.message


async def test_allowlist_refuses_adhoc_text_without_naming_the_schema() -> None:
    registry = await registry_with(MemoryStore(), Mode.ALLOWLIST)
    for pq in (text(ADHOC), apq(ADHOC_ID, ADHOC), doc("sha256:" + ADHOC_ID, ADHOC)):
        error = await expect_error(
            registry, pq, "PERSISTED_QUERY_NOT_IN_LIST", "Only registered operations", 403
        )
        for word in ("orders", "internalNote", "Adhoc", "nodes"):
            assert word not in error.message
        assert error.extensions == {"code": "PERSISTED_QUERY_NOT_IN_LIST"}


async def test_allowlist_lets_adhoc_callers_run_text_unregistered() -> None:
    pricer = Pricer()
    registry = await registry_with(MemoryStore(), Mode.ALLOWLIST, pricer=pricer)
    calls = pricer.calls
    resolved = await registry.resolve(apq(ADHOC_ID, ADHOC), client_name=None, may_run_adhoc=True)
    assert (resolved.text, resolved.registered, resolved.source) == (ADHOC, False, "adhoc")
    assert pricer.calls == calls  # nothing stored, so nothing analysed here
    await expect_error(
        registry, apq(ADHOC_ID), "PERSISTED_QUERY_NOT_IN_LIST", "not in the persisted", 404
    )


async def test_allowlist_ignores_apq_documents_stored_in_open_mode() -> None:
    cache, store = MemoryCache(), MemoryStore()
    open_registry = await registry_with(store, Mode.OPEN, cache=cache)
    await open_registry.resolve(apq(ADHOC_ID, ADHOC), client_name=None, may_run_adhoc=False)
    strict = Registry(store, mode=Mode.ALLOWLIST, analyse=Pricer(), cache=cache)
    await expect_error(strict, apq(ADHOC_ID), "PERSISTED_QUERY_NOT_IN_LIST", "not in", 404)


async def test_no_id_and_no_query_is_a_400() -> None:
    registry = await registry_with(MemoryStore(), Mode.OPEN)
    await expect_error(registry, extract({}), "BAD_REQUEST", "non-empty `query`", 400)


# -- per-client lists -------------------------------------------------------------------


async def test_lists_are_per_client_with_fallback_to_default(store: Store) -> None:
    registry = await registry_with(store, Mode.ALLOWLIST)
    ios_only = OPS["RateLimitStatus"]
    ios_id = sha256_hex(ios_only)
    report = await registry.register("ios", [ManifestEntry(ios_id, ios_only)])
    assert report.added == [ios_id]
    assert (
        await registry.resolve(apq(ios_id), client_name="ios", may_run_adhoc=False)
    ).client_name == "ios"
    for other in ("web", None, ""):
        await expect_error(
            registry, apq(ios_id), "PERSISTED_QUERY_NOT_IN_LIST", "not in", 404, client_name=other
        )
    fallback = await registry.resolve(apq(ORDERS_ID), client_name="ios", may_run_adhoc=False)
    assert (fallback.client_name, fallback.registered) == ("default", True)
    # Hive's app~version~hash ids name the client inside the id.
    hive = await registry.resolve(doc(f"ios~2.3.1~{ios_id}"), client_name=None, may_run_adhoc=False)
    assert hive.text == ios_only


async def test_a_clients_own_id_wins_over_the_default_list(store: Store) -> None:
    registry = await registry_with(store, Mode.ALLOWLIST)
    await registry.register("web", [ManifestEntry("ViewerProfile_v1", OPS["RateLimitStatus"])])
    web = await registry.resolve(doc("ViewerProfile_v1"), client_name="web", may_run_adhoc=False)
    default = await registry.resolve(doc("ViewerProfile_v1"), client_name=None, may_run_adhoc=False)
    assert web.text == OPS["RateLimitStatus"]
    assert default.text == VIEWER


# -- registration, listing, diff, retire --------------------------------------------------


async def test_register_reports_added_unchanged_and_refused_with_reasons(store: Store) -> None:
    registry = Registry(store, mode=Mode.ALLOWLIST, analyse=AsyncPricer())
    entries = [ManifestEntry(sha256_hex(body), body) for body in OPS.values()]
    first = await registry.register("web", entries)
    assert sorted(first.added) == sorted(e.id for e in entries)
    bad_text = "query Broken { syntax error }"
    second = await registry.register(
        "web",
        [
            *entries,
            ManifestEntry(sha256_hex(EXPENSIVE), EXPENSIVE),
            ManifestEntry("Broken", bad_text),
            ManifestEntry(entries[0].id, ADHOC),  # a sha256 id that is not the text's
            ManifestEntry("ViewerProfile_v1", VIEWER),
            ManifestEntry("ViewerProfile_v1", ORDERS),  # same id, another text, same batch
        ],
    )
    assert sorted(second.unchanged) == sorted(e.id for e in entries)
    assert second.added == ["ViewerProfile_v1"]
    refused = dict(second.refused)
    assert (
        refused[sha256_hex(EXPENSIVE)] == f"cost {EXPENSIVE.count('{') * 7} exceeds the maximum 500"
    )
    assert refused["Broken"].startswith("Syntax Error")
    assert "not the sha256 of the text" in refused[entries[0].id]
    assert "twice with different texts" in refused["ViewerProfile_v1"]
    third = await registry.register("web", [ManifestEntry("ViewerProfile_v1", ORDERS)])
    assert third.refused == [
        ("ViewerProfile_v1", "the id is already registered with another text; ids are immutable")
    ]
    assert (
        await registry.resolve(doc("ViewerProfile_v1"), client_name="web", may_run_adhoc=False)
    ).text == VIEWER


async def test_dry_run_and_all_or_nothing_write_nothing(store: Store) -> None:
    registry = Registry(store, mode=Mode.ALLOWLIST, analyse=Pricer())
    entry = ManifestEntry(ORDERS_ID, ORDERS)
    dry = await registry.register(None, [entry], dry_run=True)
    assert dry.added == [ORDERS_ID]
    atomic = await registry.register(
        None, [entry, ManifestEntry("x", EXPENSIVE)], all_or_nothing=True
    )
    assert atomic.added == [ORDERS_ID] and atomic.refused[0][0] == "x"
    assert await registry.list() == []
    await expect_error(registry, apq(ORDERS_ID), "PERSISTED_QUERY_NOT_IN_LIST", "not in", 404)


async def test_list_per_client_and_for_all(store: Store) -> None:
    registry = await registry_with(store, Mode.ALLOWLIST)
    await registry.register("ios", [ManifestEntry("RL", OPS["RateLimitStatus"])])
    assert [d.document_id for d in await registry.list("default")] == sorted(
        [ORDERS_ID, "ViewerProfile_v1"]
    )
    everything = await registry.list()
    assert [(d.client_name, d.document_id) for d in everything] == [
        ("default", "ViewerProfile_v1"),  # sorted by code point: "V" < "d"
        ("default", ORDERS_ID),
        ("ios", "RL"),
    ]
    rl = everything[-1]
    assert (rl.sha256, rl.body, rl.operation_name) == (
        sha256_hex(OPS["RateLimitStatus"]),
        OPS["RateLimitStatus"],
        "RateLimitStatus",
    )
    assert rl.created_at is not None and rl.retired_at is None


async def test_diff_shows_added_removed_cost_changes_and_conflicts(store: Store) -> None:
    pricer = Pricer()
    registry = await registry_with(store, Mode.ALLOWLIST, pricer=pricer)
    catalog = OPS["ProductCatalog"]
    manifest = [
        ManifestEntry(ORDERS_ID, ORDERS),
        ManifestEntry(sha256_hex(catalog), catalog),
        ManifestEntry("Too", EXPENSIVE),
    ]
    diff = await registry.diff(None, manifest)
    assert diff.added == [sha256_hex(catalog)]
    assert diff.removed == ["ViewerProfile_v1"]
    assert diff.changed_cost == []
    assert [id_ for id_, _ in diff.refused] == ["Too"]
    pricer.factor = 2  # the cost model changed since registration
    diff = await registry.diff(None, [*manifest, ManifestEntry("ViewerProfile_v1", ORDERS)])
    old = ORDERS.count("{") * 7
    assert diff.changed_cost == [(ORDERS_ID, old, old * 2)]
    assert diff.conflicts == ["ViewerProfile_v1"]
    assert diff.removed == []
    # Registering again re-prices: the running registry serves the new cost.
    report = await registry.register(None, [ManifestEntry(ORDERS_ID, ORDERS)])
    assert report.repriced == [(ORDERS_ID, old, old * 2)]
    assert (
        await registry.resolve(apq(ORDERS_ID), client_name=None, may_run_adhoc=False)
    ).cost == old * 2


async def test_retire_by_ids_and_everything_not_in_a_manifest(store: Store) -> None:
    registry = await registry_with(store, Mode.ALLOWLIST)
    await registry.resolve(apq(ORDERS_ID), client_name=None, may_run_adhoc=False)  # cached
    assert await registry.retire(None, ["sha256:" + ORDERS_ID.upper(), "unknown"]) == [ORDERS_ID]
    await expect_error(registry, apq(ORDERS_ID), "PERSISTED_QUERY_NOT_IN_LIST", "not in", 404)
    assert [d.document_id for d in await registry.list(None)] == ["ViewerProfile_v1"]
    retired = await registry.list("default", include_retired=True)
    assert {d.document_id: d.retired_at is not None for d in retired} == {
        ORDERS_ID: True,
        "ViewerProfile_v1": False,
    }
    # Re-registering the same text reactivates it.
    report = await registry.register(None, [ManifestEntry(ORDERS_ID, ORDERS)])
    assert report.reactivated == [ORDERS_ID]
    assert (
        await registry.resolve(apq(ORDERS_ID), client_name=None, may_run_adhoc=False)
    ).registered
    keep = [ManifestEntry(ORDERS_ID, ORDERS)]
    assert await registry.retire(None, manifest=keep, dry_run=True) == ["ViewerProfile_v1"]
    assert await registry.retire(None, manifest=keep) == ["ViewerProfile_v1"]
    assert [d.document_id for d in await registry.list()] == [ORDERS_ID]
    with pytest.raises(ValueError, match="needs the ids"):
        await registry.retire(None)


# -- the hot path -------------------------------------------------------------------------


class CountingStore(MemoryStore):
    """A memory store that counts look-ups and version reads."""

    def __init__(self) -> None:
        super().__init__()
        self.lookups = 0
        self.version_reads = 0

    async def lookup(self, client_names, key):  # type: ignore[no-untyped-def]
        self.lookups += 1
        return await super().lookup(client_names, key)

    async def version(self) -> int:
        self.version_reads += 1
        return await super().version()


async def test_cached_documents_resolve_without_store_io() -> None:
    store = CountingStore()
    registry = Registry(store, mode=Mode.ALLOWLIST, analyse=Pricer(), check_interval=60)
    await registry.register(None, [ManifestEntry(ORDERS_ID, ORDERS)])
    pq = apq(ORDERS_ID)
    await registry.resolve(pq, client_name="web", may_run_adhoc=False)
    lookups, versions = store.lookups, store.version_reads
    for _ in range(2_000):
        resolved = await registry.resolve(pq, client_name="web", may_run_adhoc=False)
    assert resolved.text == ORDERS
    assert (store.lookups, store.version_reads) == (lookups, versions)


async def test_misses_are_remembered_until_the_lists_change() -> None:
    store = CountingStore()
    registry = Registry(store, mode=Mode.ALLOWLIST, analyse=Pricer(), check_interval=60)
    for _ in range(50):
        with pytest.raises(PQError):
            await registry.resolve(apq(ADHOC_ID), client_name=None, may_run_adhoc=False)
    assert store.lookups == 1


async def test_the_watcher_sees_another_workers_registration_within_a_second() -> None:
    store = CountingStore()
    worker = Registry(store, mode=Mode.ALLOWLIST, analyse=Pricer(), check_interval=0.2)
    other = Registry(store, mode=Mode.ALLOWLIST, analyse=Pricer(), check_interval=0.2)
    worker.start()
    try:
        await asyncio.sleep(0.05)  # the first version read
        with pytest.raises(PQError):
            await worker.resolve(apq(ORDERS_ID), client_name=None, may_run_adhoc=False)
        reads = store.version_reads
        for _ in range(100):  # requests never read the version themselves
            with pytest.raises(PQError):
                await worker.resolve(apq(ORDERS_ID), client_name=None, may_run_adhoc=False)
        # Without the watcher each of them past check_interval would; at most one tick of
        # the watcher (every 0.2 s) can fall inside this loop of dict look-ups.
        assert store.version_reads - reads <= 1
        await other.register(None, [ManifestEntry(ORDERS_ID, ORDERS)])
        deadline = asyncio.get_running_loop().time() + 1.0
        while True:
            try:
                resolved = await worker.resolve(
                    apq(ORDERS_ID), client_name=None, may_run_adhoc=False
                )
                break
            except PQError:
                assert asyncio.get_running_loop().time() < deadline, "not seen within 1 s"
                await asyncio.sleep(0.02)
        assert resolved.text == ORDERS
    finally:
        await worker.stop()
    assert worker._watcher is None
