"""The response cache in the request path (issue #14): what is cached, for whom, for how long.

``guards.cachecontrol`` computes a document's policy and static tags from the schema's
``@cacheControl`` hints; ``guards.responsecache`` stores responses. This module adds what only
this application knows: the tenant a response belongs to, what shapes a caller's view, how
global ids name entities (their tags), and the hit price. See docs/caching.md.

The operation (``server/operation.py``) calls ``lookup`` between pricing (and the
per-operation limits) and the charge: a hit is charged ``hit_price`` and not executed; and
``store`` after execution: a miss is stored and a mutation's writes invalidated, before the
response is sent. Underneath: ``begin`` (policy and key), ``find``, ``store_result`` and
``invalidate``.
"""

from __future__ import annotations

import hashlib
import logging
import time
from dataclasses import dataclass, field
from typing import Any

import orjson
from graphql import ExecutionResult

from auth import Principal
from guards.cachecontrol import CacheControl, CachePolicy, DocumentCacheInfo
from guards.responsecache import (
    CachedResponse,
    ResponseStore,
    SingleFlight,
    cache_key,
)
from observability import Metrics
from resolvers.ids import from_global_id

log = logging.getLogger("tollgate.cache")

HIT, MISS, BYPASS = "HIT", "MISS", "BYPASS"


@dataclass(slots=True)
class CacheState:
    """One operation's dealings with the response cache (BYPASS until it is looked up)."""

    status: str = BYPASS
    policy: CachePolicy | None = None
    info: DocumentCacheInfo | None = None
    partition: str = ""
    key: str | None = None
    generation: int = 0
    age: int = 0
    variables: dict[str, Any] = field(default_factory=dict)
    lead: Any = None

    def extension(self) -> dict[str, Any]:
        """``extensions.cache`` of the response."""
        policy = self.policy
        return {
            "status": self.status,
            "maxAge": policy.max_age if policy is not None else 0,
            "scope": policy.scope if policy is not None else "PUBLIC",
        }

    def release(self) -> None:
        """End this operation's single flight, if it led one (idempotent)."""
        if self.lead is not None:
            self.lead.release()
            self.lead = None


def view_of(principal: Principal) -> list[str]:
    """Everything that changes what a caller may see, except the subject.

    Every field permission of the schema is a function of the role and the scopes, or of the
    subject too (``User.email``, a customer's orders: those are PRIVATE, keyed by subject).
    """
    if principal.anonymous:
        return ["anonymous"]
    role = principal.role.value if principal.role is not None else "-"
    return [f"role:{role}", *(f"scope:{scope}" for scope in principal.scopes)]


def _entity_tag(global_id: Any) -> str | None:
    if not isinstance(global_id, str | int):
        return None
    try:
        type_name, key = from_global_id(str(global_id))
    except Exception:
        return None
    return f"{type_name}:{key.hex}"


def entity_tags(data: Any, found: set[str]) -> set[str]:
    """``Type:<hex>`` for every object in ``data`` that carries its global ``id``."""
    stack = [data]
    while stack:
        value = stack.pop()
        if isinstance(value, dict):
            tag = _entity_tag(value.get("id"))
            if tag is not None:
                found.add(tag)
            stack.extend(v for v in value.values() if isinstance(v, dict | list))
        elif isinstance(value, list):
            stack.extend(v for v in value if isinstance(v, dict | list))
    return found


