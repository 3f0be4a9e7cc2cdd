"""One `stimctl run` session, from its clinic row to its exit code.

The row is opened first (a refusal is a row too, and a killed host leaves an open one), then the
profile is read, then the controller connects and the console supervises; every error becomes its
exit code and one line. At every end the controller is closed, the record's place and anchor
said, the session stored against its course, and the row closed.
"""

from __future__ import annotations

import argparse
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

from stimctl.cli.run_console import PROG, Aborted, AbortFlag, operator_abort, say, supervise
from stimctl.host.status import ExitCode

if TYPE_CHECKING:
    from stimctl.cli.run_clinic import ClinicRun
    from stimctl.cli.run_course import CourseRun
    from stimctl.controller import Controller
    from stimctl.rules.envelope import SafetyEnvelope
    from stimctl.rules.profile import Profile

EXIT_REFUSED, EXIT_FAULT, EXIT_ABORTED = ExitCode.REFUSED, ExitCode.FAULT, ExitCode.ABORTED


@dataclass
class RunSession:
    """What `stimctl run` checked and found before the session: the command line's options, the
    profile (its file, or the course stage's stored bytes), the record, the clinic and course."""

    args: argparse.Namespace  # port, key, yes
    profile_path: Path
    record: Path
    operator: str
    patient: frozenset[str]
    envelope: SafetyEnvelope | None
    speed: float | None
    sim_options: dict[str, str]
    clinic: ClinicRun
    course: CourseRun | None = None
    stored: bytes | None = None
    violations: list[str] = field(default_factory=list)  # codes for the row and the course
    ctl: Controller | None = None

    def run(self) -> int:
        """The session; its exit code."""
        from stimctl.clinic.db import DatabaseError

        try:  # the row first: a refusal is a row too, and a killed host leaves an open one
            self.patient = self.clinic.open(
                self.operator, self.record, self.patient, self.profile_path.stem
            )
        except DatabaseError as error:
            self.clinic.db.dispose()
            say(f"database: {error}; nothing armed")
            return EXIT_FAULT
        if self.clinic.patient_code is not None:
            shown = ", ".join(sorted(self.patient)) or "none"
            print(f"patient {self.clinic.patient_code}: flags {shown}", file=sys.stderr)
        profile = self._read_profile()
        if profile is None:
            return EXIT_REFUSED
        with operator_abort() as abort:
            return self._stream(profile, abort)

    def _read_profile(self) -> Profile | None:
        """The profile (without the safety rules: the controller applies them); None, the row
        closed, when it is not a valid profile."""
        from stimctl.cli.validate import format_violation
        from stimctl.rules.profile import ProfileError, load_profile, loads_profile

        try:
            if self.stored is not None:
                return loads_profile(self.stored)
            return load_profile(self.profile_path)
        except ProfileError as error:
            say(f"{self.profile_path}: refused: invalid profile")
            for v in error.violations:
                print(format_violation(v), file=sys.stderr)
            self._close_row(EXIT_REFUSED, [v.code for v in error.violations])
            return None

    def _stream(self, profile: Profile, abort: AbortFlag) -> int:
        """Connect, supervise, map every error to its exit code; close everything at the end."""
        from stimctl.cli.validate import format_violation
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

        code = EXIT_FAULT
        try:
            self.ctl = Controller.connect(
                self.args.port, envelope=self.envelope, record=self.record,
                record_key=self.args.key, operator=self.operator, patient=self.patient,
                speed=self.speed, sim_options=self.sim_options or None,
                session_id=self.clinic.uid, patient_id=self.clinic.patient_code,
            )  # fmt: skip
            if self.course is not None:
                self.course.attach(self.ctl)
            code = supervise(self.ctl, profile, self.args.yes, abort)
        except Aborted:
            if self.ctl is not None:
                self.ctl.abort()
            say("aborted by the operator; output is zero")
            code = EXIT_ABORTED
        except RecordFailed as error:
            if self.ctl is not None and self.ctl.fault is not None:  # after ARM: latched, stopped
                say(f"stopped: {error}")
                code = EXIT_FAULT
            else:  # before ARM: the opening lines are not on disk
                say(f"refused: {error}; nothing was armed")
                code = EXIT_REFUSED
            if error.rescue is not None:  # connect closed the record already
                say(error.rescue.text())
        except ValidationRefused as error:
            self.violations = [v.code for v in error.report.violations]
            say(f"{self.profile_path}: refused by validation against the effective envelope")
            for v in error.report.errors:
                print(format_violation(v), file=sys.stderr)
            code = EXIT_REFUSED
        except (InterlockError, CommandRejected) as error:
            latched = self.ctl is not None and self.ctl.fault is not None
            say(f"refused: {error}")
            code = EXIT_FAULT if latched else EXIT_REFUSED
        except (LinkError, ProtocolMismatch) as error:
            say(f"device: {error}")
            code = EXIT_FAULT
        except StimctlError as error:
            say(str(error))
            code = EXIT_FAULT
        finally:
            code = self._finish(code, profile)
        return code

    def _finish(self, code: int, profile: Profile) -> int:
        """Close the controller, say the record's outcome, store against the course, close the
        row; the exit code (a fault if the record failed)."""
        ctl = self.ctl
        if ctl is not None:
            if ctl.record_failure is not None and code != EXIT_REFUSED:
                code = EXIT_FAULT  # a session whose record failed ends as a fault
            ctl.close(exit_code=code)
            code = record_outcome(ctl, code)
            if ctl.report is not None:
                self.violations += [v.code for v in ctl.report.violations]
        if self.course is not None:
            sha = _sha256(self.stored, self.profile_path)
            failure = self.course.finish(
                self.clinic.db, ctl, self.clinic.uid, profile, sha, self.violations
            )
            if failure is not None:
                say(f"database: the session was not stored against the course ({failure})")
        self._close_row(code, self.violations)
        return code

    def _close_row(self, code: int, violations: list[str]) -> None:
        """Close the session's row; a failure is said (the session's exit code stands)."""
        failure = self.clinic.close(self.ctl, code, self.record, violations)
        if failure is not None:
            say(
                f"database: the session row was not closed ({failure});"
                f" run `stimctl session import {self.record}` when the database is back"
            )


def _sha256(stored: bytes | None, path: Path) -> str | None:
    """sha256 of the profile's bytes (the course's stored copy, else the file)."""
    import hashlib

    try:
        raw = stored if stored is not None else path.read_bytes()
    except OSError:
        return None
    return hashlib.sha256(raw).hexdigest()


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
