"""Session bookkeeping: profile and stream, the device's last telemetry, totals, outcome, snapshots.

``Session`` holds what one connection learns about the current session: the loaded profile and
its compiled schedule, the Streamer, live plateaus and gains, pulse and charge totals, delivered
time, the device's last telemetry and state, faults, NAK and ESTOP-repeat counters, and how the
session ended. Its state is guarded by the controller's lock: the caller's thread (the actions)
and the link's reader thread (``stimctl.host.mirror``) both update it under that lock.
"""

from __future__ import annotations

import math
import threading
import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from stimctl.host.errors import LinkError, StimctlError
from stimctl.host.guard import check_block
from stimctl.host.status import (
    ChannelStatus,
    ChannelSummary,
    FaultInfo,
    HostState,
    Outcome,
    SessionSummary,
    Status,
)
from stimctl.host.streamer import DEFAULT_TARGET_MS, Streamer
from stimctl.protocol import Block, Nak, NakReason, State, Telemetry
from stimctl.rules.electrodes import site_channels
from stimctl.rules.envelope import DEFAULT_STOP_RAMP_MS

if TYPE_CHECKING:
    from stimctl.host.connection import Connection
    from stimctl.host.recorder import Recorder
    from stimctl.host.schedule import Schedule
    from stimctl.host.subscribers import Subscribers
    from stimctl.rules.profile import Profile

__all__ = ["DEFAULT_STOP_RAMP_MS", "Session"]

AT_REST = (State.IDLE, State.FAULT, State.ESTOP)
"""Device states with the output off and nothing streaming."""
FINAL_GRACE_FRAMES = 25
"""After the end, telemetry frames (0.5 s of device time at 50 Hz) the device has to come to
rest before ``wait()`` returns anyway (a device that ignores ESTOP; the host keeps repeating it)."""


