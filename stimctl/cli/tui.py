"""`stimctl tui`: the clinician terminal UI (Textual); without --port it runs the simulator."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from stimctl.host.status import ExitCode


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "tui",
        help="clinician terminal UI (embedded simulator unless --port is given)",
        description="Keyboard-first terminal UI: set-up, preflight, run, E-STOP (F12), summary.",
    )
    parser.add_argument(
        "--port",
        metavar="URL",
        default=None,
        help="device port or pyserial URL; omitted: embedded SIMULATOR",
    )
    parser.add_argument(
        "--operator", metavar="NAME", default="", help="operator name written to the session record"
    )
    parser.add_argument(
        "--profiles",
        metavar="DIR",
        type=Path,
        default=Path("profiles"),
        help="profile library to list (default: ./profiles)",
    )
    parser.add_argument(
        "--speed",
        metavar="N|max",
        default=None,
        help="simulator only: N times real time (0 < N <= 1000), or max; the virtual clock,"
        " device time at most N x wall time",
    )
    parser.add_argument(
        "--record",
        metavar="PATH",
        default=None,
        help="session record file, or a folder for a new one"
        " (default: ./records/<UTC time>-tui.jsonl)",
    )
    parser.add_argument(
        "--key",
        metavar="FILE",
        default=None,
        help="record key file shared by the site's stations (default: $STIMCTL_RECORD_KEY,"
        " else the user's site key)",
    )
    parser.set_defaults(func=_run)


def _record_path(given: str | None) -> Path | ExitCode:
    """The new record's path (every session of the UI is recorded), or the exit code refusing it."""
    from stimctl.host.record import new_record_path

    record = Path(given) if given else Path("records")
    if record.is_dir() or not given:
        try:
            return new_record_path("tui", record)
        except OSError as error:
            why = "it is a file" if record.is_file() else error.strerror or error
            print(f"stimctl tui: refused: cannot create the records folder {record}: {why}")
            return ExitCode.REFUSED
    if record.exists():
        print(f"stimctl tui: {record} already exists; records are never overwritten")
        return ExitCode.USAGE
    return record


def _run(args: argparse.Namespace) -> int:
    from stimctl.cli.run import parse_speed, record_outcome
    from stimctl.controller import Controller
    from stimctl.host.errors import RecordFailed
    from stimctl.tui.app import StimApp

    if args.port is not None and args.speed is not None:
        print("stimctl tui: --speed applies to the embedded simulator only (no --port)")
        return ExitCode.USAGE
    try:
        speed = parse_speed(args.speed)
    except ValueError as error:
        print(f"stimctl tui: {error}")
        return ExitCode.USAGE
    record = _record_path(args.record)
    if isinstance(record, ExitCode):
        return record
    refused: list[RecordFailed] = []

    def connect() -> Controller:
        kwargs: dict[str, object] = {
            "operator": args.operator, "record": record, "record_key": args.key,
        }  # fmt: skip
        if args.port is None and speed is not None:
            kwargs["speed"] = speed
            if speed != 1:  # the virtual clock; the UI never waits for the device: free-running
                kwargs["sim_options"] = {"lockstep": "0"}
        try:
            return Controller.connect(args.port, **kwargs)  # type: ignore[arg-type]
        except RecordFailed as error:  # shown on the set-up screen; the rescue is said on exit
            refused.append(error)
            raise

    app = StimApp(
        connect,
        operator=args.operator,
        profiles_dir=args.profiles,
        expect_simulator=args.port is None,
        handle_signals=True,  # SIGTERM, SIGHUP: as `stimctl run` (output zero, record closed)
    )
    try:
        result = app.run()
    finally:
        if app.controller is not None:
            app.controller.close()  # idempotent: output to zero, record closed, port closed
    code = int(result or 0)
    if app.controller is not None:
        code = record_outcome(app.controller, code, "stimctl tui")
    for error in refused:  # the record could not be opened: nothing was armed
        print(f"stimctl tui: refused: {error}; nothing was armed", file=sys.stderr)
        if error.rescue is not None:
            print(f"stimctl tui: {error.rescue.text()}", file=sys.stderr)
        code = ExitCode.REFUSED
    return code
