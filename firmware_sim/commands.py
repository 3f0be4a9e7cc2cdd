"""Command handlers of the device: admission, limits, and the effect of each host command."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from firmware_sim.core import DeviceCore
from firmware_sim.interlock import ADMITTED, Event
from firmware_sim.limits import LimitError
from stimctl.protocol import (
    CATALOGUE,
    CATALOGUE_HASH,
    DEVICE_TO_HOST,
    GAIN_UNITY,
    HOST_TO_DEVICE,
    PROTOCOL_VERSION,
    Adjust,
    Arm,
    Block,
    ClearFault,
    DeviceInfo,
    Disarm,
    EStop,
    Fault,
    Goodbye,
    Heartbeat,
    Hello,
    ImpedanceCheck,
    Invalid,
    Message,
    NakReason,
    Pause,
    Resume,
    Shape,
    Start,
    State,
    Stop,
)

Answer = tuple[NakReason, int] | None
"""None: ACK; otherwise NAK(reason, detail)."""

_DEVICE_TYPES = frozenset(cls.TYPE for cls in DEVICE_TO_HOST)
REPEATABLE = frozenset(
    cls.TYPE for cls in HOST_TO_DEVICE if cls not in (Hello, Heartbeat, EStop, Block)
)
"""Control commands: the host has one outstanding at a time and repeats it with the same seq
until it is answered. The device remembers the last one it answered (seq, type, answer); the
same seq and type again is a retransmission whose answer was lost: the answer is sent again
and the command is not acted on again. HELLO clears the memory (a new host counts afresh)."""
REPEAT_WINDOW_MS = 5000
"""How long (device time) the last answer is remembered. A host repeats a command within its
timeout (stimctl: 1 s); after the window a frame with the same seq and type is a new command. The
window keeps seq wrap-around from faking a repeat: 65,536 frames take at least 57 s at 115200 baud
(10-byte HEARTBEATs), so no new command can carry a remembered seq inside 5 s."""


_BLOCK_ADMITTED = ADMITTED[Block.TYPE]


def repeated(dev: DeviceCore, item: Message | Invalid, type_code: int) -> tuple[Answer] | None:
    """The remembered answer if ``item`` repeats the last control command, else None."""
    last = dev.last_command
    if isinstance(item, Hello):
        dev.last_command = None
        return None
    if last is None or type_code not in REPEATABLE or isinstance(item, Invalid):
        return None
    if (item.seq, type_code) != last[:2]:
        return None
    if dev.tick_count - last[3] > REPEAT_WINDOW_MS * dev.ticks_per_ms:
        return None
    dev.counters["duplicates"] += 1
    return (last[2],)


def remember(dev: DeviceCore, item: Message | Invalid, type_code: int, answer: Answer) -> None:
    if type_code in REPEATABLE and isinstance(item, Message):
        dev.last_command = (item.seq, type_code, answer, dev.tick_count)


def command(dev: DeviceCore, item: Message | Invalid, type_code: int) -> Answer:
    """Act on a frame of the host's other than a BLOCK and say how to answer it: a repeat of
    the last control command is answered again and not acted on again; HELLO's answer is
    DEVICE_INFO (None: nothing more to send) or a NAK."""
    again = repeated(dev, item, type_code)
    if again is not None:
        return again[0]
    if isinstance(item, Hello):
        return hello(dev, item)
    answer = dispatch(dev, item, type_code)
    remember(dev, item, type_code, answer)
    return answer


def rx_name(item: Message | Invalid, type_code: int) -> str:
    """A received frame's name in the trace: its message class, or its type code."""
    return CATALOGUE[type_code].__name__ if isinstance(item, Message) else f"{type_code:#04x}"


def is_estop(item: Message | Invalid) -> bool:
    """ESTOP is obeyed from any CRC-valid frame of its type, whatever its version field or payload
    length: a stop must never be refused for its form (docs/PROTOCOL.md, "Commands and answers")."""
    return isinstance(item, EStop) or (isinstance(item, Invalid) and item.type_code == EStop.TYPE)


