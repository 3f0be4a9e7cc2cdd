"""Wire-protocol constants: version, frame sizes, units, states, faults, NAK reasons and details."""

from __future__ import annotations

from enum import IntEnum

PROTOCOL_VERSION = 2
"""Carried in every frame header and in HELLO/DEVICE_INFO; a mismatch is a hard error.
Version 2: NAK ``detail`` is u32, TELEMETRY carries ``next_block``, NAK reason NO_SESSION,
duplicate commands answered again without being acted on (link recovery); RESUME carries
``ramp_na_per_s``."""

HEADER_FORMAT = "<BBH"  # version u8, type u8, seq u16 little-endian (struct format)
HEADER_SIZE = 4  # bytes of HEADER_FORMAT
CRC_SIZE = 4  # CRC-32 (IEEE 802.3, as zlib.crc32) over header + payload, little-endian
MAX_PAYLOAD = 240
MAX_FRAME = HEADER_SIZE + MAX_PAYLOAD + CRC_SIZE  # 248 bytes before COBS
MAX_ENCODED = MAX_FRAME + (MAX_FRAME // 254) + 1  # COBS worst case, without the delimiter
DELIMITER = 0x00

SEQ_MODULO = 1 << 16

MIN_WATCHDOG_MS = 100
"""The smallest ``watchdog_ms`` a device may report in DEVICE_INFO (the host refuses a smaller
one at the handshake): before DEVICE_INFO the host knows no watchdog, so it paces its HELLOs on
this bound."""
HELLO_RETRY_MS = 50
"""Host time between HELLOs until DEVICE_INFO comes (each a new frame with a new seq): half of
MIN_WATCHDOG_MS, so a session opened by a HELLO whose DEVICE_INFO was lost is fed by the next
HELLO before its watchdog can end it."""

BLOCK_FLAG_LAST = 0x01  # Block.flags: the last block of the session
NO_BLOCK = 0xFFFF_FFFF  # never a block index: BLOCK_SEQUENCE's detail once a LAST block is queued

# Units on the wire (integers only):
AMPLITUDE_UNIT_UA = 1  # amplitudes are in microamperes
FREQUENCY_UNIT_DHZ = 10  # frequencies are in decihertz: 2 Hz -> 20
GAIN_UNITY = 1000  # ADJUST gain in permille of the streamed amplitude
IMPEDANCE_OPEN = 0xFFFF  # telemetry impedance (ohm, u16) saturates here: open circuit or > 65 kohm

ASYMMETRIC_RECOVERY_RATIO = 4
"""SHAPE_BIPHASIC_ASYMMETRIC: the recovery phase runs at amplitude/4 for 4 x the pulse width."""

ACC_WRAP = 10_000_000
"""Pulse phase accumulator modulus: one pulse per wrap; each tick adds frequency_dhz x tick_us
(0.1 Hz x 1 us = 1e-7 of a pulse), so pulse timing is exact in integers."""


class Shape(IntEnum):
    """Pulse shape selected at ARM."""

    BIPHASIC_SYMMETRIC = 0
    BIPHASIC_ASYMMETRIC = 1


class State(IntEnum):
    """Device state, as reported in TELEMETRY and STATE_EVENT (the host mirrors these)."""

    BOOT = 0
    IDLE = 1
    ARMED = 2
    RUNNING = 3
    PAUSED = 4
    STOPPING = 5  # operator stop: output ramping down, then IDLE
    FAULT = 6  # latched until CLEAR_FAULT
    ESTOP = 7  # latched until CLEAR_FAULT


class Fault(IntEnum):
    """Cause of a latched FAULT (or ESTOP), reported in FAULT_EVENT and TELEMETRY."""

    NONE = 0
    COMMS_LOSS = 1  # no valid frame from the host within the watchdog timeout
    UNDERRUN = 2  # block FIFO empty while RUNNING
    ELECTRODE_OPEN = 3  # impedance above the open-circuit threshold during output
    COMPLIANCE = 4  # I x Z above the compliance voltage
    OVERCURRENT = 5  # measured current above the set current + tolerance
    LIMIT_VIOLATION = 6  # a command outside the hardware limits (also NAKed)
    DEVICE_RESET = 7  # the device restarted (brown-out, watchdog reset): latched at boot
    ELECTRODE_SHORT = 8  # impedance below the short-circuit threshold
    ESTOP = 9  # emergency stop commanded by the host
    INTERNAL = 10


class NakReason(IntEnum):
    """Reason codes carried by NAK."""

    BAD_STATE = 1  # command not allowed in the current state
    OUT_OF_LIMITS = 2  # a value outside the hardware limits; the device also latches FAULT
    FIFO_FULL = 3  # the block would exceed the FIFO depth or the lookahead bound
    IMPEDANCE_NOT_CHECKED = 4  # ARM without a recent passed impedance check on an active channel
    IMPEDANCE_FAILED = 5  # the last impedance check failed on an active channel
    BAD_PAYLOAD = 6  # CRC-valid frame whose payload does not parse for its type
    UNKNOWN_TYPE = 7  # CRC-valid frame with a message type the device does not know
    BAD_CHANNEL = 8  # channel number or mask beyond the device's channels
    FAULT_LATCHED = 9  # the device is in FAULT/ESTOP: only CLEAR_FAULT, HEARTBEAT, HELLO allowed
    BLOCK_SEQUENCE = 10  # block index not the next expected one
    VERSION = 11  # protocol version not supported
    NOT_FROM_HOST = 12  # a device-to-host message type sent to the device
    NO_SESSION = 13  # no session open (never opened, GOODBYE, or ended by silence in IDLE)


class FifoLimit(IntEnum):
    """Which FIFO bound refused a BLOCK: NAK FIFO_FULL detail = limit << 16 | queued amount."""

    DEPTH = 1  # fifo_depth blocks (amount: blocks queued)
    LOOKAHEAD = 2  # max_lookahead_ms of queued output (amount: ms queued)


class ImpedanceStatus(IntEnum):
    """Per-channel verdict of IMPEDANCE_RESULT."""

    OK = 0
    OPEN = 1
    SHORT = 2
    HIGH = 3  # above the device's pass threshold but not open


class LimitField(IntEnum):
    """What a NAK(OUT_OF_LIMITS) ``detail`` names: ``detail = channel << 8 | field``."""

    AMPLITUDE = 1  # above max_amplitude_ua
    FREQUENCY = 2  # outside min..max_frequency_dhz (0 allowed only with amplitude 0)
    PULSE_WIDTH = 3  # outside min..max_pulse_width_us (0 allowed only with amplitude 0)
    DURATION = 4  # block duration outside min_block_ms..max_block_ms
    GAIN = 5  # ADJUST gain above max_gain_permille
    DUTY = 6  # the pulse (both phases) does not fit in one period
    UNARMED = 7  # nonzero amplitude on a channel that is not armed
    SCALED_AMPLITUDE = 8  # amplitude x gain / 1000 above max_amplitude_ua
    AMPLITUDE_STEP = 9  # amplitude not a multiple of amplitude_step_ua


def limit_detail(field: LimitField, channel: int = 0) -> int:
    """The NAK(OUT_OF_LIMITS) detail for ``field`` on ``channel`` (1-based; 0: not per channel)."""
    return (channel << 8) | int(field)
