"""`stimctl tui`: the clinician terminal UI (Textual); without --port it runs the simulator."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING

from stimctl.cli.clinic_options import add_db_option
from stimctl.host.status import ExitCode

if TYPE_CHECKING:
    from stimctl.cli.run_clinic import ClinicRun
    from stimctl.cli.run_course import CourseRun
    from stimctl.controller import Controller
    from stimctl.host.errors import RecordFailed


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "tui",
        help="clinician terminal UI (embedded simulator unless --port is given)",
        description="Keyboard-first terminal UI: set-up, preflight, run, E-STOP (F12), summary.",
    )
    parser.add_argument(
        "--port",
        metavar="URL",
        default=None,
        help="device port or pyserial URL; omitted: embedded SIMULATOR",
    )
    parser.add_argument(
        "--operator", metavar="NAME", default="", help="operator name written to the session record"
    )
    parser.add_argument(
        "--profiles",
        metavar="DIR",
        type=Path,
        default=Path("profiles"),
        help="profile library to list (default: ./profiles)",
    )
    parser.add_argument(
        "--speed",
        metavar="N|max",
        default=None,
        help="simulator only: N times real time (0 < N <= 1000), or max; the virtual clock,"
        " device time at most N x wall time",
    )
    parser.add_argument(
        "--record",
        metavar="PATH",
        default=None,
        help="session record file, or a folder for a new one"
        " (default: ./records/<UTC time>-tui.jsonl)",
    )
    parser.add_argument(
        "--key",
        metavar="FILE",
        default=None,
        help="record key file shared by the site's stations (default: $STIMCTL_RECORD_KEY,"
        " else the user's site key)",
    )
    parser.add_argument(
        "--patient-id",
        metavar="ID",
        help="the clinic's patient: the set-up screen takes the flags from the database",
    )
    parser.add_argument(
        "--course",
        type=int,
        metavar="ID",
        help="a session of this course: its number, stage profile, measures due and chart",
    )
    add_db_option(parser)
    parser.set_defaults(func=_run)


def _record_path(given: str | None) -> Path | ExitCode:
    """The new record's path (every session of the UI is recorded), or the exit code refusing it."""
    from stimctl.host.record import new_record_path

    record = Path(given) if given else Path("records")
    if record.is_dir() or not given:
        try:
            return new_record_path("tui", record)
        except OSError as error:
            why = "it is a file" if record.is_file() else error.strerror or error
            print(f"stimctl tui: refused: cannot create the records folder {record}: {why}")
            return ExitCode.REFUSED
    if record.exists():
        print(f"stimctl tui: {record} already exists; records are never overwritten")
        return ExitCode.USAGE
    return record


def _run(args: argparse.Namespace) -> int:
    from stimctl.cli.run import parse_speed

    if args.port is not None and args.speed is not None:
        print("stimctl tui: --speed applies to the embedded simulator only (no --port)")
        return ExitCode.USAGE
    try:
        speed = parse_speed(args.speed)
    except ValueError as error:
        print(f"stimctl tui: {error}")
        return ExitCode.USAGE
    record = _record_path(args.record)
    if isinstance(record, ExitCode):
        return record
    context = _clinic_context(args, record)
    if isinstance(context, ExitCode):
        return context
    clinic, course, flags = context
    refused: list[RecordFailed] = []
    connect = _connector(args, record, speed, clinic, flags, refused)
    return _run_app(args, connect, record, clinic, course, flags, refused)


def _clinic_context(
    args: argparse.Namespace, record: Path
) -> tuple[ClinicRun, CourseRun | None, frozenset[str]] | ExitCode:
    """This run of the UI's row (for its record), opened before anything can be armed, and its
    course: (clinic, course, the flags in force), or the exit code refusing the run."""
    from stimctl.cli.run_clinic import ClinicRun
    from stimctl.clinic.db import DatabaseError
    from stimctl.clinic.patients import PatientError

    try:
        clinic = ClinicRun.start(args)
    except DatabaseError as error:
        print(f"stimctl tui: database: {error}; nothing armed", file=sys.stderr)
        return ExitCode.FAULT
    except PatientError as error:
        print(f"stimctl tui: refused: {error}", file=sys.stderr)
        return ExitCode.REFUSED
    course = None
    if args.course is not None:
        from datetime import date

        from stimctl.cli.run_course import CourseRefused, CourseRun

        try:
            course = CourseRun.start(clinic.db, args.course, date.today())
            if args.patient_id is not None and args.patient_id != course.patient_code:
                raise CourseRefused(f"course {args.course} is patient {course.patient_code}'s")
        except (CourseRefused, DatabaseError) as error:
            clinic.db.dispose()
            print(f"stimctl tui: refused: {error}", file=sys.stderr)
            return ExitCode.REFUSED if isinstance(error, CourseRefused) else ExitCode.FAULT
        clinic.patient_code = course.patient_code
    try:
        flags = clinic.open(args.operator, record, (), "tui")
    except DatabaseError as error:
        clinic.db.dispose()
        print(f"stimctl tui: database: {error}; nothing armed", file=sys.stderr)
        return ExitCode.FAULT
    return clinic, course, flags


