"""One clinic-database action with the shared exit codes (course, diary, measure commands).

0 ok, 1 refused (unknown patient or course, a bad value, a rule error), 2 usage, 3 database.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable
from datetime import date
from typing import TYPE_CHECKING, Any

from stimctl.cli.clinic_options import EXIT_DATABASE, open_clinic

if TYPE_CHECKING:
    from sqlalchemy.orm import Session

EXIT_OK, EXIT_REFUSED, EXIT_USAGE = 0, 1, 2


class Refused(Exception):
    """An action's refusal with its one-line reason (exit 1)."""


def iso_date(text: str) -> date:
    """argparse type: YYYY-MM-DD (a usage error otherwise)."""
    try:
        return date.fromisoformat(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a date (YYYY-MM-DD)") from None


def say(prog: str, message: str) -> None:
    print(f"{prog}: {message}", file=sys.stderr)


def run_action(prog: str, args: argparse.Namespace, action: Callable[[Session], int]) -> int:
    """Open the database (schema current), run ``action`` in one unit of work, map errors."""
    from sqlalchemy.exc import SQLAlchemyError

    from stimctl.clinic.courses import CourseError
    from stimctl.clinic.db import DatabaseError, db_reason
    from stimctl.clinic.diary import DiaryError
    from stimctl.clinic.instruments import MeasureError
    from stimctl.clinic.patients import PatientError

    try:
        db = open_clinic(args)
    except DatabaseError as error:
        say(prog, f"database: {error}")
        return EXIT_DATABASE
    try:
        with db.session() as session:
            return action(session)
    except (Refused, CourseError, PatientError, DiaryError, MeasureError) as error:
        say(prog, f"refused: {error}")
        return EXIT_REFUSED
    except DatabaseError as error:
        say(prog, f"database: {error}")
        return EXIT_DATABASE
    except SQLAlchemyError as error:
        say(prog, f"database: {db_reason(error)}")
        return EXIT_DATABASE
    finally:
        db.dispose()


def dump(value: Any) -> None:
    import json

    json.dump(value, sys.stdout, indent=2, allow_nan=False)
    sys.stdout.write("\n")
