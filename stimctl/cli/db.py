"""`stimctl db upgrade`: bring the clinic database's schema to this stimctl's revision.

Exit codes: 0 upgraded (or already current), 2 usage, 3 database failure.
"""

from __future__ import annotations

import argparse
import sys

from stimctl.cli.clinic_options import EXIT_DATABASE, add_db_option
from stimctl.host.status import ExitCode

EXIT_OK, EXIT_USAGE = ExitCode.OK, ExitCode.USAGE


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser("db", help="the clinic database's schema")
    actions = parser.add_subparsers(dest="db_action", metavar="ACTION")
    upgrade = actions.add_parser("upgrade", help="run the migrations up to this stimctl's schema")
    add_db_option(upgrade)
    parser.set_defaults(func=_run, db_parser=parser)


def _run(args: argparse.Namespace) -> int:
    from stimctl.clinic.db import DatabaseError, database_url, open_database
    from stimctl.clinic.schema import current_revision, head_revision, upgrade

    if getattr(args, "db_action", None) is None:
        args.db_parser.print_help(sys.stderr)
        return EXIT_USAGE
    try:
        url, default = database_url(args.db)
        db = open_database(url, make_folder=default)
        try:
            before = current_revision(db)
            upgrade(db)
            after = current_revision(db)
        finally:
            db.dispose()
    except DatabaseError as error:
        print(f"stimctl db: database: {error}", file=sys.stderr)
        return EXIT_DATABASE
    if after != head_revision():
        print(f"stimctl db: {db.display_url} is at {after}, expected {head_revision()}",
              file=sys.stderr)  # fmt: skip
        return EXIT_DATABASE
    state = "already at" if before == after else f"upgraded from {before or 'empty'} to"
    print(f"{db.display_url}: {state} schema revision {after}")
    return EXIT_OK
