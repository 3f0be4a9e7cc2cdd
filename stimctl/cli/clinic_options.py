"""The ``--db URL`` option of the commands that use the clinic database, and opening it."""

from __future__ import annotations

import argparse
import getpass
from typing import TYPE_CHECKING

from stimctl.host.status import ExitCode

if TYPE_CHECKING:
    from stimctl.clinic.db import Database

EXIT_DATABASE = ExitCode.FAULT  # a database fault


def add_db_option(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--db",
        metavar="URL",
        help="clinic database: sqlite:///FILE or postgresql+psycopg://...; default $STIMCTL_DB,"
        " else clinic.db in the user's data folder",
    )


def open_clinic(args: argparse.Namespace) -> Database:
    """The database the command names (a new SQLite file is created; the default one with its
    folder), its schema brought to the newest revision when empty; DatabaseError otherwise."""
    from stimctl.clinic.db import DatabaseError, database_url, open_database
    from stimctl.clinic.schema import ensure_current

    url, default = database_url(args.db)
    db = open_database(url, make_folder=default)
    try:
        ensure_current(db)
    except DatabaseError:
        db.dispose()
        raise
    return db


def operator_name(given: str | None) -> str:
    """``--operator``, else the login name."""
    if given is not None:
        return given
    try:
        return getpass.getuser()
    except (KeyError, OSError):
        return ""
