"""Controller: the scripting API; one device, one operator, one record (docs/API.md).

The CLI and the TUI use only this class. Actions are checked by the host interlock before
anything is written (InterlockError). The class is a facade over collaborators in
``stimctl.host`` that share one ``SessionContext`` (lock, interlock, ``Connection``: port, link,
handshake, device, effective envelope; ``Journal``: the session record and the event
subscribers, written by one call; ``Commander``: request + ACK): ``Session`` owns the session's
state (profile, stream, plateaus, totals, faults, e-stop, outcome), ``DeviceMirror`` handles
the device's messages and waits for the device, ``Stopper`` ends sessions and closes.
"""

from __future__ import annotations

import math
import threading
import time
from collections.abc import Callable, Iterable, Mapping
from pathlib import Path
from types import TracebackType

from stimctl.host.arming import arm_context, arm_message, compile_for_device, refused_line
from stimctl.host.commander import Commander
from stimctl.host.connection import SIM_URL, Connection
from stimctl.host.errors import InterlockError, RecordFailed, StimctlError
from stimctl.host.errors import ValidationRefused as ValidationRefused
from stimctl.host.interlock import Command, Interlock
from stimctl.host.journal import Journal
from stimctl.host.link import Link
from stimctl.host.mirror import DeviceMirror
from stimctl.host.plateau import check_plateau, clamped_target, gain_permille, reramp_na_per_s
from stimctl.host.recorder import Recorder, versions
from stimctl.host.session import Session, SessionContext
from stimctl.host.simprocess import MAX_SPEED as MAX_SIM_SPEED
from stimctl.host.snapshots import summary_of
from stimctl.host.status import (
    DeviceSummary,
    Event,
    FaultInfo,
    HostState,
    ImpedanceReading,
    Outcome,
    Rescue,
    SessionSummary,
    Status,
)
from stimctl.host.stopping import Stopper
from stimctl.host.subscribers import Subscribers
from stimctl.host.verification import short_anchor
from stimctl.protocol import Adjust, Pause, Resume, Start
from stimctl.rules.envelope import ADJUST_STEP_MA, DEFAULT_STOP_RAMP_MS, SafetyEnvelope
from stimctl.rules.profile import Profile, ProfileError, load_profile
from stimctl.rules.report import Report
from stimctl.rules.validation import check_patient, validate_profile
from stimctl.rules.violations import Violation

__all__ = ["ADJUST_STEP_MA", "DEFAULT_STOP_RAMP_MS", "MAX_SIM_SPEED", "SIM_URL", "Controller"]


