"""ESTOP is obeyed from any CRC-valid frame of its type (issue 10, item 5)."""

from __future__ import annotations

import struct
import zlib

import pytest
from cobs import cobs

from firmware_sim import Device, DeviceConfig
from firmware_sim.scripted import ScriptedHost, uniform_block
from stimctl.protocol import (
    PROTOCOL_VERSION,
    Ack,
    Arm,
    EStop,
    Fault,
    FaultEvent,
    Hello,
    ImpedanceCheck,
    ImpedanceResult,
    Nak,
    Start,
    State,
)


def frame(type_code: int, payload: bytes, version: int = PROTOCOL_VERSION, seq: int = 7) -> bytes:
    """A CRC-valid wire frame with any header and payload (the encoder would refuse them)."""
    body = struct.pack("<BBH", version, type_code, seq) + payload
    return cobs.encode(body + struct.pack("<I", zlib.crc32(body))) + b"\x00"


def running_host() -> ScriptedHost:
    h = ScriptedHost(Device(DeviceConfig()))
    h.command(Hello(protocol_version=PROTOCOL_VERSION))
    assert isinstance(h.command(ImpedanceCheck(channel_mask=1)), Ack)
    h.wait_for(ImpedanceResult)
    assert isinstance(h.command(Arm(channel_mask=1, shape=0)), Ack)
    for i in range(10):
        assert isinstance(h.command(uniform_block(i, h.device.config.channels, mask=1)), Ack)
    assert isinstance(h.command(Start()), Ack)
    h.pump(30)
    assert h.device.output_stage.any_output
    return h


def answers(h: ScriptedHost, raw: bytes) -> list[Ack | Nak]:
    h.send_raw(raw)
    return [m for m in h.pump(2) if isinstance(m, Ack | Nak)]


@pytest.mark.parametrize(
    ("payload", "version"),
    [(b"\x01", PROTOCOL_VERSION), (b"\x00" * 40, PROTOCOL_VERSION), (b"", PROTOCOL_VERSION + 1),
     (b"\xff", 0)],
    ids=["one-extra-byte", "forty-extra-bytes", "next-version", "version-0-with-a-byte"],
)  # fmt: skip
def test_an_estop_frame_latches_estop_whatever_its_length_or_version(
    payload: bytes, version: int
) -> None:
    h = running_host()
    got = answers(h, frame(EStop.TYPE, payload, version))
    assert h.device.state is State.ESTOP
    assert not h.device.output_stage.any_output
    assert [type(a) for a in got] == [Ack]
    assert any(isinstance(m, FaultEvent) and m.fault == Fault.ESTOP for m in h.received)


def test_an_estop_frame_with_an_extra_byte_latches_estop_without_a_session() -> None:
    h = ScriptedHost(Device(DeviceConfig()))
    h.send_raw(frame(EStop.TYPE, b"\x01"))
    h.pump(2)
    assert h.device.state is State.ESTOP


def test_an_estop_frame_with_a_bad_crc_is_still_dropped() -> None:
    h = running_host()
    raw = bytearray(frame(EStop.TYPE, b"\x01"))
    raw[2] ^= 0x40  # corrupt a byte inside the COBS body
    answers(h, bytes(raw))
    assert h.device.state is State.RUNNING


def test_other_malformed_frames_are_still_refused_and_not_acted_on() -> None:
    h = running_host()
    got = answers(h, frame(0x14, b"\x01"))  # PAUSE with an extra byte
    assert [type(a) for a in got] == [Nak]
    assert h.device.state is State.RUNNING
