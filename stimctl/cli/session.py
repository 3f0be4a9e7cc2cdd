"""`stimctl session list|import`: the clinic's session rows (docs/DATABASE.md).

``list`` prints the rows (``--json``: an array, one object per session); ``import RECORD``
rebuilds or closes the row of a session from its record (when the database could not be written
at the end of the session). Exit codes: 0 ok, 1 refused (unknown patient, a record that is
damaged, has no session id or disagrees with its row), 2 usage, 3 database failure.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from stimctl.cli.clinic_options import EXIT_DATABASE, add_db_option, open_clinic
from stimctl.host.status import ExitCode

EXIT_OK, EXIT_REFUSED, EXIT_USAGE = ExitCode.OK, ExitCode.REFUSED, ExitCode.USAGE
PROG = "stimctl session"


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser("session", help="sessions stored in the clinic database")
    actions = parser.add_subparsers(dest="session_action", metavar="ACTION")
    listing = actions.add_parser("list", help="sessions, oldest first")
    listing.add_argument("--patient", metavar="ID", help="only this patient's sessions")
    listing.add_argument("--json", action="store_true", help="a JSON array, one object each")
    imported = actions.add_parser("import", help="rebuild or close a session's row from its record")
    imported.add_argument("record", metavar="RECORD", help="session record (.jsonl)")
    imported.add_argument("--patient", metavar="ID", help="the patient, if the record names none")
    for sub in (listing, imported):
        add_db_option(sub)
    parser.set_defaults(func=_run, session_parser=parser)


def _say(message: str) -> None:
    print(f"{PROG}: {message}", file=sys.stderr)


def _run(args: argparse.Namespace) -> int:
    from sqlalchemy.exc import SQLAlchemyError

    from stimctl.clinic.db import DatabaseError, db_reason
    from stimctl.clinic.patients import PatientError

    action = getattr(args, "session_action", None)
    if action is None:
        args.session_parser.print_help(sys.stderr)
        return EXIT_USAGE
    if action == "import" and not Path(args.record).is_file():
        _say(f"{args.record}: no such file")
        return EXIT_USAGE
    try:
        db = open_clinic(args)
    except DatabaseError as error:
        _say(f"database: {error}")
        return EXIT_DATABASE
    try:
        with db.session() as session:
            return _list(session, args) if action == "list" else _import(session, args)
    except PatientError as error:
        _say(f"refused: {error}")
        return EXIT_REFUSED
    except OSError as error:
        _say(f"{args.record}: {error.strerror or error}")
        return EXIT_USAGE
    except (DatabaseError, SQLAlchemyError) as error:
        _say(f"database: {db_reason(error)}")
        return EXIT_DATABASE
    finally:
        db.dispose()


def _list(session: object, args: argparse.Namespace) -> int:
    from stimctl.cli.patient import session_line
    from stimctl.clinic.sessions import list_sessions, session_json

    rows = [session_json(r) for r in list_sessions(session, args.patient)]  # type: ignore[arg-type]
    if args.json:
        json.dump(rows, sys.stdout, indent=2, allow_nan=False)
        sys.stdout.write("\n")
    else:
        for row in rows:
            print(session_line(row))
        if not rows:
            print("no sessions")
    return EXIT_OK


def _import(session: object, args: argparse.Namespace) -> int:
    from stimctl.clinic.sessions import import_record

    row, created = import_record(session, args.record, patient_code=args.patient)  # type: ignore[arg-type]
    who = f"patient {row.patient.code} #{row.number}" if row.patient else "no patient"
    print(f"session {row.uid} ({who}) {'imported' if created else 'updated'} from {args.record}:"
          f" {row.outcome}, tag {(row.record_tag or '-')[:12]}")  # fmt: skip
    return EXIT_OK
