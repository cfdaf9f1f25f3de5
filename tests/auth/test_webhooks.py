"""Webhook signatures: what a receiver's verification accepts and refuses."""

from __future__ import annotations

import hashlib
import hmac

import pytest
from hypothesis import given
from hypothesis import strategies as st

from auth.webhooks import (
    SECRET_PREFIX,
    SignatureError,
    new_secret,
    sign,
    signature_header,
    verify,
)

NOW = 1_800_000_000
bodies = st.binary(max_size=2048)
secrets = st.text(min_size=1, max_size=80)


@given(body=bodies, secret=secrets)
def test_a_signed_body_verifies_and_returns_its_timestamp(body: bytes, secret: str) -> None:
    header = signature_header([secret], NOW, body)
    assert verify(body, header, secret, now=NOW) == NOW


def test_the_signature_is_the_documented_hmac_of_timestamp_dot_body() -> None:
    body = b'{"id":"1"}'
    expected = hmac.new(b"whsec_k", b"1800000000." + body, hashlib.sha256).hexdigest()
    assert signature_header(["whsec_k"], NOW, body) == f"t={NOW},v1={expected}"


@given(body=bodies, secret=secrets, other=secrets)
def test_a_wrong_secret_is_refused(body: bytes, secret: str, other: str) -> None:
    if other == secret:
        other += "x"
    header = signature_header([secret], NOW, body)
    with pytest.raises(SignatureError, match="no signature matches"):
        verify(body, header, other, now=NOW)


@given(body=bodies, change=st.binary(min_size=1, max_size=16))
def test_a_changed_body_is_refused(body: bytes, change: bytes) -> None:
    header = signature_header(["s"], NOW, body)
    with pytest.raises(SignatureError, match="no signature matches"):
        verify(body + change, header, "s", now=NOW)


@given(age=st.integers(min_value=301, max_value=10**9))
def test_an_old_or_future_timestamp_is_refused_even_when_correctly_signed(age: int) -> None:
    body = b"{}"
    for timestamp in (NOW - age, NOW + age):
        header = signature_header(["s"], timestamp, body)
        with pytest.raises(SignatureError, match="tolerance"):
            verify(body, header, "s", now=NOW, tolerance=300)
    assert verify(body, signature_header(["s"], NOW - 300, body), "s", now=NOW) == NOW - 300


@given(body=bodies)
def test_during_a_rotation_either_secret_verifies(body: bytes) -> None:
    old, new = new_secret(), new_secret()
    header = signature_header([new, old], NOW, body)  # what the worker sends in the grace
    assert verify(body, header, old, now=NOW) == NOW
    assert verify(body, header, new, now=NOW) == NOW
    assert verify(body, header, [old, new], now=NOW) == NOW
    with pytest.raises(SignatureError):
        verify(body, header, new_secret(), now=NOW)
    # After the grace only the new secret signs: a receiver still on the old one fails.
    with pytest.raises(SignatureError):
        verify(body, signature_header([new], NOW, body), old, now=NOW)


@pytest.mark.parametrize(
    "header",
    [
        "",
        "v1=abc",
        "t=1800000000",
        "t=abc,v1=00",
        "t=1800000000,t=1800000000,v1=00",
        "garbage",
        "t=-5,v1=00",
        "x" * 5000,
    ],
)
def test_malformed_headers_are_refused_with_a_reason(header: str) -> None:
    with pytest.raises(SignatureError) as caught:
        verify(b"{}", header, "s", now=NOW)
    assert caught.value.reason


def test_unknown_schemes_are_ignored_beside_v1() -> None:
    header = signature_header(["s"], NOW, b"{}") + ",v0=deadbeef"
    assert verify(b"{}", header, "s", now=NOW) == NOW


def test_new_secrets_are_prefixed_random_and_long() -> None:
    made = {new_secret() for _ in range(50)}
    assert len(made) == 50
    assert all(s.startswith(SECRET_PREFIX) and len(s) == len(SECRET_PREFIX) + 64 for s in made)
    assert len(sign("k", NOW, b"")) == 64


@given(
    candidate=st.text(min_size=1, max_size=80).filter(lambda s: "," not in s),
    stamp=st.text(min_size=1, max_size=12).filter(lambda s: "," not in s),
)
def test_any_header_text_is_refused_with_a_reason_never_a_crash(candidate: str, stamp: str) -> None:
    """Non-ASCII signatures or timestamps (e.g. ``v1=é``, Arabic-Indic digits) are refused
    as ``SignatureError``: ``compare_digest`` on non-ASCII ``str`` raised ``TypeError``."""
    header = f"t={stamp},v1={candidate}"
    with pytest.raises(SignatureError):
        verify(b"{}", header, "whsec_test", now=0, tolerance=10**13)
