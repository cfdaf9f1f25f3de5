"""The composition root: ``create_app(settings)`` wires every package into one ASGI app."""

from __future__ import annotations

import contextlib
import logging
import os
from collections.abc import AsyncIterator
from typing import Any

import redis.asyncio as aioredis
from graphql import GraphQLSchema
from starlette.applications import Starlette
from starlette.middleware import Middleware
from starlette.middleware.cors import CORSMiddleware
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import BaseRoute, Mount, Route
from starlette.staticfiles import StaticFiles

from auth import policy
from auth.tokens import AuthError, TokenVerifier, parse_bearer
from database.engine import make_engine, ping
from guards.cachecontrol import CacheControl
from guards.limits import Limits
from guards.ratelimit import MemoryRateLimiter, RateLimiter, RedisRateLimiter
from guards.responsecache import MemoryResponseStore, RedisResponseStore, ResponseStore
from observability import Metrics, OperationTracer, configure_logging, configure_tracing
from observability.request_id import RequestIdMiddleware
from observability.tracing import instrument_redis, instrument_sqlalchemy
from persisted_queries import MemoryCache, RedisCache, Registry, SQLStore
from resolvers.webhooks import EGRESS_KEY as WEBHOOK_EGRESS_KEY
from schema import build_schema
from server import dbstats, faults, graphiql
from server.endpoint import GraphQLEndpoint
from server.middleware import (
    BodySizeLimitMiddleware,
    CompressionMiddleware,
    HTTPMetricsMiddleware,
    SecurityHeadersMiddleware,
)
from server.pipeline import GraphQLPipeline
from server.registry import analyser, registry_routes
from server.response_cache import ResponseCache
from server.settings import Settings
from server.webhooks import webhook_egress, webhook_worker

log = logging.getLogger("tollgate")


