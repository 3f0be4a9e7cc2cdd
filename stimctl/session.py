"""The controller's session bookkeeping: device messages (reader thread), record, status, summary.

Split out of controller.py to keep each module under ~400 lines. ``Session`` belongs to one
Controller and runs under its lock; it handles telemetry (streaming top-up, heartbeat, pulse and
charge totals, 1 Hz record lines), state and fault events, link loss, and the session record.
"""

from __future__ import annotations

import contextlib
import logging
import math
import platform
import sys
import threading
import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from stimctl.errors import CommandRejected, LinkError
from stimctl.protocol import (
    CATALOGUE_HASH,
    PROTOCOL_VERSION,
    Block,
    DeviceInfo,
    EStop,
    Fault,
    FaultEvent,
    Heartbeat,
    Hello,
    ImpedanceResult,
    Message,
    Nak,
    NakReason,
    State,
    StateEvent,
    Telemetry,
)
from stimctl.protocol.messages import field_names
from stimctl.status import (
    ChannelStatus,
    ChannelSummary,
    Event,
    FaultInfo,
    HostState,
    Outcome,
    SessionSummary,
    Status,
)
from stimctl.streamer import DEFAULT_TARGET_MS, Streamer

if TYPE_CHECKING:
    from stimctl.controller import Controller
    from stimctl.link import Link
    from stimctl.profile import Profile
    from stimctl.schedule import Schedule

__all__ = ["DEVICE_SILENCE_S", "Session", "versions"]

log = logging.getLogger(__name__)

#: No frame at all from the device for this long (host time) is a lost link.
DEVICE_SILENCE_S = 2.0
#: After this long without a frame the host sends HELLO once to see whether the device rebooted.
DEVICE_PROBE_S = 0.25
RECORD_TELEMETRY_MS = 1000  # telemetry lines in the record: one per second of device time
_LATCHED = (HostState.FAULT, HostState.ESTOP)


def versions() -> dict[str, str]:
    """Software versions for the record."""
    import numpy
    import pydantic
    import serial

    from stimctl import __version__

    return {
        "stimctl": __version__, "python": sys.version.split()[0], "platform": platform.platform(),
        "pyserial": serial.__version__, "numpy": numpy.__version__,
        "pydantic": pydantic.__version__, "protocol": str(PROTOCOL_VERSION),
        "catalogue_hash": f"{CATALOGUE_HASH:#010x}",
    }  # fmt: skip


def _fault_name(code: int) -> str:
    try:
        return Fault(code).name
    except ValueError:
        return f"FAULT_{code}"


