"""The message catalogue: one dataclass per message type, its byte layout and its type code.

Every message is a frozen dataclass whose fixed fields pack little-endian in declaration order
(``FIELDS``), optionally followed by a u8 count and that many fixed-size items (``ITEM``). The
catalogue hash covers every type code, name, field name and field format, so a host and a device
built from different catalogues find out at HELLO (the idea of MAVLink's CRC_EXTRA).
"""

from __future__ import annotations

import hashlib
import re
import struct
import zlib
from dataclasses import dataclass, fields
from typing import ClassVar


class PayloadError(ValueError):
    """A payload that does not parse for its message type (length or values)."""


@dataclass(frozen=True, slots=True)
class Item:
    """Base of the fixed-size repeated records inside a message (one per channel)."""

    FIELDS: ClassVar[tuple[tuple[str, str], ...]] = ()


@dataclass(frozen=True, slots=True, kw_only=True)
class Message:
    """Base of all messages. ``seq`` travels in the frame header, not in the payload."""

    TYPE: ClassVar[int] = -1
    FIELDS: ClassVar[tuple[tuple[str, str], ...]] = ()
    ITEM: ClassVar[type[Item] | None] = None
    seq: int = 0

    def payload_values(self) -> tuple[object, ...]:
        return tuple(getattr(self, name) for name, _ in self.FIELDS)


# --- repeated items -------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class ChannelSetting(Item):
    """One channel of a BLOCK: what to deliver for the block's duration."""

    FIELDS: ClassVar[tuple[tuple[str, str], ...]] = (
        ("amplitude_ua", "H"),
        ("frequency_dhz", "H"),
        ("pulse_width_us", "H"),
    )
    amplitude_ua: int
    frequency_dhz: int
    pulse_width_us: int


@dataclass(frozen=True, slots=True)
class ChannelTelemetry(Item):
    """One channel of TELEMETRY."""

    FIELDS: ClassVar[tuple[tuple[str, str], ...]] = (
        ("set_ua", "H"),
        ("measured_ua", "H"),
        ("impedance_ohm", "H"),
        ("pulses", "I"),
    )
    set_ua: int
    measured_ua: int
    impedance_ohm: int
    pulses: int


@dataclass(frozen=True, slots=True)
class ChannelImpedance(Item):
    """One channel of IMPEDANCE_RESULT."""

    FIELDS: ClassVar[tuple[tuple[str, str], ...]] = (("impedance_ohm", "I"), ("status", "B"))
    impedance_ohm: int
    status: int


# --- host -> device -------------------------------------------------------------------------


@dataclass(frozen=True, slots=True, kw_only=True)
class Hello(Message):
    """Opens a session; the device answers DEVICE_INFO (not ACK)."""

    TYPE: ClassVar[int] = 0x01
    FIELDS: ClassVar[tuple[tuple[str, str], ...]] = (("protocol_version", "B"),)
    protocol_version: int


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
    FIELDS: ClassVar[tuple[tuple[str, str], ...]] = (("channel_mask", "B"),)
    channel_mask: int


@dataclass(frozen=True, slots=True, kw_only=True)
class Arm(Message):
    """IDLE -> ARMED for the channels in the mask, with the pulse shape."""

    TYPE: ClassVar[int] = 0x11
    FIELDS: ClassVar[tuple[tuple[str, str], ...]] = (("channel_mask", "B"), ("shape", "B"))
    channel_mask: int
    shape: int


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
    FIELDS: ClassVar[tuple[tuple[str, str], ...]] = (("ramp_na_per_s", "I"),)
    ramp_na_per_s: int = 0


@dataclass(frozen=True, slots=True, kw_only=True)
class Stop(Message):
    """RUNNING/PAUSED -> STOPPING: ramp to zero over ramp_ms, then IDLE (FIFO cleared)."""

    TYPE: ClassVar[int] = 0x16
    FIELDS: ClassVar[tuple[tuple[str, str], ...]] = (("ramp_ms", "H"),)
    ramp_ms: int


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
    FIELDS: ClassVar[tuple[tuple[str, str], ...]] = (("channel", "B"), ("gain_permille", "H"))
    channel: int
    gain_permille: int


@dataclass(frozen=True, slots=True, kw_only=True)
class Block(Message):
    """One block of the stream: duration and per-channel settings (channel 1 first)."""

    TYPE: ClassVar[int] = 0x20
    FIELDS: ClassVar[tuple[tuple[str, str], ...]] = (
        ("index", "I"),
        ("duration_ms", "H"),
        ("flags", "B"),
    )
    ITEM: ClassVar[type[Item] | None] = ChannelSetting
    index: int
    duration_ms: int
    flags: int = 0  # BLOCK_FLAG_LAST: the session ends cleanly (-> IDLE) when this block ends
    channels: tuple[ChannelSetting, ...]


