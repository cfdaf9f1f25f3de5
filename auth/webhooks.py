"""Webhook signatures: ``Tollgate-Signature: t=<unix seconds>,v1=<hex HMAC-SHA256>``.

The signed message is ``"<t>.<raw body>"`` (Stripe's scheme): the timestamp is inside the
MAC, so a receiver that checks it against a tolerance window refuses replays of old
deliveries. During a secret rotation a delivery carries one ``v1`` per valid secret; a
receiver holding either secret verifies it.

Receivers verify with :func:`verify` (constant-time comparison) or the CLI
``tollgate webhooks verify``; docs/webhooks.md shows the same function standalone.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets as _secrets
import time
from collections.abc import Iterable, Sequence

__all__ = [
    "DEFAULT_TOLERANCE_SECONDS",
    "EVENT_ID_HEADER",
    "SECRET_PREFIX",
    "SIGNATURE_HEADER",
    "SignatureError",
    "new_secret",
    "sign",
    "signature_header",
    "verify",
]

SIGNATURE_HEADER = "Tollgate-Signature"
EVENT_ID_HEADER = "Tollgate-Event-Id"
SECRET_PREFIX = "whsec_"  # noqa: S105 (a prefix, not a secret)
DEFAULT_TOLERANCE_SECONDS = 300
SCHEME = "v1"
# A header longer than this is not ours (a few v1 values and a timestamp fit in 1 KiB).
MAX_HEADER_LENGTH = 4096


class SignatureError(ValueError):
    """A delivery failed verification; ``reason`` is short and never contains a secret."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


def new_secret() -> str:
    """A fresh signing secret: ``whsec_`` and 32 random bytes in hex."""
    return SECRET_PREFIX + _secrets.token_hex(32)


def sign(secret: str, timestamp: int, body: bytes) -> str:
    """The hex HMAC-SHA256 of ``"<timestamp>.<body>"`` under ``secret``."""
    message = str(int(timestamp)).encode("ascii") + b"." + body
    return hmac.new(secret.encode("utf-8"), message, hashlib.sha256).hexdigest()


def signature_header(secrets: Iterable[str], timestamp: int, body: bytes) -> str:
    """The ``Tollgate-Signature`` value: the timestamp and one ``v1`` per secret."""
    parts = [f"t={int(timestamp)}"]
    parts.extend(f"{SCHEME}={sign(secret, timestamp, body)}" for secret in secrets)
    return ",".join(parts)


def _parse(header: str) -> tuple[int, list[str]]:
    if not isinstance(header, str) or len(header) > MAX_HEADER_LENGTH:
        raise SignatureError("malformed signature header")
    timestamp: int | None = None
    signatures: list[str] = []
    for item in header.split(","):
        key, sep, value = item.strip().partition("=")
        if not sep:
            raise SignatureError("malformed signature header")
        if key == "t":
            if (
                timestamp is not None
                or not (value.isascii() and value.isdigit())
                or len(value) > 12
            ):
                raise SignatureError("malformed timestamp")
            timestamp = int(value)
        elif key == SCHEME:
            signatures.append(value)
        # Other schemes are ignored, so a future v2 can be added beside v1.
    if timestamp is None:
        raise SignatureError("no timestamp in the signature header")
    if not signatures:
        raise SignatureError(f"no {SCHEME} signature in the header")
    return timestamp, signatures


def verify(
    body: bytes,
    header: str,
    secrets: str | Sequence[str],
    *,
    tolerance: int = DEFAULT_TOLERANCE_SECONDS,
    now: float | None = None,
) -> int:
    """Check a delivery's ``Tollgate-Signature`` against the raw ``body``; return its timestamp.

    Args:
        body: the request body exactly as received (bytes, before any JSON parsing).
        header: the ``Tollgate-Signature`` header value.
        secrets: the endpoint's secret, or several (old and new during a rotation).
        tolerance: the largest age (and clock skew into the future) accepted, in seconds.
        now: the current unix time (tests); defaults to ``time.time()``.

    Raises ``SignatureError`` when no signature matches or the timestamp is outside the window.
    """
    timestamp, signatures = _parse(header)
    current = time.time() if now is None else now
    if abs(current - timestamp) > tolerance:
        raise SignatureError(f"timestamp outside the tolerance of {tolerance} s")
    keys = [secrets] if isinstance(secrets, str) else list(secrets)
    matched = False
    for secret in keys:
        expected = sign(secret, timestamp, body)
        for candidate in signatures:
            # compare_digest on every pair (no early exit on a match): constant time per pair.
            # Bytes, not str: compare_digest refuses non-ASCII str with TypeError.
            matched |= hmac.compare_digest(
                expected.encode(), candidate.encode("utf-8", "surrogatepass")
            )
    if not matched:
        raise SignatureError("no signature matches")
    return timestamp
