"""`stimctl run`: validate a profile, check electrodes, confirm, stream it, supervise the session.

Without --port it runs on the embedded simulator (said on screen: SIMULATOR). Exit codes: 0
completed, 1 refused (validation, interlock, confirmation), 2 usage, 3 device fault or lost link,
4 aborted by the operator (Ctrl-C, SIGTERM, SIGHUP: output to zero at once, record closed).
"""

from __future__ import annotations

import argparse
import math
import signal
import sys
import time
from datetime import date
from pathlib import Path
from types import FrameType
from typing import TYPE_CHECKING, TextIO

from stimctl.cli.clinic_options import add_db_option, operator_name
from stimctl.cli.safety_options import UsageError, add_safety_options, safety_options

if TYPE_CHECKING:
    from stimctl.cli.run_clinic import ClinicRun
    from stimctl.cli.run_course import CourseRun
    from stimctl.controller import Controller
    from stimctl.host.status import Outcome, Status

EXIT_OK, EXIT_REFUSED, EXIT_USAGE, EXIT_FAULT, EXIT_ABORTED = 0, 1, 2, 3, 4
PROG = "stimctl run"
#: Ctrl-C, a kill, the terminal closed: output to zero at once, record closed, exit 4.
TERMINATING_SIGNALS = (signal.SIGINT, signal.SIGTERM, signal.SIGHUP)


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


class _Abort(BaseException):
    """Raised by the signal handler outside the streaming loop."""


class _Flag:
    """Set by the signal handler: a plain attribute, no lock (a second signal arriving while the
    first handler is inside ``threading.Event.set`` would wait for itself forever)."""

    __slots__ = ("_set",)

    def __init__(self) -> None:
        self._set = False

    def set(self) -> None:
        self._set = True

    def is_set(self) -> bool:
        return self._set


def _say(message: str) -> None:
    print(f"{PROG}: {message}", file=sys.stderr)


def _usage(message: str) -> int:
    _say(message)
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
        speed = parse_speed(args.speed)
    except ValueError as error:
        return _usage(str(error))
    if args.port and (speed is not None or args.sim):
        return _usage("--speed and --sim are for the embedded simulator only (drop --port)")
    sim_options: dict[str, str] = {}
    for item in args.sim:
        key, sep, value = item.partition("=")
        if not sep or not key:
            return _usage(f"--sim wants KEY=VALUE, got {item!r}")
        sim_options[key] = value
    try:
        patient, envelope = safety_options(args)
    except UsageError as error:
        return _usage(str(error))
    if args.patient_id is not None and args.patient:
        return _usage("--patient-id takes the patient's flags from the database: drop --patient")
    if args.course is not None and args.patient:
        return _usage("--course takes the patient's flags from the database: drop --patient")
    if args.profile is None and args.course is None:
        return _usage("PROFILE is required (it may be left out with --course)")
    profile_path = Path(args.profile or "plan")
    if args.profile is not None and not profile_path.is_file():
        return _usage(f"{args.profile}: no such profile file")
    if args.record:
        record = Path(args.record)
        if record.exists():
            return _usage(f"{record} already exists; records are never overwritten")
    operator = operator_name(args.operator)
    from stimctl.cli.run_clinic import ClinicRun
    from stimctl.cli.run_course import CourseRefused, CourseRun
    from stimctl.clinic.db import DatabaseError
    from stimctl.clinic.patients import PatientError

    try:
        clinic = ClinicRun.start(args)
    except DatabaseError as error:
        _say(f"database: {error}; nothing armed")
        return EXIT_FAULT
    except PatientError as error:
        _say(f"refused: {error}")
        return EXIT_REFUSED
    course: CourseRun | None = None
    stored: bytes | None = None
    if args.course is not None:
        try:
            course = CourseRun.start(clinic.db, args.course, _today())
            if args.patient_id is not None and args.patient_id != course.patient_code:
                raise CourseRefused(
                    f"course {args.course} is patient {course.patient_code}'s,"
                    f" not {args.patient_id}'s"
                )
            if args.profile is None:
                name, stored = course.stage_profile()
                profile_path = Path(name)
        except (CourseRefused, DatabaseError) as error:
            clinic.db.dispose()
            _say(f"refused: {error}" if isinstance(error, CourseRefused) else f"database: {error}")
            return EXIT_REFUSED if isinstance(error, CourseRefused) else EXIT_FAULT
        clinic.patient_code = course.patient_code
        print(course.banner(), file=sys.stderr)
    if not args.record:
        from stimctl.host.record import new_record_path

        try:
            record = new_record_path(profile_path.stem)
        except OSError as error:
            clinic.db.dispose()
            folder = error.filename or "records"
            why = "it is a file" if Path(folder).is_file() else error.strerror or error
            _say(f"refused: cannot create the records folder {folder}: {why}")
            return EXIT_REFUSED
    return _session(
        args, profile_path, record, operator, patient, envelope, speed, sim_options, clinic,
        course, stored,
    )  # fmt: skip


