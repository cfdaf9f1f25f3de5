"""IBM cost directives read from a schema: ``@cost`` weights and ``@listSize``."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from guards.cost.values import literal


@dataclass(frozen=True)
class ListSize:
    assumed_size: int | None = None
    slicing_arguments: tuple[str, ...] = ()
    sized_fields: tuple[str, ...] = ()
    require_one_slicing_argument: bool = True


def _directive_args(element: Any, name: str) -> dict[str, Any] | None:
    """Arguments of directive ``name`` on a schema element, from its SDL AST nodes."""
    nodes = [
        getattr(element, "ast_node", None),
        *(getattr(element, "extension_ast_nodes", ()) or ()),
    ]
    for node in nodes:
        for directive in getattr(node, "directives", None) or ():
            if directive.name.value == name:
                return {arg.name.value: literal(arg.value) for arg in directive.arguments}
    return None


def _extension_directives(element: Any) -> Iterable[Any]:
    """Directive objects a code-first library keeps in ``extensions`` (duck-typed)."""
    extensions = getattr(element, "extensions", None) or {}
    for value in extensions.values():
        yield from getattr(value, "directives", None) or ()


def read_cost(element: Any) -> int | None:
    args = _directive_args(element, "cost")
    if args is not None and args.get("weight") is not None:
        return _weight_int(args["weight"])
    extensions = getattr(element, "extensions", None) or {}
    if "cost" in extensions:
        raw = extensions["cost"]
        return _weight_int(getattr(raw, "weight", raw))
    for directive in _extension_directives(element):
        weight = getattr(directive, "weight", None)
        if isinstance(weight, int | float | str) and not isinstance(weight, bool):
            return _weight_int(weight)
    return None


def _weight_int(raw: Any) -> int:
    # IBM declares weight as a String holding a float; Apollo as Int. Round up: an upper bound.
    value = float(raw)
    as_int = int(value)
    return as_int + 1 if value > as_int else as_int


def read_list_size(element: Any) -> ListSize | None:
    args = _directive_args(element, "listSize")
    if args is None:
        extensions = getattr(element, "extensions", None) or {}
        raw = extensions.get("listSize")
        if isinstance(raw, Mapping):
            args = dict(raw)
        else:
            for directive in _extension_directives(element):
                if hasattr(directive, "slicing_arguments") or hasattr(directive, "assumed_size"):
                    args = {
                        "assumedSize": getattr(directive, "assumed_size", None),
                        "slicingArguments": getattr(directive, "slicing_arguments", None),
                        "sizedFields": getattr(directive, "sized_fields", None),
                        "requireOneSlicingArgument": getattr(
                            directive, "require_one_slicing_argument", True
                        ),
                    }
                    break
    if args is None:
        return None

    def strings(value: Any) -> tuple[str, ...]:
        return tuple(v for v in value if isinstance(v, str)) if isinstance(value, list) else ()

    assumed = args.get("assumedSize")
    require = args.get("requireOneSlicingArgument")
    return ListSize(
        assumed_size=assumed
        if isinstance(assumed, int) and not isinstance(assumed, bool)
        else None,
        slicing_arguments=strings(args.get("slicingArguments")),
        sized_fields=strings(args.get("sizedFields")),
        require_one_slicing_argument=require if isinstance(require, bool) else True,
    )
