"""`stimctl course validate|start|show|list|log|check|report`: treatment courses (docs/COURSE.md).

Exit codes: 0 ok, 1 refused (invalid plan, unknown patient or course, a rule error in `check`),
2 usage (a plan file that does not exist, a bad date), 3 database failure.
"""

from __future__ import annotations

import argparse
import sys
from datetime import date
from pathlib import Path
from typing import TYPE_CHECKING, Any

from stimctl.cli.clinic_action import (
    EXIT_OK,
    EXIT_REFUSED,
    EXIT_USAGE,
    Refused,
    dump,
    iso_date,
    run_action,
    say,
)
from stimctl.cli.clinic_options import add_db_option, operator_name

if TYPE_CHECKING:
    from sqlalchemy.orm import Session

    from stimctl.clinic.courses import CourseView

PROG = "stimctl course"


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser("course", help="treatment courses: plans, sessions, reports")
    actions = parser.add_subparsers(dest="course_action", metavar="ACTION")
    check_plan = actions.add_parser("validate", help="check a course plan and its profiles")
    check_plan.add_argument("plan", metavar="PLAN", help="course plan (stimctl.course/1 TOML)")
    check_plan.add_argument("--json", action="store_true", help="print the report as JSON")
    start = actions.add_parser("start", help="start a patient's course on a plan")
    start.add_argument("patient", metavar="PATIENT")
    start.add_argument("plan", metavar="PLAN")
    start.add_argument("--start", type=iso_date, metavar="DATE", help="session 1 (default today)")
    start.add_argument("--json", action="store_true", help="print the course (with its id)")
    start.add_argument("--operator", metavar="NAME")
    show = actions.add_parser("show", help="the plan with each session done or due")
    show.add_argument("id", metavar="ID", type=int)
    show.add_argument("--json", action="store_true")
    listing = actions.add_parser("list", help="courses (of one patient)")
    listing.add_argument("--patient", metavar="ID")
    listing.add_argument("--json", action="store_true")
    log = actions.add_parser("log", help="a session given without stimulation (manual)")
    log.add_argument("id", metavar="ID", type=int)
    log.add_argument("--date", type=iso_date, required=True, metavar="DATE")
    log.add_argument("--note", default="", metavar="TEXT")
    log.add_argument("--operator", metavar="NAME")
    check = actions.add_parser("check", help="the report a session with PROFILE would get")
    check.add_argument("id", metavar="ID", type=int)
    check.add_argument("profile", metavar="PROFILE", help="profile file")
    check.add_argument("--at", type=iso_date, metavar="DATE", help="session date (default today)")
    check.add_argument("--json", action="store_true")
    report = actions.add_parser("report", help="charts (SVG/PNG/PDF by suffix) and a summary")
    report.add_argument("id", metavar="ID", type=int)
    report.add_argument("-o", "--output", required=True, metavar="FILE")
    for sub in (start, show, listing, log, check, report):
        add_db_option(sub)
    parser.set_defaults(func=_run, course_parser=parser)


def _run(args: argparse.Namespace) -> int:
    action = getattr(args, "course_action", None)
    if action is None:
        args.course_parser.print_help(sys.stderr)
        return EXIT_USAGE
    if action == "validate":
        return _validate(args)
    if action == "start" and not Path(args.plan).is_file():
        say(PROG, f"{args.plan}: no such plan file")
        return EXIT_USAGE
    if action == "check" and not Path(args.profile).is_file():
        say(PROG, f"{args.profile}: no such profile file")
        return EXIT_USAGE
    if action == "report":
        suffix = Path(args.output).suffix.lower()
        from stimctl.clinic.report import FORMATS

        if suffix not in FORMATS:
            say(PROG, f"{args.output}: the suffix must be one of {', '.join(FORMATS)}")
            return EXIT_USAGE
    handlers = {"start": _start, "show": _show, "list": _list, "log": _log, "check": _check,
                "report": _report}  # fmt: skip
    return run_action(PROG, args, lambda session: handlers[action](session, args))


def _validate(args: argparse.Namespace) -> int:
    from stimctl.cli.validate import write_report
    from stimctl.clinic.plan import load_plan

    if not Path(args.plan).is_file():
        say(PROG, f"{args.plan}: no such plan file")
        return EXIT_USAGE
    report, loaded = load_plan(args.plan)
    if args.json:
        document = report.to_dict()
        if loaded is not None:
            document["name"] = loaded.plan.name
            document["sha256"] = loaded.sha256
            document["profiles"] = {ref: p.sha256 for ref, p in loaded.profiles.items()}
        dump(document)
    else:
        write_report(report, sys.stdout)
        if loaded is not None:
            plan = loaded.plan
            print(f"  {plan.name}: {plan.total_sessions} sessions ({plan.weekly_sessions} every"
                  f" {plan.interval_days} days, then the taper); EA from session"
                  f" {plan.ea_from_session}")  # fmt: skip
    return EXIT_OK if report.ok else EXIT_REFUSED


