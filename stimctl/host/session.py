"""Session: the one owner of a session's state, and the context its helpers share.

``Session`` holds what one connection learns about the current session: the loaded profile and
its report and compiled schedule, the Streamer, live plateaus and gains (and when each was last
adjusted), pulse and charge totals, delivered time, the device's last telemetry and state,
faults, the operator's E-STOP until the device confirms it, NAK and ESTOP-repeat counters, and
how the session ended. Only its own methods change these; the helpers (``DeviceMirror`` for the
device's messages, ``Stopper`` for the operator's stops) call them. A latch is one call: host
interlock to FAULT/ESTOP, the fault kept, the stream halted, the record line and the event
written together (``Journal.happened``), the session ended.

``SessionContext`` is what the session and its helpers share: the controller's lock (the
caller's thread and the link's reader thread both change the session under it) and its
condition, the host interlock, the connection, the journal and the commander.
"""

from __future__ import annotations

import contextlib
import math
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING

from stimctl.host.errors import LinkError, StimctlError
from stimctl.host.guard import BlockGuard
from stimctl.host.interlock import Command, Interlock
from stimctl.host.status import FaultInfo, HostState, Outcome
from stimctl.host.streamer import DEFAULT_TARGET_MS, Streamer
from stimctl.protocol import ChannelSetting, Message, Nak, NakReason, State, Telemetry
from stimctl.rules.electrodes import site_channels
from stimctl.rules.envelope import DEFAULT_STOP_RAMP_MS

if TYPE_CHECKING:
    from stimctl.host.commander import Commander
    from stimctl.host.connection import Connection
    from stimctl.host.journal import Journal
    from stimctl.host.schedule import Schedule
    from stimctl.rules.profile import Profile
    from stimctl.rules.report import Report

__all__ = ["AT_REST", "DEFAULT_STOP_RAMP_MS", "Session", "SessionContext"]

AT_REST = (State.IDLE, State.FAULT, State.ESTOP)
"""Device states with the output off and nothing streaming."""
DELIVERING = frozenset((State.RUNNING, State.STOPPING))  # time delivered (TELEMETRY's byte as is)
STREAMING = (State.ARMED, State.RUNNING, State.PAUSED)  # the host keeps the device's FIFO topped up
FINAL_GRACE_FRAMES = 25
"""After the end, telemetry frames (0.5 s of device time at 50 Hz) the device has to come to
rest before ``wait()`` returns anyway (a device that ignores ESTOP; the host keeps repeating it)."""


@dataclass(frozen=True, slots=True)
class SessionContext:
    """What the session and its helpers share (one object, not one argument each)."""

    lock: threading.RLock
    changed: threading.Condition  # on ``lock``: state changes, answers, faults (and telemetry)
    interlock: Interlock
    connection: Connection
    journal: Journal
    commander: Commander

    def waiting(self) -> contextlib.AbstractContextManager[object]:
        """Around a wait for the device: a lock-step simulator's time runs only inside."""
        link = self.connection.link
        return link.waiting() if link is not None else contextlib.nullcontext()


