"""The ``/graphql`` endpoint: GraphQL-over-HTTP only (negotiation, parameters, authentication,
caching headers, status, the log line). An operation's life is ``server/operation.py``'s."""

from __future__ import annotations

import hashlib
import logging
import time
import uuid
from typing import Any

import orjson
from starlette.requests import Request
from starlette.responses import HTMLResponse, Response

from auth import Principal
from auth.tokens import AuthError, TokenVerifier, parse_bearer
from observability import Metrics, OperationTracer, log_operation
from persisted_queries import Registry
from server import dbstats
from server.operation import Batch, Operation, OperationRequest, Outcome, Runtime
from server.pipeline import GraphQLPipeline
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


def _cacheable(
    request: Request,
    outcome: Outcome,
    principal: Principal,
    media: str,
    cache: CacheState | None = None,
) -> Response:
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
    policy = cache.policy if cache is not None else None
    extra: dict[str, str] = {}
    if outcome.document_id is not None and policy is not None and policy.cacheable:
        # A persisted document's answer may be reused for its policy's maxAge (issue #14):
        # by shared caches only when anonymous and PUBLIC, else by the caller's own cache.
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


# Legacy application/json clients get 200 for GraphQL-level failures (the released
# graphql-http audits 572B, FDE2, 7B9B expect this).
_LEGACY_200 = frozenset({"GRAPHQL_PARSE_FAILED", "GRAPHQL_VALIDATION_FAILED", "BAD_USER_INPUT"})


def _address(request: Request) -> Principal:
    return Principal.anonymous_principal(request.client.host if request.client else None)


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
        self.settings = settings
        self.pipeline = pipeline
        self.verifier = verifier
        self.metrics = metrics
        self.graphiql_html = graphiql_html
        self.graphiql_csp = graphiql_csp
        self.runtime = Runtime(
            settings=settings,
            pipeline=pipeline,
            engine=engine,
            registry=registry,
            metrics=metrics,
            tracer=tracer or OperationTracer(None),
            cache=response_cache,
        )

    @property
    def tracer(self) -> OperationTracer:
        return self.runtime.tracer

    @tracer.setter
    def tracer(self, tracer: OperationTracer) -> None:
        self.runtime.tracer = tracer

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
        except HTTPFailure as failure:
            return await self._refused(request, failure, media, await self._payer(request))
        try:
            principal = await self._authenticate(request)
        except HTTPFailure as failure:
            return await self._refused(request, failure, media, _address(request))
        requests = [self._request(request, p, principal, request_id) for p in params]
        if len(requests) == 1:
            started, statements = time.perf_counter(), dbstats.start()
            operation = Operation(self.runtime, requests[0])
            outcome = await operation.run()
            self._finish(request, requests[0], outcome, media, started, operation, statements)
            if request.method == "GET" and outcome.status == 200 and "errors" not in outcome.body:
                return _cacheable(request, outcome, principal, media, operation.cache_state)
            return json_response(outcome.body, outcome.status, media, outcome.headers)
        started, statements = time.perf_counter(), dbstats.start()
        batch = Batch(self.runtime, requests)
        outcomes, status, headers = await batch.run()
        for item, outcome, operation in zip(requests, outcomes, batch.operations, strict=False):
            self._finish(request, item, outcome, media, started, operation, statements)
        if status != 200:  # the batch as a whole was refused (its total did not fit)
            return json_response(outcomes[0].body, status, media, headers)
        return json_response([o.body for o in outcomes], 200, media, headers)

    async def _payer(self, request: Request) -> Principal:
        """Who pays for a request refused before any operation: its caller, or the address
        when the token does not verify."""
        try:
            return await self._authenticate(request)
        except HTTPFailure:
            return _address(request)

    async def _refused(
        self, request: Request, failure: HTTPFailure, media: str, principal: Principal
    ) -> Response:
        """A request refused before any operation (bad parameters, a bad token) still pays
        one point: the caller's bucket, or the address's when the token is what failed."""
        paid = await self.runtime.refusal_headers(principal)
        status, headers = failure.status, dict(failure.headers)
        body = error_body(failure.message, failure.code, **failure.extensions)
        if paid is not None:
            headers.update(paid[1])
            if paid[0] == 429:
                retry = int(paid[1]["Retry-After"])
                status = 429
                body = error_body(
                    f"Throttled: too many refused requests. Retry in {retry} s.",
                    "THROTTLED",
                    retryAfter=retry,
                )
        return json_response(body, status, media, headers)

    def _request(
        self, request: Request, params: GraphQLParams, principal: Principal, request_id: str
    ) -> OperationRequest:
        return OperationRequest(
            params=params,
            principal=principal,
            method=request.method,
            request_id=request_id,
            client_name=_client_name(request),
            dry_run_header=request.headers.get("x-cost-dry-run") == "1",
        )

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

    async def _authenticate(self, request: Request) -> Principal:
        client_ip = request.client.host if request.client else None
        try:
            token = parse_bearer(request.headers.get("authorization"))
            if token is None:
                return Principal.anonymous_principal(client_ip)
            principal = await self.verifier.verify_async(token)
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

    def _finish(
        self,
        request: Request,
        item: OperationRequest,
        outcome: Outcome,
        media: str,
        started: float,
        operation: Operation,
        statements: list[int],
    ) -> None:
        """HTTP status for legacy clients, Server-Timing, the log line and the metrics."""
        if media == JSON and outcome.status == 400 and outcome.code in _LEGACY_200:
            outcome.status = 200
        latency_ms = (time.perf_counter() - started) * 1000
        operation.timing.add("total", latency_ms)
        outcome.headers = {**(outcome.headers or {}), "Server-Timing": operation.timing.header()}
        if self.settings.access_log:
            self._log(request, item, outcome, latency_ms, statements[0], operation.cache_state)
        if self.metrics is not None:
            self.metrics.operation(
                outcome.operation_name,
                outcome.operation_type,
                outcome.code,
                registered=outcome.registered,
                cost_requested=outcome.requested,
                cost_actual=outcome.actual,
            )

    def _log(
        self,
        request: Request,
        item: OperationRequest,
        outcome: Outcome,
        latency_ms: float,
        statements: int,
        cache: CacheState | None = None,
    ) -> None:
        """One structured line per operation (secrets and variables never logged)."""
        principal = item.principal
        headers = request.headers
        log_operation(
            request_id=item.request_id,
            tenant=principal.tenant_id.hex if principal.tenant_id else None,
            subject=None if principal.anonymous else principal.subject,
            client_name=item.client_name,
            client_version=headers.get("apollographql-client-version")
            or headers.get("graphql-client-version"),
            operation_name=outcome.operation_name
            or (item.params.operation_name or "")[:100]
            or None,
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
