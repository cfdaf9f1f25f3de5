"""The pre-validation gate (request path step 5): size, tokens, then one linear pass over the AST.

graphql-core's overlap validation is quadratic in duplicated fields and naive fragment walks
are exponential in fragment fan-out, so everything here runs before ``graphql.validate`` and
in time linear in the document: each fragment is summarised once, in dependency order, and a
spread adds the summary (multiplied by how often it is spread) without expanding anything.

    size = check_size(body_text, limits)
    document = parse(body_text, limits)
    stats = inspect(document, operation_name, limits)   # raises GuardError in enforce mode
    for refusal in stats.measured: log_and_count(refusal)

Fragment cycles are refused with ``GRAPHQL_VALIDATION_FAILED`` (they are invalid by the spec
rule NoFragmentCycles, whatever the limits say). Checks run in a fixed order, so a document
over several limits gets the first code of: fragment expansion, depth, aliases, directives,
root fields, mutation fields, fields per selection set, fields in total.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

from graphql import GraphQLSyntaxError
from graphql import parse as graphql_parse
from graphql.language import (
    DocumentNode,
    FieldNode,
    FragmentDefinitionNode,
    FragmentSpreadNode,
    InlineFragmentNode,
    OperationDefinitionNode,
    SelectionSetNode,
)

from guards.errors import GuardError
from guards.limits import Limits, Mode, apply_limit, limit_error

__all__ = [
    "DocumentStats",
    "check_document",
    "check_size",
    "count_tokens",
    "inspect",
    "parse",
]

# Counts saturate here: a fan-out of 2**4000 is as refused as one of 2**62, and cheaper.
_CAP = 1 << 62

# One match per lexical token as graphql-core counts them for ``max_tokens`` (comments
# included, commas and whitespace not). Strings come first so their content is one token.
_TOKEN_RE = re.compile(
    r'"""(?:\\"""|[^"]|"(?!""))*"""'
    r'|"(?:\\.|[^"\\\n\r])*"'
    r"|#[^\n\r]*"
    r"|\.\.\."
    r"|-?\d+(?:\.\d+)?(?:[eE][+-]?\d+)?"
    r"|[_A-Za-z][_0-9A-Za-z]*"
    r"|[!$&()\[\]{}:=@|]"
)


def check_size(text: str | bytes, limits: Limits, measured: list[GuardError] | None = None) -> int:
    """Refuse a document over ``max_bytes`` (UTF-8 bytes); return its size."""
    if isinstance(text, str):
        size = len(text) if text.isascii() else len(text.encode("utf-8", "surrogatepass"))
    else:
        size = len(text)
    apply_limit(limits, "max_bytes", size, measured)
    return size


def count_tokens(text: str) -> int:
    """Lexical tokens in ``text`` as graphql-core's ``max_tokens`` counts them (comments too)."""
    return sum(1 for _ in _TOKEN_RE.finditer(text))


def parse(text: str, limits: Limits, measured: list[GuardError] | None = None) -> DocumentNode:
    """Parse with the token limit; every failure is a GuardError, never a RecursionError.

    Over ``max_tokens``: TOKEN_LIMIT_EXCEEDED (counted by a regular expression before the
    parser runs, so a token flood costs a scan, not a parse). Nesting deeper than the
    parser allows (lists in values, selections): DEPTH_LIMIT_EXCEEDED. Syntax errors:
    GRAPHQL_PARSE_FAILED with graphql-core's message and location.
    """
    token_limit = limits.max_tokens
    max_tokens: int | None = None
    if token_limit.mode is not Mode.OFF:
        observed = count_tokens(text)
        apply_limit(limits, "max_tokens", observed, measured)
        if token_limit.mode is Mode.ENFORCE:
            max_tokens = token_limit.value
    failure: GuardError | None = None
    try:
        return graphql_parse(text, no_location=False, max_tokens=max_tokens)
    except GraphQLSyntaxError as error:
        failure = _syntax_failure(error, max_tokens)
    except RecursionError:
        # graphql-core < 3.3 lets deep nesting overflow the stack; the error is raised
        # outside this block so the huge traceback is released.
        failure = GuardError("DEPTH_LIMIT_EXCEEDED", "Document is nested too deeply.")
    raise failure


