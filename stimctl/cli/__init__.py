"""`stimctl` command line: a dispatcher over one module per subcommand.

Each subcommand module exposes ``register(subparsers)``, which adds its parser and sets
``func(args) -> int`` (the exit code). Heavy imports (textual, numpy, the simulator) happen inside
``func`` so that ``stimctl --help`` stays fast.

Exit codes shared by all subcommands: 0 success, 1 refused (validation/interlock), 2 usage error,
3 device or database fault, 4 aborted by operator.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence

from stimctl import __version__
from stimctl.cli import (
    course,
    db,
    diary,
    measure,
    patient,
    ports,
    record,
    run,
    session,
    sim,
    tui,
    validate,
)

EXIT_OK = 0
EXIT_REFUSED = 1
EXIT_USAGE = 2
EXIT_DEVICE_FAULT = 3
EXIT_ABORTED = 4

SUBCOMMANDS = (validate, run, sim, record, ports, tui, patient, session, db, course, diary, measure)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="stimctl",
        description="Validate electroacupuncture profiles and run them on a stimulator.",
    )
    parser.add_argument("--version", action="version", version=f"stimctl {__version__}")
    subparsers = parser.add_subparsers(dest="command", metavar="COMMAND")
    for module in SUBCOMMANDS:
        module.register(subparsers)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    try:
        args, extra = parser.parse_known_args(argv)
        if extra and not getattr(args, "pass_through", False):
            parser.error(f"unrecognized arguments: {' '.join(extra)}")
    except SystemExit as exc:  # argparse exits 2 on usage errors, 0 on --help/--version
        return int(exc.code or 0)
    args.extra = extra  # options a pass-through subcommand (sim) hands to its own parser
    if not getattr(args, "func", None):
        parser.print_help(sys.stderr)
        return EXIT_USAGE
    return int(args.func(args))
