"""One owner for an operation's life: resolve, prepare, price, charge, execute, settle.

The endpoint (``server/endpoint.py``) speaks HTTP; everything between the decoded request
and the response body happens here, in fixed phases, each a short method::

    operation = Operation(runtime, request)
    outcome = await operation.run()
    #  check     operationName within bounds (before anything else)
    #  resolve   the document: persisted id or text, as the registry's mode allows
    #  prepare   gate, parse, validate, plan (cached per document digest)
    #  price     static cost on the variables AS SENT; then coercion
    #  lookup    the response cache (optional): a hit is charged its flat price, not executed
    #  charge    one debit from every bucket of the caller (or a dry run's peek)
    #  execute   under the deadline, with a fresh context
    #  store     the response cache (optional): a miss is stored; a mutation's writes are
    #            invalidated before its response is sent
    #  settle    actual cost (>= 1), the refund, the balance (computed once), headers

A refusal at any phase pays at least one point from the caller's own bucket, so a flood of
refusals throttles itself. A batch (:class:`Batch`) runs the same phases: every item is
resolved, prepared and priced first, the batch is charged once for the total, the items
run, and the batch is settled once.
"""

from __future__ import annotations

import asyncio
import dataclasses
import logging
import math
from dataclasses import dataclass, field
from typing import Any, Protocol

from graphql import ExecutionResult, FieldNode, OperationDefinitionNode

from auth import Principal, policy
from guards.errors import GuardError
from guards.ratelimit import (
    BucketPolicy,
    Decision,
    LimiterUnavailable,
    MultiDecision,
    rate_limit_headers,
)
from loaders import Loaders, RequestDb
from observability import Metrics, OperationTracer, ServerTiming
from persisted_queries import PQError, Registry, extract
from resolvers.context import RateLimitInfo, RequestContext
from server import faults
from server.pipeline import (
    Charge,
    GraphQLPipeline,
    OperationRefused,
    PreparedDocument,
    cut,
    format_execution_errors,
    is_mutation,
)
from server.protocol import GraphQLParams
from server.response_cache import CacheState
from server.settings import Settings

log = logging.getLogger("tollgate.graphql")

MAX_OPERATION_NAME = 1_024
REFUSAL_PRICE = 1
# Refusals that already decided about the budget: nothing more to charge.
_UNCHARGED = frozenset({"THROTTLED", "SERVICE_UNAVAILABLE"})


