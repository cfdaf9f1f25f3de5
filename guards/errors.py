"""The one error type every guard raises, rendered as a GraphQL error with a stable code."""

from __future__ import annotations

from typing import Any

__all__ = ["GuardError"]


class GuardError(Exception):
    """A refusal by a guard: a machine code, a safe message, the observed value and the limit.

    Messages state numbers only and never name a type, field or argument of the schema, so
    they can be shown to callers who may not see the schema.

        raise GuardError("DEPTH_LIMIT_EXCEEDED", "Query depth 20 exceeds the limit of 15.",
                         observed=20, limit=15)
    """

    def __init__(
        self,
        code: str,
        message: str,
        *,
        observed: int | None = None,
        limit: int | None = None,
        http_status: int = 400,
        locations: list[dict[str, int]] | None = None,
    ) -> None:
        super().__init__(message)
        self.code = code
        self.message = message
        self.observed = observed
        self.limit = limit
        self.http_status = http_status
        self.locations = locations

    def to_graphql(self) -> dict[str, Any]:
        """The error as a GraphQL response error: message plus extensions code and numbers."""
        error: dict[str, Any] = {"message": self.message}
        if self.locations:
            error["locations"] = self.locations
        error["extensions"] = {"code": self.code, "observed": self.observed, "limit": self.limit}
        return error

    def __repr__(self) -> str:
        return (
            f"GuardError({self.code!r}, {self.message!r}, observed={self.observed!r},"
            f" limit={self.limit!r})"
        )
