"""The message catalogue: one dataclass per message type, its byte layout and its type code.

Every message is a frozen dataclass whose fixed fields pack little-endian in declaration order,
optionally followed by a u8 count and that many fixed-size items (``ITEM``). Each field is declared
once, with its wire format in its type (``U8``, ``U16``, ``U32``, ``Serial12``); ``FIELDS`` (name,
struct code) is derived from those declarations. The
catalogue hash covers every type code, name, field name and field format, so a host and a device
built from different catalogues find out at HELLO (the idea of MAVLink's CRC_EXTRA).
"""

from __future__ import annotations

import hashlib
import inspect
import re
import struct
import zlib
from dataclasses import dataclass, fields
from typing import Annotated, ClassVar, get_args, get_origin, get_type_hints

#: Wire formats (struct codes, little-endian); a field typed with one of these is on the wire.
U8 = Annotated[int, "B"]
U16 = Annotated[int, "H"]
U32 = Annotated[int, "I"]
Serial12 = Annotated[str, "12s"]  # ASCII, NUL-padded


def _wire_fields(cls: type) -> tuple[tuple[str, str], ...]:
    """(name, struct code) of the fields ``cls`` itself declares with a wire format, in order."""
    own = inspect.get_annotations(cls)
    hints = get_type_hints(cls, include_extras=True)
    return tuple(
        (name, get_args(hints[name])[1])
        for name in own
        if get_origin(hints[name]) is Annotated and isinstance(get_args(hints[name])[1], str)
    )


class PayloadError(ValueError):
    """A payload that does not parse for its message type (length or values)."""


@dataclass(frozen=True, slots=True)
class Item:
    """Base of the fixed-size repeated records inside a message (one per channel)."""

    FIELDS: ClassVar[tuple[tuple[str, str], ...]] = ()

    def __init_subclass__(cls) -> None:  # no super(): slots=True makes a new class (no cell)
        cls.FIELDS = _wire_fields(cls)


@dataclass(frozen=True, slots=True, kw_only=True)
class Message:
    """Base of all messages. ``seq`` travels in the frame header, not in the payload."""

    TYPE: ClassVar[int] = -1
    FIELDS: ClassVar[tuple[tuple[str, str], ...]] = ()
    ITEM: ClassVar[type[Item] | None] = None
    seq: int = 0

    def __init_subclass__(cls) -> None:  # no super(): slots=True makes a new class (no cell)
        cls.FIELDS = _wire_fields(cls)

    def payload_values(self) -> tuple[object, ...]:
        return tuple(getattr(self, name) for name, _ in self.FIELDS)


# --- repeated items -------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class ChannelSetting(Item):
    """One channel of a BLOCK: what to deliver for the block's duration."""

    amplitude_ua: U16
    frequency_dhz: U16
    pulse_width_us: U16


@dataclass(frozen=True, slots=True)
class ChannelTelemetry(Item):
    """One channel of TELEMETRY."""

    set_ua: U16
    measured_ua: U16
    impedance_ohm: U16
    pulses: U32


@dataclass(frozen=True, slots=True)
class ChannelImpedance(Item):
    """One channel of IMPEDANCE_RESULT."""

    impedance_ohm: U32
    status: U8


# --- host -> device -------------------------------------------------------------------------


@dataclass(frozen=True, slots=True, kw_only=True)
class Hello(Message):
    """Opens a session; the device answers DEVICE_INFO (not ACK)."""

    TYPE: ClassVar[int] = 0x01
    protocol_version: U8


@dataclass(frozen=True, slots=True, kw_only=True)
class Heartbeat(Message):
    """Keeps the device watchdog fed; the host sends it while a session is open."""

    TYPE: ClassVar[int] = 0x02


@dataclass(frozen=True, slots=True, kw_only=True)
class Goodbye(Message):
    """Closes the session cleanly (IDLE only): the device stops its watchdog and telemetry."""

    TYPE: ClassVar[int] = 0x03


@dataclass(frozen=True, slots=True, kw_only=True)
class ImpedanceCheck(Message):
    """Measure electrode impedance on the channels in the mask (bit 0 = channel 1)."""

    TYPE: ClassVar[int] = 0x10
    channel_mask: U8


