"""The one error type of the package, with the exact codes, messages and HTTP statuses."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

NOT_FOUND = "PERSISTED_QUERY_NOT_FOUND"
NOT_SUPPORTED = "PERSISTED_QUERY_NOT_SUPPORTED"
NOT_IN_LIST = "PERSISTED_QUERY_NOT_IN_LIST"
HASH_MISMATCH = "PERSISTED_QUERY_HASH_MISMATCH"
BAD_REQUEST = "BAD_REQUEST"

# Apollo Server, Router and Cosmo send this on every persisted-query error, so that no
# shared cache keeps a miss alive after the client registered the document.
NO_CACHE = "private, no-cache, must-revalidate"


class PQError(Exception):
    """A persisted-query refusal: ``code`` for ``extensions.code``, ``message``, HTTP ``status``.

    ``status`` is what to send with ``application/graphql-response+json``; NotFound and
    NotSupported are 200 on purpose (Apollo Client before 3.8 turned APQ off for good after
    a 400 or 500, and every client reads these two from a 200 body).
    """

    def __init__(
        self,
        code: str,
        message: str,
        status: int,
        *,
        extra: Mapping[str, Any] | None = None,
    ) -> None:
        super().__init__(message)
        self.code = code
        self.message = message
        self.status = status
        self.extra: dict[str, Any] = dict(extra or {})

    @property
    def extensions(self) -> dict[str, Any]:
        """Return the GraphQL error's ``extensions``: the code plus any observed values."""
        return {"code": self.code, **self.extra}

    @property
    def headers(self) -> dict[str, str]:
        """Return the response headers this error requires."""
        return {"Cache-Control": NO_CACHE}

    def __repr__(self) -> str:
        return f"PQError({self.code!r}, {self.message!r}, {self.status})"


def not_found() -> PQError:
    """Return the APQ miss Apollo Client and urql retry on (by message or by code)."""
    return PQError(NOT_FOUND, "PersistedQueryNotFound", 200)


def not_supported() -> PQError:
    """Return the APQ-disabled answer that makes Apollo Client stop sending hashes."""
    return PQError(NOT_SUPPORTED, "PersistedQueryNotSupported", 200)


def hash_mismatch() -> PQError:
    """Return the refusal of a text whose sha256 is not the id it came with."""
    return PQError(HASH_MISMATCH, "provided sha does not match query", 400)


def not_in_list(document_id: str) -> PQError:
    """Return the allowlist miss for an id: a code no client retries with the full text."""
    return PQError(
        NOT_IN_LIST,
        f"Persisted query '{document_id}' is not in the persisted query list",
        404,
        extra={"documentId": document_id},
    )


def adhoc_refused() -> PQError:
    """Return the allowlist refusal of an ad-hoc text; it names nothing of the schema."""
    return PQError(
        NOT_IN_LIST,
        "Only registered operations may be executed here; send a persisted document id",
        403,
    )


def bad_request(message: str) -> PQError:
    """Return a 400 for a request whose persisted-query parameters are malformed."""
    return PQError(BAD_REQUEST, message, 400)