def create_app(settings: Settings | None = None) -> Starlette:
    """Build the application; resources (engine, Redis) open and close with its lifespan."""
    settings = settings or Settings()
    configure_logging(level=settings.log_level, json=settings.log_json)
    metrics: Metrics | None = None
    if settings.metrics:
        multiprocess_dir = os.environ.get("PROMETHEUS_MULTIPROC_DIR") or None
        from prometheus_client import CollectorRegistry

        metrics = Metrics(
            None if multiprocess_dir else CollectorRegistry(), multiprocess_dir=multiprocess_dir
        )
    provider = configure_tracing(
        otlp_endpoint=settings.otlp_endpoint, sample_ratio=settings.trace_sample_ratio
    )
    tracer = OperationTracer(provider)
    strawberry_schema = build_schema()
    sdl = strawberry_schema.as_str()
    engine = make_engine(settings.database_url, pool_size=settings.database_pool_size)
    dbstats.install(engine)
    if provider is not None:
        instrument_sqlalchemy(engine.sync_engine, provider)
        instrument_redis(provider)
    redis_client: aioredis.Redis | None = None
    limiter: RateLimiter | None = None
    if settings.ratelimit:
        if settings.redis_url:
            # Repeated Redis failures open a breaker: refusals come at once instead of
            # each waiting for its timeout; the fail-open/closed policy still applies.
            limiter = faults.GuardedLimiter(
                RedisRateLimiter.from_url(
                    settings.redis_url, timeout=settings.redis_timeout_ms / 1000
                ),
                faults.dependency_breaker("redis"),
            )
        else:
            limiter = MemoryRateLimiter()
    if settings.redis_url:
        redis_client = aioredis.Redis.from_url(
            settings.redis_url,
            socket_timeout=max(0.25, settings.redis_timeout_ms / 1000),
            socket_connect_timeout=max(0.25, settings.redis_timeout_ms / 1000),
        )
    pipeline = GraphQLPipeline(
        schema=strawberry_schema._schema,
        sdl=sdl,
        limits=Limits.from_mapping(settings.limits),
        limiter=limiter,
        fail_open=settings.ratelimit_fail_open,
        execution_timeout=settings.execution_timeout_ms / 1000,
        fast_executor=settings.fast_executor,
    )
    registry = Registry(
        SQLStore(engine),
        mode=settings.effective_pq_mode,
        analyse=analyser(pipeline),
        cache=RedisCache(redis_client) if redis_client is not None else MemoryCache(10_000),
        apq_enabled=settings.apq,
    )
    verifier = TokenVerifier(settings.jwt())
    response_cache = _response_cache(settings, pipeline.cost_model.schema, redis_client, metrics)
    endpoint = GraphQLEndpoint(
        settings=settings,
        pipeline=pipeline,
        verifier=verifier,
        engine=engine,
        graphiql_html=graphiql.graphiql_html() if settings.graphiql_enabled else None,
        graphiql_csp=graphiql.CONTENT_SECURITY_POLICY,
        metrics=metrics,
        tracer=tracer,
        registry=registry,
        response_cache=response_cache,
    )

    async def metrics_refusal(request: Request) -> Response | None:
        """401/403 unless the caller's bearer token holds `metrics:read` (when required)."""
        if not settings.metrics_auth_required:
            return None
        challenge = 'Bearer realm="metrics", scope="metrics:read"'
        try:
            token = parse_bearer(request.headers.get("authorization"))
            principal = None if token is None else await verifier.verify_async(token)
        except AuthError as error:
            return JSONResponse(
                {"error": f"authentication failed: {error.reason}", "code": "UNAUTHENTICATED"},
                status_code=401,
                headers={"WWW-Authenticate": f'{challenge}, error="invalid_token"'},
            )
        if principal is None:
            return JSONResponse(
                {
                    "error": "a bearer token with metrics:read is required",
                    "code": "UNAUTHENTICATED",
                },
                status_code=401,
                headers={"WWW-Authenticate": challenge},
            )
        if not policy.can_read_metrics(principal):
            return JSONResponse(
                {"error": "needs the scope metrics:read", "code": "FORBIDDEN"},
                status_code=403,
                headers={"WWW-Authenticate": f'{challenge}, error="insufficient_scope"'},
            )
        return None

    endpoint.runtime.context_extra[WEBHOOK_EGRESS_KEY] = webhook_egress(settings)
    worker = webhook_worker(settings, engine, metrics) if settings.webhooks else None

    async def metrics_endpoint(request: Request) -> Response:
        if metrics is None:
            return JSONResponse({"error": "metrics are disabled"}, status_code=404)
        refusal = await metrics_refusal(request)
        if refusal is not None:
            return refusal
        body, content_type = metrics.render(request.headers.get("accept"))
        return Response(body, media_type=content_type)

    async def healthz(request: Request) -> Response:
        return JSONResponse({"status": "ok"})

    async def readyz(request: Request) -> Response:
        failing: dict[str, str] = {}
        try:
            await ping(engine)
        except Exception as exc:  # any driver error means "not ready"
            failing["database"] = type(exc).__name__
        if redis_client is not None:
            try:
                await redis_client.ping()
            except Exception as exc:
                failing["redis"] = type(exc).__name__
        if failing:
            return JSONResponse({"status": "unavailable", "failing": failing}, status_code=503)
        return JSONResponse({"status": "ready"})

    @contextlib.asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[dict[str, Any]]:
        registry.start()  # the list version is watched off the request path
        if worker is not None:
            worker.start()
        try:
            yield {}
        finally:
            if worker is not None:
                await worker.stop()
            await registry.stop()
            if limiter is not None:
                await limiter.close()
            if redis_client is not None:
                await redis_client.aclose()
            await engine.dispose()
            if provider is not None:
                provider.shutdown()

    routes: list[BaseRoute] = [
        Route("/graphql", endpoint.handle, methods=["GET", "POST", "PUT", "DELETE", "PATCH"]),
        Route("/healthz", healthz),
        Route("/readyz", readyz),
        Route("/metrics", metrics_endpoint),
        *registry_routes(registry, endpoint),
    ]
    if settings.graphiql_enabled:
        routes.append(Mount(graphiql.STATIC_URL, StaticFiles(directory=graphiql.STATIC_DIR)))
    middleware = [
        Middleware(RequestIdMiddleware),
        Middleware(HTTPMetricsMiddleware, metrics=metrics),
        Middleware(SecurityHeadersMiddleware, hsts=bool(settings.ssl_certfile)),
        Middleware(BodySizeLimitMiddleware, max_bytes=settings.max_body_bytes),
        Middleware(
            CORSMiddleware,
            allow_origins=settings.cors_origins,
            allow_methods=["GET", "POST"],
            allow_headers=[
                "authorization",
                "content-type",
                "x-request-id",
                "x-cost-dry-run",
                "apollographql-client-name",
                "apollographql-client-version",
                "graphql-client-name",
                "graphql-client-version",
            ],
            expose_headers=[
                "x-request-id",
                "retry-after",
                "ratelimit",
                "ratelimit-policy",
                "x-ratelimit-limit",
                "x-ratelimit-remaining",
                "x-ratelimit-reset",
            ],
        ),
        Middleware(CompressionMiddleware, minimum_size=1024),
    ]
    app = Starlette(routes=routes, middleware=middleware, lifespan=lifespan)
    app.state.settings = settings
    app.state.engine = engine
    app.state.pipeline = pipeline
    app.state.sdl = sdl
    app.state.registry = registry
    app.state.webhook_worker = worker
    app.state.response_cache = response_cache
    return app


def _response_cache(
    settings: Settings,
    schema: GraphQLSchema,
    redis_client: aioredis.Redis | None,
    metrics: Metrics | None,
) -> ResponseCache | None:
    """The response cache: in Redis when configured (shared), else in this process. ``schema``
    is the one built from the SDL (its directives are read from the AST)."""
    if not settings.response_cache:
        return None
    store: ResponseStore
    if redis_client is not None:
        store = RedisResponseStore(redis_client, prefix=settings.response_cache_prefix)
    elif settings.workers > 1:
        # Per-process caches cannot see each other's invalidations: a write through one
        # worker would leave the others serving the state before it.
        log.warning("response cache off: %d workers and no TOLLGATE_REDIS_URL", settings.workers)
        return None
    else:
        store = MemoryResponseStore(
            settings.response_cache_max_bytes,
            on_event=(metrics.response_cache if metrics is not None else lambda name, n: None),
        )
    return ResponseCache(
        store,
        CacheControl(schema),
        hit_price=settings.response_cache_hit_price,
        metrics=metrics,
    )
