"""`stimctl run`: validate a profile, check electrodes, confirm, stream it, supervise the session.

Without --port it runs on the embedded simulator (said on screen: SIMULATOR). Exit codes: 0
completed, 1 refused (validation, interlock, confirmation), 2 usage, 3 device fault or lost link,
4 aborted by the operator (Ctrl-C, SIGTERM, SIGHUP: output to zero at once, record closed).
"""

from __future__ import annotations

import argparse
import math
import sys
from dataclasses import dataclass
from datetime import date
from pathlib import Path
from typing import TYPE_CHECKING

from stimctl.cli.clinic_options import add_db_option, operator_name
from stimctl.cli.run_console import say
from stimctl.cli.run_session import RunSession
from stimctl.cli.safety_options import UsageError, add_safety_options, safety_options
from stimctl.host.status import ExitCode

if TYPE_CHECKING:
    from stimctl.cli.run_clinic import ClinicRun
    from stimctl.cli.run_course import CourseRun
    from stimctl.rules.envelope import SafetyEnvelope

EXIT_REFUSED, EXIT_USAGE, EXIT_FAULT = ExitCode.REFUSED, ExitCode.USAGE, ExitCode.FAULT


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "run",
        help="run a profile on the stimulator (default: the embedded simulator)",
        description="Validate PROFILE against the effective envelope, check electrode impedance,"
        " ask for confirmation, then stream it and supervise the session.",
    )
    parser.add_argument(
        "profile",
        metavar="PROFILE",
        nargs="?",
        help="profile file (TOML or JSON); with --course, default: the plan's stage",
    )
    parser.add_argument(
        "--port",
        metavar="URL",
        help="device path, pyserial URL (socket://, rfc2217://, stimsim://) or usb:SERIAL;"
        " default: the embedded simulator",
    )
    parser.add_argument(
        "--record", metavar="FILE", help="session record (default ./records/<UTC>-<profile>.jsonl)"
    )
    parser.add_argument(
        "--key",
        metavar="FILE",
        help="record key file shared by the site's stations (default: $STIMCTL_RECORD_KEY,"
        " else the user's site key, created on first use)",
    )
    parser.add_argument("--operator", default=None, metavar="NAME", help="operator name")
    add_safety_options(parser)
    parser.add_argument(
        "--patient-id",
        metavar="ID",
        help="the clinic's patient: validated with the patient's flags in force",
    )
    parser.add_argument(
        "--course",
        type=int,
        metavar="ID",
        help="a session of this course: numbered, course rules applied, stored against it",
    )
    add_db_option(parser)
    parser.add_argument("--yes", action="store_true", help="confirm without asking")
    parser.add_argument(
        "--speed",
        metavar="N|max",
        help="simulator only: N times real time (0 < N <= 1000), or max; both on the virtual"
        " lock-step clock (device time runs at most N x wall time, and only while stimctl keeps"
        " up); default: real time, the simulator in its own process",
    )
    parser.add_argument(
        "--sim",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="simulator only: stimsim option, e.g. fault=electrode_open:1@5000 (repeatable)",
    )
    parser.set_defaults(func=_run)


@dataclass(frozen=True, slots=True)
class _Options:
    """The command line, checked before anything is opened."""

    speed: float | None
    sim_options: dict[str, str]
    patient: frozenset[str]
    envelope: SafetyEnvelope | None
    profile_path: Path
    record: Path | None  # None: a new file in ./records


def _usage(message: str) -> int:
    say(message)
    return EXIT_USAGE


def parse_speed(text: str | None) -> float | None:
    """'max' (or 'inf') -> inf, 'N' -> 0 < N <= MAX_SIM_SPEED; ValueError (a usage error that
    says the range) otherwise. N or max: the virtual lock-step clock, at most N x wall time."""
    from stimctl.controller import MAX_SIM_SPEED

    if text is None:
        return None
    if text.strip().lower() in ("max", "inf"):
        return math.inf
    try:
        speed = float(text)
    except ValueError:
        speed = math.nan
    if not 0 < speed <= MAX_SIM_SPEED:  # nan fails both
        raise ValueError(
            f"--speed must be a number > 0 and <= {MAX_SIM_SPEED:g}, or 'max', got {text!r}"
        )
    return speed


