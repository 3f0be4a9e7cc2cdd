"""`stimctl measure add PATIENT KIND --date DATE VALUE...`: HIT-6, MIDAS, PPT, HRV with their
published scoring (docs/COURSE.md).

Exit codes: 0 ok, 1 refused (an answer out of range: the message names it and the range;
unknown patient), 2 usage, 3 database failure. ``--json`` prints the stored score.
"""

from __future__ import annotations

import argparse
import sys
from typing import TYPE_CHECKING

from stimctl.cli.clinic_action import EXIT_OK, EXIT_USAGE, dump, iso_date, run_action, say
from stimctl.cli.clinic_options import add_db_option, operator_name

if TYPE_CHECKING:
    from sqlalchemy.orm import Session

PROG = "stimctl measure"


def register(subparsers: argparse._SubParsersAction) -> None:
    from stimctl.clinic.instruments import MEASURE_KINDS

    parser = subparsers.add_parser("measure", help="outcome measures: HIT-6, MIDAS, PPT, HRV")
    actions = parser.add_subparsers(dest="measure_action", metavar="ACTION")
    add = actions.add_parser(
        "add",
        help="score and store one measure",
        description="hit6: six answers (never, rarely, sometimes, very-often, always, or"
        " 6/8/10/11/13); midas: five day counts; ppt: kg/cm2 (one or more, averaged);"
        " hrv: RMSSD in ms.",
    )
    add.add_argument("patient", metavar="PATIENT")
    add.add_argument("kind", metavar="KIND", choices=MEASURE_KINDS, help=", ".join(MEASURE_KINDS))
    add.add_argument("values", metavar="VALUE", nargs="+")
    add.add_argument("--date", type=iso_date, required=True, metavar="DATE")
    add.add_argument("--site", default="", metavar="SITE", help="ppt: where it was measured")
    add.add_argument("--json", action="store_true", help="print the stored score")
    add.add_argument("--operator", metavar="NAME")
    add_db_option(add)
    parser.set_defaults(func=_run, measure_parser=parser)


def _run(args: argparse.Namespace) -> int:
    from stimctl.clinic.instruments import MeasureError, score

    if getattr(args, "measure_action", None) is None:
        args.measure_parser.print_help(sys.stderr)
        return EXIT_USAGE
    try:
        scored = score(args.kind, args.values)
    except MeasureError as error:
        say(PROG, f"refused: {error}")
        return 1

    def store(session: Session) -> int:
        from stimctl.clinic.courses import add_measure

        add_measure(session, args.patient, args.date, scored, args.site,
                    operator_name(args.operator))  # fmt: skip
        document = {"patient": args.patient, "date": args.date.isoformat(), **scored.to_dict()}
        if args.json:
            dump(document)
        else:
            extra = f" ({scored.category})" if scored.category else ""
            print(f"patient {args.patient}: {args.kind} {scored.total:g}{extra} on"
                  f" {args.date.isoformat()}")  # fmt: skip
        return EXIT_OK

    return run_action(PROG, args, store)
