"""`stimctl tui`: placeholder until its issue lands (replaced by the owning work)."""

from __future__ import annotations

import argparse
import sys


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser("tui", help="(not built yet)")
    parser.set_defaults(func=_run)


def _run(args: argparse.Namespace) -> int:
    print("stimctl tui: not built yet", file=sys.stderr)
    return 2
