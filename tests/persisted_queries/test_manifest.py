"""Manifest import in each format the build tools write, and clear refusals of anything else."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from persisted_queries import (
    ManifestEntry,
    ManifestError,
    MemoryStore,
    Mode,
    Registry,
    extract,
    load_manifest,
    sha256_hex,
)
from tests.persisted_queries.conftest import Pricer, operations

OPS = operations()


def write_json(path: Path, data: Any) -> Path:
    path.write_text(json.dumps(data, indent=2))
    return path


def apollo_manifest(**overrides: Any) -> dict[str, Any]:
    ops = [
        {
            "id": sha256_hex(body),
            "name": name,
            "type": "mutation" if body.startswith("mutation") else "query",
            "body": body,
        }
        for name, body in OPS.items()
    ]
    return {
        "format": "apollo-persisted-query-manifest",
        "version": 1,
        "operations": ops,
        **overrides,
    }


def test_apollo_manifest(tmp_path: Path) -> None:
    entries = load_manifest(
        write_json(tmp_path / "persisted-query-manifest.json", apollo_manifest())
    )
    assert sorted(entries, key=lambda e: e.id) == sorted(
        (ManifestEntry(sha256_hex(body), body, name) for name, body in OPS.items()),
        key=lambda e: e.id,
    )


def test_apollo_manifest_keeps_client_names_and_custom_ids(tmp_path: Path) -> None:
    data = apollo_manifest()
    data["operations"] = [
        {
            "id": "orders-v1",
            "clientName": "ios",
            "name": "OrdersPage",
            "type": "query",
            "body": OPS["OrdersPage"],
        }
    ]
    [entry] = load_manifest(write_json(tmp_path / "m.json", data))
    assert entry == ManifestEntry("orders-v1", OPS["OrdersPage"], "OrdersPage", "ios")


def test_codegen_map_with_sha256_prefixes(tmp_path: Path) -> None:
    data = {f"sha256:{sha256_hex(body)}": body for body in OPS.values()}
    entries = load_manifest(write_json(tmp_path / "persisted-documents.json", data))
    assert {e.id: e.body for e in entries} == {sha256_hex(b): b for b in OPS.values()}


def test_relay_md5_map_and_pairs(tmp_path: Path) -> None:
    md5_like = {f"{i:032X}": body for i, body in enumerate(OPS.values())}
    entries = load_manifest(write_json(tmp_path / "queryMap.json", md5_like))
    assert {e.id for e in entries} == {f"{i:032x}" for i in range(len(OPS))}  # lowercased
    pairs = [[key, body] for key, body in md5_like.items()]
    assert load_manifest(write_json(tmp_path / "pairs.json", pairs)) == entries


def test_folder_of_graphql_files(tmp_path: Path) -> None:
    (tmp_path / "nested").mkdir()
    for name, body in OPS.items():
        folder = tmp_path / "nested" if name.startswith("C") else tmp_path
        (folder / f"{name}.graphql").write_text(body)
    (tmp_path / "README.md").write_text("not a document")
    entries = load_manifest(tmp_path)
    assert {e.id: e.body for e in entries} == {sha256_hex(b): b for b in OPS.values()}
    single = load_manifest(tmp_path / "OrdersPage.graphql")
    assert single == [ManifestEntry(sha256_hex(OPS["OrdersPage"]), OPS["OrdersPage"])]


@pytest.mark.parametrize(
    ("content", "message"),
    [
        (apollo_manifest(format="apollo-persisted-query-manifest-v2"), "format must be"),
        (apollo_manifest(version=2), "only version 1"),
        (apollo_manifest(operations={"a": "b"}), "'operations' must be a list"),
        (apollo_manifest(operations=[{"id": "a"}]), "operations[0] needs a string 'id'"),
        (
            apollo_manifest(operations=[{"id": "a", "body": "{a}", "type": "query!"}]),
            "'type' must be",
        ),
        ({"a": 1}, "every id and text must be non-empty strings"),
        ({"sha256:nothex": "{ a }"}, "invalid id"),
        (["a", "b"], "unrecognised manifest"),
        ([["a"]], "a Relay pair must be [id, text]"),
        ("just a string", "unrecognised manifest"),
    ],
)
def test_bad_json_manifests_are_refused_clearly(tmp_path: Path, content: Any, message: str) -> None:
    path = write_json(tmp_path / "bad.json", content)
    with pytest.raises(ManifestError) as caught:
        load_manifest(path)
    assert message in str(caught.value)
    assert str(path) in str(caught.value)


def test_other_bad_inputs_are_refused_clearly(tmp_path: Path) -> None:
    (tmp_path / "empty").mkdir()
    with pytest.raises(ManifestError, match=r"holds no \.graphql"):
        load_manifest(tmp_path / "empty")
    with pytest.raises(ManifestError, match="no such file"):
        load_manifest(tmp_path / "missing.json")
    (tmp_path / "x.json").write_text("{nope")
    with pytest.raises(ManifestError, match="not a JSON manifest"):
        load_manifest(tmp_path / "x.json")
    dupes = [["same", "{ a }"], ["same", "{ b }"]]
    with pytest.raises(ManifestError, match="appears twice with different texts"):
        load_manifest(write_json(tmp_path / "d.json", dupes))
    (tmp_path / "blank.graphql").write_text("  \n")
    with pytest.raises(ManifestError, match="the file is empty"):
        load_manifest(tmp_path / "blank.graphql")


async def test_imported_manifest_serves_its_documents_by_their_ids(tmp_path: Path) -> None:
    registry = Registry(MemoryStore(), mode=Mode.ALLOWLIST, analyse=Pricer())
    relay = {f"{i:032x}": body for i, body in enumerate(OPS.values())}
    entries = load_manifest(write_json(tmp_path / "queryMap.json", relay))
    report = await registry.register("relay-app", entries)
    assert len(report.added) == len(OPS) and report.refused == []
    for doc_id, body in relay.items():
        resolved = await registry.resolve(
            extract({"doc_id": doc_id.upper()}), client_name="relay-app", may_run_adhoc=False
        )
        assert (resolved.text, resolved.registered) == (body, True)
