"""Manifest import: Apollo persisted query manifests, Relay/Codegen id maps, .graphql folders."""

from __future__ import annotations

import json
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from persisted_queries.ids import normalise_id, sha256_hex

APOLLO_FORMAT = "apollo-persisted-query-manifest"
GRAPHQL_SUFFIXES = (".graphql", ".gql")
_OPERATION_TYPES = {"query", "mutation", "subscription"}


class ManifestError(ValueError):
    """A manifest that cannot be imported; the message names the file and the problem."""


@dataclass(frozen=True, slots=True)
class ManifestEntry:
    """One document to register: its id (normalised), text, and optional name and client."""

    id: str
    body: str
    operation_name: str | None = None
    client_name: str | None = None


def load_manifest(path: str | Path) -> list[ManifestEntry]:
    """Load every document of a manifest file or a folder of ``.graphql`` files.

    Accepted: Apollo's ``{"format": "apollo-persisted-query-manifest", "version": 1,
    "operations": [{id, name, type, body, clientName?}]}``; Relay's and GraphQL Codegen's
    ``{"<id>": "<text>"}`` maps (also Relay's ``[[id, text], ...]`` pairs); a single
    ``.graphql``/``.gql`` file or a folder of them (searched recursively), whose id is the
    sha256 of each file's exact text. Ids are normalised (``sha256:`` stripped, hex
    lowercased).

    Raises:
        ManifestError: for anything else, with the reason.
    """
    path = Path(path)
    if path.is_dir():
        files = sorted(p for p in path.rglob("*") if p.suffix in GRAPHQL_SUFFIXES and p.is_file())
        if not files:
            raise ManifestError(f"{path}: the folder holds no .graphql or .gql file")
        return _dedupe(path, (_graphql_entry(file) for file in files))
    if not path.is_file():
        raise ManifestError(f"{path}: no such file or folder")
    if path.suffix in GRAPHQL_SUFFIXES:
        return [_graphql_entry(path)]
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (ValueError, UnicodeDecodeError) as exc:
        raise ManifestError(f"{path}: not a JSON manifest ({exc})") from None
    return _dedupe(path, parse_manifest(data, source=str(path)))


def parse_manifest(data: Any, *, source: str = "manifest") -> list[ManifestEntry]:
    """Parse an already decoded JSON manifest (Apollo, or a Relay/Codegen map); see above."""
    if isinstance(data, dict) and ("operations" in data or "format" in data):
        return _apollo(data, source)
    if isinstance(data, dict):
        return [_map_entry(source, key, value) for key, value in data.items()]
    if isinstance(data, list) and all(isinstance(item, list) for item in data):
        entries = []
        for item in data:
            if len(item) != 2:
                raise ManifestError(f"{source}: a Relay pair must be [id, text], got {item!r:.80}")
            entries.append(_map_entry(source, item[0], item[1]))
        return entries
    raise ManifestError(
        f"{source}: unrecognised manifest; expected an {APOLLO_FORMAT} (version 1), "
        'a {"<id>": "<text>"} map (Relay, GraphQL Codegen) or a folder of .graphql files'
    )


def _apollo(data: dict[str, Any], source: str) -> list[ManifestEntry]:
    if data.get("format") != APOLLO_FORMAT:
        raise ManifestError(
            f"{source}: format must be {APOLLO_FORMAT!r}, got {data.get('format')!r}"
        )
    if data.get("version") != 1:
        raise ManifestError(f"{source}: only version 1 of {APOLLO_FORMAT} is supported")
    operations = data.get("operations")
    if not isinstance(operations, list):
        raise ManifestError(f"{source}: 'operations' must be a list")
    entries = []
    for index, op in enumerate(operations):
        where = f"{source}: operations[{index}]"
        if not isinstance(op, dict):
            raise ManifestError(f"{where} must be an object")
        raw_id, body = op.get("id"), op.get("body")
        if not isinstance(raw_id, str) or not isinstance(body, str) or not body.strip():
            raise ManifestError(f"{where} needs a string 'id' and a non-empty string 'body'")
        name, kind, client = op.get("name"), op.get("type"), op.get("clientName")
        if name is not None and not isinstance(name, str):
            raise ManifestError(f"{where}: 'name' must be a string")
        if kind is not None and kind not in _OPERATION_TYPES:
            raise ManifestError(f"{where}: 'type' must be query, mutation or subscription")
        if client is not None and (not isinstance(client, str) or not client):
            raise ManifestError(f"{where}: 'clientName' must be a non-empty string")
        entries.append(ManifestEntry(_id(where, raw_id), body, name or None, client))
    return entries


def _map_entry(source: str, raw_id: Any, body: Any) -> ManifestEntry:
    if not isinstance(raw_id, str) or not isinstance(body, str) or not body.strip():
        raise ManifestError(
            f"{source}: every id and text must be non-empty strings ({raw_id!r:.80})"
        )
    return ManifestEntry(_id(source, raw_id), body)


def _graphql_entry(file: Path) -> ManifestEntry:
    try:
        body = file.read_text(encoding="utf-8")
    except UnicodeDecodeError:
        raise ManifestError(f"{file}: not UTF-8 text") from None
    if not body.strip():
        raise ManifestError(f"{file}: the file is empty")
    return ManifestEntry(sha256_hex(body), body)


def _id(where: str, raw: str) -> str:
    try:
        return normalise_id(raw)
    except ValueError as exc:
        raise ManifestError(f"{where}: invalid id {raw!r:.80}: {exc}") from None


def _dedupe(path: Path, entries: Iterable[ManifestEntry]) -> list[ManifestEntry]:
    seen: dict[tuple[str | None, str], ManifestEntry] = {}
    for entry in entries:
        key = (entry.client_name, entry.id)
        previous = seen.get(key)
        if previous is not None and previous.body != entry.body:
            raise ManifestError(f"{path}: id {entry.id!r} appears twice with different texts")
        seen.setdefault(key, entry)
    return list(seen.values())
