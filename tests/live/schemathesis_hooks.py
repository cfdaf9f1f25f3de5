"""Value strategies for our custom scalars, loaded by schemathesis (SCHEMATHESIS_HOOKS)."""

from __future__ import annotations

import datetime as dt

import schemathesis
from hypothesis import strategies as st
from hypothesis_graphql import nodes
from schemathesis.specs.graphql import validation as _validation

schemathesis.graphql.scalar(
    "DateTime",
    st.datetimes(timezones=st.just(dt.UTC)).map(lambda value: nodes.String(value.isoformat())),
)
schemathesis.graphql.scalar(
    "Decimal",
    st.decimals(min_value=-(10**6), max_value=10**9, places=2, allow_nan=False).map(
        lambda value: nodes.String(str(value))
    ),
)

# Authorization refusals are the client's: an ADMIN's `addReview` of a product it never ordered
# (schemathesis reuses ids it saw in earlier answers, e.g. a product createProduct made) is
# FORBIDDEN at the field's path, with `data` null. Schemathesis trusts labelled errors but its
# client markers lack Apollo's FORBIDDEN and UNAUTHENTICATED, so it read that refusal as a
# server error; INTERNAL_SERVER_ERROR stays a server error.
_validation.CLIENT_ERROR_MARKERS = _validation.CLIENT_ERROR_MARKERS | {
    "FORBIDDEN",
    "UNAUTHENTICATED",
}
