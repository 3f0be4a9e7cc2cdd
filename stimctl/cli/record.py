"""`stimctl record`: show and verify hash-chained session records."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from stimctl.cli.clinic_options import add_db_option

EXIT_OK = 0
EXIT_BAD = 1
EXIT_USAGE = 2


def register(subparsers: argparse._SubParsersAction) -> None:
    """Add ``record show FILE`` and ``record verify FILE``."""
    parser = subparsers.add_parser("record", help="show or verify a session record")
    actions = parser.add_subparsers(dest="record_action", metavar="ACTION")
    show = actions.add_parser("show", help="summary: duration, pulses and charge, faults, outcome")
    show.add_argument("file", help="session record (.jsonl)")
    show.add_argument("--json", action="store_true", help="print the summary as JSON")
    check = actions.add_parser("verify", help="check the hash chain (exit 0 intact, 1 broken)")
    check.add_argument("file", help="session record (.jsonl)")
    add_db_option(check)
    parser.set_defaults(func=_run, record_parser=parser)


def _run(args: argparse.Namespace) -> int:
    action = getattr(args, "record_action", None)
    if action is None:
        args.record_parser.print_help(sys.stderr)
        return EXIT_USAGE
    path = Path(args.file)
    if not path.is_file():
        print(f"stimctl record: {path}: no such file", file=sys.stderr)
        return EXIT_USAGE
    try:
        if action == "verify":
            return _verify(path, args.db)
        return _show(path, as_json=args.json)
    except OSError as error:
        print(f"stimctl record: {path}: {error.strerror or error}", file=sys.stderr)
        return EXIT_USAGE


def _verify(path: Path, db_url: str | None) -> int:
    from stimctl.clinic.anchor import check_anchor
    from stimctl.host.record import verify

    result = verify(path)
    if result.ok:
        state = "closed" if result.closed else "NOT closed (no end line: session interrupted)"
        print(f"{path}: chain intact, {result.lines} lines, {state}")
        code = EXIT_OK
    else:
        print(f"{path}: chain BROKEN at line {result.first_bad}: {result.reason}")
        code = EXIT_BAD
    anchor = check_anchor(db_url, path)  # the clinic database's anchor, when there is one
    if anchor is not None:
        print(anchor.message)
        if anchor.agrees is False:
            code = EXIT_BAD
    return code


def _show(path: object, *, as_json: bool) -> int:
    import json

    from stimctl.host.record import summarise, verify

    check = verify(path)  # type: ignore[arg-type]
    summary = summarise(path)  # type: ignore[arg-type]
    if as_json:
        print(
            json.dumps(
                {
                    **summary.as_dict(),
                    "verified": check.ok,
                    "first_bad": check.first_bad,
                    "verify_reason": check.reason,
                },
                indent=2,
            )
        )
    else:
        print(_format(summary, check))
    return EXIT_OK if check.ok else EXIT_BAD


def _fmt(value: object, unit: str = "") -> str:
    if value is None:
        return "-"
    return f"{value:.1f}{unit}" if isinstance(value, float) else f"{value}{unit}"


def _format(summary: object, check: object) -> str:
    from stimctl.host.record import Summary, Verification

    assert isinstance(summary, Summary) and isinstance(check, Verification)
    lines = [
        f"record     {summary.path}",
        f"chain      {'intact' if check.ok else 'BROKEN: ' + check.reason}"
        f" ({check.lines} lines, {'closed' if summary.closed else 'not closed'})",
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
    lines.append(f"faults     {len(summary.faults) or 'none'}")
    for fault in summary.faults:
        what = fault.get("code", "?")
        where = f" channel {fault['channel']}" if fault.get("channel") is not None else ""
        lines.append(f"  - {what}{where}: {fault.get('message', '')}".rstrip(": "))
    if summary.refused:
        lines.append(f"refused    {len(summary.refused)} error(s) in the profile")
        lines.extend(f"  - {what}" for what in summary.refused)
    lines.append(f"naks       {summary.naks}")
    code = f" (exit {summary.exit_code})" if summary.exit_code is not None else ""
    lines.append(f"outcome    {_fmt(summary.outcome)}{code}")
    return "\n".join(lines)
