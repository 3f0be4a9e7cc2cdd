"""`stimctl sim`: serve the simulated stimulator (firmware_sim) on a pseudo-terminal.

The options are firmware_sim's own (`stimctl sim --help` lists them); the first line of stdout is
``PORT <path>``, then the simulator serves until SIGINT/SIGTERM and exits 0.
"""

from __future__ import annotations

import argparse


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "sim",
        help="serve the simulated stimulator on a pseudo-terminal (prints PORT <path>)",
        description="Serve firmware_sim on a pseudo-terminal; options as `python -m firmware_sim`.",
        add_help=False,  # --help is firmware_sim's, with every option
    )
    parser.set_defaults(func=_run, pass_through=True)


def _run(args: argparse.Namespace) -> int:
    from firmware_sim.__main__ import main as serve  # heavy (numpy): only when serving

    try:
        return serve(list(args.extra), prog="stimctl sim")
    except SystemExit as exc:  # its argparse: 2 on usage errors, 0 on --help
        return int(exc.code or 0)
