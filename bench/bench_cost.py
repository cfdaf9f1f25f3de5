"""Micro-benchmark of the query-analysis guards: gate, compile, evaluate, actual cost.

Run from the repository root: ``.venv/bin/python -m bench.bench_cost``. It reports; it does
not assert. Timings are per call, best of several rounds (machine-dependent).
"""

from __future__ import annotations

import sys
import time
import timeit
from collections.abc import Callable
from pathlib import Path
from typing import Any

from graphql import build_schema, get_introspection_query, parse

from guards.cost import CostModel
from guards.errors import GuardError
from guards.gate import check_document, inspect
from guards.gate import parse as gate_parse
from guards.limits import Limits

CONTRACT = Path("/work/shared/contract")
if not CONTRACT.exists():
    CONTRACT = Path(__file__).resolve().parents[1] / "contract"


def per_call_us(function: Callable[[], object], number: int, rounds: int = 5) -> float:
    """Best-of-rounds microseconds per call."""
    return min(timeit.repeat(function, number=number, repeat=rounds)) / number * 1e6


def hostile_documents() -> dict[str, str]:
    """The attack documents of the gate tests (T6-T12)."""
    fan = ["query { ...F0 }"] + [
        f"fragment F{i} on Query {{ ...F{i + 1} ...F{i + 1} }}" for i in range(25)
    ]
    fan.append("fragment F25 on Query { __typename }")
    depth = "id"
    for _ in range(8):
        depth = f"orders(first: 1) {{ nodes {{ customer {{ {depth} }} }} }}"
    return {
        "fragment fan-out (25 levels)": "\n".join(fan),
        "5,000 duplicated fields": "{" + " __typename" * 5_000 + " }",
        "1,500 duplicated fields": "{ viewer {" + " id" * 1_500 + " } }",
        "1,000 aliases": "{" + "".join(f" a{i}: __typename" for i in range(1_000)) + " }",
        "1,000 directives": "{ __typename" + " @a" * 1_000 + " }",
        "2 MB document": "{" + " __typename" * 200_000 + " }",
        "nested list literal": "{ nodes(ids: " + "[" * 1_500 + "]" * 1_500 + ") { id } }",
        "depth bomb": f"{{ viewer {{ {depth} }} }}",
        "fragment cycle": "{ ...A } fragment A on Query { ...B } fragment B on Query { ...A }",
    }


def orders_response(orders: int, items: int) -> dict[str, Any]:
    item = {
        "quantity": 1,
        "unitPrice": {"amount": "1", "currency": "USD"},
        "product": {"id": "p", "name": "n", "price": {"amount": "1", "currency": "USD"}},
    }
    node = {
        "id": "o",
        "number": "ORD-1",
        "status": "PENDING",
        "createdAt": "x",
        "total": {"amount": "1", "currency": "USD"},
        "customer": {"id": "u", "name": "n"},
        "items": [item] * items,
    }
    return {
        "orders": {
            "totalCount": 1,
            "pageInfo": {"hasNextPage": True, "endCursor": "c"},
            "nodes": [node] * orders,
        }
    }


def main() -> None:
    schema = build_schema((CONTRACT / "schema.graphql").read_text())
    limits = Limits()
    started = time.perf_counter()
    model = CostModel.from_schema(schema)
    print(f"CostModel.from_schema: {(time.perf_counter() - started) * 1e6:,.0f} us")

    text = (CONTRACT / "operations" / "OrdersPage.graphql").read_text()
    document = parse(text)
    plan = model.compile(document)
    variables = {"first": 20}
    print(f"OrdersPage compile: {per_call_us(lambda: model.compile(document), 200):,.1f} us")
    print(
        f"OrdersPage evaluate (cached plan): {per_call_us(lambda: plan.evaluate(variables), 20_000):,.2f} us"
    )
    print(
        f"OrdersPage gate (parse + inspect): {per_call_us(lambda: check_document(text, None, limits), 200):,.1f} us"
    )
    print(
        f"OrdersPage inspect only: {per_call_us(lambda: inspect(document, None, limits), 2_000):,.1f} us"
    )
    response = orders_response(20, 3)
    print(
        f"OrdersPage actual cost, 20 orders x 3 items: "
        f"{per_call_us(lambda: plan.actual(response, variables), 200):,.1f} us"
    )
    introspection = get_introspection_query(descriptions=True)
    intro_doc = parse(introspection)
    intro_plan = model.compile(intro_doc)
    print(f"Introspection compile: {per_call_us(lambda: model.compile(intro_doc), 50):,.1f} us")
    print(
        f"Introspection evaluate: {per_call_us(lambda: intro_plan.evaluate(None), 20_000):,.2f} us"
    )

    print("\nRefusing hostile documents (check_size + parse + inspect):")
    for name, hostile in hostile_documents().items():

        def refuse(hostile: str = hostile) -> str:
            try:
                check_document(hostile, None, limits)
            except GuardError as error:
                return error.code
            return "ADMITTED"

        code = refuse()
        total = per_call_us(refuse, 3, rounds=3)
        try:
            parse_us = per_call_us(lambda hostile=hostile: gate_parse(hostile, limits), 3, rounds=3)
            parse_note = f" (parse alone {parse_us / 1000:,.1f} ms)"
        except GuardError:
            parse_note = " (refused before or while parsing)"
        print(f"  {name:32s} {code:36s} {total / 1000:8.2f} ms{parse_note}")
    sys.stdout.flush()


if __name__ == "__main__":
    main()
