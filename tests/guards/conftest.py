"""Shared fixtures for the guards tests: the contract schema and its cost model."""

from __future__ import annotations

from pathlib import Path

import pytest
from graphql import GraphQLSchema, build_schema

from guards.cost import CostModel

CONTRACT = Path("/work/shared/contract")
if not CONTRACT.exists():  # the repo's own copy, when the shared tree is not mounted
    CONTRACT = Path(__file__).resolve().parents[2] / "contract"


def read_operation(name: str) -> str:
    """Text of one operation in the contract's operations folder."""
    return (CONTRACT / "operations" / f"{name}.graphql").read_text()


@pytest.fixture(scope="session")
def contract_schema() -> GraphQLSchema:
    return build_schema((CONTRACT / "schema.graphql").read_text())


@pytest.fixture(scope="session")
def model(contract_schema: GraphQLSchema) -> CostModel:
    return CostModel.from_schema(contract_schema)