class Session:
    """Everything the controller learns from the device during a connection."""

    def __init__(
        self,
        changed: threading.Condition,
        connection: Connection,
        recorder: Recorder,
        subscribers: Subscribers,
    ) -> None:
        self._changed = changed
        self._connection = connection
        self._recorder = recorder
        self._subscribers = subscribers
        self.device_state: State | None = None
        self.tel: Telemetry | None = None
        self.tel_count = 0
        self.outcome: Outcome | None = None
        self.faults: list[FaultInfo] = []
        self.naks = 0
        self.estop_repeats = 0  # ESTOP frames sent again because the device had not latched
        self.estop_pending = False  # an operator ESTOP the device has not yet confirmed
        self.profile: Profile | None = None
        self.schedule: Schedule | None = None
        self.streamer: Streamer | None = None
        self.plateau_ma: dict[int, float] = {}
        self.shared_sites: dict[str, tuple[int, ...]] = {}  # site -> ids of the channels on it
        self.gain: dict[int, int] = {}
        self.pulses: dict[int, int] = {}
        self.charge_uc: dict[int, float] = {}
        self._pulse_base: dict[int, int] = {}  # pulses counted before a device counter restart
        self._raw_pulses: dict[int, int] = {}  # the device's counters as last reported
        self.elapsed_ms = 0
        self._active = False
        self._final_after: int | None = None
        self._stop_outcome: Outcome | None = None
        self._clock_offset_ms: float | None = None
        self.notify_pending = False  # wake wait() after the message being handled

    # --- session life (caller's thread, under the lock) ---------------------------------------
    def estop_confirmed(self, timeout: float) -> bool:
        """Wait (caller's thread) until the device has reported the operator's ESTOP latched."""
        with self._changed:
            return self._changed.wait_for(lambda: not self.estop_pending, timeout)

    def count_nak(self) -> None:
        """Every NAK frame the device sent (commands and blocks), counted once."""
        with self._changed:
            self.naks += 1

    def load(self, profile: Profile, schedule: Schedule) -> None:
        self.profile, self.schedule = profile, schedule
        self.plateau_ma = {c.id: c.amplitude_ma for c in profile.channels}
        self.shared_sites = {
            site: tuple(profile.channels[i].id for i in users)
            for site, users in site_channels(profile).items()
            if len(users) > 1
        }

    def armed(self, confirm_warnings: bool, on_stream_error: Callable[[str, str], None]) -> None:
        """A new session: totals from zero, a Streamer for the schedule on the current link."""
        assert self.schedule is not None and self.profile is not None
        link, device = self._connection.require_link(), self._connection.device
        if device is None:
            raise StimctlError("not connected")
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
            fifo_depth=device.fifo_depth, on_error=on_stream_error, on_nak=self._block_nak,
        )  # fmt: skip
        self._recorder.write(
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
        self._recorder.write("command", {"name": "BLOCK", "index": block.index, "seq": block.seq,
                                         "result": "nak", "reason": reason or str(nak.reason),
                                         "detail": nak.detail}, durable=False)  # fmt: skip

    def prime(self, timeout: float = 2.0) -> None:
        """Queue the first blocks and wait until the device has the first one (a block lost on
        the way is written again), so that START never finds the FIFO empty."""
        streamer = self.streamer
        if streamer is None:
            raise LinkError("no stream: arm first")
        streamer.prime()
        with self._connection.require_link().waiting():
            taken = streamer.wait_accepted(1, timeout)
        if not taken or streamer.accepted < 1:
            raise LinkError(f"the device did not take the first block within {timeout:g} s")

    def retransmits(self) -> tuple[int, int]:
        """(blocks, commands) written again after a loss on the link, this session."""
        link = self._connection.link
        blocks = self.streamer.stats.resent if self.streamer is not None else 0
        return blocks, link.commands_resent if link is not None else 0

    def started(self) -> None:
        self._subscribers.emit("state", "stimulation started")

    def adjusted(self, channel: int, plateau_ma: float, gain: int) -> None:
        self.plateau_ma[channel], self.gain[channel] = plateau_ma, gain

    def stopping(self, outcome: Outcome) -> None:
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
        rate = self._connection.envelope.max_ramp_rate_ma_per_s
        steepest = max(self.plateau_ma.values(), default=0.0) / rate * 1000
        return min(0xFFFF, max(ramp, math.ceil(steepest)))

    def finish(self, outcome: Outcome) -> None:
        """The session ended; final once one more telemetry (pulse totals) has arrived."""
        if self.outcome is None and self._active:
            self.outcome = outcome
            self._active = False
            self._final_after = self.tel_count + 1
            self.halt_stream(outcome.value.lower())
        self.notify_pending = True
        self._changed.notify_all()

    @property
    def final(self) -> bool:
        """The totals are in: a telemetry frame after the end shows the device at rest (or the
        device has had FINAL_GRACE_FRAMES more frames to get there, or the link is down)."""
        link = self._connection.link
        if link is None or not link.is_open:
            return True
        if self._final_after is None or self.tel_count < self._final_after:
            return False
        at_rest = self.device_state in AT_REST
        return at_rest or self.tel_count >= self._final_after + FINAL_GRACE_FRAMES

    # --- device reports (reader thread, under the lock) -----------------------------------------
    def count_telemetry(self, tel: Telemetry) -> None:
        """Keep ``tel``; add delivered time (device RUNNING/STOPPING), pulses and charge."""
        prev, self.tel = self.tel, tel
        self.tel_count += 1
        if self.tel_count == self._final_after:
            self.notify_pending = True  # the totals after the end are in: wait() may return
        if prev is not None and State(prev.state) in (State.RUNNING, State.STOPPING):
            self.elapsed_ms += max(0, tel.time_ms - prev.time_ms)
        self._count_pulses(tel)

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

    def top_up(self, tel: Telemetry) -> None:
        """Stream blocks to keep the device's FIFO at its target while it takes them."""
        streamer = self.streamer
        if streamer is not None and State(tel.state) in (State.ARMED, State.RUNNING, State.PAUSED):
            streamer.on_telemetry(tel, self._device_now_ms(tel))

    def _device_now_ms(self, tel: Telemetry) -> float:
        """The host's estimate of device time now. Telemetry only ever arrives late, so the
        smallest (host time - device time / speed) seen is the best offset between the clocks;
        a host that stalled finds device time well past the telemetry it is only now reading.
        Under the virtual (lock-step) clock device time stands still while the host works."""
        speed = self._connection.speed
        if math.isinf(speed):
            return float(tel.time_ms)
        now_ms = time.monotonic() * 1000
        offset = now_ms - tel.time_ms / speed
        if self._clock_offset_ms is None or offset < self._clock_offset_ms:
            self._clock_offset_ms = offset
        return (now_ms - self._clock_offset_ms) * speed

    def device_moved(self, previous: State | None, state: State, device_ms: int) -> Outcome | None:
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

    def guard(self, block: Block) -> str | None:
        """Host runtime guard (``stimctl.host.guard``): a BLOCK within the effective envelope at
        the current gains, per channel and per shared electrode site."""
        return check_block(block, self._connection.envelope, self.gain, self.shared_sites)

    # --- snapshots and record lines -------------------------------------------------------------
    def telemetry_line(self, tel: Telemetry) -> dict[str, Any]:
        """The record's 1 Hz ``telemetry`` line."""
        return {
            "device_ms": tel.time_ms, "state": State(tel.state).name, "fifo_ms": tel.fifo_ms,
            "block_index": tel.block_index, "elapsed_s": self.elapsed_ms / 1000,
            "channels": [{"id": ch, "set_ua": c.set_ua, "measured_ua": c.measured_ua,
                          "impedance_ohm": c.impedance_ohm, "pulses": c.pulses,
                          "charge_uc": round(self.charge_uc.get(ch, 0.0), 6)}
                         for ch, c in enumerate(tel.channels, start=1)],
        }  # fmt: skip

    def status(self, state: HostState, fault: FaultInfo | None) -> Status:
        """The ``Status`` snapshot, with the host interlock's ``state`` and ``fault``."""
        tel, s = self.tel, self.schedule
        link = self._connection.link
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
            state=state, fault=fault, channels=channels,
            fifo_ms=tel.fifo_ms if tel else 0,
            heartbeat_age_ms=(time.monotonic() - link.last_tx) * 1000 if link else 0.0,
            frame_errors=link.frame_errors if link else 0, naks=self.naks,
            phase_index=phase, phase_count=len(self.profile.phases) if self.profile else 0,
            phase_mode=self.profile.phases[phase].mode if self.profile else "",
            elapsed_s=self.elapsed_ms / 1000,
            remaining_s=max(0.0, total_s - self.elapsed_ms / 1000),
            late_blocks=stats.late if stats else 0, underruns=stats.underruns if stats else 0,
            device_time_ms=tel.time_ms if tel else 0,
            device_state=self.device_state.name if self.device_state else "",
            blocks_sent=self.streamer.next_index if self.streamer else 0,
            blocks_total=s.n_blocks if s is not None else 0,
            retransmits=sum(self.retransmits()),
        )  # fmt: skip

    def summary(self) -> SessionSummary:
        s = self.schedule
        expected = s.expected_pulses().tolist() if s is not None else []
        ids = s.channel_ids if s is not None else ()
        stats = self.streamer.stats if self.streamer is not None else None
        path = self._recorder.path
        return SessionSummary(
            outcome=self.outcome, delivered_s=self.elapsed_ms / 1000,
            channels=tuple(ChannelSummary(ch, self.pulses.get(ch, 0), int(expected[i]),
                                          round(self.charge_uc.get(ch, 0.0), 6))
                           for i, ch in enumerate(ids)),
            faults=tuple(self.faults), late_blocks=stats.late if stats else 0,
            underruns=stats.underruns if stats else 0,
            naks=self.naks,
            record_path=str(path) if path is not None else None,
            retransmits=sum(self.retransmits()),
        )  # fmt: skip

    def summary_line(self) -> dict[str, Any] | None:
        """The record's ``summary`` line (None before a profile was loaded)."""
        if self.schedule is None:
            return None
        blocks_resent, commands_resent = self.retransmits()
        link = self._connection.link
        return {
            **self.summary().to_dict(),
            "blocks_total": self.schedule.n_blocks,
            "blocks_sent": self.streamer.next_index if self.streamer else 0,
            "link": {
                "blocks_resent": blocks_resent, "commands_resent": commands_resent,
                "estop_repeats": self.estop_repeats,
                "frame_errors": link.frame_errors if link is not None else 0,
                "sessions_reopened": link.sessions_reopened if link is not None else 0,
                "hello_probes": link.probes if link is not None else 0,
                "tx_gap_max_ms": round(link.tx_gap_max_s * 1000, 1) if link is not None else 0.0,
                "priority": link.priority if link is not None else "",
            },
        }  # fmt: skip

    def end_line(self, exit_code: int | None) -> dict[str, Any]:
        """The record's ``end`` line: the outcome and the exit code (the outcome's by default)."""
        code = (
            exit_code if exit_code is not None else (self.outcome.exit_code if self.outcome else 0)
        )
        return {"outcome": self.outcome.value if self.outcome else "not started", "exit_code": code}
