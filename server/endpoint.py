"""The ``/graphql`` endpoint: GraphQL-over-HTTP around the pipeline, one operation at a time."""

from __future__ import annotations

import hashlib
import logging
import time
import uuid
from dataclasses import dataclass
from typing import Any

import orjson
from graphql import FieldNode, OperationDefinitionNode
from starlette.requests import Request
from starlette.responses import HTMLResponse, Response

from auth import Principal, policy
from auth.tokens import AuthError, TokenVerifier, parse_bearer
from guards.ratelimit import BucketPolicy, LimiterUnavailable, MultiDecision, rate_limit_headers
from loaders import Loaders, RequestDb
from observability import Metrics, OperationTracer, ServerTiming, log_operation
from persisted_queries import PQError, Registry, extract
from resolvers.context import RequestContext
from server import dbstats, faults
from server.pipeline import (
    Charge,
    GraphQLPipeline,
    OperationRefused,
    PreparedDocument,
    format_execution_errors,
    is_mutation,
)
from server.protocol import (
    JSON,
    GraphQLParams,
    HTTPFailure,
    error_body,
    json_response,
    negotiate,
    params_from_body,
    params_from_get,
)
from server.response_cache import BYPASS, HIT, CacheState, ResponseCache
from server.settings import Settings

log = logging.getLogger("tollgate.http")


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
    cache: CacheState | None = None


@dataclass(slots=True)
class BatchCharge:
    """A batch's single debit, and the actual cost its operations add up to."""

    charge: Charge
    actual: int = 0


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


def _cacheable(request: Request, outcome: Outcome, principal: Principal, media: str) -> Response:
    """A successful GET: strong ETag of the data, 304 on a match, caching by who asked.

    The ETag covers ``data`` only: ``extensions`` (the caller's remaining budget) change on
    every request and are not part of what a cache validates. Authenticated responses are
    ``private`` and vary on Authorization, so a shared cache never serves one caller's data to
    another; only registered documents run by anonymous callers are ``public``.
    """
    data = outcome.body.get("data")
    # In the document's order: the same bytes whether served from the response cache or not.
    digest = hashlib.sha256(orjson.dumps(data))
    etag = f'"{digest.hexdigest()[:40]}"'
    cache = outcome.cache
    policy = cache.policy if cache is not None else None
    extra: dict[str, str] = {}
    if outcome.document_id is not None and policy is not None and policy.cacheable:
        # A persisted document's answer may be reused for its policy's maxAge: by shared
        # caches only when anonymous and PUBLIC, else by the caller's own cache.
        public = principal.anonymous and policy.scope == "PUBLIC"
        control = f"{'public' if public else 'private'}, max-age={policy.max_age}"
        if cache is not None and cache.status == HIT:
            extra["Age"] = str(cache.age)
    elif principal.anonymous and outcome.registered and policy is not None:
        control = "private, no-cache"  # the policy says: not to be reused (e.g. rateLimit)
    elif principal.anonymous and outcome.registered and "rateLimit" not in (data or {}):
        control = "public, max-age=60"
    else:
        control = "private, no-cache"
    headers = {
        **(outcome.headers or {}),
        **extra,
        "ETag": etag,
        "Cache-Control": control,
        "Vary": "Accept, Authorization",
    }
    wanted = {tag.strip() for tag in request.headers.get("if-none-match", "").split(",")}
    if etag in wanted or "*" in wanted:
        keep = ("ETag", "Cache-Control", "Vary", "Server-Timing", "Age")
        return Response(status_code=304, headers={k: v for k, v in headers.items() if k in keep})
    return json_response(outcome.body, outcome.status, media, headers)


def _client_name(request: Request) -> str | None:
    headers = request.headers
    return headers.get("apollographql-client-name") or headers.get("graphql-client-name")


