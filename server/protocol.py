"""GraphQL-over-HTTP: reading requests, negotiating media types, writing responses."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import orjson
from starlette.requests import Request
from starlette.responses import Response

GRAPHQL_RESPONSE = "application/graphql-response+json"
JSON = "application/json"


class HTTPFailure(Exception):
    """A request refused before any GraphQL work, with its status and error code."""

    def __init__(
        self,
        status: int,
        message: str,
        code: str = "BAD_REQUEST",
        headers: dict[str, str] | None = None,
        **extensions: Any,
    ) -> None:
        super().__init__(message)
        self.status = status
        self.message = message
        self.code = code
        self.headers = headers or {}
        self.extensions = extensions


@dataclass(slots=True)
class GraphQLParams:
    """One operation's parameters, as sent."""

    query: str | None
    operation_name: str | None
    variables: dict[str, Any] | None
    extensions: dict[str, Any] = field(default_factory=dict)
    raw: dict[str, Any] = field(default_factory=dict)


def negotiate(accept_header: str | None) -> str:
    """Pick the response media type; ``application/json`` for legacy clients and */*."""
    if not accept_header:
        return JSON
    best: tuple[float, int, str] | None = None
    for index, part in enumerate(accept_header.split(",")):
        media, *options = (piece.strip() for piece in part.split(";"))
        quality = 1.0
        for option in options:
            name, _, value = option.partition("=")
            if name.strip().lower() == "q":
                try:
                    quality = float(value)
                except ValueError:
                    quality = 0.0
        media = media.lower()
        if quality <= 0:
            continue
        if media in (GRAPHQL_RESPONSE, JSON):
            chosen = media
        elif media in ("*/*", "application/*"):
            chosen = JSON
        else:
            continue
        # Highest quality wins; on a tie the first listed wins.
        candidate = (quality, -index, chosen)
        if best is None or candidate > best:
            best = candidate
    if best is None:
        raise HTTPFailure(
            406,
            "Nothing in Accept can be served; use application/graphql-response+json or application/json.",
            "NOT_ACCEPTABLE",
        )
    return best[2]


def _check_param_types(data: dict[str, Any]) -> GraphQLParams:
    query = data.get("query")
    operation_name = data.get("operationName")
    variables = data.get("variables")
    extensions = data.get("extensions")
    if query is not None and not isinstance(query, str):
        raise HTTPFailure(400, "query must be a string.")
    if operation_name is not None and not isinstance(operation_name, str):
        raise HTTPFailure(400, "operationName must be a string.")
    if variables is not None and not isinstance(variables, dict):
        raise HTTPFailure(400, "variables must be an object.")
    if extensions is not None and not isinstance(extensions, dict):
        raise HTTPFailure(400, "extensions must be an object.")
    return GraphQLParams(query, operation_name, variables, extensions or {}, data)


def _json_param(value: str | None, name: str) -> Any:
    if value is None or value == "":
        return None
    try:
        return orjson.loads(value)
    except orjson.JSONDecodeError as exc:
        raise HTTPFailure(400, f"{name} is not valid JSON.") from exc


def params_from_get(request: Request) -> list[GraphQLParams]:
    q = request.query_params
    data: dict[str, Any] = {key: q[key] for key in q if key not in ("variables", "extensions")}
    data["variables"] = _json_param(q.get("variables"), "variables")
    data["extensions"] = _json_param(q.get("extensions"), "extensions")
    return [_check_param_types(data)]


def params_from_body(
    body: bytes, content_type: str, *, batching: bool, max_batch: int
) -> list[GraphQLParams]:
    media = content_type.split(";")[0].strip().lower()
    if not media:
        raise HTTPFailure(
            415, "Content-Type is required; send application/json.", "UNSUPPORTED_MEDIA_TYPE"
        )
    if media != JSON and not media.endswith("+json"):
        # Form posts and text/plain are CSRF-able simple requests: never accepted.
        raise HTTPFailure(415, "Send application/json.", "UNSUPPORTED_MEDIA_TYPE")
    if not body.strip():
        raise HTTPFailure(400, "The request body is empty.")
    try:
        data = orjson.loads(body)
    except orjson.JSONDecodeError as exc:
        raise HTTPFailure(400, "The request body is not valid JSON.") from exc
    if isinstance(data, list):
        if not batching:
            raise HTTPFailure(
                400,
                "Batched requests are not enabled.",
                "BATCH_LIMIT_EXCEEDED",
                observed=len(data),
                limit=1,
            )
        if not data or len(data) > max_batch:
            raise HTTPFailure(
                400,
                f"A batch holds 1 to {max_batch} operations.",
                "BATCH_LIMIT_EXCEEDED",
                observed=len(data),
                limit=max_batch,
            )
        if not all(isinstance(item, dict) for item in data):
            raise HTTPFailure(400, "Each batched request must be an object.")
        return [_check_param_types(item) for item in data]
    if not isinstance(data, dict):
        raise HTTPFailure(400, "The request body must be a JSON object.")
    return [_check_param_types(data)]


def error_body(message: str, code: str, **extensions: Any) -> dict[str, Any]:
    return {"errors": [{"message": message, "extensions": {"code": code, **extensions}}]}


def json_response(
    payload: Any, status: int, media_type: str, headers: dict[str, str] | None = None
) -> Response:
    return Response(
        orjson.dumps(payload),
        status_code=status,
        media_type=f"{media_type}; charset=utf-8",
        headers=headers,
    )
