"""Controller: orchestrates link + interlock + streaming + record; the scripting API.

The CLI and the TUI use only this class. Actions are checked by the host interlock before
anything is written (InterlockError); device answers and telemetry arrive on the link's reader
thread and are handled in ``stimctl.session`` (the part of the controller that runs there).
See docs/API.md for the contract and a worked script.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import math
import threading
import time
from collections.abc import Callable, Iterable, Mapping
from pathlib import Path
from types import TracebackType
from urllib.parse import urlencode

from stimctl.envelope import EnvelopeError, SafetyEnvelope
from stimctl.errors import CommandRejected, InterlockError, LinkError, StimctlError
from stimctl.errors import ValidationRefused as ValidationRefused
from stimctl.interlock import ArmContext, Command, Interlock
from stimctl.link import Link
from stimctl.ports import resolve_port
from stimctl.profile import Profile, load_profile
from stimctl.protocol import (
    GAIN_UNITY,
    Adjust,
    Arm,
    ClearFault,
    DeviceInfo,
    Disarm,
    EStop,
    Fault,
    Goodbye,
    ImpedanceCheck,
    ImpedanceStatus,
    Message,
    Pause,
    Resume,
    Shape,
    Start,
    State,
    Stop,
)
from stimctl.record import SessionRecord
from stimctl.schedule import compile_schedule
from stimctl.session import Session, versions
from stimctl.status import (
    DeviceSummary,
    Event,
    FaultInfo,
    HostState,
    ImpedanceReading,
    Outcome,
    SessionSummary,
    Status,
)
from stimctl.validation import check_patient, validate_profile
from stimctl.violations import Report

__all__ = ["ADJUST_STEP_MA", "DEFAULT_STOP_RAMP_MS", "SIM_URL", "Controller"]

SIM_URL = "stimsim://"
#: Largest single live-amplitude step (policy), and the default operator stop ramp.
ADJUST_STEP_MA = 0.1
DEFAULT_STOP_RAMP_MS = 2000
_AT_REST = (State.IDLE, State.FAULT, State.ESTOP)
_SHAPES = {"biphasic_symmetric": Shape.BIPHASIC_SYMMETRIC,
           "biphasic_asymmetric": Shape.BIPHASIC_ASYMMETRIC}  # fmt: skip


def simulator_url(speed: float | None, options: Mapping[str, str] | None = None) -> str:
    """The embedded simulator's URL: ``speed`` None/1 real time, N faster, inf lock-step."""
    params: dict[str, str] = {}
    if speed is not None and math.isinf(speed):
        params["virtual"] = "1"
    elif speed is not None and speed != 1:
        if not speed > 0:
            raise ValueError(f"speed must be > 0, got {speed}")
        params["speed"] = f"{speed:g}"
    params.update({str(k): str(v) for k, v in (options or {}).items()})
    return SIM_URL + ("?" + urlencode(params) if params else "")


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
        self.session = Session(self)
        self.lock = threading.RLock()
        self.changed = threading.Condition(self.lock)
        self._link: Link | None = None
        self._url = ""
        self._is_simulator = False
        self._speed = 1.0
        self._device: DeviceSummary | None = None
        self._envelope = self.site_envelope
        self._profile: Profile | None = None
        self._report: Report | None = None
        self._record: SessionRecord | None = None
        self._closed = False
        self._adjust_at: dict[int, float] = {}

    # --- construction ---------------------------------------------------------------------
    @classmethod
    def connect(
        cls,
        url: str | None = None,
        *,
        envelope: SafetyEnvelope | None = None,
        record: str | Path | None = None,
        operator: str = "",
        patient: Iterable[str] = (),
        speed: float | None = None,
        sim_options: Mapping[str, str] | None = None,
        timeout: float = 2.0,
    ) -> Controller:
        """Open a port (None: the embedded simulator), handshake and read the device back."""
        if url is not None and (speed is not None or sim_options):
            raise ValueError("speed and sim_options are for the embedded simulator only")
        ctl = cls(envelope=envelope, operator=operator, patient=patient)
        if url is None:
            ctl._is_simulator = True
            ctl._speed = 1.0 if speed is None else float(speed)
            url = simulator_url(speed, sim_options)
        else:
            ctl._is_simulator = url.startswith(SIM_URL)
            url = resolve_port(url)
        ctl._url = url
        if record is not None:
            ctl._open_record(Path(record))
        try:
            ctl._open_link(timeout)
        except BaseException:
            ctl.close()
            raise
        return ctl

    def _open_record(self, path: Path) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        try:
            self._record = SessionRecord(path)
        except FileExistsError as exc:
            raise StimctlError(str(exc)) from None
        self.session.record("session", {
            "operator": self.operator, "patient": sorted(self.patient), "url": self._url,
            "simulator": self._is_simulator, "versions": versions(),
        })  # fmt: skip

    def _open_link(self, timeout: float) -> None:
        link = Link.open(self._url, self.session.on_message, self.session.on_lost)
        with self.lock:
            self._link = link
        info = link.hello(timeout=timeout)
        self._adopt_device(info)
        tel = self.session.first_telemetry(timeout)
        with self.lock:
            self.interlock.connected(State(tel.state) if tel else State.IDLE)
            if tel is not None and State(tel.state) in (State.FAULT, State.ESTOP):
                self.session.latch_from_telemetry(tel)
        self.session.emit("state", f"connected to {self.device.serial} ({self._url})")
        if tel is not None:
            self._disarm_orphan(State(tel.state))

    def _adopt_device(self, info: DeviceInfo) -> None:
        device = DeviceSummary(
            firmware=info.firmware, serial=info.serial, channels=info.channels,
            tick_hz=info.tick_hz, telemetry_hz=info.telemetry_hz, watchdog_ms=info.watchdog_ms,
            fifo_depth=info.fifo_depth, max_lookahead_ms=info.max_lookahead_ms,
            impedance_valid_ms=info.impedance_valid_ms, protocol_version=info.protocol_version,
            catalogue_hash=info.catalogue_hash, limits=info.limits(),
            limits_hash=info.limits_hash(),
        )  # fmt: skip
        try:
            envelope = self.site_envelope.narrowed(
                max_amplitude_ma=info.max_amplitude_ua / 1000,
                pulse_width_us=(info.min_pulse_width_us, info.max_pulse_width_us),
                frequency_hz=(info.min_frequency_dhz / 10, info.max_frequency_dhz / 10),
                max_channels=info.channels,
            )
        except EnvelopeError as exc:
            raise StimctlError(f"device limits do not fit the site envelope: {exc}") from None
        with self.lock:
            self._device, self._envelope = device, envelope
        self.session.record(
            "device",
            {**device.to_dict(), "url": self._url, "effective_envelope": envelope.model_dump()},
        )

    def _disarm_orphan(self, state: State) -> None:
        """A device found armed or running (host restarted) is brought to rest, never adopted."""
        link = self._require_link()
        if state is State.ARMED:
            self.session.command(link, Disarm())
        elif state in (State.RUNNING, State.PAUSED):
            self.session.command(link, Stop(ramp_ms=0))

    def reconnect(self, url: str | None = None, timeout: float = 2.0) -> None:
        """Open the port again after LINK_LOST and read the device back. A latched fault stays
        latched and the device stays disarmed until the operator acknowledges and re-arms."""
        with self.lock:
            old, self._link = self._link, None
        if old is not None:
            old.close()
        if url is not None:
            self._url = resolve_port(url)
        self._open_link(timeout)

    # --- properties -----------------------------------------------------------------------
    @property
    def url(self) -> str:
        return self._url

    @property
    def is_simulator(self) -> bool:
        return self._is_simulator

    @property
    def device(self) -> DeviceSummary:
        if self._device is None:
            raise StimctlError("not connected")
        return self._device

    @property
    def envelope(self) -> SafetyEnvelope:
        return self._envelope

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
        return None if self._record is None else self._record.path

    @property
    def link(self) -> Link | None:
        return self._link

    @property
    def speed(self) -> float:
        return self._speed

    # --- helpers --------------------------------------------------------------------------
    def _require_link(self) -> Link:
        link = self._link
        if link is None or not link.is_open:
            raise InterlockError("not connected (link down): reconnect first")
        return link

    def _check(self, command: Command) -> Link:
        with self.lock:
            self.interlock.check(command)
            return self._require_link()

    def _validate(self, profile: Profile, patient: Iterable[str]) -> Report:
        return validate_profile(profile, self._envelope, patient)

    # --- actions --------------------------------------------------------------------------
    def load(
        self, profile: Profile | str | Path, *, patient: Iterable[str] | None = None
    ) -> Report:
        """Validate against the effective envelope and keep it; ValidationRefused on errors."""
        with self.lock:
            self.interlock.check(Command.LOAD)
        if not isinstance(profile, Profile):
            profile = load_profile(profile)
        if patient is not None:
            self.patient = check_patient(patient)
        report = self._validate(profile, self.patient)
        if not report.ok:
            raise ValidationRefused(report)
        step = self._device.limits["amplitude_step_ua"] if self._device else 10
        schedule = compile_schedule(profile, amplitude_step_ua=step)
        raw = profile.model_dump(mode="json", by_alias=True)
        sha = hashlib.sha256(json.dumps(raw, sort_keys=True).encode()).hexdigest()
        with self.lock:
            self._profile, self._report = profile, report
            self.session.load(profile, schedule)
        self.session.record("profile", {
            "profile": raw, "sha256": sha, "patient": sorted(self.patient),
            "warnings": [v.to_dict() for v in report.warnings],
            "expected_pulses": schedule.expected_pulses().tolist(), "blocks": schedule.n_blocks,
        })  # fmt: skip
        return report

    def check_impedance(self, timeout: float = 2.0) -> dict[int, ImpedanceReading]:
        """Measure every active channel (all device channels without a profile)."""
        link = self._check(Command.IMPEDANCE)
        channels = self._active_channels() or tuple(range(1, self.device.channels + 1))
        mask = sum(1 << (ch - 1) for ch in channels)
        result = self.session.impedance(link, ImpedanceCheck(channel_mask=mask), timeout)
        readings: dict[int, ImpedanceReading] = {}
        for ch in channels:
            item = result.channels[ch - 1]
            status = ImpedanceStatus(item.status)
            readings[ch] = ImpedanceReading(
                item.impedance_ohm, status.name, status is ImpedanceStatus.OK
            )
        with self.lock:
            self.interlock.impedance_passed(ch for ch, r in readings.items() if r.ok)
            self.interlock.impedance_failed(ch for ch, r in readings.items() if not r.ok)
        self.session.record(
            "impedance", {str(ch): {"ohm": r.ohm, "status": r.status} for ch, r in readings.items()}
        )
        return readings

    def _active_channels(self) -> tuple[int, ...]:
        return tuple(c.id for c in self._profile.channels) if self._profile else ()

    def arm(self, *, confirm: bool = False, acknowledge_warnings: bool = False) -> None:
        """Guards: profile valid against the effective envelope (re-validated now), warnings
        acknowledged, impedance passed < 60 s on every active channel, operator confirmation."""
        profile = self._profile
        report = self._validate(profile, self.patient) if profile is not None else None
        ctx = ArmContext(
            profile_loaded=profile is not None,
            profile_ok=report is not None and report.ok,
            first_error=(f"{report.errors[0].loc}: {report.errors[0].message}"
                         if report is not None and report.errors else ""),
            warnings=len(report.warnings) if report is not None else 0,
            warnings_acknowledged=acknowledge_warnings,
            active_channels=self._active_channels(),
            confirmed=confirm,
        )  # fmt: skip
        with self.lock:
            self.interlock.check_arm(ctx)
            link = self._require_link()
            before = self.interlock.state
        assert profile is not None
        mask = sum(1 << (ch - 1) for ch in ctx.active_channels)
        shape = _SHAPES[profile.waveform.shape]
        self.session.command(link, Arm(channel_mask=mask, shape=shape))
        with self.lock:
            self.interlock.accepted(Command.ARM, before)
            self._adjust_at.clear()
            self.session.armed(confirm_warnings=acknowledge_warnings)

    def start(self) -> None:
        """Queue the first blocks, then START (the device ramps up from zero)."""
        link = self._check(Command.START)
        self.session.prime()
        self.session.command(link, Start())
        with self.lock:
            self.interlock.accepted(Command.START, HostState.ARMED)
            self.session.started()

    def pause(self) -> None:
        link = self._check(Command.PAUSE)
        self.session.command(link, Pause())
        with self.lock:
            self.interlock.accepted(Command.PAUSE, HostState.RUNNING)

    def resume(self) -> None:
        link = self._check(Command.RESUME)
        self.session.command(link, Resume())
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
        base = next(c.amplitude_ma for c in profile.channels if c.id == channel)
        now = self.interlock.clock()
        with self.lock:
            current = self.session.plateau_ma[channel]
            since = now - self._adjust_at.get(channel, -math.inf)
        allowed = min(ADJUST_STEP_MA, self._envelope.max_ramp_rate_ma_per_s * since)
        delta = max(-allowed, min(allowed, delta_ma))
        target = round(max(0.0, current + delta), 6)
        if target == current:
            return current
        self._check_plateau(profile, channel, target)
        gain = round(target / base * GAIN_UNITY)
        self.session.command(link, Adjust(channel=channel, gain_permille=gain))
        with self.lock:
            self._adjust_at[channel] = now
            self.session.adjusted(channel, target, gain)
        return target

    def _check_plateau(self, profile: Profile, channel: int, target_ma: float) -> None:
        base = next(c.amplitude_ma for c in profile.channels if c.id == channel)
        if target_ma / base * GAIN_UNITY > 2 * GAIN_UNITY:
            raise InterlockError(
                f"ADJUST refused: channel {channel} at {target_ma:g} mA is above twice the"
                f" prescribed {base:g} mA (gain limit 2000 permille)"
            )
        if target_ma == 0:
            return
        channels = [c.model_copy(update={"amplitude_ma": target_ma}) if c.id == channel else c
                    for c in profile.channels]  # fmt: skip
        report = self._validate(profile.model_copy(update={"channels": channels}), self.patient)
        if not report.ok:
            v = report.errors[0]
            limit = f" (limit {v.limit:g})" if isinstance(v.limit, int | float) else ""
            raise InterlockError(
                f"ADJUST refused: channel {channel} at {target_ma:g} mA breaks {v.code}"
                f" at {v.loc}{limit}: {v.message}"
            )

    def stop(self, ramp_ms: int | None = None) -> None:
        """Operator stop: ramp down (the phase's ramp_down, else 2 s); ARMED: disarm."""
        self._stop(ramp_ms, Outcome.STOPPED)

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
            self._stop(0, Outcome.ABORTED)
        except (StimctlError, OSError):
            self.estop()

    def _stop(self, ramp_ms: int | None, outcome: Outcome) -> None:
        with self.lock:
            state = self.interlock.state
            if state is HostState.ARMED:
                link = self._check(Command.DISARM)
                command: Message = Disarm()
            else:
                link = self._check(Command.STOP)
                ramp = self.session.stop_ramp_ms() if ramp_ms is None else ramp_ms
                command = Stop(ramp_ms=max(0, min(0xFFFF, int(ramp))))
            self.session.stopping(outcome)
        try:
            self.session.command(link, command)
        except CommandRejected:
            with self.lock:
                if self.interlock.state in (HostState.FAULT, HostState.ESTOP):
                    return  # a fault got there first; output is already zero
            raise
        with self.lock:
            if isinstance(command, Disarm):
                self.interlock.accepted(Command.DISARM, state)
                self.session.finish(outcome)
            else:
                self.interlock.accepted(Command.STOP, state)

    def estop(self) -> None:
        """ESTOP at once from the caller's thread, ahead of anything else; never waits."""
        link = self._link
        sent = None
        if link is not None and link.is_open:
            with contextlib.suppress(LinkError):
                sent = link.write_urgent(EStop())
        self.session.estopped(sent)

    def acknowledge_fault(self) -> None:
        """Operator acknowledgement of a latched FAULT/ESTOP: CLEAR_FAULT, back to IDLE."""
        with self.lock:
            self.interlock.check(Command.ACKNOWLEDGE)
            link = self._require_link()
        try:  # always: the device may not have reported its latch yet (e.g. just e-stopped)
            self.session.command(link, ClearFault())
        except CommandRejected as exc:
            if exc.reason != "BAD_STATE":  # BAD_STATE: the device was not latched (host-only)
                raise
        with self.lock:
            cause = self.interlock.fault
            self.interlock.apply(Command.ACKNOWLEDGE)
        self.session.record(
            "state",
            {"from": "latched", "to": "IDLE", "acknowledged": cause.to_dict() if cause else None},
        )
        self.session.emit("state", "fault acknowledged; impedance must be checked again")

    # --- observing ------------------------------------------------------------------------
    def wait(self, timeout: float | None = None) -> Outcome | None:
        """Block until the session ends; the outcome, or None if ``timeout`` ran out first."""
        deadline = None if timeout is None else time.monotonic() + timeout
        with self.lock:
            while True:
                self.session.supervise()
                outcome = self.session.outcome
                if outcome is not None and self.session.final:
                    return outcome
                left = 0.1 if deadline is None else min(0.1, deadline - time.monotonic())
                if left <= 0:
                    return None
                self.changed.wait(left)

    def status(self) -> Status:
        with self.lock:
            self.session.supervise()
            return self.session.status()

    def on_telemetry(self, callback: Callable[[Status], None]) -> Callable[[], None]:
        return self.session.subscribe("telemetry", callback)

    def on_event(self, callback: Callable[[Event], None]) -> Callable[[], None]:
        return self.session.subscribe("event", callback)

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
                with self.lock:
                    self.changed.wait_for(lambda: self.session.device_state in _AT_REST, 0.5)
        link = self._link
        if link is not None and link.is_open:
            if self.session.device_state is State.IDLE:
                with contextlib.suppress(StimctlError, OSError):
                    self.session.command(link, Goodbye(), timeout=0.5)
            link.close()
        self.session.close_record(exit_code)
        with self.lock:
            self.interlock.disconnected()
            self.changed.notify_all()

    def __enter__(self) -> Controller:
        return self

    def __exit__(
        self,
        kind: type[BaseException] | None,
        error: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()


def _fault_name(code: int) -> str:
    try:
        return Fault(code).name
    except ValueError:
        return f"FAULT_{code}"
