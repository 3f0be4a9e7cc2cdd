"""NAK and FAULT_EVENT ``detail`` words by name: "ch2 AMPLITUDE" where the wire says 513.

docs/PROTOCOL.md ("NAK reasons and `detail`") is the table these functions read out.
"""

from __future__ import annotations

from enum import IntEnum

from stimctl.protocol.constants import (
    NO_BLOCK,
    Fault,
    FifoLimit,
    LimitField,
    NakReason,
    Shape,
    State,
)

__all__ = ["channels_in_mask", "fault_detail_text", "limit_detail_text", "nak_detail_text"]


def _name(enum: type[IntEnum], value: int) -> str:
    try:
        return enum(value).name
    except ValueError:
        return str(value)


def channels_in_mask(mask: int) -> str:
    """``0b101`` -> ``"ch1, ch3"`` (bit 0 = channel 1)."""
    return ", ".join(f"ch{bit + 1}" for bit in range(32) if mask >> bit & 1) or "no channel"


def limit_detail_text(detail: int) -> str:
    """An OUT_OF_LIMITS detail (``channel << 8 | field``): ``"ch2 AMPLITUDE"``, ``"DURATION"``."""
    channel, field = detail >> 8, detail & 0xFF
    name = _name(LimitField, field)
    return f"ch{channel} {name}" if channel else name


def nak_detail_text(reason: int, detail: int, command: str = "") -> str:
    """What a NAK's detail means, in words, for ``reason`` answering ``command`` (its wire name,
    e.g. "BLOCK": BAD_CHANNEL and BAD_PAYLOAD details depend on it)."""
    if reason == NakReason.OUT_OF_LIMITS:
        return limit_detail_text(detail)
    if reason in (NakReason.BAD_STATE, NakReason.FAULT_LATCHED):
        return f"device {_name(State, detail)}"
    if reason in (NakReason.IMPEDANCE_NOT_CHECKED, NakReason.IMPEDANCE_FAILED):
        return channels_in_mask(detail)
    if reason == NakReason.BLOCK_SEQUENCE:
        return "no block after the LAST one" if detail == NO_BLOCK else f"expected block {detail}"
    if reason == NakReason.FIFO_FULL:
        return f"{_name(FifoLimit, detail >> 16)} ({detail & 0xFFFF} queued)"
    if reason == NakReason.VERSION:
        return f"protocol version {detail} received"
    if reason == NakReason.BAD_CHANNEL:
        if command == "BLOCK":
            return f"{detail} channel records"
        return f"ch{detail}" if command == "ADJUST" else f"mask {channels_in_mask(detail)}"
    if reason == NakReason.BAD_PAYLOAD and command == "ARM" and detail:
        return f"shape {_name(Shape, detail)}"
    return f"detail {detail}"


def fault_detail_text(fault: int, detail: int) -> str:
    """What a FAULT_EVENT's detail means, in words (LIMIT_VIOLATION: the NAK detail)."""
    units = {
        Fault.COMMS_LOSS: "ms since the last frame",
        Fault.UNDERRUN: "index of the block that ended",
        Fault.ELECTRODE_OPEN: "ohm",
        Fault.ELECTRODE_SHORT: "ohm",
        Fault.COMPLIANCE: "mV needed",
        Fault.OVERCURRENT: "uA measured",
    }
    if fault == Fault.LIMIT_VIOLATION:
        return limit_detail_text(detail)
    unit = units.get(Fault(fault)) if fault in Fault._value2member_map_ else None
    return f"{detail} {unit}" if unit else f"detail {detail}"