def _connector(
    args: argparse.Namespace,
    record: Path,
    speed: float | None,
    clinic: ClinicRun,
    flags: frozenset[str],
    refused: list[RecordFailed],
) -> Callable[[], Controller]:
    """The app's connect call (run in its worker); a record that cannot be opened is kept in
    ``refused`` (shown on the set-up screen; its rescue is said on exit)."""
    from stimctl.controller import Controller
    from stimctl.host.errors import RecordFailed

    def connect() -> Controller:
        kwargs: dict[str, object] = {
            "operator": args.operator, "record": record, "record_key": args.key,
            "patient": flags, "session_id": clinic.uid, "patient_id": clinic.patient_code,
        }  # fmt: skip
        if args.port is None and speed is not None:
            kwargs["speed"] = speed
            if speed != 1:  # the virtual clock; the UI never waits for the device: free-running
                kwargs["sim_options"] = {"lockstep": "0"}
        try:
            return Controller.connect(args.port, **kwargs)  # type: ignore[arg-type]
        except RecordFailed as error:
            refused.append(error)
            raise

    return connect


def _run_app(
    args: argparse.Namespace,
    connect: Callable[[], Controller],
    record: Path,
    clinic: ClinicRun,
    course: CourseRun | None,
    flags: frozenset[str],
    refused: list[RecordFailed],
) -> int:
    """Run the UI to its end, then close the controller; the exit code."""
    from stimctl.tui.app import StimApp

    app = StimApp(
        connect,
        operator=args.operator,
        profiles_dir=args.profiles,
        expect_simulator=args.port is None,
        handle_signals=True,  # SIGTERM, SIGHUP: as `stimctl run` (output zero, record closed)
        patient_id=clinic.patient_code,
        patient_flags=flags if clinic.patient_code is not None else None,
        course=course.context if course is not None else None,
        clinic=clinic,
    )
    result = 0
    try:
        result = int(app.run() or 0)
    finally:
        ctl = app.controller
        if ctl is not None:
            ctl.close()  # idempotent: output to zero, record closed, port closed
    return _finish(ctl, result, app.profile_path, record, clinic, course, refused)


def _finish(
    ctl: Controller | None,
    code: int,
    profile_path: object,
    record: Path,
    clinic: ClinicRun,
    course: CourseRun | None,
    refused: list[RecordFailed],
) -> int:
    """After the UI: the record's outcome said, a refused record said, the session stored
    against its course, the row closed; the exit code."""
    from stimctl.cli.run_session import record_outcome

    if ctl is not None:
        code = record_outcome(ctl, code, "stimctl tui")
    for error in refused:  # the record could not be opened: nothing was armed
        print(f"stimctl tui: refused: {error}; nothing was armed", file=sys.stderr)
        if error.rescue is not None:
            print(f"stimctl tui: {error.rescue.text()}", file=sys.stderr)
        code = ExitCode.REFUSED
    violations = [v.code for v in ctl.report.violations] if ctl and ctl.report else []
    if course is not None:
        profile = ctl.profile if ctl is not None else None
        sha = _sha256(profile_path, course.context.stage_profile)
        failure = course.finish(clinic.db, ctl, clinic.uid, profile, sha, violations)
        if failure is not None:
            print(f"stimctl tui: database: the session was not stored against the course"
                  f" ({failure})", file=sys.stderr)  # fmt: skip
    failure = clinic.close(ctl, code, record, violations, idle="NOT STARTED")
    if failure is not None:
        print(f"stimctl tui: database: the session row was not closed ({failure});"
              f" run `stimctl session import {record}`", file=sys.stderr)  # fmt: skip
    return code


def _sha256(source: object, stage: object) -> str | None:
    """sha256 of the profile the UI loaded: its file, or the course stage's stored copy."""
    import hashlib

    if isinstance(source, Path):
        try:
            return hashlib.sha256(source.read_bytes()).hexdigest()
        except OSError:
            return None
    if stage is not None and source is getattr(stage, "profile", None):
        return str(getattr(stage, "sha256", ""))
    return None
