"""Persisted-query registry wiring: the analyser, the admin endpoint and the GraphiQL list."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from auth import policy
from auth.tokens import AuthError, parse_bearer
from persisted_queries import Analysis, ManifestError, Registry, parse_manifest
from server.pipeline import GraphQLPipeline, OperationRefused


def analyser(pipeline: GraphQLPipeline) -> Callable[[str], Analysis]:
    """Parse, gate, validate and price a document for registration (at its variables' defaults)."""

    def analyse(text: str) -> Analysis:
        try:
            prepared = pipeline.prepare(text, None, may_introspect=True)
            estimate, _ = pipeline.price(prepared, {})
        except OperationRefused as refused:
            return Analysis(
                ok=False, cost=0, operation_name=None, reason=refused.errors[0]["message"]
            )
        return Analysis(ok=True, cost=estimate.requested, operation_name=prepared.operation_name)

    return analyse


def _report(report: Any) -> dict[str, Any]:
    return {
        "added": list(report.added),
        "unchanged": list(report.unchanged),
        "refused": [{"id": i, "reason": r} for i, r in report.refused],
        "repriced": [{"id": i, "old": o, "new": n} for i, o, n in getattr(report, "repriced", [])],
    }


def registry_routes(registry: Registry, endpoint: Any) -> list[Route]:
    """``POST /admin/persisted-queries`` (scope pq:admin) and ``GET /graphql/persisted``."""

    async def principal_of(request: Request) -> Any:
        token = parse_bearer(request.headers.get("authorization"))
        return None if token is None else await endpoint.verifier.verify_async(token)

    async def admin(request: Request) -> Response:
        try:
            principal = await principal_of(request)
        except AuthError as error:
            return JSONResponse({"error": error.reason, "code": "UNAUTHENTICATED"}, status_code=401)
        if principal is None:
            return JSONResponse(
                {"error": "authentication required", "code": "UNAUTHENTICATED"}, status_code=401
            )
        if not principal.has_scope("pq:admin"):
            return JSONResponse(
                {"error": "needs the scope pq:admin", "code": "FORBIDDEN"}, status_code=403
            )
        if request.headers.get("content-type", "").split(";")[0].strip() != "application/json":
            return JSONResponse({"error": "send application/json"}, status_code=415)
        try:
            body = await request.json()
            action = body.get("action", "push")
            client = body.get("clientName") or None
            entries = parse_manifest(body["manifest"]) if "manifest" in body else []
        except (ValueError, KeyError, AttributeError, ManifestError) as error:
            return JSONResponse(
                {"error": f"bad request: {error}", "code": "BAD_REQUEST"}, status_code=400
            )
        dry_run = bool(body.get("dryRun"))
        if action == "push":
            return JSONResponse(_report(await registry.register(client, entries, dry_run=dry_run)))
        if action == "diff":
            diff = await registry.diff(client, entries)
            return JSONResponse(
                {
                    "added": list(diff.added),
                    "removed": list(diff.removed),
                    "changedCost": [{"id": i, "old": o, "new": n} for i, o, n in diff.changed_cost],
                }
            )
        if action == "retire":
            ids = body.get("ids")
            retired = await registry.retire(client, ids, manifest=entries or None, dry_run=dry_run)
            return JSONResponse({"retired": list(retired)})
        return JSONResponse(
            {"error": "action is push, diff or retire", "code": "BAD_REQUEST"}, status_code=400
        )

    async def listing(request: Request) -> Response:
        try:
            principal = await principal_of(request)
        except AuthError:
            principal = None
        if principal is None or not policy.can_run_adhoc(principal):
            return JSONResponse({"operations": []})
        documents = await registry.list(None)
        return JSONResponse(
            {
                "operations": [
                    {
                        "id": d.document_id,
                        "name": d.operation_name,
                        "clientName": d.client_name,
                        "cost": d.cost,
                    }
                    for d in documents
                ]
            }
        )

    return [
        Route("/admin/persisted-queries", admin, methods=["POST"]),
        Route("/graphql/persisted", listing, methods=["GET"]),
    ]
