"""Errors a resolver raises; the server turns them into GraphQL errors with a stable code."""

from __future__ import annotations

from typing import Any


class ApiError(Exception):
    """A top-level GraphQL error with ``extensions.code`` (auth, input, availability)."""

    code = "INTERNAL_SERVER_ERROR"

    def __init__(self, message: str, **extensions: Any) -> None:
        super().__init__(message)
        self.message = message
        self.extensions = {"code": self.code, **extensions}


class BadUserInput(ApiError):
    code = "BAD_USER_INPUT"


class Unauthenticated(ApiError):
    code = "UNAUTHENTICATED"


class Forbidden(ApiError):
    code = "FORBIDDEN"


class ServiceUnavailable(ApiError):
    code = "SERVICE_UNAVAILABLE"


class UserErrorCode:
    """Business-rule failure codes (the contract's ``UserErrorCode``)."""

    INVALID_INPUT = "INVALID_INPUT"
    NOT_FOUND = "NOT_FOUND"
    VERSION_CONFLICT = "VERSION_CONFLICT"
    INVALID_STATE = "INVALID_STATE"
    INSUFFICIENT_STOCK = "INSUFFICIENT_STOCK"
    IDEMPOTENCY_KEY_REUSED = "IDEMPOTENCY_KEY_REUSED"
    DUPLICATE = "DUPLICATE"


class UserFailure(Exception):
    """A business-rule failure: rolls the mutation's transaction back, then becomes a userError."""

    def __init__(self, code: str, message: str, field: list[str] | None = None) -> None:
        super().__init__(message)
        self.code = code
        self.message = message
        self.field = field