class Session:
    """Everything the controller learns about the current session; changed only through its
    methods, under the context's lock."""

    def __init__(self, ctx: SessionContext) -> None:
        self.ctx = ctx
        self.device_state: State | None = None
        self.tel: Telemetry | None = None
        self.tel_count = 0
        self.outcome: Outcome | None = None
        self.faults: list[FaultInfo] = []
        self.naks = 0
        self.estop_repeats = 0  # ESTOP frames sent again because the device had not latched
        self.estop_pending = False  # an operator ESTOP the device has not yet confirmed
        self.profile: Profile | None = None
        self.report: Report | None = None
        self.schedule: Schedule | None = None
        self.streamer: Streamer | None = None
        self.plateau_ma: dict[int, float] = {}
        self.shared_sites: dict[str, tuple[int, ...]] = {}  # site -> ids of the channels on it
        self.gain: dict[int, int] = {}
        self.pulses: dict[int, int] = {}
        self.charge_uc: dict[int, float] = {}
        self.elapsed_ms = 0
        self._adjusted_at: dict[int, float] = {}  # channel -> interlock clock of its last ADJUST
        self._most_ma: dict[int, float] = {}  # channel -> highest plateau set by ADJUST this arm
        self._pulse_base: dict[int, int] = {}  # pulses counted before a device counter restart
        self._raw_pulses: dict[int, int] = {}  # the device's counters as last reported
        self._pulse_width_at = _no_blocks  # block index -> its pulse width (us): the schedule's
        self._guard = BlockGuard()
        self._active = False
        self._final_after: int | None = None
        self._stop_outcome: Outcome | None = None
        self._clock_offset_ms: float | None = None
        self._notify = False  # wake wait() after the message being handled

    # --- session life (caller's thread) ---------------------------------------------------------
    def connected(self, device: State) -> None:
        """After HELLO: the host state follows what the device reports (a latch adopted)."""
        with self.ctx.lock:
            before = self.ctx.interlock.state
            self.ctx.interlock.connected(device)
            self._host_changed(before, "connected")

    def load(self, profile: Profile, report: Report, schedule: Schedule) -> None:
        with self.ctx.lock:
            self.profile, self.report, self.schedule = profile, report, schedule
            self._pulse_width_at = _pulse_widths(schedule)
            self.plateau_ma = {c.id: c.amplitude_ma for c in profile.channels}
            self.shared_sites = {
                site: tuple(profile.channels[i].id for i in users)
                for site, users in site_channels(profile).items()
                if len(users) > 1
            }

    def armed(self, confirm_warnings: bool, on_stream_error: Callable[[str, str], None]) -> None:
        """A new session: totals from zero, a Streamer for the schedule on the current link."""
        assert self.schedule is not None and self.profile is not None
        link, device = self.ctx.connection.require_link(), self.ctx.connection.device
        if device is None:
            raise StimctlError("not connected")
        with self.ctx.lock:
            self.plateau_ma = {c.id: c.amplitude_ma for c in self.profile.channels}
            self.gain = {c.id: 1000 for c in self.profile.channels}
            self._adjusted_at, self._most_ma = {}, {}
            self.pulses, self.charge_uc = {}, {}
            self._pulse_base, self._raw_pulses = {}, {}
            self.elapsed_ms, self.outcome, self._final_after = 0, None, None
            self._stop_outcome = None
            self._clock_offset_ms = None
            self._active = True
            self.streamer = Streamer(
                self.schedule, device.channels, link.send_packed, self.guard,
                target_ms=DEFAULT_TARGET_MS, max_lookahead_ms=device.max_lookahead_ms,
                fifo_depth=device.fifo_depth, on_error=on_stream_error, on_nak=self._block_nak,
            )  # fmt: skip
        self.ctx.journal.write("state", {"from": "IDLE", "to": "ARMED",
                                         "warnings_acknowledged": confirm_warnings,
                                         "operator_confirmed": True})  # fmt: skip

    def _block_nak(self, index: int, seq: int, nak: Nak) -> None:
        """Reader thread: a refused BLOCK goes into the record (ACKed blocks are only counted)."""
        reason = NakReason(nak.reason).name if nak.reason in NakReason._value2member_map_ else ""
        self.ctx.journal.write("command", {"name": "BLOCK", "index": index, "seq": seq,
                                           "result": "nak", "reason": reason or str(nak.reason),
                                           "detail": nak.detail}, durable=False)  # fmt: skip

    def prime(self, timeout: float = 2.0) -> None:
        """Queue the first blocks and wait until the device has the first one (a block lost on
        the way is written again), so that START never finds the FIFO empty."""
        streamer = self.streamer
        if streamer is None:
            raise LinkError("no stream: arm first")
        streamer.prime()
        with self.ctx.connection.require_link().waiting():
            taken = streamer.wait_accepted(1, timeout)
        if not taken or streamer.accepted < 1:
            raise LinkError(f"the device did not take the first block within {timeout:g} s")

    def started(self) -> None:
        self.ctx.journal.announce("state", "stimulation started")

    def retransmits(self) -> tuple[int, int]:
        """(blocks, commands) written again after a loss on the link, this session."""
        link = self.ctx.connection.link
        blocks = self.streamer.stats.resent if self.streamer is not None else 0
        return blocks, link.commands_resent if link is not None else 0

    # --- live plateaus (ADJUST) -----------------------------------------------------------------
    def since_adjusted(self, channel: int, now: float) -> float:
        """Seconds (interlock clock) since the last ADJUST of ``channel`` or of any channel on
        a needle with it: channels on one needle rise together."""
        with self.ctx.lock:
            needle = {channel}.union(*(ids for ids in self.shared_sites.values()
                                       if channel in ids))  # fmt: skip
            return now - max(self._adjusted_at.get(ch, -math.inf) for ch in needle)

    def adjusted(self, channel: int, plateau_ma: float, gain: int, at: float) -> None:
        """The device took ADJUST: ``channel`` at ``plateau_ma`` (``gain`` permille), at ``at``."""
        with self.ctx.lock:
            self.plateau_ma[channel], self.gain[channel] = plateau_ma, gain
            self._adjusted_at[channel] = at
            self._most_ma[channel] = max(self._most_ma.get(channel, 0.0), plateau_ma)

    @property
    def most_plateau_ma(self) -> dict[int, float]:
        """Per channel, the highest plateau ADJUST set since ARM."""
        with self.ctx.lock:
            return dict(self._most_ma)

    # --- ending ---------------------------------------------------------------------------------
    def stopping(self, outcome: Outcome) -> None:
        """A stop was asked for: ``outcome`` once the device is back at rest; no more blocks."""
        self._stop_outcome = self._stop_outcome or outcome
        self.halt_stream(outcome.value.lower())

    def halt_stream(self, reason: str) -> None:
        if self.streamer is not None:
            self.streamer.halt(reason)

    def stop_ramp_ms(self) -> int:
        """The current phase's ramp_down, else 2 s; never steeper than the envelope's ramp rate."""
        ramp = DEFAULT_STOP_RAMP_MS
        if self.profile is not None and self.schedule is not None:
            phase = self.profile.phases[self.schedule.phase_at(self.elapsed_ms)]
            ramp = round(phase.ramp_down_s * 1000) or ramp
        rate = self.ctx.connection.envelope.max_ramp_rate_ma_per_s
        steepest = max(self.plateau_ma.values(), default=0.0) / rate * 1000
        return min(0xFFFF, max(ramp, math.ceil(steepest)))

    def finish(self, outcome: Outcome) -> None:
        """The session ended; final once one more telemetry (pulse totals) has arrived."""
        with self.ctx.lock:
            if self.outcome is None and self._active:
                self.outcome = outcome
                self._active = False
                self._final_after = self.tel_count + 1
                self.halt_stream(outcome.value.lower())
            self._notify = True
            self.ctx.changed.notify_all()

    @property
    def final(self) -> bool:
        """The totals are in: a telemetry frame after the end shows the device at rest (or the
        device has had FINAL_GRACE_FRAMES more frames to get there, or the link is down)."""
        link = self.ctx.connection.link
        if link is None or not link.is_open:
            return True
        if self._final_after is None or self.tel_count < self._final_after:
            return False
        at_rest = self.device_state in AT_REST
        return at_rest or self.tel_count >= self._final_after + FINAL_GRACE_FRAMES

    # --- latches: faults and the operator's E-STOP (any thread) ---------------------------------
    def _latch(self, fault: FaultInfo, estop: bool = False) -> bool:
        """Host FAULT/ESTOP (its state line), the fault kept, the stream halted; True when
        ``fault`` is the first cause."""
        interlock = self.ctx.interlock
        first, before = interlock.fault is None, interlock.state
        interlock.latch(fault, estop=estop)
        self._host_changed(before, fault.code)
        self.faults.append(fault)
        self.halt_stream(fault.code)
        return first

    def _host_changed(self, before: HostState, cause: str) -> None:
        after = self.ctx.interlock.state
        if after is not before:
            self.ctx.journal.write("state", {"from": before.value, "to": after.value,
                                             "cause": cause})  # fmt: skip

    def faulted(
        self, fault: FaultInfo, *, estop: bool = False, detail: int | None = None,
        announce: str | None = None,
    ) -> None:  # fmt: skip
        """A fault, the device's or the host's (LINK_LOST, HOST_LIMIT, STREAM_REFUSED): latched,
        its ``fault`` line (with the device's ``detail``) and event, the session ended."""
        with self.ctx.lock:
            first = self._latch(fault, estop)
            line = {**fault.to_dict(), **({} if detail is None else {"detail": detail}),
                    "first": first}  # fmt: skip
            self.ctx.journal.happened("fault", line, announce or fault.message, fault.to_dict())
            self.finish(Outcome.ESTOP if estop else Outcome.FAULT)

    def acknowledged(self) -> None:
        """The operator acknowledged the latch (the device cleared its own): host IDLE, the cause
        and every impedance check forgotten; its state line and event."""
        with self.ctx.lock:
            cause = self.ctx.interlock.fault
            self.ctx.interlock.apply(Command.ACKNOWLEDGE)
        line = {"from": "latched", "to": "IDLE", "acknowledged": cause.to_dict() if cause else None}
        why = "fault acknowledged; impedance must be checked again"
        self.ctx.journal.happened("state", line, why)

    def estop_requested(self) -> None:
        """The operator's ESTOP is on its way: repeated with telemetry until the device latches
        (no lock: an e-stop never waits for the reader thread)."""
        self.estop_pending = True

    def estop_repeated(self) -> None:
        with self.ctx.lock:
            self.estop_repeats += 1

    def device_latched(self) -> None:
        """The device reports FAULT/ESTOP: its output is zero, the operator's ESTOP arrived."""
        if self.estop_pending:
            self.estop_pending, self._notify = False, True

    def estop_confirmed(self, timeout: float) -> bool:
        """Wait (caller's thread) until the device has reported the operator's ESTOP latched."""
        with self.ctx.changed:
            return self.ctx.changed.wait_for(lambda: not self.estop_pending, timeout)

    def estopped(self, sent: Message | None) -> None:
        """The operator's ESTOP (``sent``: the frame as written, None if the link was down)."""
        text = "e-stop by the operator" + ("" if sent else " (link down: not delivered)")
        fault = FaultInfo("ESTOP", source="host", message=text)
        with self.ctx.lock:
            self._latch(fault, estop=True)
            self.finish(Outcome.ESTOP)
        result = "sent" if sent else "not sent"
        line = {"name": "ESTOP", "result": result, "seq": getattr(sent, "seq", None)}
        self.ctx.journal.write("command", line)
        self.ctx.journal.happened("fault", fault.to_dict(), text, fault.to_dict())

    def record_failed(self, fault: FaultInfo, stop_sent: bool) -> bool:
        """The record failed (``fault``: RECORD_FAILED); ``stop_sent``: a STOP or DISARM for it
        goes to the device now. An active session (or one being stopped for it) is latched and
        ends when the device is back at rest (at once when only armed); True when latched."""
        interlock = self.ctx.interlock
        with self.ctx.lock:
            active = (HostState.ARMED, HostState.RUNNING, HostState.PAUSED, HostState.STOPPING)
            latch = interlock.fault is None and (interlock.state in active or stop_sent)
            if latch:
                self._latch(fault)
                self.stopping(Outcome.FAULT)
            if self.device_state is State.ARMED and (latch or stop_sent):
                self.finish(Outcome.FAULT)  # disarmed: nothing was delivered
        return latch

    # --- device reports (reader thread, under the lock) -----------------------------------------
    def count_nak(self) -> None:
        """Every NAK frame the device sent (commands and blocks), counted once."""
        with self.ctx.lock:
            self.naks += 1

    def take_notify(self) -> bool:
        """Whether the message being handled must wake ``wait()`` (and clear that)."""
        notify, self._notify = self._notify, False
        return notify

    def count_telemetry(self, tel: Telemetry) -> None:
        """Keep ``tel``; add delivered time (device RUNNING/STOPPING), pulses and charge."""
        prev, self.tel = self.tel, tel
        self.tel_count += 1
        if self.tel_count == self._final_after:
            self._notify = True  # the totals after the end are in: wait() may return
        if prev is not None and prev.state in DELIVERING:
            self.elapsed_ms += max(0, tel.time_ms - prev.time_ms)
        self._count_pulses(tel)

    def _count_pulses(self, tel: Telemetry) -> None:
        """Per channel, the pulses and charge since the last frame (from the device's running
        counters; a channel whose counter has not moved costs one comparison)."""
        raw, charge = self._raw_pulses, self.charge_uc
        pw = -1  # looked up once a channel has new pulses
        for ch, item in enumerate(tel.channels, start=1):
            pulses = item.pulses
            raw_before = raw.get(ch)
            if pulses == raw_before:
                continue  # nothing new: its totals stand
            if raw_before is None:
                raw_before = 0
            elif pulses < raw_before:  # the device restarted its counters (reset)
                self._pulse_base[ch] = self._pulse_base.get(ch, 0) + raw_before
                raw_before = 0
            if pulses > raw_before:
                if pw < 0:
                    pw = self._pulse_width_at(tel.block_index)
                new = (pulses - raw_before) * item.set_ua * pw / 1e6
                charge[ch] = charge.get(ch, 0.0) + new
            raw[ch] = pulses
            self.pulses[ch] = self._pulse_base.get(ch, 0) + pulses

    def top_up(self, tel: Telemetry, state: State) -> None:
        """Stream blocks to keep the device's FIFO at its target while it takes them
        (``state``: the frame's)."""
        streamer = self.streamer
        if streamer is not None and state in STREAMING:
            streamer.on_telemetry(tel, self._device_now_ms(tel))

    def _device_now_ms(self, tel: Telemetry) -> float:
        """The host's estimate of device time now. Telemetry only ever arrives late, so the
        smallest (host time - device time / speed) seen is the best offset between the clocks;
        a host that stalled finds device time well past the telemetry it is only now reading.
        Under the virtual (lock-step) clock device time stands still while the host works."""
        speed = self.ctx.connection.speed
        if math.isinf(speed):
            return float(tel.time_ms)
        now_ms = time.monotonic() * 1000
        offset = now_ms - tel.time_ms / speed
        if self._clock_offset_ms is None or offset < self._clock_offset_ms:
            self._clock_offset_ms = offset
        return (now_ms - self._clock_offset_ms) * speed

    def device_reported(self, state: State, device_ms: int) -> None:
        """The device is in ``state``: when that is a move, the host state follows (its line and
        event), the stream follows, and a move that ends the session ends it."""
        previous, self.device_state = self.device_state, state
        if previous is state:
            return
        interlock = self.ctx.interlock
        host_before = interlock.state
        host = interlock.device_state(state)
        line = {"device_from": previous.name if previous else None, "device_to": state.name,
                "device_ms": device_ms, "from": host_before.value, "to": host.value}  # fmt: skip
        event = {"device": state.name, "host": host.value}
        self.ctx.journal.happened("state", line, f"device {state.name}", event)
        ended = self._stream_follows(previous, state, device_ms)
        if ended is Outcome.COMPLETED:
            interlock.complete()
        if ended is not None:
            self.finish(ended)

    def _stream_follows(
        self, previous: State | None, state: State, device_ms: int
    ) -> Outcome | None:
        """The stream follows the device's new state; the outcome if this move ends the session
        (COMPLETED: back to IDLE from RUNNING with every block sent and no stop asked for)."""
        streamer = self.streamer
        if state is State.RUNNING and streamer is not None:
            streamer.started(device_ms)
        elif state is State.PAUSED and streamer is not None:
            streamer.paused()
        elif state is State.IDLE and previous is State.RUNNING and self._active:
            if streamer is not None and streamer.all_sent and self._stop_outcome is None:
                return Outcome.COMPLETED
            return self._stop_outcome or Outcome.STOPPED
        elif state is State.IDLE and previous is State.STOPPING and self._active:
            return self._stop_outcome or Outcome.STOPPED
        return None

    def guard(self, index: int, channels: tuple[ChannelSetting, ...]) -> str | None:
        """Host runtime guard (``stimctl.host.guard``): BLOCK ``index`` with settings ``channels``
        within the effective envelope at the current gains, per channel and per shared site."""
        return self._guard.settings(
            index, channels, self.ctx.connection.envelope, self.gain, self.shared_sites
        )


def _no_blocks(index: int) -> int:
    return 0  # no schedule: no charge counted


def _pulse_widths(schedule: Schedule) -> Callable[[int], int]:
    """Block index -> the schedule's pulse width (us) there; past the end, the last block's
    (plain ints: looked up at every telemetry frame)."""
    widths, last = schedule.pulse_width_us.tolist(), schedule.n_blocks - 1
    return (lambda i: widths[i if i < last else last]) if last >= 0 else _no_blocks
