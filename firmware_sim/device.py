"""The device main loop: RX bytes -> decoder -> commands, FIFO, watchdog, telemetry, TX bytes."""

from __future__ import annotations

import struct
from collections import deque
from dataclasses import replace
from typing import Any

from firmware_sim import commands, faults, reports, targets
from firmware_sim.boot import boot
from firmware_sim.clock import RealClock, VirtualClock
from firmware_sim.config import DeviceConfig
from firmware_sim.fastpath import RUNNING, STOPPING, quiet_horizon, run_quiet
from firmware_sim.faults import LinkFaults
from firmware_sim.interlock import LIVE_STATES, Event
from firmware_sim.limits import LimitError
from firmware_sim.output import OutputStage
from firmware_sim.trace import TraceWriter
from stimctl.protocol import (
    PROTOCOL_VERSION,
    SEQ_MODULO,
    Ack,
    Block,
    Fault,
    FaultEvent,
    Hello,
    Invalid,
    Message,
    Nak,
    State,
    StateEvent,
    encode,
)
from stimctl.protocol.constants import HEADER_FORMAT
from stimctl.protocol.framing import encode_body
from stimctl.protocol.payload import record_structs

__all__ = ["Device", "DeviceConfig"]

_ACK = struct.Struct(HEADER_FORMAT + record_structs(Ack)[0].format.lstrip("<"))  # a whole body


