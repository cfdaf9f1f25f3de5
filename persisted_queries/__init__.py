"""Persisted queries: document ids, the APQ and documentId protocols, stores and the registry."""

from __future__ import annotations

from persisted_queries.errors import PQError
from persisted_queries.ids import normalise_id, sha256_hex
from persisted_queries.manifest import ManifestEntry, ManifestError, load_manifest, parse_manifest
from persisted_queries.protocol import PQRequest, extract
from persisted_queries.registry import Analysis, Diff, Mode, RegisterReport, Registry, Resolved
from persisted_queries.stores import (
    Cache,
    MemoryCache,
    MemoryStore,
    RedisCache,
    SQLStore,
    Store,
    StoredDocument,
    create_tables,
)

__all__ = [
    "Analysis",
    "Cache",
    "Diff",
    "ManifestEntry",
    "ManifestError",
    "MemoryCache",
    "MemoryStore",
    "Mode",
    "PQError",
    "PQRequest",
    "RedisCache",
    "RegisterReport",
    "Registry",
    "Resolved",
    "SQLStore",
    "Store",
    "StoredDocument",
    "create_tables",
    "extract",
    "load_manifest",
    "normalise_id",
    "parse_manifest",
    "sha256_hex",
]
