"""`stimctl record`: show and verify session records (keyed hash chain, rescue file, anchors).

``record verify`` exits with ``stimctl.host.verification.VerifyExit``; its table,
``VERIFY_EXITS``, is the one the help text and the docs show.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import TYPE_CHECKING

from stimctl.cli.clinic_options import add_db_option

if TYPE_CHECKING:
    from collections.abc import Sequence

    from stimctl.host.record import Summary
    from stimctl.host.recordkey import RecordKey
    from stimctl.host.verification import Anchor, Verification

PROG = "stimctl record"


def _exit_table() -> str:
    from stimctl.host.verification import VERIFY_EXITS

    return "exit codes: " + "; ".join(f"{int(code)} {text}" for code, text in VERIFY_EXITS.items())


def register(subparsers: argparse._SubParsersAction) -> None:
    """Add ``record show FILE`` and ``record verify FILE``."""
    parser = subparsers.add_parser("record", help="show or verify a session record")
    actions = parser.add_subparsers(dest="record_action", metavar="ACTION")
    show = actions.add_parser("show", help="summary: duration, pulses and charge, faults, outcome")
    show.add_argument("file", help="session record (.jsonl)")
    show.add_argument("--json", action="store_true", help="print the summary as JSON")
    _key_options(show)
    check = actions.add_parser(
        "verify",
        help="check the chain, its tags and anchors (exit 0 intact and closed; see --help)",
        description="Check the record's hash chain, its keyed tags and any outside anchor.",
        epilog=_exit_table(),
    )
    check.add_argument("file", help="session record (.jsonl)")
    check.add_argument(
        "--expect",
        metavar="TAG",
        help="the record's anchor as written on the chart (at least 12 hex digits)",
    )
    check.add_argument(
        "--rescue",
        metavar="FILE",
        help="the rescue file that holds the lines a failed record could not write",
    )
    _key_options(check)
    add_db_option(check)
    parser.set_defaults(func=_run, record_parser=parser)


def _key_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--key", metavar="FILE", help="record key file (also: $STIMCTL_RECORD_KEY, the site key)"
    )
    parser.add_argument(
        "--plain",
        action="store_true",
        help="accept a record without tags (written before keyed chains)",
    )


def _say(message: str) -> None:
    print(f"{PROG}: {message}", file=sys.stderr)


def _run(args: argparse.Namespace) -> int:
    from stimctl.clinic.anchor import database_anchor
    from stimctl.host.recordkey import RecordKeyError, verifying_keys
    from stimctl.host.verification import VerifyExit, expect_anchor

    action = getattr(args, "record_action", None)
    if action is None:
        args.record_parser.print_help(sys.stderr)
        return VerifyExit.USAGE
    path = Path(args.file)
    rescue = Path(args.rescue) if getattr(args, "rescue", None) else None
    for given in (path, rescue):
        if given is not None and not given.is_file():
            _say(f"{given}: no such file")
            return VerifyExit.USAGE
    anchors: list[Anchor] = []
    try:
        if getattr(args, "expect", None):
            anchors.append(expect_anchor(args.expect))
        keys = verifying_keys(Path(args.key) if args.key else None)
    except (ValueError, RecordKeyError) as error:
        _say(str(error))
        return VerifyExit.USAGE
    try:
        if action == "verify":  # the clinic database's anchor, when there is a database
            db = database_anchor(args.db, path)
            anchors += [db] if db is not None else []
        check = _check(path, keys, args.plain, rescue, anchors)
        if action == "verify":
            return _verify(path, check)
        return _show(path, check, as_json=args.json)
    except OSError as error:
        _say(f"{error.filename or path}: {error.strerror or error}")
        return VerifyExit.USAGE


def _check(
    path: Path,
    keys: Sequence[RecordKey],
    plain: bool,
    rescue: Path | None,
    anchors: Sequence[Anchor],
) -> Verification:
    """The one verification ``show`` and ``verify`` report: the chain, the tags and every outside
    anchor (``--expect``; the clinic database appends its own ``Anchor`` here)."""
    from stimctl.host.verification import verify

    return verify(path, keys=keys, plain=plain, rescue=rescue, anchors=anchors)


def _verify(path: Path, check: Verification) -> int:
    from stimctl.host.verification import VerifyExit

    if check.exit is VerifyExit.BAD and check.first_bad is not None:
        print(f"{path}: BROKEN: {check.reason}")
    else:
        print(f"{path}: {check.reason}")
    for note in check.notes:
        print(f"  {note}")
    return int(check.exit)


def _show(path: Path, check: Verification, *, as_json: bool) -> int:
    import json

    from stimctl.host.record import summarise

    summary = summarise(path)
    if as_json:
        print(
            json.dumps(
                {
                    **summary.as_dict(),
                    "verified": check.ok,
                    "verify_exit": int(check.exit),
                    "open": not check.closed,
                    "first_bad": check.first_bad,
                    "verify_reason": check.reason,
                    "anchor": check.anchor,
                },
                indent=2,
            )
        )
    else:
        print(_format(summary, check))
    return int(check.exit)


def _fmt(value: object, unit: str = "") -> str:
    if value is None:
        return "-"
    return f"{value:.1f}{unit}" if isinstance(value, float) else f"{value}{unit}"


def _headline(summary: Summary, check: Verification) -> str:
    from stimctl.host.verification import VerifyExit

    if check.exit is VerifyExit.BAD:
        state = "BROKEN"
    elif not check.closed:
        state = f"OPEN (no end line; lines after {check.last_good} are missing)"
    else:
        state = "closed"
    return f"record     {summary.path}  {state}"


def _format(summary: Summary, check: Verification) -> str:
    from stimctl.host.verification import short_anchor

    open_ = not check.closed
    lines = [
        _headline(summary, check),
        f"chain      {check.reason}",
        f"session    {_fmt(summary.session_id)}"
        f" anchor {short_anchor(check.anchor) if check.anchor else '-'}",
        f"started    {_fmt(summary.started)}",
        f"duration   {_fmt(summary.duration_s, ' s')}"
        f" (delivered {_fmt(summary.delivered_s, ' s')})",
        f"operator   {_fmt(summary.operator)}",
        f"profile    {_fmt(summary.profile_name)} sha256 {_fmt(summary.profile_sha256)}",
        f"device     firmware {_fmt(summary.firmware)} serial {_fmt(summary.serial)}",
    ]
    if summary.channels:
        lines.append("channel    pulses      charge_uc")
        lines += [
            f"  {c.id:<8} {_fmt(c.pulses):>8} {_fmt(c.charge_uc):>14}" for c in summary.channels
        ]
    else:
        lines.append("channels   (no delivery totals recorded)")
    unknown = " recorded (the record is OPEN: later lines are missing)" if open_ else ""
    lines.append(f"faults     {len(summary.faults) or 'none'}{unknown}")
    for fault in summary.faults:
        what = fault.get("code", "?")
        where = f" channel {fault['channel']}" if fault.get("channel") is not None else ""
        lines.append(f"  - {what}{where}: {fault.get('message', '')}".rstrip(": "))
    if summary.refused:
        lines.append(f"refused    {len(summary.refused)} error(s) in the profile")
        lines.extend(f"  - {what}" for what in summary.refused)
    lines.append(f"naks       {summary.naks}")
    if summary.retransmits is not None:
        lines.append(f"retransmit {summary.retransmits} (blocks and commands sent again)")
    code = f" (exit {summary.exit_code})" if summary.exit_code is not None else ""
    outcome = _fmt(summary.outcome) if not open_ else "unknown: the record is OPEN"
    lines.append(f"outcome    {outcome}{code}")
    return "\n".join(lines)
