"""Reading a persisted-document id from GraphQL-over-HTTP request parameters, every dialect."""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Literal

from persisted_queries.errors import PQError, bad_request
from persisted_queries.ids import normalise_id

__all__ = ["PQError", "PQRequest", "extract"]

# Top-level id fields: GraphQL-over-HTTP Appendix A (documentId), Relay's docs (doc_id),
# Hot Chocolate and express-graphql-persisted-queries (id).
_ID_FIELDS = ("documentId", "doc_id", "id")


@dataclass(frozen=True, slots=True)
class PQRequest:
    """What a request asks for: ``kind`` of id, the normalised ``id``, and any ``query`` text."""

    kind: Literal["none", "apq", "document_id"]
    id: str | None
    query: str | None


def extract(params: Mapping[str, Any]) -> PQRequest:
    """Read the persisted-query parameters of one GraphQL-over-HTTP request.

    Accepts ``extensions.persistedQuery {version: 1, sha256Hash}`` (hash bare or with the
    ``sha256:`` prefix; extra keys such as urql's ``miss`` tolerated) and the top-level
    ``documentId``, ``doc_id`` and ``id``. ``params`` is a POST body or the GET query
    parameters; a GET ``extensions`` still in its JSON text form is decoded here.

    Raises:
        PQError: 400 ``BAD_REQUEST`` for malformed shapes (non-string ids or query, an
            unsupported ``persistedQuery.version``, two different ids in one request).
    """
    query = params.get("query")
    if query is not None and not isinstance(query, str):
        raise bad_request("The 'query' parameter must be a string")
    if query == "":
        query = None

    ids: list[tuple[str, str]] = []
    apq_id = _apq_id(params.get("extensions"))
    if apq_id is not None:
        ids.append(("apq", apq_id))
    for field in _ID_FIELDS:
        raw = params.get(field)
        if raw is None:
            continue
        if not isinstance(raw, str):
            raise bad_request(f"The '{field}' parameter must be a string")
        ids.append(("document_id", _normalise(raw, field)))

    if not ids:
        return PQRequest("none", None, query)
    if len(ids) > 1 and any(value != ids[0][1] for _, value in ids):
        raise bad_request("The request names more than one persisted document id")
    kind, document_id = ids[0]
    return PQRequest("apq" if kind == "apq" else "document_id", document_id, query)


def _apq_id(extensions: Any) -> str | None:
    if extensions is None or extensions == "":
        return None
    if isinstance(extensions, str):
        try:
            extensions = json.loads(extensions)
        except ValueError:
            raise bad_request("The 'extensions' parameter is not valid JSON") from None
    if not isinstance(extensions, Mapping):
        raise bad_request("The 'extensions' parameter must be a JSON object")
    persisted = extensions.get("persistedQuery")
    if persisted is None:
        return None
    if not isinstance(persisted, Mapping):
        raise bad_request("extensions.persistedQuery must be a JSON object")
    version = persisted.get("version")
    if type(version) is not int or version != 1:
        raise bad_request("Unsupported persisted query version")
    raw = persisted.get("sha256Hash")
    if not isinstance(raw, str):
        raise bad_request("extensions.persistedQuery.sha256Hash must be a string")
    return _normalise(raw, "sha256Hash")


def _normalise(raw: str, field: str) -> str:
    try:
        return normalise_id(raw)
    except ValueError as exc:
        raise bad_request(f"Invalid persisted document id in '{field}': {exc}") from None