def bounded_errors(errors: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Every message cut to ``MAX_MESSAGE`` characters: no error echoes unbounded input."""
    for error in errors:
        message = error.get("message")
        if isinstance(message, str):
            error["message"] = cut(message)
    return errors


@dataclass(slots=True)
class Outcome:
    """One operation's response body, HTTP status and headers."""

    body: dict[str, Any]
    status: int = 200
    headers: dict[str, str] | None = None
    code: str = "OK"
    operation_name: str | None = None
    operation_type: str | None = None
    requested: int | None = None
    actual: int | None = None
    document_id: str | None = None
    registered: bool = False


@dataclass(frozen=True, slots=True)
class OperationRequest:
    """What the endpoint hands over: one operation's parameters and its caller."""

    params: GraphQLParams
    principal: Principal
    method: str = "POST"
    request_id: str = ""
    client_name: str | None = None
    dry_run_header: bool = False


class ResponseCache(Protocol):
    """The response cache's seam: ``lookup`` between price and charge, ``store`` after
    execution. A hit returned by ``lookup`` replaces execution (``operation.result``) and is
    charged ``hit_price`` instead of the static cost (``server/response_cache.py``)."""

    hit_price: int

    async def lookup(self, operation: Operation) -> ExecutionResult | None: ...

    async def store(self, operation: Operation) -> None: ...

    async def invalidate(self, principal: Principal, tags: set[str]) -> None: ...


class Policies:
    """The rate-limit buckets an operation draws on, by caller and operation type."""

    def __init__(self, settings: Settings) -> None:
        self.user = BucketPolicy("user", settings.user_capacity, settings.user_restore_rate)
        self.tiers = {
            name: BucketPolicy(f"user-{name}", capacity, rate)
            for name, (capacity, rate) in settings.tiers.items()
        }
        self.tenant = BucketPolicy("tenant", settings.tenant_capacity, settings.tenant_restore_rate)
        self.anonymous = BucketPolicy(
            "ip", settings.anonymous_capacity, settings.anonymous_restore_rate
        )
        self.write = BucketPolicy("write", settings.write_capacity, settings.write_restore_rate)

    def keys(self, principal: Principal, mutation: bool) -> list[tuple[str, BucketPolicy]]:
        """Every bucket charged; the caller's own bucket first."""
        if principal.anonymous or principal.tenant_id is None:
            return [(f"ip:{principal.client_ip or 'unknown'}", self.anonymous)]
        tenant = principal.tenant_id.hex
        user_policy = self.tiers.get(principal.tier, self.user)
        keys = [
            (f"user:{tenant}:{principal.subject}", user_policy),
            (f"tenant:{tenant}", self.tenant),
        ]
        if mutation:
            keys.append((f"write:{tenant}:{principal.subject}", self.write))
        return keys

    def own(self, decisions: tuple[Decision, ...]) -> tuple[Decision, ...]:
        """The caller's own buckets: never the tenant's, which is everyone's spending."""
        return tuple(d for d in decisions if d.policy is not self.tenant) or decisions[:1]


@dataclass
class Runtime:
    """What every operation shares: the pipeline, the registry, budgets, telemetry."""

    settings: Settings
    pipeline: GraphQLPipeline
    engine: Any
    registry: Registry | None = None
    metrics: Metrics | None = None
    tracer: OperationTracer = field(default_factory=lambda: OperationTracer(None))
    cache: ResponseCache | None = None
    # Copied into every request's RequestContext.extra (e.g. the webhook egress policy).
    context_extra: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self.policies = Policies(self.settings)
        self.db_breaker = faults.dependency_breaker("database")

    async def pay_refusal(self, keys: list[tuple[str, BucketPolicy]]) -> MultiDecision | None:
        """Debit a refusal's point from the caller's own bucket (the first key); None when
        there is no limiter or it is unavailable (a refusal is never turned into a 503)."""
        limiter = self.pipeline.limiter
        if limiter is None or not keys:
            return None
        try:
            return await limiter.debit_all(keys[:1], REFUSAL_PRICE)
        except LimiterUnavailable:
            return None

    async def refusal_headers(self, principal: Principal) -> tuple[int, dict[str, str]] | None:
        """Pay for a request refused before it became an operation (bad parameters, a bad
        token: the address pays). Returns (429, headers) when even that point does not fit,
        else (0, the caller's balance headers); None without a limiter."""
        paid = await self.pay_refusal(self.policies.keys(principal, mutation=False))
        if paid is None:
            return None
        headers = settled_balance(self.policies, paid, 0).headers()
        if not paid.allowed:
            headers["Retry-After"] = str(max(1, math.ceil(paid.retry_after)))
            return 429, headers
        return 0, headers

    def on_batch(self, loader: str, size: int) -> None:
        if self.metrics is not None:
            self.metrics.dataloader_batch(loader, size)

    def count_decision(self, code: str, keys: list[tuple[str, BucketPolicy]]) -> None:
        if self.metrics is None or not keys:
            return
        decision = {"THROTTLED": "throttled", "allowed": "allowed"}.get(code, "error")
        self.metrics.ratelimit_decision(decision, keys[0][1].name)

    def count_measured(self, measured: list[GuardError]) -> None:
        """Log and count what a limit in measure mode would have refused."""
        for error in measured:
            log.info(
                "limit measured (not enforced): %s observed=%s limit=%s",
                error.code,
                error.observed,
                error.limit,
            )
            if self.metrics is not None:
                self.metrics.refusal(error.code, mode="measure")


@dataclass(slots=True)
class Balance:
    """The caller's own buckets after settlement: told the same in headers, extensions and
    the ``rateLimit`` field."""

    decision: MultiDecision

    @property
    def binding(self) -> Decision:
        return self.decision.binding

    def headers(self) -> dict[str, str]:
        return dict(rate_limit_headers(self.decision))

    def throttle_status(self) -> dict[str, Any]:
        binding = self.binding
        return {
            "maximumAvailable": binding.limit,
            "currentlyAvailable": binding.remaining,
            "restoreRate": binding.policy.restore_rate,
        }


def settled_balance(
    policies: Policies, decision: MultiDecision, refund: int, retry_after: float | None = None
) -> Balance:
    """The balance once ``refund`` points are back in every own bucket (computed once)."""
    own = []
    for d in policies.own(decision.decisions):
        if refund > 0 and d.allowed:
            d = dataclasses.replace(
                d,
                remaining=min(d.limit, d.remaining + refund),
                reset_after=max(0.0, d.reset_after - refund / d.policy.restore_rate),
            )
        own.append(d)
    if decision.allowed:
        binding = min(own, key=lambda d: (d.remaining, -d.reset_after))
    else:
        binding = max(own, key=lambda d: (d.retry_after, -d.remaining))
        if retry_after is not None:
            binding = dataclasses.replace(binding, retry_after=retry_after)
    return Balance(MultiDecision(decision.allowed, tuple(own), binding))


class Operation:
    """One GraphQL operation carried through its phases (see the module docstring)."""

    def __init__(self, runtime: Runtime, request: OperationRequest) -> None:
        self.rt = runtime
        self.request = request
        self.params = request.params
        self.principal = request.principal
        self.pipeline = runtime.pipeline
        self.timing = ServerTiming()
        self.text: str | None = None
        self.document_id: str | None = None
        self.registered = False
        self.prepared: PreparedDocument | None = None
        self.estimate: Any = None
        self.coerced: dict[str, Any] = {}
        self.dry_run = False
        self.keys: list[tuple[str, BucketPolicy]] = []
        self.charged: Charge | None = None
        self.result: ExecutionResult | None = None
        self.actual = 0
        self.refused: OperationRefused | None = None
        self.in_batch = False
        self.cache_state = CacheState()  # the response cache's view of this operation
        self.cache_tags: set[str] = set()  # what the operation's writes changed

    # -- the whole life -----------------------------------------------------------------------

    async def run(self) -> Outcome:
        with self.rt.tracer.operation_span() as span:
            try:
                await self.admit()
                if await self.lookup():
                    assert self.rt.cache is not None
                    await self.charge(self.rt.cache.hit_price)  # a hit's flat price
                    self.actual = self.rt.cache.hit_price
                else:
                    await self.charge()
                    await self.execute()
                    await self.store()
                outcome = self.answer(await self.settle())
            except OperationRefused as refused:
                outcome = await self.refuse(refused)
            except Exception as exc:
                # A database outage outside execution (the registry's SQL store) is a 503,
                # never a 500; anything else still propagates.
                if not faults.is_database_unavailable(exc):
                    raise
                outcome = self.database_unavailable()
            finally:
                self.cache_state.release()  # a single flight this operation led ends here
                await self.invalidate_unstored()
            self._unavailable(outcome)
            self.rt.tracer.set_operation(
                span, outcome.operation_name, outcome.operation_type, outcome.document_id
            )
            if outcome.code != "OK":
                self.rt.tracer.set_error(span, outcome.code)
        return outcome

    async def admit(self) -> None:
        """Everything before the budget: check, resolve, prepare, price."""
        self.check()
        with self.timing.measure("pq"):
            await self.resolve()
        with self.timing.measure("gate"), self.rt.tracer.phase("graphql.validate"):
            self.prepare()
        with self.timing.measure("cost"), self.rt.tracer.phase("graphql.cost"):
            self.price()

    # -- phases ---------------------------------------------------------------------------------

    def check(self) -> None:
        """Bounds on the parameters themselves, before any other work."""
        name = self.params.operation_name
        if name is not None and len(name) > MAX_OPERATION_NAME:
            raise OperationRefused(
                [
                    {
                        "message": f"operationName is {len(name)} characters long, over the limit of {MAX_OPERATION_NAME}.",
                        "extensions": {
                            "code": "OPERATION_NAME_TOO_LONG",
                            "observed": len(name),
                            "limit": MAX_OPERATION_NAME,
                        },
                    }
                ]
            )

    async def resolve(self) -> None:
        """The text to run: a persisted document's, or the request's (as the mode allows)."""
        text = self.params.query
        registry = self.rt.registry
        if registry is not None:
            try:
                resolved = await registry.resolve(
                    extract(self.params.raw),
                    client_name=self.request.client_name,
                    may_run_adhoc=policy.can_run_adhoc(self.principal),
                )
            except PQError as error:
                raise OperationRefused(
                    [{"message": error.message, "extensions": error.extensions}],
                    status=error.status,
                    headers=dict(error.headers),
                    code=error.code,
                ) from None
            text, self.document_id = resolved.text, resolved.document_id
            self.registered = resolved.registered
            if self.rt.metrics is not None and resolved.source != "adhoc":
                self.rt.metrics.pq_lookup(True)
        if text is None:
            raise OperationRefused(
                [{"message": "The request has no query.", "extensions": {"code": "BAD_REQUEST"}}]
            )
        self.text = text

    def prepare(self) -> None:
        """Gate, parse, validate and plan (cached); the operation is selected once here."""
        assert self.text is not None
        may_introspect = policy.can_introspect(
            self.principal, production=self.rt.settings.production
        )
        prepared = self.pipeline.prepare(
            self.text, self.params.operation_name, may_introspect=may_introspect
        )
        self.prepared = prepared
        self.rt.count_measured(prepared.measured)
        if prepared.deprecated:
            # Counted per client so a field can be removed once nobody calls it.
            client = self.request.client_name
            log.info("deprecated fields used: %s by %s", ",".join(prepared.deprecated), client)
            if self.rt.metrics is not None:
                for name in prepared.deprecated:
                    self.rt.metrics.deprecated_field(name, client)
        if self.request.method == "GET" and prepared.operation_type != "query":
            raise OperationRefused(
                [
                    {
                        "message": "Only queries may be sent with GET; use POST.",
                        "extensions": {"code": "METHOD_NOT_ALLOWED"},
                    }
                ],
                status=405,
                headers={"Allow": "POST"},
            )

    def price(self) -> None:
        """Static cost on the variables as sent (before coercion), then coercion."""
        assert self.prepared is not None
        variables = self.params.variables or {}
        self.estimate, measured = self.pipeline.price(self.prepared, variables)
        self.rt.count_measured(measured)
        self.coerced = self.pipeline.coerce_variables(self.prepared, variables)
        self.dry_run = self.request.dry_run_header or _dry_run_field(
            self.prepared.operation, self.coerced
        )
        self.keys = self.rt.policies.keys(self.principal, is_mutation(self.prepared))

    async def lookup(self) -> bool:
        """The response cache's look-up, between price and charge (no cache: a miss). A hit
        becomes ``self.result``, is not executed, and is charged the cache's flat hit price
        instead of the static cost (``server/response_cache.py``)."""
        cache = self.rt.cache
        if cache is None:
            return False
        self.result = await cache.lookup(self)
        return self.result is not None

    async def charge(self, price: int | None = None) -> None:
        """Debit the price (the static cost unless ``price`` says otherwise) from every
        bucket; a dry run only reads the caller's bucket."""
        requested, nodes = self.estimate.requested, self.estimate.nodes
        if price is not None:
            requested = price
        if self.in_batch:
            return  # the batch is charged once, as one total
        if self.dry_run:
            self.charged = Charge(requested=requested, nodes=nodes, keys=self.keys)
            limiter = self.pipeline.limiter
            if limiter is not None:
                try:
                    peek = await limiter.peek(self.keys[0][0], self.keys[0][1])
                except LimiterUnavailable:
                    return
                self.charged.decision = MultiDecision(True, (peek,), peek)
            return
        with self.timing.measure("ratelimit"):
            try:
                self.charged = await self.pipeline.charge(
                    self.keys, _at_least_one(requested), nodes
                )
            except OperationRefused as refused:
                self.rt.count_decision(refused.code, self.keys)
                raise
        self.rt.count_decision("error" if self.charged.limiter_error else "allowed", self.keys)

    def attach(self, charge: Charge) -> None:
        """Run under a batch's charge (the batch debits and settles)."""
        self.charged = Charge(
            self.estimate.requested, self.estimate.nodes, charge.decision, self.keys
        )

    async def execute(self) -> None:
        """Execute under the deadline with a fresh context; a dry run runs only ``rateLimit``."""
        assert self.prepared is not None and self.charged is not None
        db = RequestDb(self.rt.engine, self.principal.tenant_id, self.rt.db_breaker)
        context = RequestContext(
            principal=self.principal,
            engine=self.rt.engine,
            db=db,
            loaders=Loaders(db, self.rt.on_batch),
            request_id=self.request.request_id,
            production=self.rt.settings.production,
            max_page_size=self.pipeline.limits.max_page_size,
            rate_limit=self._rate_limit_info(),
            extra=dict(self.rt.context_extra),
        )
        self.cache_tags = context.cache_tags
        try:
            document = self.prepared.only_rate_limit() if self.dry_run else None
            with self.timing.measure("exec"), self.rt.tracer.phase("graphql.execute"):
                self.result = await self.pipeline.execute(
                    self.prepared, self.params.variables, context, document, self.coerced
                )
        finally:
            await db.close()
        self.actual = self.counted()

    async def store(self) -> None:
        """The response cache's store and invalidation (no cache: nothing)."""
        if self.rt.cache is not None:
            await self.rt.cache.store(self)
        self.cache_tags = set()  # invalidated

    async def invalidate_unstored(self) -> None:
        """Invalidate what the writes changed when ``store`` never ran (the request was
        cancelled or failed after them): shielded, so a second cancellation cannot skip it."""
        if self.cache_tags and self.rt.cache is not None:
            tags, self.cache_tags = self.cache_tags, set()
            await asyncio.shield(self.rt.cache.invalidate(self.principal, tags))

    def counted(self) -> int:
        """Actual cost: the work done, never over the price (``actualQueryCost``)."""
        if self.dry_run or self.result is None:
            return 0
        assert self.prepared is not None
        return min(self.estimate.actual(self.result.data), self.estimate.requested)

    async def settle(self) -> Balance | None:
        """Refund the unused part of the debit; the balance, computed once."""
        charge = self.charged
        if charge is None or self.in_batch:
            return None
        paid = _at_least_one(self.actual)
        refund = 0 if self.dry_run else max(0, charge.requested - paid)
        if not self.dry_run:
            await self.pipeline.refund(charge, paid)
        if charge.decision is None:
            return None
        return settled_balance(self.rt.policies, charge.decision, refund)

    # -- answers ----------------------------------------------------------------------------------

    def answer(self, balance: Balance | None) -> Outcome:
        """The response of an executed operation, with the settled balance."""
        assert self.prepared is not None and self.result is not None
        result = self.result
        body: dict[str, Any] = {}
        code = "OK"
        if result.errors:
            errors, masked = format_execution_errors(list(result.errors), self.request.request_id)
            for exc in masked:
                log.error("unexpected error (request %s)", self.request.request_id, exc_info=exc)
            body["errors"] = errors
            code = errors[0]["extensions"]["code"]
        body["data"] = result.data
        cost: dict[str, Any] = {
            "requestedQueryCost": self.estimate.requested,
            "actualQueryCost": self.actual,
        }
        headers: dict[str, str] = {}
        if balance is not None:
            self.show_balance(balance, body, cost, headers)
        if self.dry_run:
            cost["dryRun"] = True
            cost["nodeCount"] = self.estimate.nodes
            cost["breakdown"] = [
                {
                    "path": item.path,
                    "weight": item.weight,
                    "multiplier": item.multiplier,
                    "subtotal": item.subtotal,
                }
                for item in self.estimate.breakdown()
            ]
        body["extensions"] = {"cost": cost}
        if self.rt.cache is not None:
            body["extensions"]["cache"] = self.cache_state.extension()
        return Outcome(
            body,
            200,
            headers,
            code,
            self.prepared.operation_name,
            self.prepared.operation_type,
            self.estimate.requested,
            self.actual,
            self.document_id,
            self.registered,
        )

    def show_balance(
        self,
        balance: Balance,
        body: dict[str, Any],
        cost: dict[str, Any],
        headers: dict[str, str] | None,
    ) -> None:
        """One balance three ways: ``throttleStatus``, the ``rateLimit`` field, headers."""
        cost["throttleStatus"] = balance.throttle_status()
        if headers is not None:
            headers.update(balance.headers())
        data = body.get("data")
        if not isinstance(data, dict) or self.prepared is None:
            return
        for selection in self.prepared.operation.selection_set.selections:
            if isinstance(selection, FieldNode) and selection.name.value == "rateLimit":
                key = selection.alias.value if selection.alias else "rateLimit"
                shown = data.get(key)
                if isinstance(shown, dict) and "remaining" in shown:
                    shown["remaining"] = balance.binding.remaining

    async def refuse(self, refused: OperationRefused) -> Outcome:
        """A refusal pays at least one point from the caller's own bucket (a flood of them
        throttles itself) and shows that bucket's balance."""
        self.refused = refused
        bounded_errors(refused.errors)
        if self.rt.metrics is not None:
            self.rt.metrics.refusal(refused.code)
        outcome = Outcome(
            {"errors": refused.errors},
            refused.status,
            dict(refused.headers),
            refused.code,
            self.prepared.operation_name if self.prepared else None,
            self.prepared.operation_type if self.prepared else None,
            document_id=self.document_id,
            registered=self.registered,
        )
        if self.in_batch:
            return outcome  # the batch's single debit pays for its refused items
        if refused.decision is not None:
            return self._throttle_shown(refused, outcome)
        if refused.code in _UNCHARGED:
            return outcome
        keys = self.keys or self.rt.policies.keys(self.principal, mutation=False)
        paid = await self.rt.pay_refusal(keys)
        if paid is None:
            return outcome
        if not paid.allowed:
            return self.throttled(paid)
        outcome.headers = {
            **(outcome.headers or {}),
            **settled_balance(self.rt.policies, paid, 0).headers(),
        }
        return outcome

    def _throttle_shown(self, refused: OperationRefused, outcome: Outcome) -> Outcome:
        """A throttle shows the caller's own buckets, with the exact wait of the bucket that
        refused (the tenant's too, without its figures)."""
        decision = refused.decision
        assert decision is not None
        balance = settled_balance(self.rt.policies, decision, 0, decision.retry_after)
        outcome.headers = {**(outcome.headers or {}), **balance.headers()}
        outcome.headers["Retry-After"] = str(max(1, math.ceil(decision.retry_after)))
        for error in refused.errors:
            error.get("extensions", {})["limit"] = balance.binding.remaining
        return outcome

    def throttled(self, decision: MultiDecision) -> Outcome:
        """429: the caller's bucket cannot pay even for a refusal."""
        retry = max(1, math.ceil(decision.retry_after))
        error = {
            "message": f"Throttled: {decision.binding.remaining} points are available. Retry in {retry} s.",
            "extensions": {
                "code": "THROTTLED",
                "observed": REFUSAL_PRICE,
                "limit": decision.binding.remaining,
                "retryAfter": retry,
            },
        }
        headers = settled_balance(self.rt.policies, decision, 0).headers()
        headers["Retry-After"] = str(retry)
        self.rt.count_decision("THROTTLED", self.keys)
        return Outcome({"errors": [error]}, 429, headers, "THROTTLED")

    def database_unavailable(self) -> Outcome:
        """503 SERVICE_UNAVAILABLE for a database outage (see server/faults.py)."""
        self.rt.db_breaker.record_failure()
        error = faults.unavailable_error("database", self.rt.db_breaker.retry_after)
        retry = str(error["extensions"]["retryAfter"])
        return Outcome({"errors": [error]}, 503, {"Retry-After": retry}, faults.SERVICE_UNAVAILABLE)

    @staticmethod
    def _unavailable(outcome: Outcome) -> None:
        unavailable = faults.unavailable_status(
            outcome.body.get("data"), outcome.body.get("errors")
        )
        if unavailable is not None and outcome.status == 200:
            outcome.status = unavailable[0]
            outcome.headers = {**(outcome.headers or {}), **unavailable[1]}
            outcome.code = faults.SERVICE_UNAVAILABLE

    def _rate_limit_info(self) -> RateLimitInfo:
        charge = self.charged
        assert charge is not None
        if charge.decision is None:
            return self.pipeline.rate_limit_info(charge)
        own = settled_balance(self.rt.policies, charge.decision, 0).decision
        return self.pipeline.rate_limit_info(dataclasses.replace(charge, decision=own))


def _at_least_one(points: int) -> int:
    """No charge is below one point: an operation always costs the server some work."""
    return max(REFUSAL_PRICE, points)


def _dry_run_field(operation: OperationDefinitionNode, coerced: dict[str, Any]) -> bool:
    """Whether the operation asks ``rateLimit(dryRun: true)``."""
    for selection in operation.selection_set.selections:
        if isinstance(selection, FieldNode) and selection.name.value == "rateLimit":
            for argument in selection.arguments or ():
                if argument.name.value != "dryRun":
                    continue
                value = argument.value
                if value.kind == "variable":
                    return bool(coerced.get(value.name.value))  # type: ignore[attr-defined]
                return getattr(value, "value", False) is True
    return False


class Batch:
    """An HTTP batch: every item resolved, prepared and priced first, charged once for the
    total (refused items pay their refusal), run in order, settled once."""

    def __init__(self, runtime: Runtime, requests: list[OperationRequest]) -> None:
        self.rt = runtime
        self.operations = [Operation(runtime, request) for request in requests]
        for operation in self.operations:
            operation.in_batch = True

    async def run(self) -> tuple[list[Outcome], int, dict[str, str]]:
        """Outcomes in order, the HTTP status, and the batch's headers."""
        outcomes: dict[int, Outcome] = {}
        for index, operation in enumerate(self.operations):
            try:
                await operation.admit()
            except OperationRefused as refused:
                outcomes[index] = await operation.refuse(refused)
        admitted = [op for i, op in enumerate(self.operations) if i not in outcomes]
        refusals = len(outcomes) * REFUSAL_PRICE
        # A dry run prices without charging its price: one point, as any item at the least.
        total = (
            sum(
                REFUSAL_PRICE if op.dry_run else _at_least_one(op.estimate.requested)
                for op in admitted
            )
            + refusals
        )
        nodes = sum(op.estimate.nodes for op in admitted)
        principal = self.operations[0].principal
        mutation = any(op.prepared is not None and is_mutation(op.prepared) for op in admitted)
        keys = self.rt.policies.keys(principal, mutation)
        pipeline = self.rt.pipeline
        try:
            charge = await pipeline.charge(keys, total, nodes)
        except OperationRefused as refused:
            self.rt.count_decision(refused.code, keys)
            outcome = await Operation(self.rt, self.operations[0].request).refuse(refused)
            return [outcome], outcome.status, outcome.headers or {}
        self.rt.count_decision("error" if charge.limiter_error else "allowed", keys)
        for index, operation in enumerate(self.operations):
            if index in outcomes:
                continue
            operation.attach(charge)
            try:
                await operation.execute()
                await operation.store()  # never stored in a batch; a mutation invalidates
                outcomes[index] = operation.answer(None)
            except OperationRefused as refused:
                outcomes[index] = await operation.refuse(refused)
            finally:
                await operation.invalidate_unstored()
        actual = sum(_at_least_one(op.actual) for op in admitted) + refusals
        await pipeline.refund(charge, min(actual, total))
        headers: dict[str, str] = {}
        if charge.decision is not None:
            balance = settled_balance(self.rt.policies, charge.decision, max(0, total - actual))
            headers = balance.headers()
            for index, operation in enumerate(self.operations):
                body = outcomes[index].body
                cost = (body.get("extensions") or {}).get("cost")
                if cost is not None:
                    operation.show_balance(balance, body, cost, None)
        return [outcomes[i] for i in range(len(self.operations))], 200, headers
