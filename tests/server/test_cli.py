"""The ``tollgate`` command as an operator meets it: help, one-line errors, offline = server."""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import httpx
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from server import cli
from tests.server.conftest import Tokens, operation

ROOT = Path(__file__).resolve().parents[2]
ORDERS_PAGE = operation("OrdersPage")
CLEAN_ENV = {k: v for k, v in os.environ.items() if not k.startswith("TOLLGATE_")}


def run(
    *args: str, env: dict[str, str] | None = None, cwd: Path = ROOT
) -> subprocess.CompletedProcess[str]:
    """The real CLI in a subprocess (``python -m server``), with only ``env``'s settings."""
    return subprocess.run(
        [sys.executable, "-m", "server", *args],
        cwd=cwd,
        env={**CLEAN_ENV, "PYTHONPATH": str(ROOT), "TOLLGATE_LOG_JSON": "false", **(env or {})},
        capture_output=True,
        text=True,
        timeout=120,
    )


def assert_one_line_error(
    result: subprocess.CompletedProcess[str] | tuple[int, str], *needles: str
) -> None:
    code, stderr = (result.returncode, result.stderr) if not isinstance(result, tuple) else result
    lines = stderr.strip().splitlines()
    assert code == 2, stderr
    assert len(lines) == 1 and lines[0].startswith("tollgate: error: "), stderr
    assert "Traceback" not in stderr
    for needle in needles:
        assert needle in lines[0], lines[0]


def test_console_script_is_installed_next_to_the_interpreter() -> None:
    script = Path(sys.executable).parent / "tollgate"
    assert script.exists(), "pyproject's [project.scripts] tollgate = server.cli:main"
    result = subprocess.run(
        [str(script), "--help"], capture_output=True, text=True, cwd="/", timeout=60
    )
    assert result.returncode == 0 and "usage: tollgate" in result.stdout
    for command in (
        "serve",
        "migrate",
        "seed",
        "token",
        "cost",
        "pq",
        "schema",
        "privacy",
        "webhooks",
    ):
        assert command in result.stdout


def _parsers(parser: argparse.ArgumentParser) -> list[argparse.ArgumentParser]:
    found = [parser]
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for choice in action.choices.values():
                found += _parsers(choice)
    return found


def test_every_subcommand_and_option_has_help() -> None:
    missing = []
    for parser in _parsers(cli.build_parser()):
        for action in parser._actions:
            if isinstance(action, argparse._SubParsersAction):
                helped = {a.dest for a in action._choices_actions if a.help}
                missing += [
                    f"{parser.prog} {name}" for name in action.choices if name not in helped
                ]
            elif not action.help:
                missing.append(f"{parser.prog} {'/'.join(action.option_strings) or action.dest}")
        if parser.prog != "tollgate" and not parser.description:
            missing.append(f"{parser.prog} (description)")
    assert missing == []


@pytest.fixture(scope="module")
def files(tmp_path_factory: pytest.TempPathFactory) -> Path:
    tmp = tmp_path_factory.mktemp("cli")
    (tmp / "orders.graphql").write_text(ORDERS_PAGE, encoding="utf-8")
    (tmp / "bad-manifest.json").write_text('{"format": "something-else"}', encoding="utf-8")
    (tmp / "not-json.json").write_text("{nope", encoding="utf-8")
    (tmp / "unmigrated.db").write_bytes(b"")
    return tmp