def dispatch(dev: DeviceCore, item: Message | Invalid, type_code: int) -> Answer:
    if is_estop(item):
        dev.latch_fault(Fault.ESTOP, 0, 0)
        return None
    if isinstance(item, Invalid):
        if item.reason == "version":
            return NakReason.VERSION, item.version
        if type_code in _DEVICE_TYPES:
            return NakReason.NOT_FROM_HOST, 0
        if type_code not in CATALOGUE:
            return NakReason.UNKNOWN_TYPE, 0
        return NakReason.BAD_PAYLOAD, 0
    if type_code in _DEVICE_TYPES:
        return NakReason.NOT_FROM_HOST, 0
    if not dev.session_open and not isinstance(item, Heartbeat):
        return NakReason.NO_SESSION, 0
    refused = dev.interlock.admit(type_code)
    if refused is not None:
        return refused, int(dev.state)
    handler = _HANDLERS.get(type(item))
    return handler(dev, item) if handler is not None else None


def block(dev: DeviceCore, msg: Block) -> Answer:
    """``dispatch`` for a BLOCK (the stream's frame, 50 a second): the same checks in order,
    then the BLOCK's own (its handler: ``dispatch``'s checks again change nothing)."""
    if not dev.session_open:
        return NakReason.NO_SESSION, 0
    interlock = dev.interlock
    if interlock.state not in _BLOCK_ADMITTED:  # admit(Block.TYPE), asked only when refused
        refused = interlock.admit(Block.TYPE)
        if refused is not None:
            return refused, int(interlock.state)
    channels = msg.channels
    if len(channels) > dev.limits.channels:  # dev.config.channels, without the property
        return NakReason.BAD_CHANNEL, len(channels)
    fifo = dev.fifo
    expected = fifo.expected  # fifo.duplicate(msg), inlined but for after a LAST block
    if msg.index < expected if expected is not None else fifo.duplicate(msg):
        dev.counters["duplicates"] += 1
        return None  # ACKed again, not queued again
    # the checks are a pure function of these: a stream repeats a few settings block after
    # block. The gains list goes into the key as it is (no tuple of its items built per block;
    # list == list compares the items), and the key kept holds a copy of it: ADJUST changes
    # the device's list in place (tests/test_sim_limits.py, the memo against check_block).
    stage, gains = dev.output_stage, dev.gains
    key = (msg.duration_ms, channels, stage.shape, dev.armed_mask, gains)
    if key != dev.block_passed:
        err = dev.limits.check_block(
            msg.duration_ms, channels, stage.shape, dev.armed_mask, gains,
            dev.config.max_lookahead_ms,
        )  # fmt: skip
        if err is not None:
            return _violation(dev, err)
        dev.block_passed = (*key[:4], gains.copy())
    return fifo.offer(msg)  # queued (ACK) or refused (NAK)


def _violation(dev: DeviceCore, err: LimitError) -> Answer:
    dev.pending_violation = err  # latched after the NAK has been sent
    return NakReason.OUT_OF_LIMITS, err.detail


def _mask_ok(dev: DeviceCore, mask: int) -> bool:
    return mask != 0 and not mask & ~dev.limits.channel_mask


def hello(dev: DeviceCore, msg: Hello) -> Answer:
    if msg.protocol_version != PROTOCOL_VERSION:
        return NakReason.VERSION, msg.protocol_version
    dev.session_open = True
    dev.next_telemetry = dev.tick_count + dev.config.tick_hz // dev.config.telemetry_hz
    cfg, lim = dev.config, dev.limits
    major, minor, patch = cfg.firmware
    dev.send(DeviceInfo(
        seq=dev.next_seq(),
        protocol_version=PROTOCOL_VERSION, catalogue_hash=CATALOGUE_HASH,
        fw_major=major, fw_minor=minor, fw_patch=patch, serial=cfg.serial[:12],
        channels=cfg.channels, fifo_depth=cfg.fifo_depth, max_lookahead_ms=cfg.max_lookahead_ms,
        tick_hz=cfg.tick_hz, telemetry_hz=cfg.telemetry_hz, watchdog_ms=cfg.watchdog_ms,
        impedance_valid_ms=cfg.impedance_valid_ms, max_amplitude_ua=lim.max_amplitude_ua,
        amplitude_step_ua=lim.amplitude_step_ua, min_pulse_width_us=lim.min_pulse_width_us,
        max_pulse_width_us=lim.max_pulse_width_us, min_frequency_dhz=lim.min_frequency_dhz,
        max_frequency_dhz=lim.max_frequency_dhz, compliance_mv=lim.compliance_mv,
        max_slew_ua_per_ms=lim.max_slew_ua_per_ms, impedance_max_ohm=lim.impedance_max_ohm,
    ))  # fmt: skip
    return None


def _goodbye(dev: DeviceCore, msg: Goodbye) -> Answer:
    dev.session_open = False
    return None


