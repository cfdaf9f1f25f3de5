"""Document ids: hashing and every accepted id form."""

from __future__ import annotations

import pytest

from persisted_queries import normalise_id, sha256_hex
from persisted_queries.ids import is_sha256, split_hive_id

APOLLO_ID = "dc67510fb4289672bea757e862d6b00e83db5d3cbbcfb15260601b6f29bb2b8f"


def test_sha256_hex_matches_apollo_manifest_ids() -> None:
    # The id Apollo's manifest documentation gives for this exact body.
    assert sha256_hex("query UniversalQuery { __typename }") == APOLLO_ID


def test_sha256_hex_hashes_exact_utf8_bytes_without_normalising() -> None:
    assert sha256_hex("{ a }") != sha256_hex("{a}")
    assert sha256_hex('{ a(s: "é") }') == sha256_hex('{ a(s: "\u00e9") }')


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        (APOLLO_ID, APOLLO_ID),
        (APOLLO_ID.upper(), APOLLO_ID),
        ("sha256:" + APOLLO_ID, APOLLO_ID),
        ("SHA256:" + APOLLO_ID.upper(), APOLLO_ID),
        ("A" * 40, "a" * 40),  # sha1 from GraphQL Codegen <= 5
        ("0123456789ABCDEF0123456789ABCDEF", "0123456789abcdef0123456789abcdef"),  # Relay md5
        ("OrdersPage_v2", "OrdersPage_v2"),  # opaque custom ids keep their case
        ("web~1.2.0~abc", "web~1.2.0~abc"),
    ],
)
def test_normalise_id_accepts_every_id_form(raw: str, expected: str) -> None:
    assert normalise_id(raw) == expected


@pytest.mark.parametrize(
    "raw",
    ["", "sha256:", "sha256:abc", "sha256:" + "g" * 64, "x" * 201, " padded", "new\nline"],
)
def test_normalise_id_rejects_malformed_ids(raw: str) -> None:
    with pytest.raises(ValueError):
        normalise_id(raw)


def test_is_sha256_only_for_64_lowercase_hex() -> None:
    assert is_sha256(APOLLO_ID)
    assert not is_sha256(APOLLO_ID[:40])
    assert not is_sha256(APOLLO_ID.upper())


def test_split_hive_id_reads_app_version_hash() -> None:
    assert split_hive_id(f"ios~1.2.0~{APOLLO_ID.upper()}") == ("ios", APOLLO_ID)
    assert split_hive_id("no-tildes") is None
    assert split_hive_id("a~~b") is None