def _dry_run_requested(prepared: PreparedDocument, coerced: dict[str, Any], header: bool) -> bool:
    if header:
        return True
    for selection in prepared.operation.selection_set.selections:
        if isinstance(selection, FieldNode) and selection.name.value == "rateLimit":
            for argument in selection.arguments or ():
                if argument.name.value != "dryRun":
                    continue
                value = argument.value
                if value.kind == "variable":
                    return bool(coerced.get(value.name.value))  # type: ignore[attr-defined]
                return getattr(value, "value", False) is True
    return False


def _only_rate_limit(prepared: PreparedDocument) -> Any:
    """The operation reduced to its ``rateLimit`` and ``__typename`` root fields (a dry run)."""
    operation = prepared.operation
    kept = tuple(
        s
        for s in operation.selection_set.selections
        if isinstance(s, FieldNode) and s.name.value in ("rateLimit", "__typename")
    )
    selection_set = type(operation.selection_set)(selections=kept)
    reduced = OperationDefinitionNode(
        operation=operation.operation,
        name=operation.name,
        variable_definitions=operation.variable_definitions,
        directives=operation.directives,
        selection_set=selection_set,
    )
    return type(prepared.document)(definitions=(reduced,))


class GraphQLEndpoint:
    """Handles GET and POST on ``/graphql``."""

    def __init__(
        self,
        *,
        settings: Settings,
        pipeline: GraphQLPipeline,
        verifier: TokenVerifier,
        engine: Any,
        graphiql_html: str | None,
        graphiql_csp: str | None,
        metrics: Metrics | None = None,
        tracer: OperationTracer | None = None,
        registry: Registry | None = None,
        response_cache: ResponseCache | None = None,
    ) -> None:
        self.registry = registry
        self.cache = response_cache
        self.metrics = metrics
        self.tracer = tracer or OperationTracer(None)
        self.settings = settings
        self.pipeline = pipeline
        self.verifier = verifier
        self.engine = engine
        self.policies = Policies(settings)
        self.graphiql_html = graphiql_html
        self.graphiql_csp = graphiql_csp
        # Dependency faults (server/faults.py): one database breaker per process.
        self.db_breaker = faults.dependency_breaker("database")

    async def handle(self, request: Request) -> Response:
        request_id = getattr(request.state, "request_id", None) or uuid.uuid4().hex
        accept = request.headers.get("accept", "")
        if (
            request.method == "GET"
            and self.graphiql_html
            and "text/html" in accept
            and not request.query_params
        ):
            return HTMLResponse(
                self.graphiql_html, headers={"Content-Security-Policy": self.graphiql_csp or ""}
            )
        try:
            media = negotiate(accept)
        except HTTPFailure as failure:
            return json_response(error_body(failure.message, failure.code), failure.status, JSON)
        try:
            params = await self._params(request)
            principal = self._authenticate(request)
        except HTTPFailure as failure:
            return json_response(
                error_body(failure.message, failure.code, **failure.extensions),
                failure.status,
                media,
                failure.headers,
            )
        if len(params) == 1:
            outcome = await self.run(request, params[0], principal, media, request_id)
            if request.method == "GET" and outcome.status == 200 and "errors" not in outcome.body:
                return _cacheable(request, outcome, principal, media)
            return json_response(outcome.body, outcome.status, media, outcome.headers)
        return await self._batch(request, params, principal, media, request_id)

    async def _batch(
        self,
        request: Request,
        params: list[GraphQLParams],
        principal: Principal,
        media: str,
        request_id: str,
    ) -> Response:
        """Price every operation, debit the total once (T9, T16), run them, refund once."""
        total, mutation = 0, False
        may_introspect = policy.can_introspect(principal, production=self.settings.production)
        for item in params:
            try:
                text, _, _ = await self._document(request, item, principal)
                prepared = self.pipeline.prepare(
                    text, item.operation_name, may_introspect=may_introspect
                )
                estimate, _ = self.pipeline.price(prepared, item.variables or {})
            except OperationRefused:
                continue  # refused again, with its own error, when the batch runs
            total += estimate.requested
            mutation = mutation or is_mutation(prepared)
        keys = self.policies.keys(principal, mutation)
        try:
            charge = await self.pipeline.charge(keys, total, 0)
        except OperationRefused as refused:
            return json_response({"errors": refused.errors}, refused.status, media, refused.headers)
        batch = BatchCharge(charge)
        outcomes = [await self.run(request, p, principal, media, request_id, batch) for p in params]
        await self.pipeline.refund(charge, batch.actual)
        headers: dict[str, str] = {}
        if charge.decision is not None:
            headers.update(rate_limit_headers(charge.decision.binding))
        return json_response([o.body for o in outcomes], 200, media, headers)

    async def _params(self, request: Request) -> list[GraphQLParams]:
        if request.method == "GET":
            return params_from_get(request)
        if request.method != "POST":
            raise HTTPFailure(
                405, "Use GET or POST.", "METHOD_NOT_ALLOWED", headers={"Allow": "GET, POST"}
            )
        body = await request.body()
        return params_from_body(
            body,
            request.headers.get("content-type", ""),
            batching=self.settings.batching,
            max_batch=self.pipeline.limits.max_batch.value,
        )

    def _authenticate(self, request: Request) -> Principal:
        client_ip = request.client.host if request.client else None
        try:
            token = parse_bearer(request.headers.get("authorization"))
            if token is None:
                return Principal.anonymous_principal(client_ip)
            principal = self.verifier.verify(token)
        except AuthError as error:
            raise HTTPFailure(
                401,
                f"Authentication failed: {error.reason}.",
                "UNAUTHENTICATED",
                headers={"WWW-Authenticate": 'Bearer error="invalid_token"'},
            ) from None
        return Principal(
            subject=principal.subject,
            tenant_id=principal.tenant_id,
            role=principal.role,
            scopes=principal.scopes,
            tier=principal.tier,
            client_ip=client_ip,
        )

    async def run(
        self,
        request: Request,
        params: GraphQLParams,
        principal: Principal,
        media: str,
        request_id: str,
        batch: BatchCharge | None = None,
    ) -> Outcome:
        started = time.perf_counter()
        statements = dbstats.start()
        timing = ServerTiming()
        cache = CacheState()
        with self.tracer.operation_span() as span:
            try:
                outcome = await self._run(
                    request, params, principal, media, request_id, timing, batch, cache
                )
            except OperationRefused as refused:
                status = refused.status
                if (
                    media == JSON
                    and status == 400
                    and refused.code
                    in ("GRAPHQL_PARSE_FAILED", "GRAPHQL_VALIDATION_FAILED", "BAD_USER_INPUT")
                ):
                    # Legacy application/json clients get 200 for GraphQL-level failures (the
                    # released graphql-http audits 572B, FDE2, 7B9B expect this).
                    status = 200
                outcome = Outcome(
                    {"errors": refused.errors}, status, dict(refused.headers), refused.code
                )
                await self._budget_headers(outcome, principal)
                if self.metrics is not None:
                    self.metrics.refusal(refused.code)
            # -- dependency faults (server/faults.py) ----------------------------------------
            except Exception as exc:
                # A database outage outside execution (the registry's SQL store) is a 503,
                # never a 500; anything else still propagates.
                if not faults.is_database_unavailable(exc):
                    raise
                outcome = self._database_unavailable()
            finally:
                cache.release()  # a single flight this operation led ends with it
            outcome.cache = cache
            unavailable = faults.unavailable_status(
                outcome.body.get("data"), outcome.body.get("errors")
            )
            if unavailable is not None and outcome.status == 200:
                outcome.status = unavailable[0]
                outcome.headers = {**(outcome.headers or {}), **unavailable[1]}
                outcome.code = faults.SERVICE_UNAVAILABLE
            # -- end dependency faults --------------------------------------------------------
            self.tracer.set_operation(
                span, outcome.operation_name, outcome.operation_type, outcome.document_id
            )
            if outcome.code != "OK":
                self.tracer.set_error(span, outcome.code)
        latency_ms = (time.perf_counter() - started) * 1000
        timing.add("total", latency_ms)
        outcome.headers = {**(outcome.headers or {}), "Server-Timing": timing.header()}
        if self.settings.access_log:
            self._log(
                request, principal, params, outcome, request_id, latency_ms, statements[0], cache
            )
        if self.metrics is not None:
            self.metrics.operation(
                outcome.operation_name,
                outcome.operation_type,
                outcome.code,
                registered=outcome.registered,
                cost_requested=outcome.requested,
                cost_actual=outcome.actual,
            )
        return outcome

    async def _document(
        self, request: Request, params: GraphQLParams, principal: Principal
    ) -> tuple[str, str | None, bool]:
        """The text to run: a persisted document's, or the request's (as the mode allows)."""
        text, document_id, registered = params.query, None, False
        if self.registry is not None:
            try:
                resolved = await self.registry.resolve(
                    extract(params.raw),
                    client_name=_client_name(request),
                    may_run_adhoc=policy.can_run_adhoc(principal),
                )
            except PQError as error:
                raise OperationRefused(
                    [{"message": error.message, "extensions": error.extensions}],
                    status=error.status,
                    headers=dict(error.headers),
                    code=error.code,
                ) from None
            text, document_id, registered = resolved.text, resolved.document_id, resolved.registered
            if self.metrics is not None and resolved.source != "adhoc":
                self.metrics.pq_lookup(True)
        if text is None:
            raise OperationRefused(
                [{"message": "The request has no query.", "extensions": {"code": "BAD_REQUEST"}}]
            )
        return text, document_id, registered

    async def _run(
        self,
        request: Request,
        params: GraphQLParams,
        principal: Principal,
        media: str,
        request_id: str,
        timing: ServerTiming,
        batch: BatchCharge | None = None,
        cache: CacheState | None = None,
    ) -> Outcome:
        cache = cache if cache is not None else CacheState()
        with timing.measure("pq"):
            text, document_id, registered = await self._document(request, params, principal)
        may_introspect = policy.can_introspect(principal, production=self.settings.production)
        with timing.measure("gate"), self.tracer.phase("graphql.validate"):
            prepared = self.pipeline.prepare(
                text, params.operation_name, may_introspect=may_introspect
            )
        mutation = is_mutation(prepared)
        if prepared.deprecated:
            # Counted per client so a field can be removed once nobody calls it.
            client = _client_name(request)
            log.info("deprecated fields used: %s by %s", ",".join(prepared.deprecated), client)
            if self.metrics is not None:
                for name in prepared.deprecated:
                    self.metrics.deprecated_field(name, client)
        if request.method == "GET" and prepared.operation_type != "query":
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
        with timing.measure("cost"), self.tracer.phase("graphql.cost"):
            coerced = self.pipeline.coerce_variables(prepared, params.variables)
            # Priced on the variables as sent: coercion turns input objects into Python
            # instances, which the cost engine would not see into.
            estimate, measured = self.pipeline.price(prepared, params.variables or {})
        for would_refuse in measured:
            log.info("limit measured (not enforced): %s", would_refuse.code)
            if self.metrics is not None:
                self.metrics.refusal(f"{would_refuse.code}:measured")
        dry_run = _dry_run_requested(
            prepared, coerced, request.headers.get("x-cost-dry-run") == "1"
        )
        keys = self.policies.keys(principal, mutation)
        # -- response cache (issue #14): looked up after pricing and the per-operation limits,
        # before the charge; a hit is charged the flat hit price instead of the static cost.
        if self.cache is not None:
            with timing.measure("cache"):
                self.cache.begin(
                    cache,
                    text,
                    prepared,
                    params.variables,
                    principal,
                    bypass=dry_run or batch is not None,
                )
                hit = await self.cache.lookup(cache)
            if hit is not None:
                return await self._cache_hit(
                    hit, cache, prepared, estimate, keys, timing, document_id, registered
                )
        # -- end response cache -------------------------------------------------------------
        if dry_run:
            charge = Charge(requested=estimate.requested, nodes=estimate.nodes, keys=keys)
            if self.pipeline.limiter is not None:
                peek = await self.pipeline.limiter.peek(keys[0][0], keys[0][1])
                charge.decision = MultiDecision(allowed=True, decisions=(peek,), binding=peek)
        elif batch is not None:
            # The whole batch was debited up front, priced as one total.
            charge = Charge(estimate.requested, estimate.nodes, batch.charge.decision, keys)
        else:
            with timing.measure("ratelimit"):
                try:
                    charge = await self.pipeline.charge(keys, estimate.requested, estimate.nodes)
                except OperationRefused as refused:
                    self._count_decision(refused.code, keys)
                    raise
            self._count_decision("error" if charge.limiter_error else "allowed", keys)
        db = RequestDb(self.engine, principal.tenant_id, self.db_breaker)
        context = RequestContext(
            principal=principal,
            engine=self.engine,
            db=db,
            loaders=Loaders(db, self._on_batch),
            request_id=request_id,
            production=self.settings.production,
            max_page_size=self.pipeline.limits.max_page_size,
            rate_limit=self.pipeline.rate_limit_info(charge),
        )
        try:
            document = _only_rate_limit(prepared) if dry_run else None
            with timing.measure("exec"), self.tracer.phase("graphql.execute"):
                result = await self.pipeline.execute(
                    prepared, params.variables, context, document, coerced
                )
        finally:
            await db.close()
        actual = 0 if dry_run else prepared.plan.actual(result.data, params.variables or {})
        actual = min(actual, estimate.requested)
        if batch is not None:
            batch.actual += actual
        elif not dry_run:
            await self.pipeline.refund(charge, actual)
        body: dict[str, Any] = {}
        code = "OK"
        if result.errors:
            errors, masked = format_execution_errors(list(result.errors), request_id)
            for exc in masked:
                log.error("unexpected error (request %s)", request_id, exc_info=exc)
            body["errors"] = errors
            code = errors[0]["extensions"]["code"]
        body["data"] = result.data
        cost: dict[str, Any] = {
            "requestedQueryCost": estimate.requested,
            "actualQueryCost": actual,
        }
        headers: dict[str, str] = {}
        if charge.decision is not None:
            binding = charge.decision.binding
            cost["throttleStatus"] = {
                "maximumAvailable": binding.limit,
                "currentlyAvailable": min(
                    binding.limit, binding.remaining + max(0, estimate.requested - actual)
                ),
                "restoreRate": binding.policy.restore_rate,
            }
            headers.update(rate_limit_headers(binding))
        if dry_run:
            cost["dryRun"] = True
            cost["nodeCount"] = estimate.nodes
            cost["breakdown"] = [
                {
                    "path": item.path,
                    "weight": item.weight,
                    "multiplier": item.multiplier,
                    "subtotal": item.subtotal,
                }
                for item in estimate.breakdown()
            ]
        body["extensions"] = {"cost": cost}
        # -- response cache (issue #14): store a miss; a mutation's writes are invalidated
        # before its response is sent (on every worker, through Redis).
        if self.cache is not None:
            with timing.measure("cache"):
                await self.cache.store_result(cache, result.data, bool(result.errors))
                await self.cache.invalidate(principal, context.cache_tags)
            body["extensions"]["cache"] = cache.extension()
        # -- end response cache -------------------------------------------------------------
        return Outcome(
            body,
            200,
            headers,
            code,
            prepared.operation_name,
            prepared.operation_type,
            estimate.requested,
            actual,
            document_id,
            registered,
        )

    async def _cache_hit(
        self,
        hit: bytes,
        cache: CacheState,
        prepared: PreparedDocument,
        estimate: Any,
        keys: list[tuple[str, BucketPolicy]],
        timing: ServerTiming,
        document_id: str | None,
        registered: bool,
    ) -> Outcome:
        """A response served from the cache, charged the hit price (issue #14)."""
        assert self.cache is not None
        price = self.cache.hit_price
        with timing.measure("ratelimit"):
            try:
                charge = await self.pipeline.charge(keys, price, estimate.nodes)
            except OperationRefused as refused:
                self._count_decision(refused.code, keys)
                raise
        self._count_decision("error" if charge.limiter_error else "allowed", keys)
        cost: dict[str, Any] = {"requestedQueryCost": estimate.requested, "actualQueryCost": price}
        headers: dict[str, str] = {}
        if charge.decision is not None:
            binding = charge.decision.binding
            cost["throttleStatus"] = {
                "maximumAvailable": binding.limit,
                "currentlyAvailable": binding.remaining,
                "restoreRate": binding.policy.restore_rate,
            }
            headers.update(rate_limit_headers(binding))
        body = {
            "data": orjson.Fragment(hit),  # served as stored, never parsed
            "extensions": {"cost": cost, "cache": cache.extension()},
        }
        return Outcome(
            body,
            200,
            headers,
            "OK",
            prepared.operation_name,
            prepared.operation_type,
            estimate.requested,
            price,
            document_id,
            registered,
        )

    def _log(
        self,
        request: Request,
        principal: Principal,
        params: GraphQLParams,
        outcome: Outcome,
        request_id: str,
        latency_ms: float,
        statements: int,
        cache: CacheState | None = None,
    ) -> None:
        """One structured line per operation (secrets and variables never logged)."""
        headers = request.headers
        log_operation(
            request_id=request_id,
            tenant=principal.tenant_id.hex if principal.tenant_id else None,
            subject=None if principal.anonymous else principal.subject,
            client_name=_client_name(request),
            client_version=headers.get("apollographql-client-version")
            or headers.get("graphql-client-version"),
            operation_name=outcome.operation_name or params.operation_name,
            operation_type=outcome.operation_type,
            document_id=outcome.document_id,
            cost_requested=outcome.requested,
            cost_actual=outcome.actual,
            outcome=outcome.code,
            http_status=outcome.status,
            latency_ms=round(latency_ms, 3),
            sql_statements=statements,
            cache=cache.status if cache is not None else BYPASS,
        )

    def _database_unavailable(self) -> Outcome:
        """503 SERVICE_UNAVAILABLE for a database outage (see server/faults.py)."""
        self.db_breaker.record_failure()
        error = faults.unavailable_error("database", self.db_breaker.retry_after)
        retry = str(error["extensions"]["retryAfter"])
        return Outcome({"errors": [error]}, 503, {"Retry-After": retry}, faults.SERVICE_UNAVAILABLE)

    async def _budget_headers(self, outcome: Outcome, principal: Principal) -> None:
        """Refusals before the debit still show the caller's budget (headers on every response)."""
        headers = outcome.headers if outcome.headers is not None else {}
        outcome.headers = headers
        limiter = self.pipeline.limiter
        if limiter is None or any(k.lower() == "x-ratelimit-limit" for k in headers):
            return
        key, bucket = self.policies.keys(principal, mutation=False)[0]
        try:
            headers.update(rate_limit_headers(await limiter.peek(key, bucket)))
        except LimiterUnavailable:
            return

    def _on_batch(self, loader: str, size: int) -> None:
        if self.metrics is not None:
            self.metrics.dataloader_batch(loader, size)

    def _count_decision(self, code: str, keys: list[tuple[str, BucketPolicy]]) -> None:
        if self.metrics is None or not keys:
            return
        decision = {"THROTTLED": "throttled", "allowed": "allowed"}.get(code, "error")
        self.metrics.ratelimit_decision(decision, keys[0][1].name)
