"""GraphiQL shipped with Tollgate: static assets, the HTML page and its Content-Security-Policy.

The assets in ``static/`` are GraphiQL's ready-made UMD build with React 18's UMD builds,
rebuilt by ``scripts/build-graphiql`` from the pinned ``build/package-lock.json``, plus our
``tollgate.js``/``tollgate.css`` (token box, cost display, persisted operations). The page
loads only same-origin files, so it works with no internet access and under a CSP with no
inline scripts and no ``unsafe-eval``. Mount ``STATIC_DIR`` under ``/graphiql/static``.
"""

from __future__ import annotations

from html import escape
from pathlib import Path

__all__ = [
    "CONTENT_SECURITY_POLICY",
    "STATIC_DIR",
    "STATIC_URL",
    "graphiql_html",
]

STATIC_DIR: Path = Path(__file__).resolve().parent / "static"
STATIC_URL = "/graphiql/static"

# What the bundle needs, checked in headless Chromium by tests/js/graphiql.mjs:
# - scripts: only our own files; GraphiQL 4's UMD build uses neither eval nor new Function.
# - styles: only our own files. React and CodeMirror set styles through the CSSOM, which CSP
#   allows. The one <style> element the bundle injects (react-remove-scroll-bar, when a
#   dialog opens) is allowed by its hash: its text depends only on the page's scrollbar gap,
#   which is 0 because our layout never scrolls the body. Were it ever different, the browser
#   would just block it (the body would stay scrollable behind the dialog). Rebuilding with
#   another GraphiQL version may change the text; tests/js/graphiql.mjs opens a dialog and
#   prints the hash Chromium wants.
# - fonts and a few images are data: URIs inside graphiql.min.css.
# - connect-src 'self': the fetcher posts to /graphql and reads /graphql/persisted.
CONTENT_SECURITY_POLICY = (
    "default-src 'none'; "
    "script-src 'self'; "
    "style-src 'self' 'sha256-nzTgYzXYDNe6BAHiiI7NNlfK8n/auuOAhh2t92YvuXo='; "
    "img-src 'self' data:; "
    "font-src 'self' data:; "
    "connect-src 'self'; "
    "base-uri 'none'; "
    "form-action 'none'; "
    "frame-ancestors 'none'"
)

_PAGE = """<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<meta name="referrer" content="no-referrer">
<title>{title}</title>
<link rel="icon" href="data:,">
<link rel="stylesheet" href="{static}/graphiql.min.css">
<link rel="stylesheet" href="{static}/tollgate.css">
</head>
<body data-endpoint="{endpoint}" data-persisted-endpoint="{persisted}">
<header id="tollgate-bar">
<strong>{title}</strong>
<label>Token <input id="tollgate-token" type="password" autocomplete="off" spellcheck="false"
 placeholder="paste a bearer token (JWT)"></label>
<span id="tollgate-prompt" role="note">&larr; paste a token to load the schema and run queries
(<code>scripts/serve</code> prints one per role; or run <code>tollgate token --role staff</code>)</span>
<span id="tollgate-cost" role="status" aria-live="polite">cost: no request yet</span>
<span id="tollgate-persisted" hidden>
<select id="tollgate-persisted-select" aria-label="Persisted operations">
<option value="">Persisted operations</option>
</select>
<span id="tollgate-persisted-info"></span>
</span>
</header>
<div id="graphiql">Loading GraphiQL&hellip;</div>
<script src="{static}/react.production.min.js"></script>
<script src="{static}/react-dom.production.min.js"></script>
<script src="{static}/graphiql.min.js"></script>
<script src="{static}/tollgate.js"></script>
</body>
</html>
"""


def graphiql_html(
    *,
    title: str = "Tollgate GraphiQL",
    endpoint: str = "/graphql",
    persisted_endpoint: str | None = None,
    static_url: str = STATIC_URL,
) -> str:
    """Return the GraphiQL page; serve it with ``CONTENT_SECURITY_POLICY`` as its CSP header."""
    return _PAGE.format(
        title=escape(title),
        endpoint=escape(endpoint),
        persisted=escape(persisted_endpoint or endpoint.rstrip("/") + "/persisted"),
        static=escape(static_url.rstrip("/")),
    )