def _run(args: argparse.Namespace) -> int:
    try:
        options = _check_options(args)
    except UsageError as error:
        return _usage(str(error))
    operator = operator_name(args.operator)
    context = _clinic_context(args, options.profile_path)
    if isinstance(context, int):
        return context
    clinic, course, stored, profile_path = context
    record = options.record or _new_record(profile_path, clinic)
    if isinstance(record, int):
        return record
    return RunSession(
        args, profile_path, record, operator, options.patient, options.envelope, options.speed,
        options.sim_options, clinic, course, stored,
    ).run()  # fmt: skip


def _check_options(args: argparse.Namespace) -> _Options:
    """The options, each checked (in this order); UsageError for the first bad one."""
    try:
        speed = parse_speed(args.speed)
    except ValueError as error:
        raise UsageError(str(error)) from None
    if args.port and (speed is not None or args.sim):
        raise UsageError("--speed and --sim are for the embedded simulator only (drop --port)")
    sim_options: dict[str, str] = {}
    for item in args.sim:
        key, sep, value = item.partition("=")
        if not sep or not key:
            raise UsageError(f"--sim wants KEY=VALUE, got {item!r}")
        sim_options[key] = value
    patient, envelope = safety_options(args)
    if args.patient_id is not None and args.patient:
        raise UsageError("--patient-id takes the patient's flags from the database: drop --patient")
    if args.course is not None and args.patient:
        raise UsageError("--course takes the patient's flags from the database: drop --patient")
    if args.profile is None and args.course is None:
        raise UsageError("PROFILE is required (it may be left out with --course)")
    profile_path = Path(args.profile or "plan")
    if args.profile is not None and not profile_path.is_file():
        raise UsageError(f"{args.profile}: no such profile file")
    record = Path(args.record) if args.record else None
    if record is not None and record.exists():
        raise UsageError(f"{record} already exists; records are never overwritten")
    return _Options(speed, sim_options, patient, envelope, profile_path, record)


def _clinic_context(
    args: argparse.Namespace, profile_path: Path
) -> tuple[ClinicRun, CourseRun | None, bytes | None, Path] | int:
    """The clinic database (and patient), the course (its stage's profile unless one is given),
    read before anything touches the device: (clinic, course, stored profile, profile path), or
    the exit code refusing the run."""
    from stimctl.cli.run_clinic import ClinicRun
    from stimctl.cli.run_course import CourseRefused, CourseRun
    from stimctl.clinic.db import DatabaseError
    from stimctl.clinic.patients import PatientError

    try:
        clinic = ClinicRun.start(args)
    except DatabaseError as error:
        say(f"database: {error}; nothing armed")
        return EXIT_FAULT
    except PatientError as error:
        say(f"refused: {error}")
        return EXIT_REFUSED
    if args.course is None:
        return clinic, None, None, profile_path
    stored: bytes | None = None
    try:
        course = CourseRun.start(clinic.db, args.course, _today())
        if args.patient_id is not None and args.patient_id != course.patient_code:
            raise CourseRefused(
                f"course {args.course} is patient {course.patient_code}'s, not {args.patient_id}'s"
            )
        if args.profile is None:
            name, stored = course.stage_profile()
            profile_path = Path(name)
    except (CourseRefused, DatabaseError) as error:
        clinic.db.dispose()
        say(f"refused: {error}" if isinstance(error, CourseRefused) else f"database: {error}")
        return EXIT_REFUSED if isinstance(error, CourseRefused) else EXIT_FAULT
    clinic.patient_code = course.patient_code
    print(course.banner(), file=sys.stderr)
    return clinic, course, stored, profile_path


def _new_record(profile_path: Path, clinic: ClinicRun) -> Path | int:
    """A new record file in ./records named for the profile, or the exit code refusing it."""
    from stimctl.host.record import new_record_path

    try:
        return new_record_path(profile_path.stem)
    except OSError as error:
        clinic.db.dispose()
        folder = error.filename or "records"
        why = "it is a file" if Path(folder).is_file() else error.strerror or error
        say(f"refused: cannot create the records folder {folder}: {why}")
        return EXIT_REFUSED


def _today() -> date:
    """The session's date (the course rules judge the diary up to it)."""
    return date.today()