# --- device -> host -------------------------------------------------------------------------


@dataclass(frozen=True, slots=True, kw_only=True)
class Ack(Message):
    """Positive answer to the command with sequence number ack_seq."""

    TYPE: ClassVar[int] = 0x80
    FIELDS: ClassVar[tuple[tuple[str, str], ...]] = (("ack_seq", "H"), ("ack_type", "B"))
    ack_seq: int
    ack_type: int


@dataclass(frozen=True, slots=True, kw_only=True)
class Nak(Message):
    """Refusal of the command with sequence number ack_seq, with a reason (constants.NakReason)."""

    TYPE: ClassVar[int] = 0x81
    FIELDS: ClassVar[tuple[tuple[str, str], ...]] = (
        ("ack_seq", "H"),
        ("ack_type", "B"),
        ("reason", "B"),
        ("detail", "H"),
    )
    ack_seq: int
    ack_type: int
    reason: int
    detail: int = 0


@dataclass(frozen=True, slots=True, kw_only=True)
class DeviceInfo(Message):
    """Answer to HELLO: identity, timing and the hardware limits table."""

    TYPE: ClassVar[int] = 0x82
    FIELDS: ClassVar[tuple[tuple[str, str], ...]] = (
        ("protocol_version", "B"),
        ("catalogue_hash", "I"),
        ("fw_major", "B"),
        ("fw_minor", "B"),
        ("fw_patch", "B"),
        ("serial", "12s"),
        ("channels", "B"),
        ("fifo_depth", "H"),
        ("max_lookahead_ms", "H"),
        ("tick_hz", "H"),
        ("telemetry_hz", "H"),
        ("watchdog_ms", "H"),
        ("impedance_valid_ms", "I"),
        # hardware limits table (LIMIT_FIELDS)
        ("max_amplitude_ua", "H"),
        ("amplitude_step_ua", "H"),
        ("min_pulse_width_us", "H"),
        ("max_pulse_width_us", "H"),
        ("min_frequency_dhz", "H"),
        ("max_frequency_dhz", "H"),
        ("compliance_mv", "I"),
        ("max_slew_ua_per_ms", "H"),
        ("impedance_max_ohm", "I"),
    )
    protocol_version: int
    catalogue_hash: int
    fw_major: int
    fw_minor: int
    fw_patch: int
    serial: str
    channels: int
    fifo_depth: int
    max_lookahead_ms: int
    tick_hz: int
    telemetry_hz: int
    watchdog_ms: int
    impedance_valid_ms: int
    max_amplitude_ua: int
    amplitude_step_ua: int
    min_pulse_width_us: int
    max_pulse_width_us: int
    min_frequency_dhz: int
    max_frequency_dhz: int
    compliance_mv: int
    max_slew_ua_per_ms: int
    impedance_max_ohm: int

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
    FIELDS: ClassVar[tuple[tuple[str, str], ...]] = (
        ("time_ms", "I"),
        ("state", "B"),
        ("fault", "B"),
        ("fault_channel", "B"),
        ("fifo_blocks", "B"),
        ("fifo_ms", "H"),
        ("block_index", "I"),
    )
    ITEM: ClassVar[type[Item] | None] = ChannelTelemetry
    time_ms: int
    state: int
    fault: int
    fault_channel: int
    fifo_blocks: int
    fifo_ms: int
    block_index: int
    channels: tuple[ChannelTelemetry, ...]


@dataclass(frozen=True, slots=True, kw_only=True)
class ImpedanceResult(Message):
    """Result of IMPEDANCE_CHECK, one record per device channel (unchecked: status OK, 0 ohm)."""

    TYPE: ClassVar[int] = 0x84
    FIELDS: ClassVar[tuple[tuple[str, str], ...]] = (("channel_mask", "B"),)
    ITEM: ClassVar[type[Item] | None] = ChannelImpedance
    channel_mask: int
    channels: tuple[ChannelImpedance, ...]


@dataclass(frozen=True, slots=True, kw_only=True)
class FaultEvent(Message):
    """Sent once when a fault latches (output is already zero)."""

    TYPE: ClassVar[int] = 0x85
    FIELDS: ClassVar[tuple[tuple[str, str], ...]] = (
        ("fault", "B"),
        ("channel", "B"),
        ("state_before", "B"),
        ("time_ms", "I"),
        ("detail", "I"),
    )
    fault: int
    channel: int
    state_before: int
    time_ms: int
    detail: int = 0


@dataclass(frozen=True, slots=True, kw_only=True)
class StateEvent(Message):
    """Sent on every device state change."""

    TYPE: ClassVar[int] = 0x86
    FIELDS: ClassVar[tuple[tuple[str, str], ...]] = (
        ("state", "B"),
        ("previous", "B"),
        ("time_ms", "I"),
    )
    state: int
    previous: int
    time_ms: int


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
