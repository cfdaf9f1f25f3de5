"""The request path for one GraphQL operation: gate, validate, price, charge, execute, refund.

Every step refuses as early and as cheaply as it can; every refusal is one GraphQL error with
``extensions.code``, the observed value and the limit. Parsed, validated and priced documents
are cached (bounded LRU) so a repeated document costs a dictionary look-up.
"""

from __future__ import annotations

import asyncio
import copy
import datetime as dt
import hashlib
import logging
import math
import time
from dataclasses import dataclass, field
from typing import Any

from graphql import (
    DocumentNode,
    ExecutionResult,
    FieldNode,
    GraphQLError,
    GraphQLSchema,
    OperationDefinitionNode,
    OperationType,
    SelectionSetNode,
    execute,
    specified_rules,
    validate,
)
from graphql.execution.values import get_variable_values
from graphql.validation import NoSchemaIntrospectionCustomRule

from guards.cache import LRUCache
from guards.cost import CostModel, CostPlan, check_estimate
from guards.errors import GuardError
from guards.gate import check_document
from guards.limits import Limits
from guards.ratelimit import (
    BucketPolicy,
    LimiterUnavailable,
    MultiDecision,
    RateLimiter,
)
from resolvers.context import RateLimitInfo
from resolvers.errors import ApiError
from schema.bindings import BINDINGS
from schema.executor import FastExecutor
from server import faults
from server.deprecation import deprecated_fields

log = logging.getLogger("tollgate.graphql")

UNPLANNED: Any = object()
MAX_MESSAGE = 300  # no refusal message echoes more of the request than this


def cut(text: str, limit: int = MAX_MESSAGE) -> str:
    """``text`` cut to ``limit`` characters, so no message echoes unbounded input."""
    return text if len(text) <= limit else text[: limit - 1] + "…"


class OperationRefused(Exception):
    """The operation fails before execution (no ``data`` key in the response)."""

    def __init__(
        self,
        errors: list[dict[str, Any]],
        status: int = 400,
        headers: dict[str, str] | None = None,
        code: str | None = None,
        decision: MultiDecision | None = None,
    ) -> None:
        super().__init__(errors[0]["message"] if errors else "refused")
        self.errors = errors
        self.status = status
        self.headers = headers or {}
        self.decision = decision  # the limiter's answer, when the refusal is a throttle
        self.code = (
            code
            or (errors[0].get("extensions", {}).get("code") if errors else None)
            or "BAD_REQUEST"
        )


@dataclass(slots=True)
class PreparedDocument:
    """A document parsed, gated, validated and compiled to a cost plan, cached per text."""

    document: DocumentNode
    operation: OperationDefinitionNode
    operation_type: str
    operation_name: str | None
    plan: CostPlan
    measured: list[GuardError] = field(default_factory=list)
    deprecated: tuple[str, ...] = ()
    # The batched executor's plan: None when graphql-core must run the operation, UNPLANNED
    # until first asked; documents with @skip/@include are planned per request (conditional).
    fast_plan: Any = UNPLANNED
    conditional: bool = False
    # The response cache's policy for it and its text's digest: None until first asked.
    cache_analysis: Any = None

    def only_rate_limit(self) -> DocumentNode:
        """The operation reduced to its ``rateLimit`` and ``__typename`` root fields (a dry run)."""
        operation = self.operation
        kept = tuple(
            s
            for s in operation.selection_set.selections
            if isinstance(s, FieldNode) and s.name.value in ("rateLimit", "__typename")
        )
        reduced = OperationDefinitionNode(
            operation=operation.operation,
            name=operation.name,
            variable_definitions=operation.variable_definitions,
            directives=operation.directives,
            selection_set=SelectionSetNode(selections=kept),
        )
        return DocumentNode(definitions=(reduced,))


@dataclass(frozen=True, slots=True)
class CachedRefusal:
    """A document's refusal as data (never the exception itself: see ``prepare``)."""

    errors: tuple[dict[str, Any], ...]
    status: int
    code: str

    @classmethod
    def of(cls, refused: OperationRefused) -> CachedRefusal:
        return cls(tuple(copy.deepcopy(refused.errors)), refused.status, refused.code)

    def refused(self) -> OperationRefused:
        return OperationRefused(copy.deepcopy(list(self.errors)), self.status, code=self.code)


