"""``tollgate webhooks verify``: check a delivery's signature as a receiver would.

Self-contained: ``register(sub)`` adds the command to any argparse subparsers.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

from auth.webhooks import DEFAULT_TOLERANCE_SECONDS, SignatureError, verify
from server.clitools import CliError

EXIT_INVALID = 1


def register(sub: Any) -> None:
    """Add the ``webhooks`` command (``verify``) to the CLI's subparsers."""
    webhooks = sub.add_parser(
        "webhooks",
        help="webhook tools: verify a delivery's signature",
        description="Tools for receivers of Tollgate's signed webhooks (docs/webhooks.md).",
    )
    actions = webhooks.add_subparsers(dest="webhooks_command", required=True)
    check = actions.add_parser(
        "verify",
        help="verify a Tollgate-Signature header against a body; exit 0 when valid, 1 when not",
        description=(
            "Check a delivery's Tollgate-Signature header against its raw body with the "
            "endpoint's secret(s), in constant time and within a tolerance window against "
            "replays. Exit 0 when valid, 1 when not, 2 on bad usage."
        ),
    )
    check.add_argument(
        "--secret",
        action="append",
        required=True,
        help="the endpoint's secret; repeat for the old and the new one during a rotation",
    )
    check.add_argument("--header", required=True, help="the Tollgate-Signature header value")
    check.add_argument(
        "--body", default="-", help="file with the raw body exactly as received (- for stdin)"
    )
    check.add_argument(
        "--tolerance",
        type=int,
        default=DEFAULT_TOLERANCE_SECONDS,
        help=f"largest accepted age in seconds (default {DEFAULT_TOLERANCE_SECONDS})",
    )
    check.add_argument("--now", type=int, help=argparse.SUPPRESS)  # tests: a fixed clock
    check.set_defaults(fn=cmd_webhooks_verify)


def cmd_webhooks_verify(args: argparse.Namespace) -> int:
    try:
        body = sys.stdin.buffer.read() if args.body == "-" else Path(args.body).read_bytes()
    except OSError as exc:
        raise CliError(
            f"cannot read the body {args.body}: {exc.strerror or exc}", "check the path"
        ) from None
    if args.tolerance < 0:
        raise CliError("--tolerance must be 0 or more", "pass a number of seconds")
    try:
        timestamp = verify(body, args.header, args.secret, tolerance=args.tolerance, now=args.now)
    except SignatureError as exc:
        print(f"invalid: {exc.reason}", file=sys.stderr)
        return EXIT_INVALID
    print(f"valid (t={timestamp})")
    return 0
