"""The shipped GraphiQL page and assets: same-origin only, strict CSP, small, reproducible."""

from __future__ import annotations

import ast
import json
import os
import re
import shutil
import subprocess
from html.parser import HTMLParser
from pathlib import Path

import pytest

from server.graphiql import CONTENT_SECURITY_POLICY, STATIC_DIR, STATIC_URL, graphiql_html

BUILD_DIR = STATIC_DIR.parent / "build"
BUNDLES = ["graphiql.min.js", "react.production.min.js", "react-dom.production.min.js"]


class _PageParser(HTMLParser):
    """Collects asset URLs, inline script bodies and style attributes of a page."""

    def __init__(self) -> None:
        super().__init__()
        self.assets: list[str] = []
        self.inline_scripts: list[str] = []
        self.style_attributes: list[str] = []
        self.event_handlers: list[str] = []
        self._in_script = False

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        values = dict(attrs)
        if tag == "script":
            self._in_script = True
            if values.get("src"):
                self.assets.append(values["src"] or "")
        if tag == "link" and values.get("rel") == "stylesheet":
            self.assets.append(values.get("href") or "")
        for name, _ in attrs:
            if name == "style":
                self.style_attributes.append(tag)
            if name.startswith("on"):
                self.event_handlers.append(f"{tag}.{name}")

    def handle_endtag(self, tag: str) -> None:
        if tag == "script":
            self._in_script = False

    def handle_data(self, data: str) -> None:
        if self._in_script and data.strip():
            self.inline_scripts.append(data)


def _parse(html: str) -> _PageParser:
    parser = _PageParser()
    parser.feed(html)
    return parser


def _directives(policy: str) -> dict[str, list[str]]:
    out: dict[str, list[str]] = {}
    for part in policy.split(";"):
        words = part.split()
        if words:
            out[words[0]] = words[1:]
    return out


def test_page_loads_only_shipped_same_origin_assets() -> None:
    page = _parse(graphiql_html())
    assert page.assets, "the page must load GraphiQL's scripts and styles"
    for url in page.assets:
        assert url.startswith(STATIC_URL + "/"), url
        assert (STATIC_DIR / url.removeprefix(STATIC_URL + "/")).is_file(), f"{url} is not shipped"
    assert [u.rsplit("/", 1)[1] for u in page.assets if u.endswith(".js")] == [
        *BUNDLES[1:],
        BUNDLES[0],
        "tollgate.js",
    ], "React must load before GraphiQL, and our bootstrap last"


def test_page_has_nothing_the_csp_would_block() -> None:
    html = graphiql_html()
    page = _parse(html)
    assert page.inline_scripts == []
    assert page.style_attributes == []
    assert page.event_handlers == []
    assert not re.search(r"(?:https?:)?//[a-z0-9.-]+\.[a-z]", html.replace("data:,", ""))


def test_csp_allows_only_self_and_no_eval() -> None:
    csp = _directives(CONTENT_SECURITY_POLICY)
    assert csp["default-src"] == ["'none'"]
    assert csp["script-src"] == ["'self'"]
    assert csp["connect-src"] == ["'self'"]
    assert csp["frame-ancestors"] == ["'none'"]
    assert csp["base-uri"] == ["'none'"]
    everything = " ".join(v for values in csp.values() for v in values)
    assert "unsafe" not in everything
    assert not re.search(r"https?:|\*", everything)
    assert "\n" not in CONTENT_SECURITY_POLICY


def test_bundles_need_no_eval() -> None:
    for name in BUNDLES:
        text = (STATIC_DIR / name).read_text(encoding="utf-8")
        assert not re.search(r"\beval\(|\bnew Function\(|[^.\w]Function\(", text), name


def test_static_folder_is_small_and_has_no_source_maps() -> None:
    files = [p for p in STATIC_DIR.rglob("*") if p.is_file()]
    assert sum(p.stat().st_size for p in files) < 5 * 1024 * 1024
    assert not [p for p in files if p.suffix == ".map"]
    for p in files:
        if p.suffix in {".js", ".css"}:
            assert "sourceMappingURL" not in p.read_text(encoding="utf-8"), p.name


def test_shipped_versions_match_the_pinned_lockfile() -> None:
    lock = json.loads((BUILD_DIR / "package-lock.json").read_text(encoding="utf-8"))
    versions = {
        name: lock["packages"][f"node_modules/{name}"]["version"]
        for name in ("graphiql", "react", "react-dom")
    }
    shipped = (STATIC_DIR / "VERSIONS").read_text(encoding="utf-8")
    for name, version in versions.items():
        assert f"{name} {version}" in shipped
    pinned = json.loads((BUILD_DIR / "package.json").read_text(encoding="utf-8"))["dependencies"]
    assert all(re.fullmatch(r"\d+\.\d+\.\d+", v) for v in pinned.values()), "pin exact versions"
    assert f"react {versions['react']}" in shipped and versions["react"].startswith("18."), (
        "React 19 has no UMD build"
    )


def test_title_and_urls_are_escaped() -> None:
    html = graphiql_html(title='<b>"x"</b>', endpoint='/g"ql')
    assert "<b>" not in html
    assert "&lt;b&gt;&quot;x&quot;&lt;/b&gt;" in html
    assert 'data-endpoint="/g&quot;ql"' in html
    assert 'data-persisted-endpoint="/g&quot;ql/persisted"' in html


def test_module_imports_only_the_standard_library() -> None:
    source = (STATIC_DIR.parent / "__init__.py").read_text(encoding="utf-8")
    imported = set()
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import):
            imported.update(alias.name.split(".")[0] for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            imported.add((node.module or "").split(".")[0])
    assert imported <= {"__future__", "html", "pathlib"}, imported


def test_bootstrap_sends_the_token_and_reads_the_cost() -> None:
    js = (STATIC_DIR / "tollgate.js").read_text(encoding="utf-8")
    assert '"Bearer "' in js
    assert "application/graphql-response+json, application/json" in js
    assert "requestedQueryCost" in js and "actualQueryCost" in js and "throttleStatus" in js
    assert "localStorage" in js
    assert not re.search(r"https?://", js)


def test_static_dir_is_a_path_next_to_the_module() -> None:
    assert isinstance(STATIC_DIR, Path)
    assert STATIC_DIR.is_dir()
    assert (STATIC_DIR / "tollgate.css").is_file()


@pytest.mark.slow
def test_shipped_assets_are_exactly_a_rebuild_from_the_lockfile(tmp_path: Path) -> None:
    """scripts/build-graphiql --check rebuilds from package-lock.json and compares byte for byte."""
    if shutil.which("npm") is None:
        pytest.fail("npm is required (scripts/install-js says how to get Node)")
    script = Path(__file__).resolve().parents[2] / "scripts" / "build-graphiql"
    shipped = tmp_path / "static"
    shutil.copytree(STATIC_DIR, shipped)

    def check() -> subprocess.CompletedProcess[str]:
        env = {**os.environ, "TOLLGATE_GRAPHIQL_STATIC": str(shipped)}
        return subprocess.run(
            [str(script), "--check"], env=env, capture_output=True, text=True, timeout=600
        )

    same = check()
    assert same.returncode == 0, same.stderr
    bundle = shipped / "graphiql.min.js"
    bundle.write_bytes(bundle.read_bytes() + b"\n")
    tampered = check()
    assert tampered.returncode == 1 and "graphiql.min.js differs" in tampered.stderr
