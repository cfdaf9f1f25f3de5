"""A bare Starlette endpoint returning a fixed JSON body: the ceiling of the HTTP stack alone.

``python -m bench.bare --port 8003 [--workers 2]``; ``bench.ratio`` loads it beside the server.
Several workers run as the server's do (``server.workers``: a listening socket each).
"""

from __future__ import annotations

import argparse
from collections.abc import Sequence

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

BODY = b'{"data":{"viewer":{"id":"VXNlcjo=","name":"Ada","email":"ada@example.com"}}}'


async def graphql(request: Request) -> Response:
    await request.body()
    return Response(BODY, media_type="application/json")


app = Starlette(routes=[Route("/graphql", graphql, methods=["POST"])])


def main(argv: Sequence[str] | None = None) -> None:
    import uvicorn

    parser = argparse.ArgumentParser(prog="python -m bench.bare")
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--workers", type=int, default=1)
    args = parser.parse_args(argv)
    options = dict(host="127.0.0.1", port=args.port, log_level="warning", access_log=False)
    if args.workers == 1:
        uvicorn.run("bench.bare:app", **options)  # type: ignore[arg-type]
        return
    # The server's own worker model (a listening socket per worker), so that the ratio
    # compares the two stacks and not how connections happen to be spread over workers.
    from server.workers import serve_workers

    serve_workers(uvicorn.Config("bench.bare:app", workers=args.workers, **options))  # type: ignore[arg-type]


if __name__ == "__main__":
    main()