def _syntax_failure(error: GraphQLSyntaxError, max_tokens: int | None) -> GuardError:
    message = error.message
    if max_tokens is not None and "tokens. Parsing aborted" in message:
        return limit_error("max_tokens", max_tokens + 1, max_tokens)
    if "nested too deeply" in message:
        return GuardError("DEPTH_LIMIT_EXCEEDED", "Document is nested too deeply.")
    locations = [{"line": loc.line, "column": loc.column} for loc in error.locations or ()]
    return GuardError("GRAPHQL_PARSE_FAILED", message, locations=locations or None)


@dataclass
class DocumentStats:
    """What the gate measured: the maximum over the document's operations, after expansion."""

    operation_name: str | None = None
    operation_type: str | None = None
    depth: int = 0
    aliases: int = 0
    directives: int = 0
    root_fields: int = 0
    mutation_fields: int = 0
    fields: int = 0
    selection_fields: int = 0
    fragment_expansion: int = 0
    operations: int = 0
    fragments: int = 0
    measured: list[GuardError] = field(default_factory=list)
    # The operation that would run (selected once, here; None when it cannot be chosen).
    operation: OperationDefinitionNode | None = field(default=None, repr=False, compare=False)


@dataclass(slots=True)
class _Summary:
    """A selection set after fragment expansion, computed once per fragment."""

    flat: int = 0  # fields of this selection set with its fragments merged in
    fields: int = 0  # field nodes, nested ones included
    depth: int = 0
    aliases: int = 0
    directives: int = 0
    selections: int = 0  # fields, spreads and inline fragments
    direct: int = 0  # selections reached without going through a spread


class _Walker:
    def __init__(self, fragments: dict[str, FragmentDefinitionNode]) -> None:
        self.fragments = fragments
        self.summaries: dict[str, _Summary] = {}
        self.max_flat = 0

    def walk(self, selection_set: SelectionSetNode) -> _Summary:
        out = _Summary()
        for node in selection_set.selections:
            out.selections += 1
            out.direct += 1
            out.directives += len(node.directives or ())
            if isinstance(node, FieldNode):
                out.flat += 1
                out.fields += 1
                if node.alias is not None:
                    out.aliases += 1
                if node.selection_set is None:
                    out.depth = max(out.depth, 1)
                    continue
                child = self.walk(node.selection_set)
                out.depth = max(out.depth, child.depth + 1)
                out.fields += child.fields
                out.aliases += child.aliases
                out.directives += child.directives
                out.selections += child.selections
                out.direct += child.direct
            elif isinstance(node, InlineFragmentNode):
                child = self.walk(node.selection_set)
                out.flat += child.flat
                out.depth = max(out.depth, child.depth)
                out.fields += child.fields
                out.aliases += child.aliases
                out.directives += child.directives
                out.selections += child.selections
                out.direct += child.direct
            elif isinstance(node, FragmentSpreadNode):
                name = node.name.value
                summary = self.summaries.get(name)
                if summary is None:  # unknown fragment: validation reports it
                    continue
                definition = self.fragments[name]
                out.flat = min(out.flat + summary.flat, _CAP)
                out.depth = max(out.depth, summary.depth)
                out.fields = min(out.fields + summary.fields, _CAP)
                out.aliases = min(out.aliases + summary.aliases, _CAP)
                out.directives = min(
                    out.directives + summary.directives + len(definition.directives or ()), _CAP
                )
                out.selections = min(out.selections + summary.selections, _CAP)
        if out.flat > self.max_flat:
            self.max_flat = out.flat
        return out


def _spreads_in(selection_set: SelectionSetNode) -> list[str]:
    names: list[str] = []
    stack = [selection_set]
    while stack:
        for node in stack.pop().selections:
            if isinstance(node, FragmentSpreadNode):
                names.append(node.name.value)
            elif isinstance(node, FieldNode | InlineFragmentNode) and node.selection_set:
                stack.append(node.selection_set)
    return names