@dataclass(slots=True)
class Charge:
    """What one operation was charged, for the refund and the response's accounting."""

    requested: int
    nodes: int
    decision: MultiDecision | None = None
    keys: list[tuple[str, BucketPolicy]] = field(default_factory=list)
    limiter_error: bool = False


def format_pre_execution(errors: list[GraphQLError], code: str) -> list[dict[str, Any]]:
    formatted: list[dict[str, Any]] = []
    for error in errors:
        item: dict[str, Any] = dict(error.formatted)
        item["message"] = cut(item["message"])
        extensions = dict(item.get("extensions") or {})
        extensions.setdefault("code", code)
        item["extensions"] = extensions
        formatted.append(item)
    return formatted


class GraphQLPipeline:
    """Parses, guards, prices, charges and executes operations for one schema."""

    def __init__(
        self,
        *,
        schema: GraphQLSchema,
        sdl: str,
        limits: Limits,
        limiter: RateLimiter | None,
        fail_open: bool,
        cache_size: int = 1000,
        cache_bytes: int = 4_000_000,
        execution_timeout: float = 10.0,
        fast_executor: bool = True,
    ) -> None:
        self.schema = schema
        self.fast = FastExecutor(schema, BINDINGS) if fast_executor else None
        self.limits = limits
        self.cost_model = CostModel.from_sdl(sdl, max_page_size=limits.max_page_size)
        # Keyed by a digest of the text; bounded in entries and in bytes of source text (an
        # entry's parsed AST takes some tens of times its source).
        self.cache: LRUCache = LRUCache(cache_size, cache_bytes)
        self.limiter = limiter
        self.fail_open = fail_open
        self.execution_timeout = execution_timeout
        self._rules_all = tuple(specified_rules)
        self._rules_no_introspection = (*specified_rules, NoSchemaIntrospectionCustomRule)

    # -- preparation -----------------------------------------------------------------------

    def prepare(
        self, text: str, operation_name: str | None, *, may_introspect: bool
    ) -> PreparedDocument:
        """Gate, parse, validate and compile ``text`` (cached per digest of the text, the
        operation name and visibility; refusals are cached too, small)."""
        digest = hashlib.blake2b(text.encode("utf-8", "surrogatepass"), digest_size=16).digest()
        key = (digest, operation_name, may_introspect)
        cached = self.cache.get(key)
        if cached is not None:
            if isinstance(cached, CachedRefusal):
                # A fresh exception each time: re-raising one instance would chain every
                # request's frames (and their bodies) onto its traceback, for ever.
                raise cached.refused()
            return cached  # type: ignore[no-any-return]
        try:
            prepared = self._prepare(text, operation_name, may_introspect=may_introspect)
        except OperationRefused as refused:
            size = 64 + sum(len(str(e.get("message", ""))) for e in refused.errors)
            self.cache.put(key, CachedRefusal.of(refused), size=size)
            raise
        self.cache.put(key, prepared, size=len(text) + len(operation_name or ""))
        return prepared

    def _prepare(
        self, text: str, operation_name: str | None, *, may_introspect: bool
    ) -> PreparedDocument:
        try:
            document, stats = check_document(text, operation_name, self.limits)
        except GuardError as error:
            failure = error.to_graphql()
            failure["message"] = cut(failure["message"])
            raise OperationRefused([failure], status=error.http_status) from None
        rules = self._rules_all if may_introspect else self._rules_no_introspection
        errors = validate(
            self.schema, document, rules, max_errors=20, hide_suggestions=not may_introspect
        )
        if errors:
            raise OperationRefused(format_pre_execution(errors, "GRAPHQL_VALIDATION_FAILED"))
        operation = stats.operation  # selected once, by the gate
        if operation is None:
            message = (
                f"Unknown operation named '{cut(operation_name, 200)}'."
                if operation_name
                else "Must provide operation name if query contains multiple operations."
            )
            raise OperationRefused(
                [{"message": message, "extensions": {"code": "GRAPHQL_VALIDATION_FAILED"}}]
            )
        try:
            plan = self.cost_model.compile(document, operation_name, operation=operation)
        except GuardError as error:
            raise OperationRefused([error.to_graphql()], status=error.http_status) from None
        return PreparedDocument(
            document=document,
            operation=operation,
            operation_type=operation.operation.value,
            operation_name=operation.name.value if operation.name else None,
            plan=plan,
            measured=list(stats.measured),
            deprecated=tuple(deprecated_fields(self.schema, document, operation_name)),
            conditional=FastExecutor.conditional(document),
        )

    def coerce_variables(
        self, prepared: PreparedDocument, variables: dict[str, Any] | None
    ) -> dict[str, Any]:
        """Coerce the variables (BAD_USER_INPUT on failure), as execution will."""
        result = get_variable_values(
            self.schema,
            prepared.operation.variable_definitions or (),
            variables or {},
            max_errors=20,
            hide_suggestions=True,
        )
        if isinstance(result, list):
            raise OperationRefused(format_pre_execution(result, "BAD_USER_INPUT"))
        coerced: dict[str, Any] = result.coerced
        return coerced

    def price(
        self, prepared: PreparedDocument, variables: dict[str, Any]
    ) -> tuple[Any, list[GuardError]]:
        """Static cost and node count on the variables as sent; the list-length, COST and
        NODE checks (``guards.cost.check_estimate``) enforced or measured. Returns the
        estimate and this request's measured refusals."""
        try:
            estimate = prepared.plan.evaluate(variables)
            measured: list[GuardError] = []
            check_estimate(estimate, self.limits, measured)
        except GuardError as error:
            raise OperationRefused([error.to_graphql()], status=error.http_status) from None
        return estimate, measured

    # -- rate limiting ----------------------------------------------------------------------

    async def charge(
        self, keys: list[tuple[str, BucketPolicy]], requested: int, nodes: int
    ) -> Charge:
        """Debit ``requested`` from every bucket, all or nothing (THROTTLED when it does not fit)."""
        charge = Charge(requested=requested, nodes=nodes, keys=keys)
        if self.limiter is None or not keys:
            return charge
        try:
            decision = await self.limiter.debit_all(keys, requested)
        except LimiterUnavailable:
            charge.limiter_error = True
            if self.fail_open:
                log.warning("rate limiter unavailable; failing open")
                return charge
            raise OperationRefused(
                [
                    {
                        "message": "The rate limiter is unavailable; try again shortly.",
                        "extensions": {"code": "SERVICE_UNAVAILABLE"},
                    }
                ],
                status=503,
                headers={"Retry-After": "1"},
            ) from None
        charge.decision = decision
        if decision.allowed:
            return charge
        binding = decision.binding
        if decision.exceeds_capacity:
            raise OperationRefused(
                [
                    {
                        "message": f"The operation's cost {requested} exceeds the budget's capacity of {binding.limit}.",
                        "extensions": {
                            "code": "COST_LIMIT_EXCEEDED",
                            "observed": requested,
                            "limit": binding.limit,
                        },
                    }
                ],
                status=400,
            )
        retry = max(1, math.ceil(binding.retry_after))
        raise OperationRefused(
            [
                {
                    "message": f"Throttled: this operation costs {requested}. Retry in {retry} s.",
                    "extensions": {
                        "code": "THROTTLED",
                        "observed": requested,
                        "limit": binding.remaining,
                        "retryAfter": retry,
                    },
                }
            ],
            status=429,
            headers={"Retry-After": str(retry)},
            decision=decision,
        )

    async def refund(self, charge: Charge, actual: int) -> None:
        """Give back what the operation did not use (``credit_all`` never fails the request:
        a refund it cannot deliver is dropped and logged by the limiter)."""
        unused = charge.requested - actual
        if self.limiter is None or charge.decision is None or unused <= 0:
            return
        await self.limiter.credit_all(charge.keys, unused)

    @staticmethod
    def rate_limit_info(charge: Charge) -> RateLimitInfo:
        """The ``rateLimit`` field's figures for this operation."""
        now = dt.datetime.now(dt.UTC)
        if charge.decision is None:
            return RateLimitInfo(
                limit=0,
                cost=charge.requested,
                remaining=0,
                restore_rate=0.0,
                reset_at=now,
                node_count=charge.nodes,
            )
        binding = charge.decision.binding
        return RateLimitInfo(
            limit=binding.limit,
            cost=charge.requested,
            remaining=binding.remaining,
            restore_rate=binding.policy.restore_rate,
            reset_at=now + dt.timedelta(seconds=binding.reset_after),
            node_count=charge.nodes,
        )

    # -- execution --------------------------------------------------------------------------

    async def execute(
        self,
        prepared: PreparedDocument,
        variables: dict[str, Any] | None,
        context: Any,
        document: DocumentNode | None = None,
        coerced: dict[str, Any] | None = None,
    ) -> ExecutionResult:
        """Execute under the deadline; TIMEOUT when it passes.

        With ``coerced`` variables, an operation the batched executor covers runs there
        (``schema.executor``); everything else, and any substitute ``document``, runs in
        graphql-core.
        """
        started = time.perf_counter()
        plan = None
        if document is None and coerced is not None and self.fast is not None:
            plan = self._plan(prepared, coerced)
        try:
            if plan is not None:
                # asyncio.timeout, not wait_for: no task of its own for every operation.
                async with asyncio.timeout(self.execution_timeout):
                    data, errors = await self.fast.run(plan, context, coerced)  # type: ignore[union-attr,arg-type]
                return ExecutionResult(data=data, errors=errors or None)
            result = execute(
                self.schema,
                document or prepared.document,
                context_value=context,
                variable_values=variables or {},
                operation_name=prepared.operation_name,
                hide_suggestions=True,
            )
            if asyncio.iscoroutine(result) or isinstance(result, asyncio.Future):
                result = await asyncio.wait_for(result, self.execution_timeout)
        except asyncio.CancelledError:
            task = asyncio.current_task()
            if task is not None and task.cancelling():
                raise  # the request itself is being cancelled (client gone, shutdown)
            # A resolver was cancelled by its siblings' failure: an internal error, answered.
            log.exception("execution cancelled from inside")
            return ExecutionResult(
                data=None,
                errors=[
                    GraphQLError("Internal server error.", original_error=RuntimeError("cancelled"))
                ],
            )
        except TimeoutError:
            elapsed = int((time.perf_counter() - started) * 1000)
            return ExecutionResult(
                data=None,
                errors=[
                    GraphQLError(
                        f"The operation did not finish within {int(self.execution_timeout * 1000)} ms.",
                        extensions={
                            "code": "TIMEOUT",
                            "observed": elapsed,
                            "limit": int(self.execution_timeout * 1000),
                        },
                    )
                ],
            )
        return result  # type: ignore[return-value]

    def _plan(self, prepared: PreparedDocument, coerced: dict[str, Any]) -> Any:
        assert self.fast is not None
        if prepared.conditional:
            return self.fast.plan(prepared.document, prepared.operation, coerced)
        if prepared.fast_plan is UNPLANNED:
            prepared.fast_plan = self.fast.plan(prepared.document, prepared.operation, coerced)
        return prepared.fast_plan


def format_execution_errors(
    errors: list[GraphQLError], request_id: str
) -> tuple[list[dict[str, Any]], list[BaseException]]:
    """Keep errors meant for the caller; mask everything else with the request id."""
    formatted: list[dict[str, Any]] = []
    masked: list[BaseException] = []
    for error in errors:
        original = error.original_error
        item: dict[str, Any] = dict(error.formatted)
        outage = faults.unavailable_item(original, item)
        if outage is not None:
            formatted.append(outage)
            continue
        extensions = dict(item.get("extensions") or {})
        if (
            isinstance(original, ApiError)
            or (original is None and extensions.get("code"))
            or (isinstance(original, GraphQLError) and extensions.get("code"))
        ):
            item["extensions"] = extensions
        else:
            masked.append(original or error)
            item = {
                "message": f"Internal server error. Request id: {request_id}.",
                "locations": item.get("locations"),
                "path": item.get("path"),
                "extensions": {"code": "INTERNAL_SERVER_ERROR", "requestId": request_id},
            }
            if item["locations"] is None:
                del item["locations"]
        formatted.append(item)
    return formatted, masked


def is_mutation(prepared: PreparedDocument) -> bool:
    return prepared.operation.operation is OperationType.MUTATION
