"""Value strategies for our custom scalars, loaded by schemathesis (SCHEMATHESIS_HOOKS)."""

from __future__ import annotations

import datetime as dt

import schemathesis
from hypothesis import strategies as st
from hypothesis_graphql import nodes

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
