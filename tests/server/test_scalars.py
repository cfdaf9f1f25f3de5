"""The DateTime scalar's wire format: UTC, ISO 8601, ``Z`` (what clients parse)."""

from __future__ import annotations

import datetime as dt

from hypothesis import given
from hypothesis import strategies as st

from schema.scalars import _serialize_datetime

OFFSETS = st.integers(-23 * 60, 23 * 60).map(lambda m: dt.timezone(dt.timedelta(minutes=m)))


def _reference(value: dt.datetime) -> str:
    if value.tzinfo is None:
        value = value.replace(tzinfo=dt.UTC)
    return value.astimezone(dt.UTC).isoformat().replace("+00:00", "Z")


@given(st.datetimes(min_value=dt.datetime(1971, 1, 1), max_value=dt.datetime(9998, 1, 1)))
def test_a_naive_value_is_utc(value: dt.datetime) -> None:
    text = _serialize_datetime(value)
    assert text == _reference(value) and text.endswith("Z")
    assert dt.datetime.fromisoformat(text) == value.replace(tzinfo=dt.UTC)


@given(
    st.datetimes(
        min_value=dt.datetime(1971, 1, 1), max_value=dt.datetime(9998, 1, 1), timezones=OFFSETS
    )
)
def test_an_aware_value_is_given_in_utc(value: dt.datetime) -> None:
    text = _serialize_datetime(value)
    assert text == _reference(value) and text.endswith("Z")
    assert dt.datetime.fromisoformat(text) == value