class Device:
    """A model of the stimulator firmware, driven by ticks. Not thread-safe: wrap it in a lock."""

    # Slots: the device has more fields than an instance dict shares keys for (30), and its hot
    # path reads them per frame; __dict__ keeps other attributes possible (tests, benches).
    __slots__ = (
        "__dict__", "__weakref__", "_deferred", "_in_command", "_tx", "armed_mask", "block_passed",
        "boot_tick", "clock", "config", "counters", "decoder", "fifo", "first_start_tick", "gains",
        "impedance_due", "interlock", "last_command", "last_frame_tick", "last_rx_tick", "limits",
        "link", "next_telemetry", "output_stage", "pending_violation", "reramp_from_tick",
        "reramp_rate_na_per_s", "rx_buffer", "rx_delayed", "scheduled_faults", "session_open",
        "stop_end", "stop_from", "stop_ticks", "telemetry_ticks", "tick_count", "tick_us",
        "ticks_per_ms", "trace", "tx_delayed", "tx_seq", "watchdog_ticks",
    )  # fmt: skip

    def __init__(
        self, config: DeviceConfig | None = None, clock: VirtualClock | RealClock | None = None
    ) -> None:
        self.config = cfg = config or DeviceConfig()
        self.clock = clock or VirtualClock()
        if cfg.tick_hz % 1000 or 1_000_000 % cfg.tick_hz or cfg.tick_hz % cfg.telemetry_hz:
            raise ValueError(f"tick_hz must be a multiple of 1000 dividing 1e6, got {cfg.tick_hz}")
        self.limits = cfg.limits
        self.tick_us = 1_000_000 // cfg.tick_hz
        self.ticks_per_ms = max(1, 1000 // self.tick_us)
        self.watchdog_ticks = cfg.watchdog_ms * self.ticks_per_ms
        self.telemetry_ticks = cfg.tick_hz // cfg.telemetry_hz
        self.tick_count = 0
        self.boot_tick = 0
        self.link = LinkFaults(cfg.drop, cfg.flip, cfg.delay_ms, cfg.seed)
        self.trace = TraceWriter(cfg.trace, self._trace_ns, lambda: self.time_ms)
        self.rx_buffer = bytearray()  # received, not yet decoded
        self._tx = bytearray()
        self.rx_delayed: deque[tuple[int, bytes]] = deque()  # (due tick, bytes): link delay
        self.tx_delayed: deque[tuple[int, bytes]] = deque()
        self.scheduled_faults = [s for s in cfg.faults if s.at_ms is not None]
        self.first_start_tick: int | None = None
        self.counters: dict[str, int] = {
            "frames_rx": 0, "naks": 0, "tx_dropped": 0, "duplicates": 0, "sessions_expired": 0,
        }  # fmt: skip
        self.last_frame_tick: int | None = None  # of the last frame received (last_rx_ms)
        self._in_command = False
        self.pending_violation: LimitError | None = None
        self._deferred: list[Message] = []
        self.output_stage = OutputStage(
            cfg.limits, self.tick_us, [cfg.impedance(c) for c in range(1, cfg.channels + 1)],
            cfg.pulse_log_ms, self._on_output,
        )  # fmt: skip
        boot(self)
        self.session_open = False
        self.apply_state(Event.BOOTED)
        for spec in cfg.faults:
            if spec.at_ms is None:
                self.inject(spec.kind, spec.channel, spec.value)

    # --- public driving API --------------------------------------------------------------------

    @property
    def state(self) -> State:
        return self.interlock.state

    @property
    def fault(self) -> Fault:
        return self.interlock.fault

    @property
    def time_ms(self) -> int:
        return self.tick_count * self.tick_us // 1000

    @property
    def last_rx_ms(self) -> int | None:
        """Device time of the last frame received (None before the first)."""
        tick = self.last_frame_tick
        return None if tick is None else tick * self.tick_us // 1000

    @property
    def tx_pending(self) -> int:
        return len(self._tx)

    def receive(self, data: bytes) -> None:
        """Bytes from the port (through the link faults); handled at the next tick, or at once
        by ``service_rx`` (a real-time server's receive interrupt)."""
        link = self.link
        if link.drop or link.flip:
            data = link.apply(bytes(data))
        if not data:
            return
        if link.delay_ms:
            self.rx_delayed.append(
                (self.tick_count + link.delay_ms * self.ticks_per_ms, bytes(data))
            )
        else:
            self.rx_buffer += data  # a copy (the caller may reuse its buffer)

    def read_tx(self, size: int = -1) -> bytes:
        """Take up to ``size`` bytes (all when negative) the device has sent."""
        if size < 0 or size >= len(self._tx):
            out = bytes(self._tx)
            self._tx.clear()
            return out
        out = bytes(self._tx[:size])
        del self._tx[:size]
        return out

    def tick(self) -> None:
        """One device tick: output for the interval ending now, then commands, faults, telemetry."""
        self.tick_count = now = self.tick_count + 1
        if self.scheduled_faults and self.first_start_tick is not None:
            faults.run_scheduled(self, now)
        stage = self.output_stage
        if stage.drifting:
            stage.drift(1)
        state = self.interlock.state
        if state is RUNNING or state is STOPPING:
            # The tick's output: ramps, slew and electrode check when due (_settle; a settled,
            # checked stream has none: no call), then its pulses and block time (inlined here:
            # a streamed block runs one such tick, the one receiving it)
            busy = state is STOPPING or self.reramp_rate_na_per_s or not stage.settled
            if (not busy and stage.checked) or self._settle(now, state):
                run = stage._run  # stage.pulse(now - 1, 1), its common case: the run goes on
                if run and stage._run0 + run == now - 1:
                    stage._run = run + 1
                else:
                    stage.pulse(now - 1, 1)
                fifo = self.fifo
                fifo.elapsed = elapsed = fifo.elapsed + 1
                current = fifo.current
                if current is None or elapsed >= current.duration_ms * self.ticks_per_ms:
                    targets.next_block(self)  # (the playing block's remaining time is up)
        if self.rx_delayed or self.tx_delayed:
            self._release(now)
        if self.rx_buffer:
            self._process_rx(now)
        if self.session_open:
            silent = now - self.last_rx_tick
            if silent >= self.watchdog_ticks and not self.interlock.latched:
                self._watchdog(silent)
        if self.impedance_due is not None and now >= self.impedance_due[0]:
            self._finish_impedance_check()
        if self.session_open and now >= self.next_telemetry:
            self.next_telemetry = now + self.telemetry_ticks
            self._put(reports.telemetry_frame(self))

    def _watchdog(self, silent: int) -> None:
        """No valid frame for watchdog_ms: COMMS_LOSS while output can be live; in IDLE (nothing
        armed, no output possible) the session just ends: telemetry and watchdog stop, nothing
        latches, and the host's next HELLO opens a new one."""
        if self.state in LIVE_STATES:
            self.latch_fault(Fault.COMMS_LOSS, 0, silent // self.ticks_per_ms)
            return
        self.session_open = False
        self.counters["sessions_expired"] += 1
        self.trace.write(
            "session", open=False, cause="watchdog", silent_ms=silent // self.ticks_per_ms
        )

    def service_rx(self) -> None:
        """The receive interrupt (firmware: its UART's): the bytes received so far handled now,
        not at the next tick (an ESTOP zeroes the output here). The tick loop keeps pulse timing."""
        self._process_rx(self.tick_count)

    def _process_rx(self, now: int) -> None:
        buf = self.rx_buffer
        if not buf:
            return
        items = self.decoder.feed(buf)  # read in the call, not kept: the buffer, not a copy
        buf.clear()
        for item in items:
            self.last_rx_tick = self.last_frame_tick = now  # (now is tick_count)
            self.counters["frames_rx"] += 1
            if type(item) is not Block:
                self._command(item)
            else:  # the stream (50 a second): handled here, its ACK framed here (calls cost)
                if self.trace.enabled:
                    self.trace.write("rx", type=commands.rx_name(item, Block.TYPE), seq=item.seq)
                answer = commands.block(self, item)  # never a repeat, nothing deferred
                if answer is not None:
                    self._answer(item.seq, Block.TYPE, answer)
                else:  # _answer's ACK, next_seq and _put (plain link) inlined
                    tx_seq, self.tx_seq = self.tx_seq, (self.tx_seq + 1) % SEQ_MODULO
                    body = _ACK.pack(PROTOCOL_VERSION, Ack.TYPE, tx_seq, item.seq, Block.TYPE)
                    frame = encode_body(body)
                    link, tx, limit = self.link, self._tx, self.config.tx_buffer_max
                    if link.drop or link.flip or link.delay_ms or len(tx) + len(frame) > limit:
                        self._put(frame)  # what becomes of the frame when it is not the plain case
                    else:
                        tx += frame
            if self.pending_violation is not None:
                err, self.pending_violation = self.pending_violation, None
                self.latch_fault(Fault.LIMIT_VIOLATION, err.channel, err.detail)

    def run_ticks(self, ticks: int, until_output: bool = False) -> bool:
        """Advance ``ticks`` ticks, skipping quiet stretches in bulk (one by one when
        ``config.tick_by_tick``). With ``until_output``, stop early (True) at the first tick
        after which bytes are waiting to be read."""
        end = self.tick_count + ticks
        by_tick = self.config.tick_by_tick
        put = None if until_output or self.link.delay_ms else self._put  # telemetry in bulk
        while self.tick_count < end:
            if until_output and self._tx:
                return True
            if not by_tick and not self.rx_buffer:  # bytes to handle: the next tick is no quiet one
                left = end - self.tick_count
                quiet = quiet_horizon(self, put is None, left)
                if quiet > 0:
                    if quiet >= left:
                        run_quiet(self, left, put)
                        break
                    run_quiet(self, quiet, put)  # the next tick holds the event ending the run
            self.tick()
        return bool(self._tx)

    def advance(self, ms: float) -> None:
        self.run_ticks(int(ms * self.ticks_per_ms))

    def run_until(self, t_ms: float) -> None:
        self.run_ticks(max(0, int(t_ms * self.ticks_per_ms) - self.tick_count))

    def run_until_output(self, max_ticks: int) -> bool:
        return self.run_ticks(max_ticks, until_output=True)

    def close(self) -> None:
        self.trace.close()

    # --- fault injection (faults.py) and snapshots (reports.py) --------------------------------

    def inject(self, kind: str, channel: int = 1, value: float | None = None) -> None:
        """Inject a fault now: electrode_open, electrode_short, impedance (value ohm), drift (value
        ohm/s, default 5000), overcurrent, clear (undo the channel's injections), reset, underrun.
        Raises ValueError when unknown. The next tick checks the electrodes (no bulk skipping)."""
        faults.inject(self, kind, channel, value)

    def status(self) -> dict[str, Any]:
        """A JSON-able snapshot: state, fault, outputs and counters."""
        return reports.status(self)

    def stats(self) -> dict[str, Any]:
        """Per-channel pulses, charge_uc, net_charge_uc; tick lateness under a real clock."""
        return reports.stats(self)

    # --- reset --------------------------------------------------------------------------------

    def brown_out(self) -> None:
        """Brown-out: all device state lost; reboot into FAULT(DEVICE_RESET), session kept open."""
        self.rx_buffer.clear()
        boot(self)
        change = self.interlock.fire(Event.RESET)
        assert change is not None
        self.interlock.fault, self.interlock.fault_channel = Fault.DEVICE_RESET, 0
        self.trace.write("fault", fault=Fault.DEVICE_RESET.name, channel=0)
        self.trace.write("state", state=State.FAULT.name, previous=State.BOOT.name)
        self._emit(self.fault_event(Fault.DEVICE_RESET, 0, State.BOOT, 0))
        self._emit(StateEvent(state=State.FAULT, previous=State.BOOT,
                              time_ms=self.uptime_ms()))  # fmt: skip

    # --- output --------------------------------------------------------------------------------

    def configure_outputs(self, ramp_now: int | None = None) -> None:
        """Set every channel's target from the playing block x gain (and the STOP ramp)."""
        targets.configure(self, ramp_now)

    def _settle(self, now: int, state: State) -> bool:
        """The ramps, slew and electrode check of the tick ending at ``now`` in ``state`` (RUNNING
        or STOPPING); False when the tick's output ends there (STOP ramp done, a fault). ``tick``
        calls it only when one is due (STOPPING, a re-ramp, not settled, not checked): a step
        added here needs its condition there too."""
        stage = self.output_stage
        if state is RUNNING and self.reramp_rate_na_per_s:
            targets.reramp_step(self)
        if state is STOPPING:
            if now >= self.stop_end:
                stage.zero_all()
                self.fifo.clear()
                self.apply_state(Event.STOPPED)
                return False
            self.configure_outputs(ramp_now=now)
        if not stage.settled:
            stage.slew()
        if not stage.checked:
            found = stage.check_electrodes()
            if found is not None:
                self.latch_fault(*found)
                return False
        return True

    def _on_output(self, channel: int, ua: int) -> None:
        pw = self.output_stage.channels[channel - 1].pulse_width_us
        self.trace.write("output", channel=channel, amplitude_ua=ua, pulse_width_us=pw)

    # --- state, faults, messages ---------------------------------------------------------------

    def apply_state(self, event: Event) -> None:
        change = self.interlock.fire(event)
        if change is None:
            raise RuntimeError(f"transition {event.name} from {self.state.name} not in the table")
        self._state_changed(*change)

    def _state_changed(self, previous: State, new: State) -> None:
        self.trace.write("state", state=new.name, previous=previous.name)
        self._emit(StateEvent(state=new, previous=previous, time_ms=self.uptime_ms()))

    def latch_fault(self, fault: Fault, channel: int, detail: int) -> None:
        """Latch a fault: outputs zero in this tick, FAULT_EVENT + STATE_EVENT, FIFO dropped."""
        before = self.state
        if self.interlock.latched and (fault is not Fault.ESTOP or before is State.ESTOP):
            self.counters["faults_while_latched"] = self.counters.get("faults_while_latched", 0) + 1
            return
        self.output_stage.zero_all()
        self.fifo.clear()
        self.armed_mask = 0
        self.impedance_due = None
        change = self.interlock.latch(fault, channel)
        assert change is not None
        self.trace.write("fault", fault=fault.name, channel=channel, detail=detail)
        self._emit(self.fault_event(fault, channel, before, detail))
        self._state_changed(*change)

    def fault_event(self, fault: Fault, channel: int, before: State, detail: int) -> FaultEvent:
        return FaultEvent(fault=fault, channel=channel, state_before=before,
                          time_ms=self.uptime_ms(), detail=detail & 0xFFFFFFFF)  # fmt: skip

    def uptime_ms(self) -> int:
        return (self.tick_count - self.boot_tick) * self.tick_us // 1000 & 0xFFFFFFFF

    def next_seq(self) -> int:
        seq = self.tx_seq
        self.tx_seq = (seq + 1) % SEQ_MODULO
        return seq

    def _emit(self, msg: Message) -> None:
        """Device-initiated messages: only while a session is open; after the current answer."""
        if not self.session_open:
            return
        if self._in_command:
            self._deferred.append(msg)
        else:
            self.send(replace(msg, seq=self.next_seq()))

    def send(self, msg: Message) -> None:
        """Frame a message with the next device sequence number and put it on the link."""
        self._put(encode(msg))

    def _put(self, frame: bytes) -> None:
        """Put a complete frame on the link (through its faults and delay)."""
        link = self.link  # link.apply inlined: two frames per streamed block
        data = link.apply(frame) if link.drop or link.flip else frame
        if link.delay_ms:
            self.tx_delayed.append((self.tick_count + link.delay_ms * self.ticks_per_ms, data))
        elif len(self._tx) + len(data) > self.config.tx_buffer_max:
            self.counters["tx_dropped"] += len(data)
        else:
            self._tx += data

    def _release(self, now: int) -> None:
        while self.rx_delayed and self.rx_delayed[0][0] <= now:
            self.rx_buffer += self.rx_delayed.popleft()[1]
        while self.tx_delayed and self.tx_delayed[0][0] <= now:  # _put's end, once due
            data = self.tx_delayed.popleft()[1]
            if len(self._tx) + len(data) > self.config.tx_buffer_max:
                self.counters["tx_dropped"] += len(data)
            else:
                self._tx += data

    def _trace_ns(self) -> int:
        return self.clock.trace_ns(self.tick_count * self.tick_us * 1000)

    # --- impedance ----------------------------------------------------------------------------

    def _finish_impedance_check(self) -> None:
        assert self.impedance_due is not None
        _, mask = self.impedance_due
        self.impedance_due = None
        self._emit(reports.measure_impedance(self, mask))

    # --- command dispatch ----------------------------------------------------------------------

    def _command(self, item: Message | Invalid) -> None:
        """A host frame but a BLOCK: acted on, answered, then what it made the device emit."""
        type_code = item.TYPE if isinstance(item, Message) else item.type_code
        if self.trace.enabled:
            self.trace.write("rx", type=commands.rx_name(item, type_code), seq=item.seq)
        self._in_command = True
        try:
            answer = commands.command(self, item, type_code)
            if answer is not None or not isinstance(item, Hello):  # HELLO: DEVICE_INFO sent
                self._answer(item.seq, type_code, answer)
        finally:
            self._in_command = False
        if self._deferred:
            deferred, self._deferred = self._deferred, []
            for msg in deferred:
                self.send(replace(msg, seq=self.next_seq()))

    def _answer(self, seq: int, type_code: int, answer: commands.Answer) -> None:
        """ACK (answer None) or NAK a frame of the host's."""
        if answer is None:
            self.send(Ack(seq=self.next_seq(), ack_seq=seq, ack_type=type_code))
            return
        self.counters["naks"] += 1
        self.send(Nak(seq=self.next_seq(), ack_seq=seq, ack_type=type_code & 0xFF,
                      reason=answer[0], detail=answer[1] & 0xFFFFFFFF))  # fmt: skip
