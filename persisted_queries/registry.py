"""The registry: resolves a request's document under the configured mode, and manages the lists.

Modes (DESIGN.md "Persisted queries"), for a request carrying an id and/or a text:

| request | open | audit | allowlist |
|---|---|---|---|
| registered id (or registered text) | run, registered | run, registered | run, registered |
| id with a text that does not hash to it | 400 HASH_MISMATCH | same | same |
| unknown sha256 id, APQ on, no text | 200 PersistedQueryNotFound | same | 404 NOT_IN_LIST |
| unknown APQ id, APQ off, no text | 200 PersistedQueryNotSupported | same | 404 NOT_IN_LIST |
| unknown documentId/doc_id/id, no text | 200 PersistedQueryNotFound | same | 404 NOT_IN_LIST |
| sha256 id + text, APQ on | analyse, store as APQ, run unregistered | same | ad-hoc rule below |
| ad-hoc text | run unregistered | run unregistered, log | 403 NOT_IN_LIST unless may_run_adhoc |

APQ documents are untrusted: they live in the cache (never in the store), count as
unregistered, and are ignored in allowlist mode.
"""

from __future__ import annotations

import asyncio
import contextlib
import inspect
import logging
import time
from collections.abc import Awaitable, Callable, Iterable, Sequence
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Literal

from persisted_queries.errors import (
    PQError,
    adhoc_refused,
    bad_request,
    hash_mismatch,
    not_found,
    not_in_list,
    not_supported,
)
from persisted_queries.ids import is_sha256, normalise_id, sha256_hex, split_hive_id
from persisted_queries.manifest import ManifestEntry
from persisted_queries.protocol import PQRequest
from persisted_queries.stores import Cache, MemoryCache, Store, StoredDocument

__all__ = ["Analysis", "Diff", "Mode", "PQError", "RegisterReport", "Registry", "Resolved"]

logger = logging.getLogger(__name__)

DEFAULT_CLIENT = "default"
Documents = list[StoredDocument]


class Mode(StrEnum):
    """How ad-hoc documents are treated: allowed, allowed but audited, or refused."""

    OPEN = "open"
    AUDIT = "audit"
    ALLOWLIST = "allowlist"


@dataclass(frozen=True, slots=True)
class Analysis:
    """The application's verdict on a text: parsed, validated and priced (worst case)."""

    ok: bool
    cost: int
    operation_name: str | None
    reason: str | None = None


Analyser = Callable[[str], Awaitable[Analysis]] | Callable[[str], Analysis]


@dataclass(frozen=True, slots=True)
class Resolved:
    """The document to run.

    ``registered`` is True only for documents of a trusted list; ``cached_key`` (the text's
    sha256) keys the server's parse/validation/plan caches; ``source`` tells a list
    document from an APQ one and from ad-hoc text; ``cost`` and ``operation_name`` are the
    registration-time values of list documents; ``analysis`` is set when resolving
    already analysed the text (APQ registration), so the server need not do it twice.
    """

    text: str
    document_id: str | None
    registered: bool
    cached_key: str
    source: Literal["list", "apq", "adhoc"] = "adhoc"
    operation_name: str | None = None
    cost: int | None = None
    client_name: str | None = None
    analysis: Analysis | None = None


@dataclass(slots=True)
class RegisterReport:
    """What a registration did (or, on a dry run, would do), id by id."""

    added: list[str] = field(default_factory=list)
    unchanged: list[str] = field(default_factory=list)
    refused: list[tuple[str, str]] = field(default_factory=list)
    reactivated: list[str] = field(default_factory=list)
    repriced: list[tuple[str, int, int]] = field(default_factory=list)


@dataclass(slots=True)
class Diff:
    """How a manifest differs from a client's active list."""

    added: list[str] = field(default_factory=list)
    removed: list[str] = field(default_factory=list)
    changed_cost: list[tuple[str, int, int]] = field(default_factory=list)
    conflicts: list[str] = field(default_factory=list)
    refused: list[tuple[str, str]] = field(default_factory=list)


