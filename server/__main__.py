"""``python -m server <command>``: the command-line interface."""

from server.cli import main

raise SystemExit(main())