def _today() -> date:
    """The session's date (the course rules judge the diary up to it)."""
    return date.today()


def _session(
    args: argparse.Namespace,
    profile_path: Path,
    record: Path,
    operator: str,
    patient: frozenset[str],
    envelope: object,
    speed: float | None,
    sim_options: dict[str, str],
    clinic: ClinicRun,
    course: CourseRun | None = None,
    stored: bytes | None = None,
) -> int:
    from stimctl.cli.validate import format_violation
    from stimctl.clinic.db import DatabaseError
    from stimctl.controller import Controller
    from stimctl.host.errors import (
        CommandRejected,
        InterlockError,
        LinkError,
        ProtocolMismatch,
        RecordFailed,
        StimctlError,
        ValidationRefused,
    )
    from stimctl.rules.profile import ProfileError, load_profile, loads_profile

    try:  # the row first: a refusal is a row too, and a killed host leaves an open one
        patient = clinic.open(operator, record, patient, profile_path.stem)
    except DatabaseError as error:
        clinic.db.dispose()
        _say(f"database: {error}; nothing armed")
        return EXIT_FAULT
    if clinic.patient_code is not None:
        shown = ", ".join(sorted(patient)) or "none"
        print(f"patient {clinic.patient_code}: flags {shown}", file=sys.stderr)
    violations: list[str] = []
    try:
        profile = loads_profile(stored) if stored is not None else load_profile(profile_path)
    except ProfileError as error:
        _say(f"{profile_path}: refused: invalid profile")
        for v in error.violations:
            print(format_violation(v), file=sys.stderr)
        _close_row(clinic, None, EXIT_REFUSED, record, [v.code for v in error.violations])
        return EXIT_REFUSED

    abort = _Flag()  # not threading.Event: its set() takes a lock a second signal would wait on
    streaming = [False]

    def on_signal(signum: int, frame: FrameType | None) -> None:
        abort.set()
        if not streaming[0]:
            raise _Abort()

    previous = {s: signal.signal(s, on_signal) for s in TERMINATING_SIGNALS}
    ctl: Controller | None = None
    code = EXIT_FAULT
    try:
        ctl = Controller.connect(
            args.port, envelope=envelope, record=record, record_key=args.key,  # type: ignore[arg-type]
            operator=operator, patient=patient, speed=speed, sim_options=sim_options or None,
            session_id=clinic.uid, patient_id=clinic.patient_code,
        )  # fmt: skip
        if course is not None:
            course.attach(ctl)
        code = _supervise(ctl, profile, args.yes, abort, streaming)
    except _Abort:
        if ctl is not None:
            ctl.abort()
        _say("aborted by the operator; output is zero")
        code = EXIT_ABORTED
    except RecordFailed as error:  # raised only before ARM: the opening lines are not on disk
        _say(f"refused: {error}; nothing was armed")
        if error.rescue is not None:  # connect closed the record already
            _say(error.rescue.text())
        code = EXIT_REFUSED
    except ValidationRefused as error:
        violations = [v.code for v in error.report.violations]
        _say(f"{profile_path}: refused by validation against the effective envelope")
        for v in error.report.errors:
            print(format_violation(v), file=sys.stderr)
        code = EXIT_REFUSED
    except (InterlockError, CommandRejected) as error:
        latched = ctl is not None and ctl.fault is not None
        _say(f"refused: {error}")
        code = EXIT_FAULT if latched else EXIT_REFUSED
    except (LinkError, ProtocolMismatch) as error:
        _say(f"device: {error}")
        code = EXIT_FAULT
    except StimctlError as error:
        _say(str(error))
        code = EXIT_FAULT
    finally:
        if ctl is not None:
            if ctl.record_failure is not None and code != EXIT_REFUSED:
                code = EXIT_FAULT  # a session whose record failed ends as a fault
            ctl.close(exit_code=code)
            code = record_outcome(ctl, code)
            if ctl.report is not None:
                violations += [v.code for v in ctl.report.violations]
        if course is not None:
            sha = _sha256(stored, profile_path)
            failure = course.finish(clinic.db, ctl, clinic.uid, profile, sha, violations)
            if failure is not None:
                _say(f"database: the session was not stored against the course ({failure})")
        _close_row(clinic, ctl, code, record, violations)
        for sig, handler in previous.items():
            signal.signal(sig, handler)
    return code