def _start(session: Session, args: argparse.Namespace) -> int:
    from stimctl.cli.validate import format_violation
    from stimctl.clinic.courses import course_view, start_course
    from stimctl.clinic.plan import load_plan

    report, loaded = load_plan(args.plan)
    if loaded is None:
        for v in report.errors:
            print(format_violation(v), file=sys.stderr)
        raise Refused(f"{args.plan}: invalid course plan")
    start = args.start or date.today()
    course = start_course(session, args.patient, loaded, start, operator_name(args.operator))
    if args.json:
        dump(course_view(session, course).to_dict())
    else:
        print(f"course {course.id} started: patient {args.patient}, {loaded.plan.name},"
              f" session 1 on {start.isoformat()} (plan sha256 {loaded.sha256[:12]})")  # fmt: skip
    return EXIT_OK


def _show(session: Session, args: argparse.Namespace) -> int:
    from stimctl.clinic.courses import course_view, get_course

    view = course_view(session, get_course(session, args.id))
    if args.json:
        dump(view.to_dict())
    else:
        write_view(view, sys.stdout)
    return EXIT_OK


def dose_text(dose: dict[str, float] | None) -> str:
    if dose is None:
        return "no stimulation"
    return (f"{dose['peak_ma']:g} mA peak, {dose['phase_charge_uc']:.3g} uC/phase,"
            f" {dose['rms_ma']:.3g} mA rms, {dose['duration_s'] / 60:.0f} min")  # fmt: skip


def write_view(view: CourseView, out: Any) -> None:
    """The course, session by session: number, stage, planned date, done or due."""
    document = view.to_dict()
    out.write(f"course {document['id']}: patient {document['patient']}, {document['plan']}\n")
    out.write(f"  plan sha256 {document['plan_sha256']}, start {document['start']}\n")
    for ref, sha in document["profiles"].items():
        out.write(f"  profile {ref} sha256 {sha}\n")
    for row in document["sessions"]:
        status = f"done {row['date']}" if row["status"] == "done" else "due"
        what = dose_text(row["dose"]) if row["status"] == "done" else row["profile"]
        due = f" measures: {', '.join(row['measures_due'])}" if row["measures_due"] else ""
        planned = row["planned"] or "-"
        out.write(f"  {row['number']:>3} {row['stage']:<34} {planned:<10}  {status:<15}"
                  f" {what}{due}\n")  # fmt: skip
    if document["next_due"] is None:
        out.write(f"next: session {document['next_session']} is beyond the plan\n")
    else:
        measures = ", ".join(document["measures_due"]) or "none"
        out.write(f"next: session {document['next_session']} due {document['next_due']};"
                  f" measures due: {measures}\n")  # fmt: skip


def _list(session: Session, args: argparse.Namespace) -> int:
    from stimctl.clinic.courses import course_view, list_courses

    views = [course_view(session, c) for c in list_courses(session, args.patient)]
    if args.json:
        dump([{k: v for k, v in view.to_dict().items() if k != "sessions"} for view in views])
        return EXIT_OK
    for view in views:
        d = view.to_dict()
        done = sum(r["status"] == "done" for r in d["sessions"])
        print(f"{d['id']:>4} {d['patient']:<16} {d['plan']}: {done} given, next"
              f" {d['next_session']} due {d['next_due'] or '-'}")  # fmt: skip
    return EXIT_OK


def _log(session: Session, args: argparse.Namespace) -> int:
    from stimctl.clinic.courses import MANUAL, get_course, log_session

    course = get_course(session, args.id)
    row = log_session(session, course, args.date, kind=MANUAL, note=args.note,
                      operator=operator_name(args.operator))  # fmt: skip
    print(f"course {course.id}: session {row.number} on {args.date.isoformat()} (no stimulation)")
    return EXIT_OK


def _check(session: Session, args: argparse.Namespace) -> int:
    from stimctl.cli.validate import write_report
    from stimctl.clinic.courses import get_course, session_context
    from stimctl.rules.profile import ProfileError, load_profile

    try:
        profile = load_profile(args.profile)
    except ProfileError as error:
        raise Refused(str(error)) from None
    course = get_course(session, args.id)
    at = args.at or date.today()
    context = session_context(session, course, at)
    report = context.report(profile, path=args.profile)
    if args.json:
        dump({**report.to_dict(), "course": course.id, "session": context.number,
              "date": at.isoformat()})  # fmt: skip
    else:
        print(f"course {course.id}, session {context.number} on {at.isoformat()}:")
        write_report(report, sys.stdout)
    return EXIT_OK if report.ok else EXIT_REFUSED


def _report(session: Session, args: argparse.Namespace) -> int:
    from stimctl.clinic.courses import course_view, get_course, measures
    from stimctl.clinic.report import course_summary, write_course_report

    course = get_course(session, args.id)
    view = course_view(session, course)
    rows = measures(session, course.patient_id)
    try:
        write_course_report(view, rows, args.output)
    except ModuleNotFoundError as error:
        raise Refused(f"{error.name} is not installed (pip install 'stimctl[report]')") from None
    except OSError as error:
        raise Refused(f"{args.output}: cannot write: {error.strerror or error}") from None
    sys.stdout.write(course_summary(view, rows))
    print(f"report: {args.output}")
    return EXIT_OK
