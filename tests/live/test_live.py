"""Outside judges against a live server (uvicorn on 127.0.0.1): the graphql-http audit,
GraphiQL in headless Chromium, Apollo Client's APQ link, an Apollo manifest pushed with the
CLI and enforced in allowlist mode, and schemathesis fuzzing from the served SDL."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.live.servers import Server
from tests.server.conftest import OPERATIONS, seeded_database
from tests.services import unavailable

ROOT = Path(__file__).resolve().parents[2]
JS = ROOT / "tests" / "js"
PY = sys.executable

pytestmark = pytest.mark.slow


def _node() -> str:
    node = shutil.which("node")
    if node is None or not (JS / "node_modules").exists():
        unavailable("node and tests/js/node_modules (run scripts/install-js)")
    return node


@pytest.fixture(scope="module")
def database_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    yield from seeded_database("sqlite", tmp_path_factory.mktemp("live"))


@pytest.fixture(scope="module")
def server(database_url: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    running = Server({"TOLLGATE_DATABASE_URL": database_url}, tmp_path_factory.mktemp("logs"))
    yield running
    running.stop()


def _run(
    args: list[str], env: dict[str, str], timeout: int = 300
) -> subprocess.CompletedProcess[str]:
    result = subprocess.run(
        args, cwd=ROOT, env={**os.environ, **env}, capture_output=True, text=True, timeout=timeout
    )
    print(result.stdout[-6000:])
    print(result.stderr[-3000:], file=sys.stderr)
    return result


def test_graphql_http_audit_has_no_must_or_should_failure(server: Server) -> None:
    token = server.cli("token", "--tenant", "acme", "--role", "customer")
    result = _run(
        [_node(), str(JS / "audit.mjs")], {"TOLLGATE_URL": server.url, "TOLLGATE_TOKEN": token}
    )
    summary = [
        line for line in result.stdout.splitlines() if line.startswith("graphql-http audit:")
    ]
    assert summary, result.stdout
    print(summary[-1])
    assert " 0 MUST failures, 0 SHOULD failures" in summary[-1]
    assert result.returncode == 0


def test_graphiql_runs_viewer_profile_in_headless_chromium(server: Server, tmp_path: Path) -> None:
    if not Path("/usr/bin/chromium").exists():
        unavailable("Debian's chromium (scripts/install-js installs it as root)")
    token = server.cli("token", "--tenant", "acme", "--role", "staff")
    shot = tmp_path / "graphiql.png"
    result = _run(
        [
            _node(),
            str(JS / "graphiql.mjs"),
            "--screenshot",
            str(shot),
            "--operation",
            str(OPERATIONS / "ViewerProfile.graphql"),
        ],
        {"TOLLGATE_URL": server.url, "TOLLGATE_TOKEN": token},
    )
    assert result.returncode == 0
    assert shot.exists() and shot.stat().st_size > 10_000


def test_apollo_client_apq_link_misses_then_hits(server: Server) -> None:
    token = server.cli("token", "--tenant", "acme", "--role", "customer")
    result = _run(
        [_node(), str(JS / "apollo.mjs")], {"TOLLGATE_URL": server.url, "TOLLGATE_TOKEN": token}
    )
    assert result.returncode == 0


def test_apollo_manifest_pushed_with_the_cli_is_enforced_in_allowlist_mode(
    database_url: str, tmp_path_factory: pytest.TempPathFactory
) -> None:
    tmp = tmp_path_factory.mktemp("allowlist")
    guarded = Server({"TOLLGATE_DATABASE_URL": database_url, "TOLLGATE_PQ_MODE": "allowlist"}, tmp)
    try:
        manifest = tmp / "manifest.json"
        made = _run(
            [_node(), str(JS / "apollo.mjs"), "manifest", str(manifest)],
            {"TOLLGATE_URL": guarded.url},
        )
        assert made.returncode == 0 and manifest.exists()
        pushed = guarded.cli("pq", "push", str(manifest), "--json")
        assert json.loads(pushed)["refused"] == []
        token = guarded.cli(
            "token",
            "--tenant",
            "acme",
            "--role",
            "customer",
            "--scope",
            "read:orders write:orders read:products",
        )
        result = _run(
            [_node(), str(JS / "apollo.mjs"), "allowlist", str(manifest)],
            {"TOLLGATE_URL": guarded.url, "TOLLGATE_TOKEN": token},
        )
        assert result.returncode == 0
    finally:
        guarded.stop()


def test_schemathesis_finds_no_server_error(server: Server, tmp_path: Path) -> None:
    schemathesis = Path(PY).with_name("schemathesis")
    if not schemathesis.exists():
        unavailable("schemathesis in the venv")
    sdl = tmp_path / "schema.graphql"
    sdl.write_text(server.cli("sdl"), encoding="utf-8")
    token = server.cli("token", "--tenant", "acme", "--role", "admin")
    result = _run(
        [
            str(schemathesis),
            "run",
            str(sdl),
            "--url",
            f"{server.url}/graphql",
            "--max-time",
            "45",
            "-H",
            f"Authorization: Bearer {token}",
            "--exclude-checks",
            "positive_data_acceptance",
            "--phases",
            "fuzzing",
            "--max-examples",
            "40",
            "--no-color",
        ],
        {"SCHEMATHESIS_HOOKS": "tests.live.schemathesis_hooks", "PYTHONPATH": str(ROOT)},
        timeout=240,
    )
    assert result.returncode == 0, result.stdout[-3000:]
