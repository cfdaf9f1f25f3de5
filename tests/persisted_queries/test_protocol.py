"""Reading ids from GraphQL-over-HTTP params in every client dialect."""

from __future__ import annotations

import json
from typing import Any

import pytest

from persisted_queries import PQError, PQRequest, extract, sha256_hex

QUERY = "query Hello { hello }"
HASH = sha256_hex(QUERY)


def apq(hash_: str = HASH, **extra: Any) -> dict[str, Any]:
    return {"persistedQuery": {"version": 1, "sha256Hash": hash_, **extra}}


@pytest.mark.parametrize(
    ("params", "expected"),
    [
        # Apollo Client APQ, hash only (POST body)
        ({"operationName": "Hello", "variables": {}, "extensions": apq()}, ("apq", HASH, None)),
        # Apollo Client APQ retry with the text
        ({"query": QUERY, "extensions": apq()}, ("apq", HASH, QUERY)),
        # GraphQL Codegen >= 6 wired to Apollo's link: prefixed id inside sha256Hash
        ({"extensions": apq("sha256:" + HASH)}, ("apq", HASH, None)),
        # Apollo Client 4 adds clientLibrary; urql adds persistedQuery.miss on its retry
        (
            {
                "query": QUERY,
                "extensions": {
                    **apq(miss=True),
                    "clientLibrary": {"name": "@apollo/client", "version": "4.0.0"},
                },
            },
            ("apq", HASH, QUERY),
        ),
        # GET: extensions still as its JSON text
        ({"extensions": json.dumps(apq())}, ("apq", HASH, None)),
        # GraphQL-over-HTTP Appendix A, POST body and GET parameter alike
        ({"documentId": "sha256:" + HASH, "variables": {}}, ("document_id", HASH, None)),
        ({"documentId": "sha256:" + HASH.upper()}, ("document_id", HASH, None)),
        # Relay's documented network layer, and the plain `id` of other servers
        (
            {"doc_id": "0123456789ABCDEF0123456789ABCDEF"},
            ("document_id", "0123456789abcdef" * 2, None),
        ),
        ({"id": "OrdersPage_v2"}, ("document_id", "OrdersPage_v2", None)),
        # Hive's app~version~hash ids stay whole; the registry splits them
        ({"documentId": "ios~1.0~" + HASH}, ("document_id", "ios~1.0~" + HASH, None)),
        # Plain GraphQL, and extensions without persistedQuery
        ({"query": QUERY, "extensions": {"tracing": True}}, ("none", None, QUERY)),
        ({"query": QUERY, "extensions": None}, ("none", None, QUERY)),
        ({}, ("none", None, None)),
        # The same id twice is not a conflict
        ({"documentId": HASH, "extensions": apq()}, ("apq", HASH, None)),
    ],
)
def test_extract_reads_every_dialect(params: dict[str, Any], expected: tuple[Any, ...]) -> None:
    assert extract(params) == PQRequest(*expected)


@pytest.mark.parametrize(
    ("params", "message"),
    [
        (
            {"extensions": {"persistedQuery": {"version": 2, "sha256Hash": HASH}}},
            "Unsupported persisted query version",
        ),
        (
            {"extensions": {"persistedQuery": {"sha256Hash": HASH}}},
            "Unsupported persisted query version",
        ),
        (
            {"extensions": {"persistedQuery": {"version": "1", "sha256Hash": HASH}}},
            "Unsupported persisted query version",
        ),
        (
            {"extensions": {"persistedQuery": {"version": True, "sha256Hash": HASH}}},
            "Unsupported persisted query version",
        ),
        (
            {"extensions": {"persistedQuery": {"version": 1, "sha256Hash": 12}}},
            "sha256Hash must be a string",
        ),
        ({"extensions": {"persistedQuery": {"version": 1}}}, "sha256Hash must be a string"),
        ({"extensions": {"persistedQuery": "abc"}}, "must be a JSON object"),
        ({"extensions": "{not json"}, "not valid JSON"),
        ({"extensions": [1]}, "must be a JSON object"),
        ({"documentId": 123}, "'documentId' parameter must be a string"),
        ({"doc_id": ["x"]}, "'doc_id' parameter must be a string"),
        ({"id": 7}, "'id' parameter must be a string"),
        ({"documentId": "sha256:abc"}, "Invalid persisted document id"),
        ({"documentId": "x" * 300}, "Invalid persisted document id"),
        ({"documentId": "a", "doc_id": "b"}, "more than one persisted document id"),
        ({"documentId": "a", "extensions": apq()}, "more than one persisted document id"),
        ({"query": {"text": QUERY}}, "'query' parameter must be a string"),
    ],
)
def test_extract_refuses_bad_shapes_with_400(params: dict[str, Any], message: str) -> None:
    with pytest.raises(PQError) as caught:
        extract(params)
    assert caught.value.status == 400
    assert caught.value.code == "BAD_REQUEST"
    assert message in caught.value.message
    assert caught.value.extensions == {"code": "BAD_REQUEST"}