def _sha256(stored: bytes | None, path: Path) -> str | None:
    """sha256 of the profile's bytes (the course's stored copy, else the file)."""
    import hashlib

    try:
        raw = stored if stored is not None else path.read_bytes()
    except OSError:
        return None
    return hashlib.sha256(raw).hexdigest()


def _close_row(
    clinic: ClinicRun, ctl: Controller | None, code: int, record: Path, violations: list[str]
) -> None:
    """Close the session's row; a failure is said (the session's exit code stands)."""
    failure = clinic.close(ctl, code, record, violations)
    if failure is not None:
        _say(
            f"database: the session row was not closed ({failure});"
            f" run `stimctl session import {record}` when the database is back"
        )


def record_outcome(ctl: Controller, code: int, prog: str = PROG) -> int:
    """After ``close``: say where the record is, its anchor, and (if it failed) where its lines
    went; the exit code, EXIT_FAULT if the record failed after ARM (while closing, too)."""
    path, anchor, rescue = ctl.record_path, ctl.record_anchor, ctl.record_rescue
    if path is None:
        return code
    if ctl.record_failure is not None:
        print(f"{prog}: RECORD FAILED: {ctl.record_failure}", file=sys.stderr)
        if code != EXIT_REFUSED:
            code = EXIT_FAULT
    if rescue is not None:
        print(f"{prog}: {rescue.text()}", file=sys.stderr)
    print(f"record: {path}", file=sys.stderr)
    if anchor is not None:
        check = f"stimctl record verify {path} --expect {anchor}"
        if rescue is not None and rescue.path is not None:
            check += f" --rescue {rescue.path}"
        print(f"anchor: {anchor} (for the chart; check: {check})", file=sys.stderr)
    return code