@pytest.mark.parametrize(
    ("args", "env", "needles"),
    [
        (
            ["cost", "{tmp}/orders.graphql", "--variables", "{first: 5}"],
            {},
            ["--variables is not valid JSON"],
        ),
        (["cost", "{tmp}/missing.graphql"], {}, ["no such document file", "missing.graphql"]),
        (["pq", "retire"], {}, ["pq retire needs", "--ids", "--manifest"]),
        (["pq", "push", "{tmp}/bad-manifest.json"], {}, ["format must be"]),
        (["pq", "diff", "{tmp}/not-json.json"], {}, ["not a JSON manifest"]),
        (["pq", "push", "{tmp}/nowhere.json"], {}, ["no such file"]),
        (
            ["cost", "{tmp}/orders.graphql"],
            {"TOLLGATE_LIMITS": '{"max_cost": "lots"}'},
            ["TOLLGATE_LIMITS"],
        ),
        (["cost", "{tmp}/orders.graphql"], {"TOLLGATE_LIMITS": "{not json"}, ["TOLLGATE_LIMITS"]),
        (["serve"], {"TOLLGATE_PORT": "eighty"}, ["TOLLGATE_PORT"]),
        (["token"], {"TOLLGATE_ENV": "production"}, ["TOLLGATE_JWT_SECRET"]),
        (["token", "--ttl", "soon"], {}, ["--ttl"]),
        (["frobnicate"], {}, ["invalid choice"]),
        (
            ["token"],
            {"TOLLGATE_DATABASE_URL": "sqlite+aiosqlite:///{tmp}/unmigrated.db"},
            ["not migrated", "tollgate migrate"],
        ),
        (
            ["pq", "list"],
            {"TOLLGATE_DATABASE_URL": "sqlite+aiosqlite:///{tmp}/unmigrated.db"},
            ["not migrated"],
        ),
        (
            ["seed"],
            {"TOLLGATE_DATABASE_URL": "sqlite+aiosqlite:///{tmp}/unmigrated.db"},
            ["not migrated"],
        ),
        (
            ["token"],
            {"TOLLGATE_DATABASE_URL": "postgresql+asyncpg://tollgate:hunter2@127.0.0.1:9/none"},
            ["cannot use the database", "TOLLGATE_DATABASE_URL"],
        ),
    ],
)
def test_expected_errors_are_one_line_and_exit_2(
    files: Path, args: list[str], env: dict[str, str], needles: list[str]
) -> None:
    result = run(
        *(a.replace("{tmp}", str(files)) for a in args),
        env={k: v.replace("{tmp}", str(files)) for k, v in env.items()},
    )
    assert_one_line_error(result, *needles)
    assert "hunter2" not in result.stderr


def test_token_against_a_missing_database_leaves_no_file(tmp_path: Path) -> None:
    db = tmp_path / "var" / "never.db"
    for args in (
        ["token"],
        ["seed"],
        ["pq", "list"],
        ["privacy", "export", "--tenant", "acme", "--user", "x"],
    ):
        result = run(*args, env={"TOLLGATE_DATABASE_URL": f"sqlite+aiosqlite:///{db}"})
        assert_one_line_error(result, "no database at", "tollgate migrate")
        assert not db.exists()


@settings(
    max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(st.text(max_size=40).filter(lambda t: not _is_json(t)))
def test_cost_refuses_any_malformed_variables_in_one_line(
    capsys: pytest.CaptureFixture[str], files: Path, raw: str
) -> None:
    code = cli.main(["cost", str(files / "orders.graphql"), f"--variables={raw}"])
    assert_one_line_error((code, capsys.readouterr().err), "--variables is not valid JSON")


def _is_json(text: str) -> bool:
    try:
        json.loads(text)
    except ValueError:
        return False
    return True


JSON = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(-(2**40), 2**40)
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(max_size=8),
    lambda inner: (
        st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=5), inner, max_size=3)
    ),
    max_leaves=6,
)
VARIABLES = (
    st.dictionaries(
        st.sampled_from(["first", "status", "bogus"]),
        JSON | st.integers(-5, 150) | st.sampled_from(["PENDING", "SHIPPED", "pending"]),
        max_size=3,
    )
    | st.lists(JSON, max_size=3)
    | JSON
)


def _server_verdict(response: httpx.Response) -> tuple[int, str | None]:
    """(the exit code ``cost`` must give, the message it must print) for a server answer."""
    body = response.json()
    errors = body.get("errors") or []
    if not errors:
        return 0, None
    first = errors[0]
    code = first.get("extensions", {}).get("code")
    if code in ("BAD_USER_INPUT", "BAD_REQUEST"):
        return 2, first["message"]
    return 1, first["message"]