@dataclass(frozen=True, slots=True, kw_only=True)
class Arm(Message):
    """IDLE -> ARMED for the channels in the mask, with the pulse shape."""

    TYPE: ClassVar[int] = 0x11
    channel_mask: U8
    shape: U8


@dataclass(frozen=True, slots=True, kw_only=True)
class Disarm(Message):
    """ARMED -> IDLE; clears the FIFO."""

    TYPE: ClassVar[int] = 0x12


@dataclass(frozen=True, slots=True, kw_only=True)
class Start(Message):
    """ARMED -> RUNNING; needs at least one queued block."""

    TYPE: ClassVar[int] = 0x13


@dataclass(frozen=True, slots=True, kw_only=True)
class Pause(Message):
    """RUNNING -> PAUSED: output to zero at once, FIFO kept."""

    TYPE: ClassVar[int] = 0x14


@dataclass(frozen=True, slots=True, kw_only=True)
class Resume(Message):
    """PAUSED -> RUNNING: output ramps up again from zero, by at most ramp_na_per_s (0: the
    device's slew ceiling alone), and never faster than the slew ceiling."""

    TYPE: ClassVar[int] = 0x15
    ramp_na_per_s: U32 = 0


@dataclass(frozen=True, slots=True, kw_only=True)
class Stop(Message):
    """RUNNING/PAUSED -> STOPPING: ramp to zero over ramp_ms, then IDLE (FIFO cleared)."""

    TYPE: ClassVar[int] = 0x16
    ramp_ms: U16


@dataclass(frozen=True, slots=True, kw_only=True)
class EStop(Message):
    """Any state -> ESTOP: output zero within one tick; latched."""

    TYPE: ClassVar[int] = 0x17


@dataclass(frozen=True, slots=True, kw_only=True)
class ClearFault(Message):
    """FAULT/ESTOP -> IDLE (operator acknowledgement); impedance must be checked again."""

    TYPE: ClassVar[int] = 0x18


@dataclass(frozen=True, slots=True, kw_only=True)
class Adjust(Message):
    """Live amplitude adjustment: output = block amplitude x gain_permille / 1000."""

    TYPE: ClassVar[int] = 0x19
    channel: U8
    gain_permille: U16


@dataclass(frozen=True, slots=True, kw_only=True)
class Block(Message):
    """One block of the stream: duration and per-channel settings (channel 1 first)."""

    TYPE: ClassVar[int] = 0x20
    ITEM: ClassVar[type[Item] | None] = ChannelSetting
    index: U32
    duration_ms: U16
    flags: U8 = 0  # BLOCK_FLAG_LAST: the session ends cleanly (-> IDLE) when this block ends
    channels: tuple[ChannelSetting, ...]


# --- device -> host -------------------------------------------------------------------------


@dataclass(frozen=True, slots=True, kw_only=True)
class Ack(Message):
    """Positive answer to the command with sequence number ack_seq."""

    TYPE: ClassVar[int] = 0x80
    ack_seq: U16
    ack_type: U8


@dataclass(frozen=True, slots=True, kw_only=True)
class Nak(Message):
    """Refusal of the command with sequence number ack_seq, with a reason (constants.NakReason)."""

    TYPE: ClassVar[int] = 0x81
    ack_seq: U16
    ack_type: U8
    reason: U8
    detail: U32 = 0


@dataclass(frozen=True, slots=True, kw_only=True)
class DeviceInfo(Message):
    """Answer to HELLO: identity, timing and the hardware limits table."""

    TYPE: ClassVar[int] = 0x82
    protocol_version: U8
    catalogue_hash: U32
    fw_major: U8
    fw_minor: U8
    fw_patch: U8
    serial: Serial12
    channels: U8
    fifo_depth: U16
    max_lookahead_ms: U16
    tick_hz: U16
    telemetry_hz: U16
    watchdog_ms: U16
    impedance_valid_ms: U32
    # hardware limits table (LIMIT_FIELDS)
    max_amplitude_ua: U16
    amplitude_step_ua: U16
    min_pulse_width_us: U16
    max_pulse_width_us: U16
    min_frequency_dhz: U16
    max_frequency_dhz: U16
    compliance_mv: U32
    max_slew_ua_per_ms: U16
    impedance_max_ohm: U32

    @property
    def firmware(self) -> str:
        return f"{self.fw_major}.{self.fw_minor}.{self.fw_patch}"

    def limits(self) -> dict[str, int]:
        """The hardware limits table as a dict (field name -> value)."""
        return {name: getattr(self, name) for name in LIMIT_FIELDS}

    def limits_hash(self) -> str:
        """SHA-256 (hex) of the limits table as it is packed on the wire."""
        fmt = "<" + "".join(code for name, code in self.FIELDS if name in LIMIT_FIELDS)
        packed = struct.pack(fmt, *(getattr(self, name) for name in LIMIT_FIELDS))
        return hashlib.sha256(packed).hexdigest()


