"""`stimctl diary add|import`: a patient's headache diary, a day at a time or from CSV.

Exit codes: 0 ok, 1 refused (a value out of range, a day already in the diary, unknown patient;
an import stores nothing then), 2 usage, 3 database failure. docs/COURSE.md has the CSV layout.
"""

from __future__ import annotations

import argparse
import sys
from datetime import date
from pathlib import Path
from typing import TYPE_CHECKING

from stimctl.cli.clinic_action import EXIT_OK, EXIT_USAGE, Refused, iso_date, run_action, say
from stimctl.cli.clinic_options import add_db_option, operator_name

if TYPE_CHECKING:
    from sqlalchemy.orm import Session

PROG = "stimctl diary"


def register(subparsers: argparse._SubParsersAction) -> None:
    from stimctl.clinic.diary import MEDICATION_CLASSES

    parser = subparsers.add_parser("diary", help="a patient's headache diary")
    actions = parser.add_subparsers(dest="diary_action", metavar="ACTION")
    add = actions.add_parser("add", help="one day of the diary")
    add.add_argument("patient", metavar="PATIENT")
    add.add_argument("--date", type=iso_date, required=True, metavar="DATE")
    add.add_argument("--headache", required=True, metavar="yes|no")
    add.add_argument("--intensity", type=int, metavar="N", help="peak intensity 1-10")
    add.add_argument("--hours", type=float, metavar="H", help="hours with headache, 0-24")
    add.add_argument("--aura", action="store_true", help="aura that day")
    add.add_argument(
        "--medication",
        action="append",
        default=[],
        metavar="CLASS",
        help=f"acute medication taken (repeatable): {', '.join(MEDICATION_CLASSES)}",
    )
    load = actions.add_parser("import", help="diary days from a CSV file (all or none)")
    load.add_argument("patient", metavar="PATIENT")
    load.add_argument("file", metavar="FILE.csv")
    for sub in (add, load):
        add_db_option(sub)
        sub.add_argument("--operator", metavar="NAME")
    parser.set_defaults(func=_run, diary_parser=parser)


def _run(args: argparse.Namespace) -> int:
    from stimctl.clinic.diary import DiaryError, diary_entry, parse_yes_no, read_diary_csv

    action = getattr(args, "diary_action", None)
    if action is None:
        args.diary_parser.print_help(sys.stderr)
        return EXIT_USAGE
    today = date.today()
    try:
        if action == "add":
            entries = [diary_entry(
                args.date, parse_yes_no(args.headache, "headache"), args.intensity, args.hours,
                args.aura, args.medication, today,
            )]  # fmt: skip
        else:
            path = Path(args.file)
            if not path.is_file():
                say(PROG, f"{path}: no such file")
                return EXIT_USAGE
            try:
                text = path.read_text(encoding="utf-8")
            except (OSError, UnicodeDecodeError) as error:
                say(PROG, f"refused: {path}: cannot read: {error}")
                return 1
            entries = read_diary_csv(text, str(path), today)
    except DiaryError as error:
        say(PROG, f"refused: {error}")
        return 1

    def store(session: Session) -> int:
        from stimctl.clinic.courses import add_diary

        count = add_diary(session, args.patient, entries, operator_name(args.operator))
        if count == 0:
            raise Refused("no diary days")
        first, last = entries[0].day.isoformat(), entries[-1].day.isoformat()
        span = first if count == 1 else f"{first} .. {last}"
        print(f"patient {args.patient}: {count} diary day(s) stored ({span})")
        return EXIT_OK

    return run_action(PROG, args, store)