def _supervise(
    ctl: Controller, profile: object, yes: bool, abort: _Flag, streaming: list[bool]
) -> int:
    from stimctl.cli.validate import format_violation
    from stimctl.host.status import Outcome

    sim = ctl.is_simulator
    banner = "SIMULATOR (embedded, not a stimulator)" if sim else f"device {ctl.url}"
    dev = ctl.device
    print(f"{banner}: {dev.serial} firmware {dev.firmware}, {dev.channels} channels,"
          f" limits {dev.limits_hash[:12]}", file=sys.stderr)  # fmt: skip
    report = ctl.load(profile)  # type: ignore[arg-type]
    p = ctl.profile
    assert p is not None
    print(f"profile: {p.name} ({p.duration_s:g} s, {len(p.phases)} phase(s))", file=sys.stderr)
    for c in p.channels:
        print(f"  ch{c.id} {c.anode} -> {c.cathode} {c.amplitude_ma:g} mA", file=sys.stderr)
    for v in report.warnings:
        print(format_violation(v), file=sys.stderr)
    if not yes and not _confirm(sys.stdin, sys.stderr):
        return EXIT_REFUSED
    readings = ctl.check_impedance()
    bad = {ch: r for ch, r in readings.items() if not r.ok}
    for ch, r in readings.items():
        print(f"  impedance ch{ch}: {r.ohm} ohm {r.status}", file=sys.stderr)
    if bad:
        ch, r = next(iter(bad.items()))
        _say(f"refused: impedance check failed on channel {ch}: {r.status} ({r.ohm} ohm)")
        return EXIT_REFUSED
    ctl.arm(confirm=True, acknowledge_warnings=True)
    streaming[0] = True
    if abort.is_set():
        raise _Abort()
    ctl.start()
    outcome = _progress_loop(ctl, abort, sys.stderr)
    summary = ctl.summary()
    for c in summary.channels:
        print(f"ch{c.id}: {c.pulses} pulses (expected {c.expected_pulses}),"
              f" {c.charge_uc:.3f} uC per phase total", file=sys.stderr)  # fmt: skip
    print(
        f"outcome: {outcome.value}; delivered {summary.delivered_s:.1f} s;"
        f" late blocks {summary.late_blocks}, underruns {summary.underruns},"
        f" retransmits {summary.retransmits}",
        file=sys.stderr,
    )
    if outcome in (Outcome.FAULT, Outcome.ESTOP) and ctl.fault is not None:
        _say(f"FAULT {ctl.fault.code}: {ctl.fault.message}")
    return outcome.exit_code


def _confirm(stdin: TextIO, out: TextIO) -> bool:
    if not stdin.isatty():
        _say("refused: no confirmation (stdin is not a terminal); pass --yes to confirm")
        return False
    out.write("Start stimulation? Type 'yes' to confirm: ")
    out.flush()
    answer = stdin.readline().strip().lower()
    if answer not in ("y", "yes"):
        _say("refused: not confirmed by the operator")
        return False
    return True


def _progress_loop(ctl: Controller, abort: _Flag, out: TextIO) -> Outcome:
    from stimctl.host.status import Outcome

    tty = out.isatty()
    shown = 0.0
    width = 0
    while True:
        outcome = ctl.wait(timeout=0.05)
        if abort.is_set() and outcome is None:
            ctl.abort()
            ctl.wait(timeout=2.0)
            outcome = Outcome.ABORTED
        now = time.monotonic()
        if outcome is not None or now - shown >= (0.2 if tty else 5.0):
            shown = now
            line = progress_line(ctl.status(), ctl.is_simulator)
            if tty:
                out.write("\r" + line.ljust(width))
                width = len(line)
            else:
                out.write(line + "\n")
            out.flush()
        if outcome is not None:
            if tty:
                out.write("\n")
            return outcome


def _clock(seconds: float) -> str:
    total = max(0, int(seconds))
    h, rest = divmod(total, 3600)
    m, s = divmod(rest, 60)
    return f"{h}:{m:02d}:{s:02d}" if h else f"{m:02d}:{s:02d}"


def progress_line(st: Status, simulator: bool) -> str:
    """One status line: phase i/n and mode, elapsed/remaining, per-channel current."""
    total = st.elapsed_s + st.remaining_s
    done = int(20 * st.elapsed_s / total) if total else 0
    bar = "#" * done + "-" * (20 - done)
    chans = " ".join(f"ch{c.id} {c.set_ma:.2f}mA" for c in st.channels if c.plateau_ma > 0)
    tag = "SIM " if simulator else ""
    return (
        f"{tag}{st.state.value:<9} [{bar}] phase {st.phase_index + 1}/{st.phase_count}"
        f" {st.phase_mode} {_clock(st.elapsed_s)}/{_clock(total)}"
        f" (-{_clock(st.remaining_s)}) {chans}"
    )