LIMIT_FIELDS = (
    "max_amplitude_ua",
    "amplitude_step_ua",
    "min_pulse_width_us",
    "max_pulse_width_us",
    "min_frequency_dhz",
    "max_frequency_dhz",
    "compliance_mv",
    "max_slew_ua_per_ms",
    "impedance_max_ohm",
)


@dataclass(frozen=True, slots=True, kw_only=True)
class Telemetry(Message):
    """Periodic status (about 50 Hz): state, FIFO, per-channel currents and pulse counts."""

    TYPE: ClassVar[int] = 0x83
    ITEM: ClassVar[type[Item] | None] = ChannelTelemetry
    time_ms: U32
    state: U8
    fault: U8
    fault_channel: U8
    fifo_blocks: U8
    fifo_ms: U16
    block_index: U32
    next_block: U32  # the block index the device accepts next (all lower ones it has)
    channels: tuple[ChannelTelemetry, ...]


@dataclass(frozen=True, slots=True, kw_only=True)
class ImpedanceResult(Message):
    """Result of IMPEDANCE_CHECK, one record per device channel (unchecked: status OK, 0 ohm)."""

    TYPE: ClassVar[int] = 0x84
    ITEM: ClassVar[type[Item] | None] = ChannelImpedance
    channel_mask: U8
    channels: tuple[ChannelImpedance, ...]


@dataclass(frozen=True, slots=True, kw_only=True)
class FaultEvent(Message):
    """Sent once when a fault latches (output is already zero)."""

    TYPE: ClassVar[int] = 0x85
    fault: U8
    channel: U8
    state_before: U8
    time_ms: U32
    detail: U32 = 0


@dataclass(frozen=True, slots=True, kw_only=True)
class StateEvent(Message):
    """Sent on every device state change."""

    TYPE: ClassVar[int] = 0x86
    state: U8
    previous: U8
    time_ms: U32


HOST_TO_DEVICE: tuple[type[Message], ...] = (
    Hello, Heartbeat, Goodbye, ImpedanceCheck, Arm, Disarm, Start, Pause, Resume, Stop, EStop,
    ClearFault, Adjust, Block,
)  # fmt: skip
DEVICE_TO_HOST: tuple[type[Message], ...] = (
    Ack, Nak, DeviceInfo, Telemetry, ImpedanceResult, FaultEvent, StateEvent,
)  # fmt: skip
CATALOGUE: dict[int, type[Message]] = {cls.TYPE: cls for cls in HOST_TO_DEVICE + DEVICE_TO_HOST}


def catalogue_description() -> str:
    """The canonical text the catalogue hash is computed over (one line per message)."""
    lines = []
    for type_code, cls in sorted(CATALOGUE.items()):
        layout = " ".join(f"{name}:{code}" for name, code in cls.FIELDS)
        if cls.ITEM is not None:
            item = " ".join(f"{name}:{code}" for name, code in cls.ITEM.FIELDS)
            layout += f" count:B [{cls.ITEM.__name__} {item}]"
        lines.append(f"{type_code:#04x} {cls.__name__} {layout}".rstrip())
    return "\n".join(lines)


CATALOGUE_HASH = zlib.crc32(catalogue_description().encode("ascii"))


def wire_name(cls: type[Message]) -> str:
    """The message's name as docs/PROTOCOL.md writes it: IMPEDANCE_CHECK, CLEAR_FAULT, ESTOP."""
    return _WIRE_NAMES.get(cls) or re.sub(r"(?<!^)(?=[A-Z])", "_", cls.__name__).upper()


_WIRE_NAMES: dict[type[Message], str] = {EStop: "ESTOP"}


def field_names(cls: type[Message]) -> list[str]:
    """Payload field names of a message class, in wire order (``channels`` last if present)."""
    return [f.name for f in fields(cls) if f.name != "seq"]
