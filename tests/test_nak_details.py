"""The host names NAK details ("ch2 AMPLITUDE", "device IDLE") from stimctl.protocol's meanings."""

from __future__ import annotations

import pytest
import serial

from firmware_sim.limits import LimitError
from stimctl.host.errors import CommandRejected
from stimctl.host.link import Link
from stimctl.host.simprocess import register_stimsim_urls
from stimctl.protocol import LimitField, NakReason, Start
from stimctl.protocol.details import fault_detail_text, limit_detail_text, nak_detail_text


@pytest.mark.parametrize("field", list(LimitField))
@pytest.mark.parametrize("channel", [0, 1, 2, 8])
def test_every_device_limit_detail_reads_back_as_channel_and_field(
    field: LimitField, channel: int
) -> None:
    detail = LimitError(field, channel).detail  # as firmware_sim puts it on the wire
    assert limit_detail_text(detail) == (f"ch{channel} {field.name}" if channel else field.name)


def test_an_out_of_limits_refusal_says_the_channel_and_the_field_not_the_number() -> None:
    error = CommandRejected("BLOCK", "OUT_OF_LIMITS", 2 << 8 | LimitField.AMPLITUDE)
    assert str(error) == "BLOCK rejected by the device: OUT_OF_LIMITS (ch2 AMPLITUDE)"
    assert error.detail == 513  # the number stays available to scripts


@pytest.mark.parametrize(
    ("reason", "detail", "command", "said"),
    [
        (NakReason.BAD_STATE, 2, "START", "device ARMED"),
        (NakReason.FAULT_LATCHED, 7, "ARM", "device ESTOP"),
        (NakReason.IMPEDANCE_FAILED, 0b101, "ARM", "ch1, ch3"),
        (NakReason.BAD_CHANNEL, 9, "ADJUST", "ch9"),
        (NakReason.BAD_CHANNEL, 5, "BLOCK", "5 channel records"),
        (NakReason.BAD_PAYLOAD, 7, "ARM", "shape 7"),
        (NakReason.BLOCK_SEQUENCE, 12, "BLOCK", "expected block 12"),
        (NakReason.BLOCK_SEQUENCE, 0xFFFF_FFFF, "BLOCK", "no block after the LAST one"),
        (NakReason.FIFO_FULL, 2 << 16 | 240, "BLOCK", "LOOKAHEAD (240 queued)"),
        (NakReason.UNKNOWN_TYPE, 0, "", "detail 0"),
    ],
)
def test_nak_details_by_reason(reason: NakReason, detail: int, command: str, said: str) -> None:
    assert nak_detail_text(reason, detail, command) == said


def test_a_limit_violation_fault_names_its_field() -> None:
    assert fault_detail_text(6, 3 << 8 | LimitField.DUTY) == "ch3 DUTY"
    assert fault_detail_text(3, 100_000) == "100000 ohm"


def test_the_simulator_s_refusal_reaches_the_host_by_name() -> None:
    register_stimsim_urls()
    port = serial.serial_for_url("stimsim://?virtual=1", timeout=1)
    link = Link(port, "stimsim://", lambda message: None, lambda error: None)
    try:
        link.hello(timeout=2)
        with pytest.raises(CommandRejected) as refused:
            link.request(Start(), timeout=2)  # IDLE: nothing armed
        assert str(refused.value).endswith("BAD_STATE (device IDLE)")
    finally:
        link.close()
