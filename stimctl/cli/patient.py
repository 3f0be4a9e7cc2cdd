"""`stimctl patient add|set|show|list|export`: patients and their clinical flags (docs/DATABASE.md).

Exit codes: 0 ok, 1 refused (unknown or duplicate patient, bad flag or year), 2 usage,
3 database failure.
"""

from __future__ import annotations

import argparse
import json
import sys
from typing import Any

from stimctl.cli.clinic_action import run_action
from stimctl.cli.clinic_options import add_db_option, operator_name
from stimctl.host.status import ExitCode

EXIT_OK, EXIT_REFUSED, EXIT_USAGE = ExitCode.OK, ExitCode.REFUSED, ExitCode.USAGE
PROG = "stimctl patient"


def register(subparsers: argparse._SubParsersAction) -> None:
    from stimctl.rules.validation import PATIENT_FLAGS

    flags = ", ".join(PATIENT_FLAGS)
    parser = subparsers.add_parser("patient", help="clinic patients and their flags")
    actions = parser.add_subparsers(dest="patient_action", metavar="ACTION")
    add = actions.add_parser("add", help="add a patient under a pseudonymous id")
    add.add_argument("id", metavar="ID", help="the clinic's patient id (no names)")
    add.add_argument("--born", type=int, metavar="YEAR", help="year of birth")
    add.add_argument("--flag", action="append", default=[], metavar="FLAG", help=flags)
    add.add_argument("--note", default="", metavar="TEXT", help="free-text note")
    change = actions.add_parser("set", help="set or unset flags (each change is kept)")
    change.add_argument("id", metavar="ID")
    change.add_argument("--flag", action="append", default=[], metavar="FLAG", help=flags)
    change.add_argument("--unflag", action="append", default=[], metavar="FLAG")
    show = actions.add_parser("show", help="a patient: flags, their history, sessions")
    show.add_argument("id", metavar="ID")
    show.add_argument("--json", action="store_true")
    listing = actions.add_parser("list", help="every patient with the flags in force")
    listing.add_argument("--json", action="store_true")
    export = actions.add_parser("export", help="patient, flag history and sessions as JSON")
    export.add_argument("id", metavar="ID")
    export.add_argument("--json", action="store_true", help="JSON (the only format)")
    for sub in (add, change, show, listing, export):
        add_db_option(sub)
    for sub in (add, change):
        sub.add_argument("--operator", metavar="NAME", help="who made the change (default: login)")
    parser.set_defaults(func=_run, patient_parser=parser)


def _say(message: str) -> None:
    print(f"{PROG}: {message}", file=sys.stderr)


def _run(args: argparse.Namespace) -> int:
    action = getattr(args, "patient_action", None)
    if action is None:
        args.patient_parser.print_help(sys.stderr)
        return EXIT_USAGE
    if action == "set" and not (args.flag or args.unflag):
        _say("set needs --flag FLAG or --unflag FLAG")
        return EXIT_USAGE
    if action == "export" and not args.json:
        _say("export writes JSON: pass --json")
        return EXIT_USAGE
    return run_action(PROG, args, lambda session: ACTIONS[action](session, args))


def _add(session: Any, args: argparse.Namespace) -> int:
    from stimctl.clinic.patients import add_patient

    flags = _split(args.flag)
    add_patient(session, args.id, born=args.born, flags=flags, note=args.note,
                operator=operator_name(args.operator))  # fmt: skip
    print(f"patient {args.id} added" + (f"; flags {', '.join(sorted(flags))}" if flags else ""))
    return EXIT_OK


def _set(session: Any, args: argparse.Namespace) -> int:
    from stimctl.clinic.patients import change_flags

    changes = change_flags(session, args.id, set_flags=_split(args.flag),
                           unset_flags=_split(args.unflag),
                           operator=operator_name(args.operator))  # fmt: skip
    if not changes:
        print(f"patient {args.id}: no change (flags already so)")
    for change in changes:
        print(f"patient {args.id}: {change.flag} {'set' if change.value else 'unset'}")
    return EXIT_OK


def _show(session: Any, args: argparse.Namespace) -> int:
    from stimctl.clinic.patients import get_patient
    from stimctl.clinic.sessions import patient_json

    document = patient_json(session, get_patient(session, args.id))
    if args.json:
        _dump(document)
        return EXIT_OK
    flags = document["flags"]
    print(f"patient    {document['id']}")
    print(f"born       {document['born'] if document['born'] is not None else '-'}")
    if document["note"]:
        print(f"note       {document['note']}")
    print("flags      " + (", ".join(f"{f} (since {v['since'][:10]})" for f, v in flags.items())
                           or "none"))  # fmt: skip
    for change in document["flag_history"]:
        print(f"  {change['at'][:19]} {change['change']:<5} {change['flag']}"
              f" by {change['operator'] or '-'}")  # fmt: skip
    print(f"sessions   {len(document['sessions'])}")
    for row in document["sessions"]:
        print("  " + session_line(row))
    return EXIT_OK


def session_line(row: dict[str, Any]) -> str:
    """One session in a listing: number, start, profile, outcome, delivery, tag."""
    number = f"#{row['number']}" if row["number"] is not None else "-"
    tag = (row["record_tag"] or "")[:12] or "-"
    delivered = "-" if row["delivered_s"] is None else f"{row['delivered_s']:.1f} s"
    codes = f" [{', '.join(row['violations'])}]" if row["violations"] else ""
    return (
        f"{number:<5} {row['started'][:19]} {row['patient'] or '-':<12}"
        f" {row['profile'] or '-':<24} {row['outcome'] or 'OPEN':<9} exit {row['exit_code']}"
        f" delivered {delivered} tag {tag}{codes}"
    )


def _list(session: Any, args: argparse.Namespace) -> int:
    from stimctl.clinic.patients import flag_state, list_patients

    patients = [(p, flag_state(session, p)) for p in list_patients(session)]
    if args.json:
        _dump([{"id": p.code, "born": p.born, "flags": sorted(s.flags), "sessions": len(p.sessions)}
               for p, s in patients])  # fmt: skip
        return EXIT_OK
    for p, s in patients:
        flags = ", ".join(sorted(s.flags)) or "-"
        print(f"{p.code:<16} born {p.born or '-':<5} sessions {len(p.sessions):<4} flags {flags}")
    if not patients:
        print("no patients")
    return EXIT_OK


def _export(session: Any, args: argparse.Namespace) -> int:
    from stimctl.clinic.patients import get_patient
    from stimctl.clinic.sessions import patient_json

    _dump({"schema": EXPORT_SCHEMA, **patient_json(session, get_patient(session, args.id))})
    return EXIT_OK


EXPORT_SCHEMA = "stimctl.patient-export/1"


def _split(items: list[str]) -> list[str]:
    return [f.strip() for item in items for f in item.split(",") if f.strip()]


def _dump(value: object) -> None:
    json.dump(value, sys.stdout, indent=2, allow_nan=False)
    sys.stdout.write("\n")


ACTIONS = {"add": _add, "set": _set, "show": _show, "list": _list, "export": _export}