def _fragment_order(fragments: dict[str, FragmentDefinitionNode]) -> list[str]:
    """Fragments with their dependencies first; a cycle is a GuardError. Iterative."""
    deps = {name: _spreads_in(f.selection_set) for name, f in fragments.items()}
    order: list[str] = []
    state: dict[str, int] = {}  # 1 = on the stack, 2 = done
    for root in deps:
        if state.get(root):
            continue
        state[root] = 1
        stack: list[tuple[str, int]] = [(root, 0)]
        while stack:
            name, index = stack[-1]
            children = deps[name]
            if index < len(children):
                stack[-1] = (name, index + 1)
                child = children[index]
                if child not in deps:
                    continue
                seen = state.get(child)
                if seen == 1:
                    raise GuardError(
                        "GRAPHQL_VALIDATION_FAILED", "Fragments must not spread in a cycle."
                    )
                if seen is None:
                    state[child] = 1
                    stack.append((child, 0))
            else:
                stack.pop()
                state[name] = 2
                order.append(name)
    return order


def inspect(document: DocumentNode, operation_name: str | None, limits: Limits) -> DocumentStats:
    """Measure the document in one linear pass and apply the structural limits.

    Raises the first GuardError of an enforced limit; limits in measure mode are recorded
    in ``stats.measured``. ``operation_type`` is that of the operation that would run
    (None when it cannot be chosen; graphql-core reports that later).
    """
    fragments: dict[str, FragmentDefinitionNode] = {}
    operations: list[OperationDefinitionNode] = []
    for definition in document.definitions:
        if isinstance(definition, FragmentDefinitionNode):
            fragments.setdefault(definition.name.value, definition)
        elif isinstance(definition, OperationDefinitionNode):
            operations.append(definition)
    stats = DocumentStats(operations=len(operations), fragments=len(fragments))
    failure: GuardError | None = None
    try:
        walker = _Walker(fragments)
        for name in _fragment_order(fragments):
            walker.summaries[name] = walker.walk(fragments[name].selection_set)
        for definition in document.definitions:  # duplicates too: graphql-core validates them
            if isinstance(definition, FragmentDefinitionNode) and (
                fragments[definition.name.value] is not definition
            ):
                walker.walk(definition.selection_set)
        for operation in operations:
            root = walker.walk(operation.selection_set)
            directives = len(operation.directives or ()) + sum(
                len(v.directives or ()) for v in operation.variable_definitions or ()
            )
            stats.depth = max(stats.depth, root.depth)
            stats.aliases = max(stats.aliases, root.aliases)
            stats.directives = max(stats.directives, min(root.directives + directives, _CAP))
            stats.root_fields = max(stats.root_fields, root.flat)
            if operation.operation.value == "mutation":
                stats.mutation_fields = max(stats.mutation_fields, root.flat)
            stats.fields = max(stats.fields, root.fields)
            stats.fragment_expansion = max(stats.fragment_expansion, root.selections - root.direct)
        stats.selection_fields = walker.max_flat
    except RecursionError:
        failure = GuardError("DEPTH_LIMIT_EXCEEDED", "Document is nested too deeply.")
    if failure is not None:
        raise failure

    selected = _select(operations, operation_name)
    stats.operation = selected
    if selected is not None:
        stats.operation_type = selected.operation.value
        stats.operation_name = selected.name.value if selected.name else None

    measured = stats.measured
    apply_limit(limits, "max_fragment_expansion", stats.fragment_expansion, measured)
    apply_limit(limits, "max_depth", stats.depth, measured)
    apply_limit(limits, "max_aliases", stats.aliases, measured)
    apply_limit(limits, "max_directives", stats.directives, measured)
    apply_limit(limits, "max_root_fields", stats.root_fields, measured)
    apply_limit(limits, "max_mutation_fields", stats.mutation_fields, measured)
    apply_limit(limits, "max_selection_fields", stats.selection_fields, measured)
    apply_limit(limits, "max_fields", stats.fields, measured)
    return stats


def _select(
    operations: list[OperationDefinitionNode], operation_name: str | None
) -> OperationDefinitionNode | None:
    if operation_name is None:
        return operations[0] if len(operations) == 1 else None
    for operation in operations:
        if operation.name is not None and operation.name.value == operation_name:
            return operation
    return None


def check_document(
    text: str, operation_name: str | None, limits: Limits
) -> tuple[DocumentNode, DocumentStats]:
    """Steps of the gate in order: bytes, tokens and parse, then the structural pass."""
    measured: list[GuardError] = []
    check_size(text, limits, measured)
    document = parse(text, limits, measured)
    stats = inspect(document, operation_name, limits)
    stats.measured[:0] = measured
    return document, stats