def _impedance_check(dev: DeviceCore, msg: ImpedanceCheck) -> Answer:
    if not _mask_ok(dev, msg.channel_mask):
        return NakReason.BAD_CHANNEL, msg.channel_mask
    if dev.impedance_due is not None:
        return NakReason.BAD_STATE, int(dev.state)
    due = dev.tick_count + dev.config.impedance_check_ms * dev.ticks_per_ms
    dev.impedance_due = (due, msg.channel_mask)
    return None


def _arm(dev: DeviceCore, msg: Arm) -> Answer:
    if not _mask_ok(dev, msg.channel_mask):
        return NakReason.BAD_CHANNEL, msg.channel_mask
    if msg.shape not in set(Shape):
        return NakReason.BAD_PAYLOAD, msg.shape
    verdict = dev.interlock.impedance_verdict(msg.channel_mask, dev.uptime_ms())
    if verdict is not None:
        return verdict
    dev.armed_mask = msg.channel_mask
    dev.gains = [GAIN_UNITY] * dev.config.channels
    dev.fifo.reset()
    dev.output_stage.reset_session(msg.shape)
    dev.apply_state(Event.ARM)
    return None


def _disarm(dev: DeviceCore, msg: Disarm) -> Answer:
    dev.fifo.reset()
    dev.armed_mask = 0
    dev.apply_state(Event.DISARM)
    return None


def _start(dev: DeviceCore, msg: Start) -> Answer:
    if not dev.fifo.queue:
        return NakReason.BAD_STATE, 0
    verdict = dev.interlock.impedance_verdict(dev.armed_mask, dev.uptime_ms())
    if verdict is not None:
        return verdict
    dev.apply_state(Event.START)
    dev.reramp_rate_na_per_s = 0  # START ramps from zero by the slew ceiling and the blocks
    if dev.first_start_tick is None:
        dev.first_start_tick = dev.tick_count
    dev.output_stage.zero_accumulators()
    dev.fifo.pop()
    dev.configure_outputs()
    return None


def _pause(dev: DeviceCore, msg: Pause) -> Answer:
    dev.output_stage.zero_all()
    dev.apply_state(Event.PAUSE)
    return None


def _resume(dev: DeviceCore, msg: Resume) -> Answer:
    dev.apply_state(Event.RESUME)
    dev.reramp_rate_na_per_s = msg.ramp_na_per_s
    dev.reramp_from_tick = dev.tick_count
    dev.configure_outputs()
    return None


def _stop(dev: DeviceCore, msg: Stop) -> Answer:
    was_paused = dev.state is State.PAUSED
    dev.stop_ticks = 0 if was_paused else msg.ramp_ms * dev.ticks_per_ms
    dev.stop_end = dev.tick_count + dev.stop_ticks
    dev.stop_from = [ch.delivered_ua for ch in dev.output_stage.channels]
    dev.apply_state(Event.STOP)
    return None


def _clear_fault(dev: DeviceCore, msg: ClearFault) -> Answer:
    dev.fifo.reset()
    dev.armed_mask = 0
    dev.output_stage.zero_all()
    dev.apply_state(Event.CLEAR)
    dev.last_rx_tick = dev.tick_count
    return None


def _adjust(dev: DeviceCore, msg: Adjust) -> Answer:
    n = dev.config.channels
    if msg.channel > n:
        return NakReason.BAD_CHANNEL, msg.channel
    targets = range(n) if msg.channel == 0 else [msg.channel - 1]
    blocks = list(dev.fifo.queue) + ([dev.fifo.current] if dev.fifo.current else [])
    for i in targets:
        amps = [b.channels[i].amplitude_ua for b in blocks if i < len(b.channels)]
        err = dev.limits.check_gain(i + 1, msg.gain_permille, amps)
        if err is not None:
            return _violation(dev, err)
    for i in targets:
        dev.gains[i] = msg.gain_permille
    if dev.state is State.RUNNING:
        dev.configure_outputs()
    return None


_HANDLERS: dict[type, Callable[[DeviceCore, Any], Answer]] = {
    Goodbye: _goodbye, ImpedanceCheck: _impedance_check, Arm: _arm,
    Disarm: _disarm, Block: block, Start: _start, Pause: _pause,
    Resume: _resume, Stop: _stop, ClearFault: _clear_fault,
    Adjust: _adjust, Heartbeat: lambda dev, msg: None,
}  # fmt: skip
