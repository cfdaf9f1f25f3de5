"""Document identifiers: sha256 hashing and the normalisation of every accepted id form."""

from __future__ import annotations

import hashlib
import re

MAX_ID_LENGTH = 200
SHA256_PREFIX = "sha256:"

_HEX = re.compile(r"[0-9a-fA-F]+")
_SHA256_HEX = re.compile(r"[0-9a-f]{64}")


def sha256_hex(text: str) -> str:
    """Return the lowercase hex sha256 of ``text`` encoded as UTF-8 (no normalisation)."""
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


def normalise_id(raw: str) -> str:
    """Return the canonical form of a document id, or raise ``ValueError`` for a malformed one.

    ``sha256:<hex>`` (GraphQL-over-HTTP, Codegen >= 6) becomes the bare hex; any all-hex id
    (sha256, sha1, Relay's md5) is lowercased; every other id is an opaque custom id kept as
    it is (case-sensitive).
    """
    if not raw:
        raise ValueError("document id is empty")
    if len(raw) > MAX_ID_LENGTH + len(SHA256_PREFIX):
        raise ValueError(f"document id is {len(raw)} characters long, the limit is {MAX_ID_LENGTH}")
    if raw[:7].lower() == SHA256_PREFIX:
        payload = raw[7:].lower()
        if not _SHA256_HEX.fullmatch(payload):
            raise ValueError("a sha256: document id must carry 64 hexadecimal digits")
        return payload
    if len(raw) > MAX_ID_LENGTH:
        raise ValueError(f"document id is {len(raw)} characters long, the limit is {MAX_ID_LENGTH}")
    if _HEX.fullmatch(raw):
        return raw.lower()
    if not raw.isprintable() or raw != raw.strip():
        raise ValueError("document id contains whitespace or control characters")
    return raw


def is_sha256(normalised_id: str) -> bool:
    """Tell whether a normalised id has the shape of a sha256 hex digest."""
    return len(normalised_id) == 64 and _SHA256_HEX.fullmatch(normalised_id) is not None


def split_hive_id(normalised_id: str) -> tuple[str, str] | None:
    """Split a Hive-style ``app~version~hash`` id into (client name, id), or return None."""
    parts = normalised_id.split("~")
    if len(parts) != 3 or not all(parts):
        return None
    try:
        return parts[0], normalise_id(parts[2])
    except ValueError:
        return None