class Controller:
    """One device, one operator, one record; see docs/API.md."""

    def __init__(
        self,
        *,
        envelope: SafetyEnvelope | None = None,
        operator: str = "",
        patient: Iterable[str] = (),
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.site_envelope = envelope or SafetyEnvelope()
        self.operator = operator
        self.patient = check_patient(patient)
        lock = threading.RLock()
        recorder = Recorder(on_failure=lambda why: self.stopper.record_failed(why))
        journal = Journal(recorder, Subscribers(lock))
        self.ctx = SessionContext(
            lock, threading.Condition(lock), Interlock(clock),
            Connection(lock, self.site_envelope), journal, Commander(journal),
        )  # fmt: skip
        self.lock, self.interlock, self.connection = lock, self.ctx.interlock, self.ctx.connection
        self.journal, self.recorder, self.commander = journal, recorder, self.ctx.commander
        self.session = Session(self.ctx)
        self.mirror = DeviceMirror(self.session)
        self.stopper = Stopper(self.session)
        self._closed = False
        self._extra_rules: list[Callable[[Profile], Iterable[Violation]]] = []

    # --- construction ---------------------------------------------------------------------
    @classmethod
    def connect(
        cls,
        url: str | None = None,
        *,
        envelope: SafetyEnvelope | None = None,
        record: str | Path | None = None,
        record_key: str | Path | None = None,
        operator: str = "",
        patient: Iterable[str] = (),
        speed: float | None = None,
        sim_options: Mapping[str, str] | None = None,
        timeout: float = 2.0,
        session_id: str | None = None,
        patient_id: str | None = None,
    ) -> Controller:
        """Open a port (None: the embedded simulator), handshake and read the device back.

        ``record``: the session record (a new file), tagged under ``record_key`` (a key file;
        None: STIMCTL_RECORD_KEY, else the site key); its opening lines are on disk before this
        returns (RecordFailed otherwise, and nothing is left running). ``session_id`` (a new UUID
        by default) and ``patient_id`` (the clinic's pseudonymous id) go into its opening line:
        the clinic database finds the session by them."""
        if url is not None and (speed is not None or sim_options):
            raise ValueError("speed and sim_options are for the embedded simulator only")
        ctl = cls(envelope=envelope, operator=operator, patient=patient)
        try:
            ctl.connection.choose_port(url, speed, sim_options)
            if record is not None:
                ctl.recorder.open(Path(record), None if record_key is None else Path(record_key),
                                  session_id=session_id)  # fmt: skip
                ctl.recorder.opening({
                    "patient_id": patient_id, "operator": ctl.operator,
                    "patient": sorted(ctl.patient), "url": ctl.url,
                    "simulator": ctl.is_simulator, "versions": versions(),
                })  # fmt: skip
            ctl.mirror.attach(timeout)
        except RecordFailed as exc:  # refused (exit code 1): nothing was armed
            ctl.close(exit_code=1)
            exc.rescue = ctl.record_rescue
            raise
        except BaseException:
            ctl.close()
            raise
        return ctl

    def reconnect(self, url: str | None = None, timeout: float = 2.0) -> None:
        """Open the port again after LINK_LOST and read the device back. A latched fault stays
        latched and the device stays disarmed until the operator acknowledges and re-arms."""
        old = self.connection.detach()
        if old is not None:
            old.close()
        if url is not None:
            self.connection.change_port(url)
        self.mirror.attach(timeout)

    # --- properties -----------------------------------------------------------------------
    @property
    def url(self) -> str:
        return self.connection.url

    @property
    def is_simulator(self) -> bool:
        return self.connection.is_simulator

    @property
    def device(self) -> DeviceSummary:
        device = self.connection.device
        if device is None:
            raise StimctlError("not connected")
        return device

    @property
    def envelope(self) -> SafetyEnvelope:
        return self.connection.envelope

    @property
    def state(self) -> HostState:
        return self.interlock.state

    @property
    def fault(self) -> FaultInfo | None:
        return self.interlock.fault

    @property
    def profile(self) -> Profile | None:
        return self.session.profile

    @property
    def report(self) -> Report | None:
        return self.session.report

    @property
    def record_path(self) -> Path | None:
        return self.recorder.path

    @property
    def record_failure(self) -> str | None:
        """Why the record could not be written (one line), or None while it is whole."""
        return self.recorder.failure

    @property
    def record_rescue(self) -> Rescue | None:
        """Where the record's unwritten lines went (after ``close``), or None."""
        return self.recorder.rescue

    @property
    def record_tag(self) -> str | None:
        """The record's last tag in full (its final tag once closed): what the clinic database
        stores to anchor the record."""
        return self.recorder.anchor

    @property
    def record_anchor(self) -> str | None:
        """The record's anchor: its last tag so far (its final tag once closed) in short form,
        the first 12 hex digits, as it goes on the paper chart."""
        tag = self.recorder.anchor
        return None if tag is None else short_anchor(tag)

    @property
    def session_id(self) -> str | None:
        """The record's session id (a UUID; the clinic database keys on it)."""
        return self.recorder.session_id

    @property
    def link(self) -> Link | None:
        return self.connection.link

    @property
    def speed(self) -> float:
        return self.connection.speed

    # Tests put a mocked link, a device or a narrower envelope in place through these.
    _link = property(lambda self: self.connection.link,
                     lambda self, link: setattr(self.connection, "link", link))  # fmt: skip
    _device = property(lambda self: self.connection.device,
                       lambda self, device: setattr(self.connection, "device", device))  # fmt: skip
    _envelope = property(lambda self: self.connection.envelope,
                         lambda self, env: setattr(self.connection, "envelope", env))  # fmt: skip

    # --- helpers --------------------------------------------------------------------------
    def _check(self, command: Command) -> Link:
        with self.lock:
            self.interlock.check(command)
            return self.connection.require_link()

    def _validate(self, profile: Profile, patient: Iterable[str]) -> Report:
        report = validate_profile(profile, self.connection.envelope, patient)
        extra = tuple(v for rules in self._extra_rules for v in rules(profile))
        return Report(report.violations + extra, profile) if extra else report

    def add_rules(self, rules: Callable[[Profile], Iterable[Violation]]) -> None:
        """Rules checked with the safety rules wherever a profile is validated: at load, at
        arm, and for each live ADJUST (a course's rules: docs/COURSE.md)."""
        self._extra_rules.append(rules)

    @property
    def most_plateau_ma(self) -> dict[int, float]:
        """Per channel, the highest plateau live ADJUST set since ARM (empty: none raised)."""
        return self.session.most_plateau_ma

    def _active_channels(self) -> tuple[int, ...]:
        profile = self.session.profile
        return tuple(c.id for c in profile.channels) if profile else ()

    # --- actions --------------------------------------------------------------------------
    def load(
        self, profile: Profile | str | Path, *, patient: Iterable[str] | None = None
    ) -> Report:
        """Validate against the effective envelope and keep it; ValidationRefused on errors."""
        with self.lock:
            self.interlock.check(Command.LOAD)
        if not isinstance(profile, Profile):
            try:
                profile = load_profile(profile)
            except ProfileError as exc:  # the refusal is part of the session's record
                self.journal.write("refused", refused_line(profile, exc.violations))
                raise
        if patient is not None:
            self.patient = check_patient(patient)
        report = self._validate(profile, self.patient)
        if not report.ok:
            self.journal.write("refused", refused_line(profile, report.violations, self.patient))
            raise ValidationRefused(report)
        profile = report.profile or profile  # compile what the rules judged, not what was handed in
        schedule, line = compile_for_device(
            profile, report, self.connection.device, self.patient,
            self.connection.envelope.max_ramp_rate_ma_per_s,
        )  # fmt: skip
        self.session.load(profile, report, schedule)
        self.journal.write("profile", line)
        self.recorder.require_intact()  # the profile and its sha256 are on disk before ARM
        return report

    def check_impedance(self, timeout: float = 2.0) -> dict[int, ImpedanceReading]:
        """Measure every active channel (all device channels without a profile)."""
        link = self._check(Command.IMPEDANCE)
        channels = self._active_channels() or tuple(range(1, self.device.channels + 1))
        return self.mirror.check_impedance(link, channels, timeout)

    def arm(self, *, confirm: bool = False, acknowledge_warnings: bool = False) -> None:
        """Guards: profile valid against the effective envelope (re-validated now), warnings
        acknowledged, impedance passed < 60 s on every active channel, operator confirmation,
        and every line of the record on disk (RecordFailed otherwise: no session without it)."""
        self.recorder.require_intact()
        profile = self.session.profile
        report = self._validate(profile, self.patient) if profile is not None else None
        ctx = arm_context(profile, report, self._active_channels(),
                          acknowledge_warnings=acknowledge_warnings, confirm=confirm)  # fmt: skip
        with self.lock:
            self.interlock.check_arm(ctx)
            link = self.connection.require_link()
            before = self.interlock.state
        assert profile is not None
        self.commander.command(link, arm_message(profile, ctx.active_channels))
        with self.lock:
            self.interlock.accepted(Command.ARM, before)
            self.session.armed(acknowledge_warnings, on_stream_error=self.mirror.stream_failed)

    def start(self) -> None:
        """Queue the first blocks, then START (the device ramps up from zero)."""
        link = self._check(Command.START)
        self.session.prime()
        self.commander.command(link, Start())
        with self.lock:
            self.interlock.accepted(Command.START, HostState.ARMED)
            self.session.started()

    def pause(self) -> None:
        link = self._check(Command.PAUSE)
        self.commander.command(link, Pause())
        with self.lock:
            self.interlock.accepted(Command.PAUSE, HostState.RUNNING)

    def resume(self) -> None:
        """RESUME: the device re-ramps from zero at the profile's slowest rising edge (never
        above the effective envelope's ramp rate, never above its own slew ceiling)."""
        link = self._check(Command.RESUME)
        profile = self.session.profile
        rate_max = self.connection.envelope.max_ramp_rate_ma_per_s
        rate = profile.slowest_ramp_ma_per_s(rate_max) if profile is not None else rate_max
        self.commander.command(link, Resume(ramp_na_per_s=reramp_na_per_s(rate)))
        with self.lock:
            self.interlock.accepted(Command.RESUME, HostState.PAUSED)

    def adjust(self, channel: int, delta_ma: float) -> float:
        """Change a channel's plateau by ``delta_ma`` (clamped to one step and to the ramp-rate
        limit since the last change); refused beyond the envelope. Returns the new plateau."""
        link = self._check(Command.ADJUST)
        profile = self.session.profile
        if profile is None or channel not in self._active_channels():
            raise InterlockError(f"ADJUST refused: channel {channel} is not in the profile")
        if not math.isfinite(delta_ma):
            raise InterlockError("ADJUST refused: delta must be a finite number of mA")
        now = self.interlock.clock()
        with self.lock:
            current = self.session.plateau_ma[channel]
            live = dict(self.session.plateau_ma)
        since = self.session.since_adjusted(channel, now)
        rate = self.connection.envelope.max_ramp_rate_ma_per_s
        target = clamped_target(current, delta_ma, since, rate)
        if target == current:
            return current
        check_plateau(
            profile, channel, target, lambda p: self._validate(p, self.patient), rate, live
        )
        gain = gain_permille(profile, channel, target)
        self.commander.command(link, Adjust(channel=channel, gain_permille=gain))
        self.session.adjusted(channel, target, gain, now)
        return target

    def stop(self, ramp_ms: int | None = None) -> None:
        """Operator stop: ramp down (the phase's ramp_down, else 2 s); ARMED: disarm."""
        self.stopper.stop(ramp_ms, Outcome.STOPPED)

    def abort(self) -> None:
        """Immediate stop to zero (Ctrl-C, SIGTERM): STOP with a zero ramp (ARMED: disarm); ESTOP
        if that cannot be delivered or a stop ramp is already running. No-op when at rest."""
        self.stopper.abort()

    def estop(self) -> None:
        """ESTOP at once from the caller's thread, ahead of anything else; never waits."""
        self.stopper.estop()

    def acknowledge_fault(self) -> None:
        """Operator acknowledgement of a latched FAULT/ESTOP: CLEAR_FAULT, back to IDLE."""
        self.stopper.acknowledge()

    # --- observing ------------------------------------------------------------------------
    def wait(self, timeout: float | None = None) -> Outcome | None:
        """Block until the session ends; the outcome, or None if ``timeout`` ran out first."""
        return self.mirror.wait_end(timeout)

    def wait_until(self, predicate: Callable[[Status], bool], timeout: float | None = None) -> bool:
        """Block until ``predicate(status())`` holds (checked at every telemetry frame); False
        if ``timeout`` ran out first. Use this, not ``time.sleep``, to let a session run: on the
        lock-step simulator device time runs only while the host waits."""
        return self.mirror.wait_until(predicate, timeout)

    def note(self, text: str) -> None:
        """An operator note ("patient reports tingling"): a durable record line and an event."""
        text = text.strip()
        if not text:
            raise ValueError("a note needs some text")
        line = {"operator": self.operator, "text": text}
        self.journal.happened("note", line, text, {"operator": self.operator})

    def status(self) -> Status:
        return self.mirror.status()

    def on_telemetry(self, callback: Callable[[Status], None]) -> Callable[[], None]:
        return self.journal.subscribers.subscribe("telemetry", callback)

    def on_event(self, callback: Callable[[Event], None]) -> Callable[[], None]:
        return self.journal.subscribers.subscribe("event", callback)

    def summary(self) -> SessionSummary:
        with self.lock:
            return summary_of(self.session)

    # --- closing --------------------------------------------------------------------------
    def close(self, exit_code: int | None = None) -> None:
        """Make everything safe: output to zero (STOP ramp 0, or ESTOP if that fails), record
        closed with summary and end line, GOODBYE, port closed. Idempotent."""
        if self._closed:
            return
        self._closed = True
        self.stopper.close(exit_code)

    def __enter__(self) -> Controller:
        return self

    def __exit__(
        self,
        kind: type[BaseException] | None,
        error: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()