class Registry:
    """Resolves persisted ids and texts under a mode, and registers, lists, diffs, retires.

    The hot path is a dict look-up: resolved list documents and misses are kept in a
    per-process map that is dropped whenever the store's version moves (every list change
    bumps it). A running server reads the version in the background every
    ``check_interval`` seconds (:meth:`start`), so no request waits for that read; without
    the watcher (the CLI, tests) a request reads it when ``check_interval`` has passed.

    Args:
        store: durable source of truth of the lists.
        mode: ``open``, ``audit`` or ``allowlist``.
        analyse: parses, validates and prices a text (sync or async).
        cache: shared read-through cache and APQ home (``RedisCache`` across workers);
            a per-process ``MemoryCache`` when None.
        apq_enabled: whether APQ registration on miss is offered.
        check_interval: seconds between store version checks (< 1 s keeps the promise
            that every worker sees a change within a second).
        negative_ttl: seconds a miss stays in the shared cache (the per-process map keeps
            it until the version moves).
        cache_ttl: seconds a list document stays in the shared cache.
        apq_ttl: seconds an APQ document stays in the cache.
        local_size: bound of each per-process map.
        default_client: the list every client falls back to.

    Example:
        registry = Registry(SQLStore(engine), mode=Mode.ALLOWLIST, analyse=analyse)
        resolved = await registry.resolve(extract(params), client_name="web", may_run_adhoc=False)
    """

    def __init__(
        self,
        store: Store,
        *,
        mode: Mode | str,
        analyse: Analyser,
        cache: Cache | None = None,
        apq_enabled: bool = True,
        check_interval: float = 0.5,
        negative_ttl: float = 0.5,
        cache_ttl: float = 60.0,
        apq_ttl: float = 86_400.0,
        local_size: int = 10_000,
        default_client: str = DEFAULT_CLIENT,
    ) -> None:
        self.mode = Mode(mode)
        self.apq_enabled = apq_enabled
        self.default_client = default_client
        self._store = store
        self._analyse_fn = analyse
        self._cache: Cache = cache if cache is not None else MemoryCache(local_size)
        self._check_interval = check_interval
        self._negative_ttl = negative_ttl
        self._cache_ttl = cache_ttl
        self._apq_ttl = apq_ttl
        self._local_size = local_size
        # (client, key) -> (Resolved or None for a miss,); dropped when the version moves
        self._local: dict[tuple[str, str], tuple[Resolved | None]] = {}
        self._apq_local: dict[str, Resolved] = {}
        self._version = -1
        self._generation = 0
        self._next_check = 0.0
        self._watcher: asyncio.Task[None] | None = None

    # -- background version checks ------------------------------------------------------

    def start(self) -> None:
        """Check the store's version every ``check_interval`` seconds in the background."""
        if self._watcher is None:
            self._watcher = asyncio.create_task(self._watch(), name="pq-registry-version")

    async def stop(self) -> None:
        watcher, self._watcher = self._watcher, None
        if watcher is not None:
            watcher.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await watcher

    async def _watch(self) -> None:
        while True:
            await self.refresh()
            await asyncio.sleep(self._check_interval)

    # -- request path -------------------------------------------------------------------

    async def resolve(
        self, pq: PQRequest, *, client_name: str | None, may_run_adhoc: bool
    ) -> Resolved:
        """Return the document a request runs, or raise ``PQError`` per the mode table.

        Args:
            pq: what ``protocol.extract`` read from the request.
            client_name: the caller's client name header; None means the default list.
            may_run_adhoc: whether this caller may run unregistered text in allowlist mode
                (the ``graphql:adhoc`` scope).
        """
        if self._watcher is None and time.monotonic() >= self._next_check:
            await self.refresh()
        client = client_name or self.default_client
        document_id, text = pq.id, pq.query
        if document_id is None:
            if text is None:
                raise bad_request(
                    "GraphQL operations must contain a non-empty `query` or a persisted document id"
                )
            return await self._resolve_text(text, sha256_hex(text), client, may_run_adhoc)

        if text is not None:
            digest = sha256_hex(text)
            sha_id = is_sha256(document_id)
            if sha_id and digest != document_id:
                raise hash_mismatch()
            found = await self._find(client, document_id)
            if found is not None:
                if found.text != text:
                    raise hash_mismatch()
                return found
            return await self._resolve_text(
                text, digest, client, may_run_adhoc, may_register_apq=sha_id
            )

        found = await self._find(client, document_id)
        if found is not None:
            return found
        if self.mode is Mode.ALLOWLIST:
            raise not_in_list(document_id)
        if self.apq_enabled and is_sha256(document_id):
            apq = await self._apq_get(document_id)
            if apq is not None:
                return apq
        if pq.kind == "apq" and not self.apq_enabled:
            raise not_supported()
        raise not_found()

    async def refresh(self) -> None:
        """Re-read the store's version now, and drop local caches if it moved."""
        self._next_check = time.monotonic() + self._check_interval
        try:
            version = await self._store.version()
        except Exception:
            # Keep serving what is cached; the next check comes within check_interval.
            logger.warning("persisted-query registry version check failed", exc_info=True)
            return
        if version != self._version:
            self._version = version
            self._drop_local()

    async def _resolve_text(
        self,
        text: str,
        digest: str,
        client: str,
        may_run_adhoc: bool,
        *,
        may_register_apq: bool = False,
    ) -> Resolved:
        found = await self._find(client, digest)
        if found is not None:
            return found
        if self.mode is Mode.ALLOWLIST:
            if not may_run_adhoc:
                raise adhoc_refused()
            return Resolved(text, None, False, digest)
        if may_register_apq and self.apq_enabled:
            stored = await self._apq_get(digest)
            if stored is not None:
                return stored
            analysis = await self._analyse(text)
            if not analysis.ok:
                # Not stored; the server's own checks refuse the text with the precise code.
                return Resolved(text, None, False, digest, analysis=analysis)
            resolved = Resolved(
                text,
                digest,
                False,
                digest,
                source="apq",
                operation_name=analysis.operation_name,
                cost=analysis.cost,
                analysis=analysis,
            )
            await self._apq_put(resolved)
            return resolved
        return Resolved(text, None, False, digest)

    async def _find(self, client: str, key: str) -> Resolved | None:
        hit = self._local.get((client, key))
        if hit is not None:
            return hit[0]
        generation = self._generation
        cache_key = f"doc:{self._version}:{client}:{key}"
        raw = await self._cache.get(cache_key)
        doc: StoredDocument | None
        if raw is not None:
            doc = StoredDocument.from_json(raw) if raw else None
        else:
            doc = await self._lookup(client, key)
            await self._cache.set(
                cache_key,
                doc.to_json() if doc is not None else b"",
                self._cache_ttl if doc is not None else self._negative_ttl,
            )
        resolved = _from_list(doc) if doc is not None else None
        # A version change during the awaits may have made this answer stale: don't keep it.
        if generation == self._generation:
            if len(self._local) >= self._local_size:
                self._local.pop(next(iter(self._local)))
            self._local[(client, key)] = (resolved,)
        return resolved

    async def _lookup(self, client: str, key: str) -> StoredDocument | None:
        clients = self._clients(client)
        doc = await self._store.lookup(clients, key)
        if doc is None:
            hive = split_hive_id(key)
            if hive is not None:
                doc = await self._store.lookup(self._clients(hive[0]), hive[1])
        return doc

    def _clients(self, client: str) -> tuple[str, ...]:
        if client == self.default_client:
            return (client,)
        return (client, self.default_client)

    async def _apq_get(self, digest: str) -> Resolved | None:
        local = self._apq_local.get(digest)
        if local is not None:
            return local
        raw = await self._cache.get(f"apq:{digest}")
        if raw is None:
            return None
        text = raw.decode("utf-8", errors="replace")
        # The cache is shared; never trust an entry whose text does not hash to its key.
        if sha256_hex(text) != digest:
            logger.warning("persisted-query cache held a text not matching its hash")
            return None
        resolved = Resolved(text, digest, False, digest, source="apq")
        self._remember_apq(resolved)
        return resolved

    async def _apq_put(self, resolved: Resolved) -> None:
        self._remember_apq(resolved)
        await self._cache.set(f"apq:{resolved.cached_key}", resolved.text.encode(), self._apq_ttl)

    def _remember_apq(self, resolved: Resolved) -> None:
        if len(self._apq_local) >= self._local_size:
            self._apq_local.pop(next(iter(self._apq_local)))
        self._apq_local[resolved.cached_key] = resolved

    def _drop_local(self) -> None:
        self._generation += 1
        self._local.clear()

    async def _analyse(self, text: str) -> Analysis:
        result = self._analyse_fn(text)
        if inspect.isawaitable(result):
            return await result
        return result

    # -- registry operations ------------------------------------------------------------

    async def register(
        self,
        client_name: str | None,
        items: Iterable[ManifestEntry],
        *,
        dry_run: bool = False,
        all_or_nothing: bool = False,
    ) -> RegisterReport:
        """Analyse and add documents to a client's list (an entry's own client name wins).

        A document is refused, with the reason, when the analyser refuses it (invalid, or
        worst-case cost over the maximum), when its id looks like a sha256 but is not the
        sha256 of its text, or when the id is already registered with another text (ids
        are immutable). Re-registering a retired document reactivates it; re-registering
        an unchanged one refreshes its price. ``all_or_nothing`` writes nothing if any
        document is refused; ``dry_run`` never writes.
        """
        client = client_name or self.default_client
        entries = list(items)
        existing = await self._existing(client, entries)
        report = RegisterReport()
        to_save: list[StoredDocument] = []
        seen: dict[tuple[str, str], str] = {}
        for entry in entries:
            owner = entry.client_name or client
            key = (owner, entry.id)
            digest = sha256_hex(entry.body)
            old = existing.get(key)
            reason = self._conflict(entry, digest, old)
            if reason is None and key in seen:
                if seen[key] != entry.body:
                    report.refused.append((entry.id, "the id appears twice with different texts"))
                continue
            if reason is not None:
                report.refused.append((entry.id, reason))
                continue
            seen[key] = entry.body
            analysis = await self._analyse(entry.body)
            if not analysis.ok:
                report.refused.append((entry.id, analysis.reason or "refused by the analyser"))
                continue
            doc = StoredDocument(
                owner,
                entry.id,
                digest,
                entry.body,
                analysis.operation_name or entry.operation_name,
                analysis.cost,
            )
            if old is None:
                report.added.append(entry.id)
            elif old.retired_at is not None:
                report.reactivated.append(entry.id)
            elif old.cost != doc.cost or old.operation_name != doc.operation_name:
                report.repriced.append((entry.id, old.cost, doc.cost))
            else:
                report.unchanged.append(entry.id)
                continue
            to_save.append(doc)
        if dry_run or (all_or_nothing and report.refused) or not to_save:
            return report
        await self._store.save(to_save)
        self._drop_local()
        await self.refresh()
        return report

    async def list(
        self, client_name: str | None = None, *, include_retired: bool = False
    ) -> Documents:
        """Return a client's documents, or every client's when ``client_name`` is None."""
        return await self._store.documents(client_name, include_retired=include_retired)

    async def diff(self, client_name: str | None, items: Iterable[ManifestEntry]) -> Diff:
        """Compare a manifest with a client's active list, re-pricing documents in both."""
        client = client_name or self.default_client
        active = {doc.document_id: doc for doc in await self._store.documents(client)}
        wanted = {e.id: e for e in items if (e.client_name or client) == client}
        result = Diff(removed=sorted(set(active) - set(wanted)))
        for document_id in sorted(wanted):
            entry, old = wanted[document_id], active.get(document_id)
            if old is not None and old.body != entry.body:
                result.conflicts.append(document_id)
                continue
            reason = self._conflict(entry, sha256_hex(entry.body), old)
            if reason is None:
                analysis = await self._analyse(entry.body)
                if not analysis.ok:
                    reason = analysis.reason or "refused by the analyser"
            if reason is not None:
                result.refused.append((document_id, reason))
            elif old is None:
                result.added.append(document_id)
            elif analysis.cost != old.cost:
                result.changed_cost.append((document_id, old.cost, analysis.cost))
        return result

    async def retire(
        self,
        client_name: str | None,
        ids: Iterable[str] | None = None,
        *,
        manifest: Iterable[ManifestEntry] | None = None,
        dry_run: bool = False,
    ) -> Sequence[str]:
        """Retire documents of a client's list; return the ids retired (or that would be).

        With ``ids``, those ids; with ``ids=None``, every active document absent from
        ``manifest`` (which is then required; pass ``[]`` to retire the whole list).
        """
        client = client_name or self.default_client
        active = [doc.document_id for doc in await self._store.documents(client)]
        if ids is None:
            if manifest is None:
                raise ValueError("retire needs the ids, or the manifest to keep")
            keep = {e.id for e in manifest if (e.client_name or client) == client}
            targets = [document_id for document_id in active if document_id not in keep]
        else:
            wanted = {normalise_id(raw) for raw in ids}
            targets = [document_id for document_id in active if document_id in wanted]
        if dry_run or not targets:
            return sorted(targets)
        retired = await self._store.retire(client, targets)
        self._drop_local()
        await self.refresh()
        return retired

    async def _existing(
        self, client: str, entries: Sequence[ManifestEntry]
    ) -> dict[tuple[str, str], StoredDocument]:
        by_client: dict[str, set[str]] = {}
        for entry in entries:
            by_client.setdefault(entry.client_name or client, set()).add(entry.id)
        found: dict[tuple[str, str], StoredDocument] = {}
        for owner, ids in by_client.items():
            docs = await self._store.documents(owner, ids=ids, include_retired=True)
            found.update({(doc.client_name, doc.document_id): doc for doc in docs})
        return found

    @staticmethod
    def _conflict(entry: ManifestEntry, digest: str, old: StoredDocument | None) -> str | None:
        if is_sha256(entry.id) and entry.id != digest:
            return "the id has the shape of a sha256 but is not the sha256 of the text"
        if old is not None and old.body != entry.body:
            return "the id is already registered with another text; ids are immutable"
        return None


def _from_list(doc: StoredDocument) -> Resolved:
    return Resolved(
        doc.body,
        doc.document_id,
        True,
        doc.sha256,
        source="list",
        operation_name=doc.operation_name,
        cost=doc.cost,
        client_name=doc.client_name,
    )