class ResponseCache:
    """The application's response cache: policies, keys, store, single flight and counters."""

    def __init__(
        self,
        store: ResponseStore,
        control: CacheControl,
        *,
        hit_price: int = 1,
        metrics: Metrics | None = None,
    ) -> None:
        self.backend = store
        self.control = control
        self.hit_price = max(1, hit_price)
        self.metrics = metrics
        self.flights = SingleFlight()

    def _count(self, event: str, count: int = 1) -> None:
        if self.metrics is not None:
            self.metrics.response_cache(event, count)

    def _analysis(self, text: str, prepared: Any) -> tuple[DocumentCacheInfo, str]:
        """The document's cache policy and the digest of its text, made once per prepared
        document (the pipeline caches those per text) and kept on it."""
        found: tuple[DocumentCacheInfo, str] | None = prepared.cache_analysis
        if found is None:
            digest = hashlib.sha256(text.encode("utf-8", "surrogatepass")).hexdigest()
            info = self.control.analyse(prepared.document, prepared.operation_name)
            found = prepared.cache_analysis = (info, digest)
        return found

    def begin(
        self,
        state: CacheState,
        text: str,
        prepared: Any,
        variables: dict[str, Any] | None,
        principal: Principal,
        *,
        bypass: bool,
    ) -> None:
        """Compute the policy and, when the operation may be cached, its key."""
        info, digest = self._analysis(text, prepared)
        state.info, state.policy = info, info.policy
        if bypass or not info.policy.cacheable:
            self._count("bypass")
            return
        declared = [d.variable.name.value for d in prepared.operation.variable_definitions or ()]
        given = variables or {}
        state.variables = {name: given[name] for name in declared if name in given}
        state.partition = principal.tenant_id.hex if principal.tenant_id else "anonymous"
        subject = principal.subject if info.policy.scope == "PRIVATE" else None
        state.key = cache_key(
            digest, prepared.operation_name, state.variables, view_of(principal), subject
        )

    # -- the operation's seam (server/operation.py) ---------------------------------------------

    async def lookup(self, operation: Any) -> ExecutionResult | None:
        """A hit as the operation's result (its stored data, sent as is), else ``None``."""
        state: CacheState = operation.cache_state
        with operation.timing.measure("cache"):
            self.begin(
                state,
                operation.text,
                operation.prepared,
                operation.params.variables,
                operation.principal,
                bypass=operation.dry_run or operation.in_batch,
            )
            hit = await self.find(state)
        if hit is None:
            return None
        return ExecutionResult(data=orjson.Fragment(hit))  # type: ignore[arg-type]

    async def store(self, operation: Any) -> None:
        """Store a miss's response; invalidate what the operation's writes changed."""
        result = operation.result
        with operation.timing.measure("cache"):
            if result is not None:
                await self.store_result(operation.cache_state, result.data, bool(result.errors))
            await self.invalidate(operation.principal, operation.cache_tags)

    # -- underneath -------------------------------------------------------------------------------

    async def find(self, state: CacheState) -> bytes | None:
        """The cached ``data`` (serialized) for a hit, else ``None`` (a MISS leads a flight).

        A concurrent miss of the same key, begun after the same invalidations, waits for the
        leader's result instead of executing (single flight). A store that cannot be reached
        is a BYPASS: the operation runs as if there were no cache.
        """
        if state.key is None:
            return None
        try:
            entry, state.generation = await self.backend.get(state.partition, state.key)
        except Exception as exc:
            log.warning("response cache lookup failed: %s", type(exc).__name__)
            self._count("error")
            state.key = None
            return None
        if entry is not None:
            state.status, state.age = HIT, entry.age()
            self._count("hit")
            return entry.body
        flight = (state.partition, state.key, state.generation)
        shared = await self.flights.wait(flight)
        if shared is not None:
            state.status, state.age = HIT, 0
            self._count("hit")
            return shared  # type: ignore[no-any-return]
        state.status = MISS
        self._count("miss")
        state.lead = self.flights.lead(flight)
        state.lead.open()
        return None

    async def store_result(self, state: CacheState, data: Any, failed: bool) -> None:
        """Store a MISS's response (never one with errors); followers get it at once."""
        if state.status != MISS or state.key is None or state.policy is None:
            return
        if failed or data is None:
            state.release()
            return
        body = orjson.dumps(data)
        if state.lead is not None:
            state.lead.publish(body)
        state.release()
        info = state.info
        assert info is not None
        tags = entity_tags(data, set(info.tags))
        given = [state.variables.get(name) for name in info.id_variables]
        for value in [*given, *info.id_literals]:
            for item in value if isinstance(value, list) else [value]:
                tag = _entity_tag(item)
                if tag is None and item is not None:
                    # An entity looked up by an id that names nothing of ours: no tag could
                    # ever invalidate the answer, so it is not kept.
                    return
                if tag is not None:
                    tags.add(tag)
        entry = CachedResponse(body, time.time(), state.policy.max_age, state.policy.scope)
        try:
            stored = await self.backend.put(
                state.partition, state.key, entry, tags, state.generation
            )
        except Exception as exc:
            log.warning("response cache store failed: %s", type(exc).__name__)
            self._count("error")
            return
        if stored:
            self._count("store")

    async def invalidate(self, principal: Principal, tags: set[str]) -> None:
        """Drop every cached response of the caller's tenant carrying one of ``tags``."""
        if not tags or principal.tenant_id is None:
            return
        try:
            dropped = await self.backend.invalidate(principal.tenant_id.hex, tags)
        except Exception as exc:
            # The write has committed; its readers may see the old state for up to maxAge.
            log.error("response cache invalidation failed: %s (tags %s)", exc, sorted(tags))
            self._count("error")
            return
        self._count("invalidation")
        self._count("dropped", dropped)
