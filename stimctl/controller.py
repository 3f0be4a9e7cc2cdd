"""Controller: the scripting API; one device, one operator, one record (docs/API.md).

The CLI and the TUI use only this class. Actions are checked by the host interlock before
anything is written (InterlockError). The class is a facade over explicit collaborators that
share its lock: ``Connection`` (port, link, handshake, device, effective envelope),
``Session`` (profile, stream, totals, snapshots), ``DeviceMirror`` (device messages on the
link's reader thread, fault latching), ``Commander`` (request + ACK, recorded), ``Recorder``
(the session record) and ``Subscribers`` (telemetry and event callbacks).
"""

from __future__ import annotations

import contextlib
import math
import threading
import time
from collections.abc import Callable, Iterable, Mapping
from pathlib import Path
from types import TracebackType

from stimctl.host.commander import Commander
from stimctl.host.connection import SIM_URL, Connection
from stimctl.host.errors import InterlockError, RecordFailed, StimctlError
from stimctl.host.errors import ValidationRefused as ValidationRefused
from stimctl.host.interlock import Command, Interlock
from stimctl.host.link import Link
from stimctl.host.mirror import DeviceMirror
from stimctl.host.plateau import (
    check_plateau,
    clamped_target,
    gain_permille,
    reramp_na_per_s,
)
from stimctl.host.preparation import (
    arm_context,
    arm_message,
    channel_mask,
    compile_for_device,
    impedance_readings,
    profile_line,
)
from stimctl.host.recorder import Recorder, versions
from stimctl.host.session import AT_REST, Session
from stimctl.host.simprocess import MAX_SPEED as MAX_SIM_SPEED
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
from stimctl.protocol import (
    Adjust,
    Goodbye,
    ImpedanceCheck,
    Pause,
    Resume,
    Start,
    State,
)
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
        self.interlock = Interlock(clock)
        self.lock = threading.RLock()
        self.changed = threading.Condition(self.lock)
        self.connection = Connection(self.lock, self.site_envelope)
        self.recorder = Recorder(on_failure=lambda why: self.stopper.record_failed(why))
        self.subscribers = Subscribers(self.lock)
        self.session = Session(self.changed, self.connection, self.recorder, self.subscribers)
        self.commander = Commander(self.recorder, self.subscribers)
        self.mirror = DeviceMirror(
            self.lock, self.changed, self.interlock, self.connection, self.session,
            self.recorder, self.subscribers, self.commander,
        )  # fmt: skip
        self.stopper = Stopper(
            self.lock, self.interlock, self.connection, self.session, self.commander,
            self.mirror, self.recorder, self.subscribers,
        )  # fmt: skip
        self._profile: Profile | None = None
        self._report: Report | None = None
        self._closed = False
        self._adjust_at: dict[int, float] = {}  # channel -> interlock clock of its last ADJUST
        self._most_ma: dict[int, float] = {}  # channel -> highest plateau set by ADJUST this arm
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
            ctl._open_link(timeout)
        except RecordFailed as exc:  # refused (exit code 1): nothing was armed
            ctl.close(exit_code=1)
            exc.rescue = ctl.record_rescue
            raise
        except BaseException:
            ctl.close()
            raise
        return ctl

    def _open_link(self, timeout: float) -> None:
        """Link, HELLO, device and envelope; the device read back and brought to rest."""
        self.connection.open(self.mirror.on_message, self.mirror.on_lost, timeout)
        self.recorder.write("device", self.connection.device_record())
        self.recorder.require_intact()
        with self._waiting():
            self.mirror.read_back(timeout)

    def reconnect(self, url: str | None = None, timeout: float = 2.0) -> None:
        """Open the port again after LINK_LOST and read the device back. A latched fault stays
        latched and the device stays disarmed until the operator acknowledges and re-arms."""
        old = self.connection.detach()
        if old is not None:
            old.close()
        if url is not None:
            self.connection.change_port(url)
        self._open_link(timeout)

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
        return self._profile

    @property
    def report(self) -> Report | None:
        return self._report

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
        with self.lock:
            return dict(self._most_ma)

    def _active_channels(self) -> tuple[int, ...]:
        return tuple(c.id for c in self._profile.channels) if self._profile else ()

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
                self.recorder.write(
                    "refused",
                    {"path": str(profile), "violations": [v.to_dict() for v in exc.violations]},
                )
                raise
        if patient is not None:
            self.patient = check_patient(patient)
        report = self._validate(profile, self.patient)
        if not report.ok:
            self.recorder.write("refused", {
                **profile_line(profile), "patient": sorted(self.patient),
                "violations": [v.to_dict() for v in report.violations]})  # fmt: skip
            raise ValidationRefused(report)
        schedule, line = compile_for_device(
            profile, report, self.connection.device, self.patient,
            self.connection.envelope.max_ramp_rate_ma_per_s,
        )  # fmt: skip
        with self.lock:
            self._profile, self._report = profile, report
            self.session.load(profile, schedule)
        self.recorder.write("profile", line)
        self.recorder.require_intact()  # the profile and its sha256 are on disk before ARM
        return report

    def check_impedance(self, timeout: float = 2.0) -> dict[int, ImpedanceReading]:
        """Measure every active channel (all device channels without a profile)."""
        link = self._check(Command.IMPEDANCE)
        channels = self._active_channels() or tuple(range(1, self.device.channels + 1))
        check = ImpedanceCheck(channel_mask=channel_mask(channels))
        with link.waiting():
            result = self.mirror.impedance(link, check, timeout)
        readings = impedance_readings(result, channels)
        with self.lock:
            self.interlock.impedance_passed(ch for ch, r in readings.items() if r.ok)
            self.interlock.impedance_failed(ch for ch, r in readings.items() if not r.ok)
        self.recorder.write(
            "impedance", {str(ch): {"ohm": r.ohm, "status": r.status} for ch, r in readings.items()}
        )
        return readings

    def arm(self, *, confirm: bool = False, acknowledge_warnings: bool = False) -> None:
        """Guards: profile valid against the effective envelope (re-validated now), warnings
        acknowledged, impedance passed < 60 s on every active channel, operator confirmation,
        and every line of the record on disk (RecordFailed otherwise: no session without it)."""
        self.recorder.require_intact()
        profile = self._profile
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
            self._adjust_at.clear()
            self._most_ma.clear()
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
        profile = self._profile
        rate_max = self.connection.envelope.max_ramp_rate_ma_per_s
        rate = profile.slowest_ramp_ma_per_s(rate_max) if profile is not None else rate_max
        self.commander.command(link, Resume(ramp_na_per_s=reramp_na_per_s(rate)))
        with self.lock:
            self.interlock.accepted(Command.RESUME, HostState.PAUSED)

    def adjust(self, channel: int, delta_ma: float) -> float:
        """Change a channel's plateau by ``delta_ma`` (clamped to one step and to the ramp-rate
        limit since the last change); refused beyond the envelope. Returns the new plateau."""
        link = self._check(Command.ADJUST)
        profile = self._profile
        if profile is None or channel not in self._active_channels():
            raise InterlockError(f"ADJUST refused: channel {channel} is not in the profile")
        if not math.isfinite(delta_ma):
            raise InterlockError("ADJUST refused: delta must be a finite number of mA")
        now = self.interlock.clock()
        with self.lock:
            current = self.session.plateau_ma[channel]
            live = dict(self.session.plateau_ma)
            # channels on one needle rise together: the clamp counts from the last change of
            # any channel sharing a site with this one
            needle = {channel}.union(*(ids for ids in self.session.shared_sites.values()
                                       if channel in ids))  # fmt: skip
            since = now - max(self._adjust_at.get(ch, -math.inf) for ch in needle)
        rate = self.connection.envelope.max_ramp_rate_ma_per_s
        target = clamped_target(current, delta_ma, since, rate)
        if target == current:
            return current
        check_plateau(
            profile, channel, target, lambda p: self._validate(p, self.patient), rate, live
        )
        gain = gain_permille(profile, channel, target)
        self.commander.command(link, Adjust(channel=channel, gain_permille=gain))
        with self.lock:
            self._adjust_at[channel] = now
            self._most_ma[channel] = max(self._most_ma.get(channel, 0.0), target)
            self.session.adjusted(channel, target, gain)
        return target

    def stop(self, ramp_ms: int | None = None) -> None:
        """Operator stop: ramp down (the phase's ramp_down, else 2 s); ARMED: disarm."""
        self.stopper.stop(ramp_ms, Outcome.STOPPED)

    def abort(self) -> None:
        """Immediate stop to zero (Ctrl-C, SIGTERM): STOP with a zero ramp (ARMED: disarm); ESTOP
        if that cannot be delivered or a stop ramp is already running. No-op when at rest."""
        state = self.interlock.state
        if state is HostState.STOPPING:
            self.estop()
            return
        if state not in (HostState.RUNNING, HostState.PAUSED, HostState.ARMED):
            return
        try:
            self.stopper.stop(0, Outcome.ABORTED)
        except (StimctlError, OSError):
            self.estop()

    def estop(self) -> None:
        """ESTOP at once from the caller's thread, ahead of anything else; never waits."""
        self.stopper.estop()

    def acknowledge_fault(self) -> None:
        """Operator acknowledgement of a latched FAULT/ESTOP: CLEAR_FAULT, back to IDLE."""
        self.stopper.acknowledge()

    # --- observing ------------------------------------------------------------------------
    def wait(self, timeout: float | None = None) -> Outcome | None:
        """Block until the session ends; the outcome, or None if ``timeout`` ran out first."""
        deadline = None if timeout is None else time.monotonic() + timeout
        with self._waiting(), self.lock:
            while True:
                self.mirror.supervise()
                outcome = self.session.outcome
                if outcome is not None and self.session.final:
                    return outcome
                left = 0.1 if deadline is None else min(0.1, deadline - time.monotonic())
                if left <= 0:
                    return None
                self.changed.wait(left)

    def wait_until(self, predicate: Callable[[Status], bool], timeout: float | None = None) -> bool:
        """Block until ``predicate(status())`` holds (checked at every telemetry frame); False
        if ``timeout`` ran out first. Use this, not ``time.sleep``, to let a session run: on the
        lock-step simulator device time runs only while the host waits."""
        deadline = None if timeout is None else time.monotonic() + timeout
        # the hand-over ends (device time runs on) only after this thread stopped waiting
        with self.mirror.telemetry_wakeups() as frames, self._waiting(), self.lock:
            while not predicate(self.status()):
                left = 0.1 if deadline is None else min(0.1, deadline - time.monotonic())
                if left <= 0:
                    return False
                frames.wait(left)
            return True

    def note(self, text: str) -> None:
        """An operator note ("patient reports tingling"): a durable record line and an event."""
        text = text.strip()
        if not text:
            raise ValueError("a note needs some text")
        self.recorder.write("note", {"operator": self.operator, "text": text})
        self.subscribers.emit("note", text, {"operator": self.operator})

    def status(self) -> Status:
        with self.lock:
            self.mirror.supervise()
            return self.session.status(self.interlock.state, self.interlock.fault)

    def on_telemetry(self, callback: Callable[[Status], None]) -> Callable[[], None]:
        return self.subscribers.subscribe("telemetry", callback)

    def on_event(self, callback: Callable[[Event], None]) -> Callable[[], None]:
        return self.subscribers.subscribe("event", callback)

    def summary(self) -> SessionSummary:
        with self.lock:
            return self.session.summary()

    # --- closing --------------------------------------------------------------------------
    def close(self, exit_code: int | None = None) -> None:
        """Make everything safe: output to zero (STOP ramp 0, or ESTOP if that fails), record
        closed with summary and end line, GOODBYE, port closed. Idempotent."""
        if self._closed:
            return
        self._closed = True
        state = self.interlock.state
        with contextlib.suppress(StimctlError, OSError):
            if state in (HostState.RUNNING, HostState.PAUSED, HostState.ARMED, HostState.STOPPING):
                self.abort()  # STOPPING: e-stop, do not leave a ramp running behind us
                with self._waiting(), self.lock:
                    self.changed.wait_for(lambda: self.session.device_state in AT_REST, 0.5)
        link = self.connection.open_link()
        if link is not None:
            if self.session.device_state is State.IDLE:
                with contextlib.suppress(StimctlError, OSError):
                    self.commander.command(link, Goodbye(), timeout=0.5)
            link.close()
        self.connection.release_port()
        self.connection.stop_simulator()
        if self.recorder.is_open:
            self.recorder.close(self.session.summary_line(), self.session.end_line(exit_code))
        with self.lock:
            self.interlock.disconnected()
            self.changed.notify_all()

    def _waiting(self) -> contextlib.AbstractContextManager[object]:
        """Around a wait for the device: a lock-step simulator's time runs only inside."""
        link = self.connection.link
        return link.waiting() if link is not None else contextlib.nullcontext()

    def __enter__(self) -> Controller:
        return self

    def __exit__(
        self,
        kind: type[BaseException] | None,
        error: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()