class Session:
    """Everything the controller learns from the device during a connection."""

    def __init__(self, ctl: Controller) -> None:
        self.ctl = ctl
        self.device_state: State | None = None
        self.tel: Telemetry | None = None
        self.tel_count = 0
        self.outcome: Outcome | None = None
        self.faults: list[FaultInfo] = []
        self.naks = 0
        self.estop_repeats = 0  # ESTOP frames sent again because the device had not latched
        self.profile: Profile | None = None
        self.schedule: Schedule | None = None
        self.streamer: Streamer | None = None
        self.plateau_ma: dict[int, float] = {}
        self.gain: dict[int, int] = {}
        self.pulses: dict[int, int] = {}
        self.charge_uc: dict[int, float] = {}
        self._pulse_base: dict[int, int] = {}  # pulses counted before a device counter restart
        self._raw_pulses: dict[int, int] = {}  # the device's counters as last reported
        self.elapsed_ms = 0
        self._active = False
        self._final_after: int | None = None
        self._stop_outcome: Outcome | None = None
        self.watchdog_ms = 200  # until DEVICE_INFO says otherwise
        self._telemetry_waiters = 0
        self._clock_offset_ms: float | None = None
        self._probed_rx: float | None = None
        self._notify = False  # set by handlers: wake wait() after this message
        self._hb_frames = -1
        self._hb_device_ms = 0
        self._next_record_ms: int | None = None
        self._impedance: ImpedanceResult | None = None
        self._impedance_done = threading.Event()
        self._subscribers: dict[str, list[Callable[[Any], None]]] = {"telemetry": [], "event": []}

    # --- record and events -----------------------------------------------------------------
    def record(self, kind: str, data: dict[str, Any], durable: bool = True) -> None:
        rec = self.ctl._record
        if rec is None or rec.closed:
            return
        try:
            rec.append(kind, data, durable=durable)
        except (ValueError, OSError) as exc:  # closed meanwhile, or disk trouble: never fatal here
            log.warning("record %s: %s", kind, exc)

    def subscribe(self, kind: str, callback: Callable[[Any], None]) -> Callable[[], None]:
        with self.ctl.lock:
            self._subscribers[kind].append(callback)

        def unsubscribe() -> None:
            with self.ctl.lock, contextlib.suppress(ValueError):
                self._subscribers[kind].remove(callback)

        return unsubscribe

    def _call(self, kind: str, value: Any) -> None:
        with self.ctl.lock:
            callbacks = list(self._subscribers[kind])
        for callback in callbacks:
            try:
                callback(value)
            except Exception:
                log.exception("%s callback failed", kind)

    def emit(self, kind: str, message: str, data: dict[str, Any] | None = None) -> None:
        self._call("event", Event(kind, message, data or {}))

    # --- commands (caller's thread) ----------------------------------------------------------
    def command(self, link: Link, msg: Message, timeout: float = 1.0) -> Message:
        """Request + ACK, recorded with its answer; CommandRejected on NAK."""
        name = type(msg).__name__.upper()
        fields = {n: getattr(msg, n) for n in field_names(type(msg))}
        try:
            reply = link.request(msg, timeout=timeout)
        except CommandRejected as exc:
            with self.ctl.lock:
                self.naks += 1
            self.record(
                "command",
                {
                    "name": name,
                    **fields,
                    "result": "nak",
                    "reason": exc.reason,
                    "detail": exc.detail,
                },
            )
            self.emit("command", f"{name} refused: {exc.reason}", {"name": name})
            raise
        except LinkError as exc:
            self.record("command", {"name": name, **fields, "result": "error", "reason": str(exc)})
            raise
        self.record(
            "command",
            {"name": name, **fields, "result": "ack", "seq": getattr(reply, "ack_seq", None)},
        )
        self.emit("command", f"{name} acknowledged", {"name": name})
        return reply

    def impedance(self, link: Link, msg: Message, timeout: float) -> ImpedanceResult:
        self._impedance_done.clear()
        self._impedance = None
        self.command(link, msg)
        if not self._impedance_done.wait(timeout) or self._impedance is None:
            raise LinkError(f"no IMPEDANCE_RESULT within {timeout:g} s")
        return self._impedance

    def first_telemetry(self, timeout: float) -> Telemetry | None:
        with self.ctl.lock:
            count = self.tel_count
            self._telemetry_waiters += 1
            try:
                self.ctl.changed.wait_for(lambda: self.tel_count > count, timeout)
            finally:
                self._telemetry_waiters -= 1
            return self.tel

    # --- session life ------------------------------------------------------------------------
    def load(self, profile: Profile, schedule: Schedule) -> None:
        self.profile, self.schedule = profile, schedule
        self.plateau_ma = {c.id: c.amplitude_ma for c in profile.channels}

    def armed(self, confirm_warnings: bool) -> None:
        ctl = self.ctl
        assert self.schedule is not None and self.profile is not None
        link, device = ctl._require_link(), ctl.device
        self.plateau_ma = {c.id: c.amplitude_ma for c in self.profile.channels}
        self.gain = {c.id: 1000 for c in self.profile.channels}
        self.pulses, self.charge_uc = {}, {}
        self._pulse_base, self._raw_pulses = {}, {}
        self.elapsed_ms, self.outcome, self._final_after = 0, None, None
        self._stop_outcome = None
        self._clock_offset_ms = None
        self._active = True
        self.streamer = Streamer(
            self.schedule, device.channels, lambda m, cb: link.send(m, cb), self.guard,
            target_ms=DEFAULT_TARGET_MS, max_lookahead_ms=device.max_lookahead_ms,
            fifo_depth=device.fifo_depth, on_error=self.stream_failed, on_nak=self._block_nak,
        )  # fmt: skip
        self.record(
            "state",
            {
                "from": "IDLE",
                "to": "ARMED",
                "warnings_acknowledged": confirm_warnings,
                "operator_confirmed": True,
            },
        )

    def _block_nak(self, block: Block, nak: Nak) -> None:
        """Reader thread: a refused BLOCK goes into the record (ACKed blocks are only counted)."""
        reason = NakReason(nak.reason).name if nak.reason in NakReason._value2member_map_ else ""
        self.record("command", {"name": "BLOCK", "index": block.index, "seq": block.seq,
                                "result": "nak", "reason": reason or str(nak.reason),
                                "detail": nak.detail}, durable=False)  # fmt: skip

    def prime(self) -> None:
        if self.streamer is None:
            raise LinkError("no stream: arm first")
        self.streamer.prime()

    def started(self) -> None:
        self.emit("state", "stimulation started")

    def adjusted(self, channel: int, plateau_ma: float, gain: int) -> None:
        self.plateau_ma[channel], self.gain[channel] = plateau_ma, gain

    def stopping(self, outcome: Outcome) -> None:
        self._stop_outcome = self._stop_outcome or outcome
        if self.streamer is not None:
            self.streamer.halt(outcome.value.lower())

    def stop_ramp_ms(self) -> int:
        """The current phase's ramp_down, else 2 s; never steeper than the envelope's ramp rate."""
        from stimctl.controller import DEFAULT_STOP_RAMP_MS

        ramp = DEFAULT_STOP_RAMP_MS
        if self.profile is not None and self.schedule is not None:
            phase = self.profile.phases[self.schedule.phase_at(self.elapsed_ms)]
            ramp = round(phase.ramp_down_s * 1000) or ramp
        rate = self.ctl.envelope.max_ramp_rate_ma_per_s
        steepest = max(self.plateau_ma.values(), default=0.0) / rate * 1000
        return min(0xFFFF, max(ramp, math.ceil(steepest)))

    def finish(self, outcome: Outcome) -> None:
        """The session ended; final once one more telemetry (pulse totals) has arrived."""
        if self.outcome is None and self._active:
            self.outcome = outcome
            self._active = False
            self._final_after = self.tel_count + 1
            if self.streamer is not None:
                self.streamer.halt(outcome.value.lower())
        self._notify = True
        self.ctl.changed.notify_all()

    @property
    def final(self) -> bool:
        link = self.ctl._link
        if link is None or not link.is_open:
            return True
        return self._final_after is not None and self.tel_count >= self._final_after

    def estopped(self, sent: Message | None) -> None:
        ctl = self.ctl
        text = "e-stop by the operator" + ("" if sent else " (link down: not delivered)")
        fault = FaultInfo("ESTOP", source="host", message=text)
        with ctl.lock:
            before = ctl.interlock.state
            ctl.interlock.latch(fault, estop=True)
            self._host_changed(before, "ESTOP")
            self.faults.append(fault)
            self.finish(Outcome.ESTOP)
        self.record(
            "command",
            {
                "name": "ESTOP",
                "result": "sent" if sent else "not sent",
                "seq": getattr(sent, "seq", None),
            },
        )
        self.record("fault", fault.to_dict())
        self.emit("fault", text, fault.to_dict())

    def host_fault(self, code: str, message: str, estop: bool) -> None:
        """Latch a host-side fault (LINK_LOST, HOST_LIMIT, STREAM_REFUSED); ESTOP when asked."""
        ctl = self.ctl
        link = ctl._link
        if estop and link is not None and link.is_open:
            with contextlib.suppress(LinkError):
                link.write_urgent(EStop())
        fault = FaultInfo(code, source="host", message=message)
        with ctl.lock:
            first = ctl.interlock.fault is None
            before = ctl.interlock.state
            ctl.interlock.latch(fault)
            self._host_changed(before, code)
            self.faults.append(fault)
            if self.streamer is not None:
                self.streamer.halt(code)
            self.finish(Outcome.FAULT)
        self.record("fault", {**fault.to_dict(), "first": first})
        self.emit("fault", f"{code}: {message}", fault.to_dict())

    def guard(self, block: Block) -> str | None:
        """Host runtime guard: a BLOCK within the effective envelope at the current gains."""
        env = self.ctl.envelope
        for ch, cs in enumerate(block.channels, start=1):
            if cs.amplitude_ua == 0:
                continue
            if ch not in self.gain:
                return f"block {block.index}: current on channel {ch}, not in the profile"
            amp_ma = cs.amplitude_ua * self.gain[ch] / 1_000_000
            if amp_ma > env.max_amplitude_ma + 1e-9:
                return (
                    f"block {block.index} channel {ch}: {amp_ma:g} mA above"
                    f" max_amplitude_ma {env.max_amplitude_ma:g}"
                )
            lo, hi = env.frequency_hz
            if cs.frequency_dhz and not lo <= cs.frequency_dhz / 10 <= hi:
                return (
                    f"block {block.index} channel {ch}: {cs.frequency_dhz / 10:g} Hz outside"
                    f" frequency_hz {lo:g}..{hi:g}"
                )
            lo, hi = env.pulse_width_us
            if not lo <= cs.pulse_width_us <= hi:
                return (
                    f"block {block.index} channel {ch}: {cs.pulse_width_us} us outside"
                    f" pulse_width_us {lo:g}..{hi:g}"
                )
        return None

    def stream_failed(self, code: str, reason: str) -> None:
        """The streamer stopped: HOST_LIMIT (a block outside the effective envelope, never sent)
        or STREAM_REFUSED (the device NAKed a block, e.g. one lost on a noisy link)."""
        self.host_fault(code, reason, estop=True)

    def supervise(self) -> None:
        """Caller's thread: a device that sends nothing at all is a lost link."""
        link = self.ctl._link
        if link is None or not link.is_open or self.ctl._device is None:
            return
        silent = time.monotonic() - link.last_rx
        if silent > DEVICE_PROBE_S and self._probed_rx != link.last_rx:
            # a device that rebooted has closed the session and says nothing: ask it (HELLO is
            # allowed in every state and does not change it; its telemetry shows the latch)
            self._probed_rx = link.last_rx
            with contextlib.suppress(LinkError):
                link.send(Hello(protocol_version=PROTOCOL_VERSION), track=False)
        if silent > DEVICE_SILENCE_S:
            link.close()
            self.host_fault("LINK_LOST", f"no frame from the device for {silent:.1f} s", False)

    # --- reader thread -------------------------------------------------------------------------
    def on_lost(self, exc: BaseException | None) -> None:
        self.host_fault("LINK_LOST", f"serial link lost: {exc or 'closed'}", estop=False)

    def on_message(self, msg: Message) -> None:
        ctl = self.ctl
        status = None
        with ctl.lock:
            notify = not isinstance(msg, Telemetry) or self._telemetry_waiters > 0
            if isinstance(msg, Telemetry):
                self._on_telemetry(msg)
                if self._subscribers["telemetry"]:
                    status = self.status()
            elif isinstance(msg, StateEvent):
                self._mirror(State(msg.state), msg.time_ms)
            elif isinstance(msg, FaultEvent):
                self._fault(msg.fault, msg.channel, msg.time_ms, msg.state_before, msg.detail)
            elif isinstance(msg, ImpedanceResult):
                self._impedance = msg
                self._impedance_done.set()
            elif isinstance(msg, DeviceInfo):
                self.watchdog_ms = msg.watchdog_ms
            elif isinstance(msg, Nak):
                self.naks += 1
            if notify or self._notify:
                self._notify = False
                ctl.changed.notify_all()
        if status is not None:
            self._call("telemetry", status)

    def _on_telemetry(self, tel: Telemetry) -> None:
        prev, self.tel = self.tel, tel
        self.tel_count += 1
        if self.tel_count == self._final_after:
            self._notify = True  # the totals after the end are in: wait() may return
        state = State(tel.state)
        if prev is not None and State(prev.state) in (State.RUNNING, State.STOPPING):
            self.elapsed_ms += max(0, tel.time_ms - prev.time_ms)
        self._count_pulses(tel)
        if state is not self.device_state:
            self._mirror(state, tel.time_ms)
        if state in (State.FAULT, State.ESTOP) and self.ctl.interlock.fault is None:
            self.latch_from_telemetry(tel)
        elif state not in (State.FAULT, State.ESTOP) and self.ctl.interlock.state == "ESTOP":
            self._repeat_estop()
        streamer = self.streamer
        if streamer is not None and state in (State.ARMED, State.RUNNING, State.PAUSED):
            streamer.on_telemetry(tel, self._device_now_ms(tel))
        self._heartbeat(tel)
        if self._next_record_ms is None or tel.time_ms >= self._next_record_ms:
            self._next_record_ms = tel.time_ms + RECORD_TELEMETRY_MS
            self.record("telemetry", self._telemetry_line(tel), durable=False)

    def _repeat_estop(self) -> None:
        """The operator's ESTOP has not reached the device yet (lost on a noisy link): send it
        again with every telemetry frame (about 50 Hz) until the device reports the latch."""
        link = self.ctl._link
        if link is not None and link.is_open:
            with contextlib.suppress(LinkError):
                link.write_urgent(EStop())
                self.estop_repeats += 1

    def _device_now_ms(self, tel: Telemetry) -> float:
        """The host's estimate of device time now. Telemetry only ever arrives late, so the
        smallest (host time - device time / speed) seen is the best offset between the clocks;
        a host that stalled finds device time well past the telemetry it is only now reading.
        Under the virtual (lock-step) clock device time stands still while the host works."""
        speed = self.ctl.speed
        if math.isinf(speed):
            return float(tel.time_ms)
        now_ms = time.monotonic() * 1000
        offset = now_ms - tel.time_ms / speed
        if self._clock_offset_ms is None or offset < self._clock_offset_ms:
            self._clock_offset_ms = offset
        return (now_ms - self._clock_offset_ms) * speed

    def _count_pulses(self, tel: Telemetry) -> None:
        s = self.schedule
        pw = 0
        if s is not None and s.n_blocks:
            pw = int(s.pulse_width_us[min(tel.block_index, s.n_blocks - 1)])
        for ch, item in enumerate(tel.channels, start=1):
            raw_before = self._raw_pulses.get(ch, 0)
            if item.pulses < raw_before:  # the device restarted its counters (reset)
                self._pulse_base[ch] = self._pulse_base.get(ch, 0) + raw_before
                raw_before = 0
            if item.pulses > raw_before:
                new = (item.pulses - raw_before) * item.set_ua * pw / 1e6
                self.charge_uc[ch] = self.charge_uc.get(ch, 0.0) + new
            self._raw_pulses[ch] = item.pulses
            self.pulses[ch] = self._pulse_base.get(ch, 0) + item.pulses

    def _heartbeat(self, tel: Telemetry) -> None:
        """HEARTBEAT when nothing was written for watchdog/4 of device time."""
        link = self.ctl._link
        if link is None or not link.is_open:
            return
        if link.tx_frames != self._hb_frames:
            self._hb_frames, self._hb_device_ms = link.tx_frames, tel.time_ms
        elif tel.time_ms - self._hb_device_ms >= self.watchdog_ms / 4:
            with contextlib.suppress(LinkError):
                link.send(Heartbeat())
            self._hb_frames, self._hb_device_ms = link.tx_frames, tel.time_ms

    def _telemetry_line(self, tel: Telemetry) -> dict[str, Any]:
        return {
            "device_ms": tel.time_ms, "state": State(tel.state).name, "fifo_ms": tel.fifo_ms,
            "block_index": tel.block_index, "elapsed_s": self.elapsed_ms / 1000,
            "channels": [{"id": ch, "set_ua": c.set_ua, "measured_ua": c.measured_ua,
                          "impedance_ohm": c.impedance_ohm, "pulses": c.pulses,
                          "charge_uc": round(self.charge_uc.get(ch, 0.0), 6)}
                         for ch, c in enumerate(tel.channels, start=1)],
        }  # fmt: skip

    def _mirror(self, state: State, device_ms: int) -> None:
        previous, self.device_state = self.device_state, state
        if previous is state:
            return
        host_before = self.ctl.interlock.state
        host = self.ctl.interlock.device_state(state)
        self.record(
            "state",
            {
                "device_from": previous.name if previous else None,
                "device_to": state.name,
                "device_ms": device_ms,
                "from": host_before.value,
                "to": host.value,
            },
        )
        self.emit("state", f"device {state.name}", {"device": state.name, "host": host.value})
        streamer = self.streamer
        if state is State.RUNNING and streamer is not None:
            streamer.started(device_ms)
        elif state is State.PAUSED and streamer is not None:
            streamer.paused()
        elif state is State.IDLE and previous is State.RUNNING and self._active:
            if streamer is not None and streamer.all_sent and self._stop_outcome is None:
                self.ctl.interlock.complete()
                self.finish(Outcome.COMPLETED)
            else:
                self.finish(self._stop_outcome or Outcome.STOPPED)
        elif state is State.IDLE and previous is State.STOPPING and self._active:
            self.finish(self._stop_outcome or Outcome.STOPPED)

    def _fault(self, code: int, channel: int, device_ms: int, before: int, detail: int) -> None:
        name = _fault_name(code)
        where = f" on channel {channel}" if channel else ""
        was = State(before).name if before in State._value2member_map_ else str(before)
        fault = FaultInfo(
            name,
            channel,
            device_ms,
            source="device",
            message=f"device fault {name}{where} (was {was}); output is zero",
        )
        first = self.ctl.interlock.fault is None
        before = self.ctl.interlock.state
        self.ctl.interlock.latch(fault, estop=code == Fault.ESTOP)
        self._host_changed(before, name)
        self.faults.append(fault)
        if self.streamer is not None:
            self.streamer.halt(name)
        self.record("fault", {**fault.to_dict(), "detail": detail, "first": first})
        self.emit("fault", fault.message, fault.to_dict())
        self.finish(Outcome.ESTOP if code == Fault.ESTOP else Outcome.FAULT)

    def _host_changed(self, before: HostState, cause: str) -> None:
        after = self.ctl.interlock.state
        if after is not before:
            self.record("state", {"from": before.value, "to": after.value, "cause": cause})

    def latch_from_telemetry(self, tel: Telemetry) -> None:
        """A device found latched (at connect, or a lost FAULT_EVENT): adopt its cause."""
        if self.ctl.interlock.fault is None:
            code = tel.fault or (Fault.ESTOP if tel.state == State.ESTOP else Fault.INTERNAL)
            self._fault(code, tel.fault_channel, tel.time_ms, tel.state, 0)

    # --- snapshots -----------------------------------------------------------------------------
    def status(self) -> Status:
        ctl, tel, s = self.ctl, self.tel, self.schedule
        link = ctl._link
        channels = ()
        if tel is not None:
            channels = tuple(
                ChannelStatus(ch, c.set_ua / 1000, c.measured_ua / 1000, c.impedance_ohm,
                              c.pulses, self.plateau_ma.get(ch, 0.0))
                for ch, c in enumerate(tel.channels, start=1)
            )  # fmt: skip
        phase = s.phase_at(self.elapsed_ms) if s is not None and s.n_blocks else 0
        total_s = s.total_ms / 1000 if s is not None else 0.0
        stats = self.streamer.stats if self.streamer is not None else None
        return Status(
            state=ctl.interlock.state, fault=ctl.interlock.fault, channels=channels,
            fifo_ms=tel.fifo_ms if tel else 0,
            heartbeat_age_ms=(time.monotonic() - link.last_tx) * 1000 if link else 0.0,
            frame_errors=link.frame_errors if link else 0, naks=self.naks + (stats.naks
                                                                              if stats else 0),
            phase_index=phase, phase_count=len(self.profile.phases) if self.profile else 0,
            phase_mode=self.profile.phases[phase].mode if self.profile else "",
            elapsed_s=self.elapsed_ms / 1000,
            remaining_s=max(0.0, total_s - self.elapsed_ms / 1000),
            late_blocks=stats.late if stats else 0, underruns=stats.underruns if stats else 0,
            device_time_ms=tel.time_ms if tel else 0,
            device_state=self.device_state.name if self.device_state else "",
            blocks_sent=self.streamer.next_index if self.streamer else 0,
            blocks_total=s.n_blocks if s is not None else 0,
        )  # fmt: skip

    def summary(self) -> SessionSummary:
        s = self.schedule
        expected = s.expected_pulses().tolist() if s is not None else []
        ids = s.channel_ids if s is not None else ()
        stats = self.streamer.stats if self.streamer is not None else None
        rec = self.ctl._record
        return SessionSummary(
            outcome=self.outcome, delivered_s=self.elapsed_ms / 1000,
            channels=tuple(ChannelSummary(ch, self.pulses.get(ch, 0), int(expected[i]),
                                          round(self.charge_uc.get(ch, 0.0), 6))
                           for i, ch in enumerate(ids)),
            faults=tuple(self.faults), late_blocks=stats.late if stats else 0,
            underruns=stats.underruns if stats else 0,
            naks=self.naks + (stats.naks if stats else 0),
            record_path=str(rec.path) if rec is not None else None,
        )  # fmt: skip

    def close_record(self, exit_code: int | None) -> None:
        rec = self.ctl._record
        if rec is None or rec.closed:
            return
        summary = self.summary()
        code = (
            exit_code if exit_code is not None else (self.outcome.exit_code if self.outcome else 0)
        )
        if self.schedule is not None:
            self.record(
                "summary",
                {
                    **summary.to_dict(),
                    "blocks_total": self.schedule.n_blocks,
                    "blocks_sent": self.streamer.next_index if self.streamer else 0,
                },
            )
        with contextlib.suppress(ValueError, OSError):
            rec.close(
                {
                    "outcome": self.outcome.value if self.outcome else "not started",
                    "exit_code": code,
                }
            )