@settings(
    max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(variables=VARIABLES)
async def test_cost_agrees_with_the_server_on_any_variables(
    client: httpx.AsyncClient,
    tokens: Tokens,
    files: Path,
    capsys: pytest.CaptureFixture[str],
    variables: Any,
) -> None:
    response = await client.post(
        "/graphql",
        json={"query": ORDERS_PAGE, "variables": variables},
        headers={"Accept": "application/json", **tokens.headers("STAFF")},
    )
    want, message = _server_verdict(response)
    capsys.readouterr()
    code = cli.main(["cost", str(files / "orders.graphql"), f"--variables={json.dumps(variables)}"])
    err = capsys.readouterr().err
    assert code == want, (variables, response.text[:300], err)
    if want == 2:
        assert_one_line_error((code, err), message or "")


OVER_THE_LIMIT = (
    "query OverTheLimit($n: Int) { "
    + " ".join(
        f"a{i}: products(first: 100) {{ nodes {{ id reviews(first: 100) {{ nodes {{ id }} }} }} }}"
        for i in range(5)
    )
    + " n: products(first: $n) { nodes { id } } }"
)


@settings(
    max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(variables=st.dictionaries(st.just("n"), JSON | st.integers(-5, 150), max_size=1))
async def test_cost_refuses_in_the_servers_order(
    client: httpx.AsyncClient,
    tokens: Tokens,
    tmp_path_factory: pytest.TempPathFactory,
    capsys: pytest.CaptureFixture[str],
    variables: Any,
) -> None:
    """Priced before coercion, like the server: a document over the cost limit is refused
    (exit 1) whatever its variables, never reported as bad variables (exit 2)."""
    response = await client.post(
        "/graphql",
        json={"query": OVER_THE_LIMIT, "variables": variables},
        headers={"Accept": "application/json", **tokens.headers("STAFF")},
    )
    want, _ = _server_verdict(response)
    path = tmp_path_factory.mktemp("over") / "over.graphql"
    path.write_text(OVER_THE_LIMIT)
    capsys.readouterr()
    code = cli.main(["cost", str(path), f"--variables={json.dumps(variables)}"])
    assert code == want == 1, (variables, response.text[:300], capsys.readouterr().err)


def test_cost_of_deeply_nested_variables_is_one_line(
    capsys: pytest.CaptureFixture[str], files: Path
) -> None:
    """Variables nested past orjson's 254 levels were a traceback (JSONEncodeError)."""
    deep = "[" * 300 + "]" * 300
    code = cli.main(["cost", str(files / "orders.graphql"), f'--variables={{"bogus": {deep}}}'])
    err = capsys.readouterr().err
    assert code in (0, 2) and "Traceback" not in err, err
    if code == 2:
        assert err.startswith("tollgate: error:") and err.count("\n") == 1, err


@pytest.mark.parametrize(
    ("variables", "message"),
    [
        ({"first": 500}, "first must be between 1 and 100."),
        ({"first": "abc"}, "Int cannot represent non-integer value: 'abc'"),
        ([1, 2], "variables must be an object."),
    ],
)
def test_cost_refuses_the_variables_the_server_refuses(
    capsys: pytest.CaptureFixture[str], files: Path, variables: Any, message: str
) -> None:
    code = cli.main(["cost", str(files / "orders.graphql"), f"--variables={json.dumps(variables)}"])
    assert_one_line_error((code, capsys.readouterr().err), message)


def test_cost_still_prices_good_variables(capsys: pytest.CaptureFixture[str], files: Path) -> None:
    assert cli.main(["cost", str(files / "orders.graphql"), "--variables", '{"first": 5}']) == 0
    report = json.loads(capsys.readouterr().out)
    assert report["operationName"] == "OrdersPage" and report["cost"] > 0 and report["errors"] == []


# --------------------------------------------------------------------------- pq


EXPENSIVE = (
    "query Expensive { "
    + " ".join(
        f"a{i}: products(first: 100) {{ nodes {{ id name reviews(first: 100) {{ nodes {{ id }} }} }} }}"
        for i in range(3)
    )
    + " }"
)


def _apollo(operations: list[tuple[str, str, str]]) -> str:
    return json.dumps(
        {
            "format": "apollo-persisted-query-manifest",
            "version": 1,
            "operations": [
                {"id": i, "name": n, "type": "query", "body": b} for i, n, b in operations
            ],
        }
    )


@pytest.fixture(scope="module")
def sqlite_db(tmp_path_factory: pytest.TempPathFactory) -> dict[str, str]:
    from tests.server.conftest import seeded_database

    url = next(seeded_database("sqlite", tmp_path_factory.mktemp("pqdb")))
    return {"TOLLGATE_DATABASE_URL": url}


def test_pq_diff_lists_what_push_would_refuse_and_exits_1(
    files: Path, sqlite_db: dict[str, str]
) -> None:
    manifest = files / "expensive.json"
    manifest.write_text(_apollo([("expensive-1", "Expensive", EXPENSIVE)]), encoding="utf-8")
    diff = run("pq", "diff", str(manifest), env=sqlite_db)
    assert diff.returncode == 1, diff.stderr
    assert "1 refused" in diff.stdout and "Expensive: " in diff.stdout and "cost" in diff.stdout
    pushed = run("pq", "push", "--dry-run", str(manifest), "--json", env=sqlite_db)
    assert pushed.returncode == 1
    diffed = run("pq", "diff", str(manifest), "--json", env=sqlite_db)
    assert (
        [r["id"] for r in json.loads(diffed.stdout)["refused"]]
        == [r["id"] for r in json.loads(pushed.stdout)["refused"]]
        == ["expensive-1"]
    )


def test_pq_diff_lists_changed_text_under_an_existing_id(
    files: Path, sqlite_db: dict[str, str]
) -> None:
    first = files / "v1.json"
    first.write_text(
        _apollo([("viewer-v", "Viewer", "query Viewer { viewer { id } }")]), encoding="utf-8"
    )
    second = files / "v2.json"
    second.write_text(
        _apollo([("viewer-v", "Viewer", "query Viewer { viewer { id name } }")]), encoding="utf-8"
    )
    pushed = run("pq", "push", str(first), env=sqlite_db)
    assert pushed.returncode == 0 and pushed.stdout.startswith("1 added, 0 unchanged"), (
        pushed.stdout
    )
    diff = run("pq", "diff", str(second), "--json", env=sqlite_db)
    assert diff.returncode == 1
    assert json.loads(diff.stdout)["changedText"] == ["viewer-v"]
    human = run("pq", "diff", str(second), env=sqlite_db)
    assert (
        human.returncode == 1
        and "1 with changed text" in human.stdout
        and "Viewer (viewer-v)" in human.stdout
    )
    again = run("pq", "push", str(first), env=sqlite_db)
    assert again.returncode == 0 and again.stdout.strip() == "0 added, 1 unchanged"


def test_pq_push_summarises_and_prints_json_only_when_asked(
    files: Path, sqlite_db: dict[str, str]
) -> None:
    manifest = files / "mixed.json"
    manifest.write_text(
        _apollo(
            [
                ("cheap-a", "CheapA", "query CheapA { viewer { id } }"),
                ("costly-b", "CheckoutPage", EXPENSIVE.replace("Expensive", "CheckoutPage")),
            ]
        ),
        encoding="utf-8",
    )
    human = run("pq", "push", str(manifest), env=sqlite_db)
    assert human.returncode == 1
    assert human.stdout.startswith("1 added, 0 unchanged, 1 refused: CheckoutPage: "), human.stdout
    assert "{" not in human.stdout and len(human.stdout.splitlines()) == 1
    as_json = run("pq", "push", str(manifest), "--json", env=sqlite_db)
    report = json.loads(as_json.stdout)
    assert report["unchanged"] == ["cheap-a"] and report["refused"][0]["id"] == "costly-b"
    retired = run("pq", "retire", "--ids", "cheap-a", "--dry-run", env=sqlite_db)
    assert retired.returncode == 0 and retired.stdout.startswith("would retire 1 documents")


def test_progress_bar_only_on_a_terminal_and_for_long_runs() -> None:
    import io

    from server.clitools import Progress

    shown = io.StringIO()
    with Progress("push", 3_000, stream=shown, force=True) as bar:
        for _ in range(3_000):
            bar.advance()
    assert "push [" in shown.getvalue() and "3,000/3,000" in shown.getvalue()
    for total, force in ((3_000, None), (10, True)):  # StringIO is no terminal; 10 is short
        quiet = io.StringIO()
        with Progress("push", total, stream=quiet, force=force) as bar:
            bar.advance(total)
        assert quiet.getvalue() == ""


def test_pq_push_of_a_long_manifest_draws_progress_on_a_terminal(
    files: Path, sqlite_db: dict[str, str]
) -> None:
    if not Path("/usr/bin/script").exists():
        pytest.fail("util-linux `script` is needed to give the CLI a terminal")
    manifest = files / "long.json"
    manifest.write_text(
        _apollo([(f"p-{i}", f"P{i}", f"query P{i} {{ viewer {{ id }} }}") for i in range(120)]),
        encoding="utf-8",
    )
    command = f"{sys.executable} -m server pq push --dry-run {manifest}"
    result = subprocess.run(
        ["/usr/bin/script", "-qec", command, "/dev/null"],
        cwd=ROOT,
        env={**CLEAN_ENV, "PYTHONPATH": str(ROOT), "TOLLGATE_LOG_JSON": "false", **sqlite_db},
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 0, result.stdout
    assert "120/120" in result.stdout and "dry run, nothing written: 120 added" in result.stdout
    plain = run("pq", "push", "--dry-run", str(manifest), env=sqlite_db)
    assert "[" not in plain.stderr and plain.stdout.strip() == (
        "dry run, nothing written: 120 added, 0 unchanged"
    )


def test_serve_refuses_a_missing_database_and_a_busy_port_in_one_line(tmp_path: Path) -> None:
    import socket

    missing = run("serve", env={"TOLLGATE_DATABASE_URL": f"sqlite+aiosqlite:///{tmp_path}/no.db"})
    assert_one_line_error(missing, "no database at", "tollgate migrate")
    assert not (tmp_path / "no.db").exists()
    (tmp_path / "ok.db").write_bytes(b"")
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        taken = run(
            "serve",
            "--port",
            str(port),
            env={"TOLLGATE_DATABASE_URL": f"sqlite+aiosqlite:///{tmp_path}/ok.db"},
        )
    assert_one_line_error(taken, f"cannot listen on 127.0.0.1:{port}", "--port")


MANIFEST_JSON = st.recursive(
    st.none() | st.booleans() | st.integers() | st.text(max_size=10),
    lambda inner: (
        st.lists(inner, max_size=3)
        | st.dictionaries(
            st.sampled_from(["format", "version", "operations", "id", "body", "name", "x"]),
            inner,
            max_size=4,
        )
    ),
    max_leaves=8,
)


@settings(
    max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(data=MANIFEST_JSON | st.text(max_size=30).map(lambda t: {"raw": t}))
def test_any_malformed_manifest_is_one_line(
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
    tmp_path_factory: pytest.TempPathFactory,
    data: Any,
) -> None:
    tmp = tmp_path_factory.mktemp("manifest")
    manifest = tmp / "m.json"
    text = data["raw"] if isinstance(data, dict) and set(data) == {"raw"} else json.dumps(data)
    manifest.write_text(text, encoding="utf-8")
    # No database either: whatever the manifest, the answer is one line and exit 2.
    monkeypatch.setenv("TOLLGATE_DATABASE_URL", f"sqlite+aiosqlite:///{tmp}/absent.db")
    for command in ("push", "diff"):
        code = cli.main(["pq", command, str(manifest)])
        assert_one_line_error((code, capsys.readouterr().err))
    assert not (tmp / "absent.db").exists()


def test_cost_of_an_unnamed_operation_with_fragments(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    """An anonymous operation (the common shorthand) beside a fragment was a traceback:
    the fragments were looked up by the name of every definition."""
    path = tmp_path / "anonymous.graphql"
    path.write_text("{ products(first: 5) { nodes { ...P } } }\nfragment P on Product { id }")
    capsys.readouterr()
    code = cli.main(["cost", str(path)])
    captured = capsys.readouterr()
    assert code == 0 and "Traceback" not in captured.err, captured.err
    assert json.loads(captured.out)["cost"] > 0


def test_cost_reports_what_the_gate_measured_too(
    capsys: pytest.CaptureFixture[str], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A limit in measure mode that the document exceeds is reported, as the server counts it."""
    monkeypatch.setenv(
        "TOLLGATE_LIMITS", json.dumps({"max_depth": "2", "max_depth_mode": "measure"})
    )
    path = tmp_path / "deep.graphql"
    path.write_text("{ products(first: 5) { nodes { reviews(first: 2) { nodes { id } } } } }")
    capsys.readouterr()
    code = cli.main(["cost", str(path)])
    captured = capsys.readouterr()
    assert code == 0, captured.err
    codes = [m["extensions"]["code"] for m in json.loads(captured.out)["measured"]]
    assert "DEPTH_LIMIT_EXCEEDED" in codes
