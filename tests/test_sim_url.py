"""Specification of the stimsim:// pyserial URL handler and of the control socket."""

from __future__ import annotations

import json
import socket
import threading
from pathlib import Path

import pytest
import serial

import firmware_sim  # noqa: F401  (registers stimsim://)
from firmware_sim.protocol_stimsim import Serial as StimSerial
from stimctl.protocol import (
    PROTOCOL_VERSION,
    DeviceInfo,
    FrameDecoder,
    Hello,
    Message,
    State,
    Telemetry,
    encode,
)


def read_messages(port: serial.SerialBase, count: int, max_reads: int = 1000) -> list[Message]:
    decoder, out = FrameDecoder(), []
    for _ in range(max_reads):
        out += [m for m in decoder.feed(port.read(port.in_waiting or 1)) if isinstance(m, Message)]
        if len(out) >= count:
            break
    return out


@pytest.mark.parametrize("mode", ["virtual=1", "speed=1", "speed=20"])
def test_serial_for_url_gives_a_port_that_answers_hello(mode: str) -> None:
    port = serial.serial_for_url(f"stimsim://?{mode}&channels=8&serial=SIM0042", timeout=2)
    try:
        assert isinstance(port, StimSerial)
        port.write(encode(Hello(seq=1, protocol_version=PROTOCOL_VERSION)))
        msgs = read_messages(port, 3)
        info = msgs[0]
        assert isinstance(info, DeviceInfo)
        assert (info.channels, info.serial) == (8, "SIM0042")
        assert all(isinstance(m, Telemetry) for m in msgs[1:3])
    finally:
        port.close()


def test_virtual_read_timeout_advances_virtual_time_by_the_timeout() -> None:
    port = serial.serial_for_url("stimsim://?virtual=1", timeout=0.5)
    try:
        assert port.read(10) == b""
        assert port.device.time_ms == 500
    finally:
        port.close()


def test_virtual_mode_is_deterministic() -> None:
    def run() -> bytes:
        port = serial.serial_for_url("stimsim://?virtual=1&drop=0.01&flip=0.01&seed=7", timeout=1)
        port.write(encode(Hello(seq=1, protocol_version=PROTOCOL_VERSION)))
        data = b"".join(port.read(4096) for _ in range(5))
        port.close()
        return data

    assert run() == run()


def test_unknown_url_parameter_raises_a_clear_serial_exception() -> None:
    with pytest.raises(serial.SerialException, match="unknown URL parameter 'speeed'"):
        serial.serial_for_url("stimsim://?speeed=2")


@pytest.mark.parametrize(
    "query",
    [
        "channels=9",
        "speed=0",
        "drop=2",
        "fault=meltdown:1",
        "watchdog_ms=x",
        "watchdog_ms=99",
        "lockstep=maybe",
    ],
)
def test_bad_url_values_raise_serial_exception(query: str) -> None:
    with pytest.raises(serial.SerialException, match="bad value"):
        serial.serial_for_url(f"stimsim://?{query}")


def test_operations_after_close_raise_port_not_open() -> None:
    port = serial.serial_for_url("stimsim://?speed=1")
    port.close()
    with pytest.raises(serial.PortNotOpenError):
        port.read(1)
    with pytest.raises(serial.PortNotOpenError):
        port.write(b"x")
    with pytest.raises(serial.PortNotOpenError):
        _ = port.in_waiting


def test_url_fault_without_a_time_applies_at_power_up() -> None:
    port = serial.serial_for_url("stimsim://?virtual=1&fault=open:2&impedance=1500,2200")
    try:
        ch = port.device.output_stage.channels
        assert ch[0].impedance_ohm == 1500 and ch[1].impedance_ohm > 100_000
        assert ch[2].impedance_ohm == 2200
    finally:
        port.close()


def test_trace_parameter_writes_json_lines(tmp_path: Path) -> None:
    trace = tmp_path / "trace.jsonl"
    port = serial.serial_for_url(f"stimsim://?virtual=1&trace={trace}", timeout=0.3)
    port.write(encode(Hello(seq=1, protocol_version=PROTOCOL_VERSION)))
    port.read(1000)
    port.close()
    events = [json.loads(line) for line in trace.read_text().splitlines()]
    assert events[0]["event"] == "state" and events[0]["state"] == "IDLE"
    assert {"t_ns", "device_ms", "event"} <= set(events[1])
    assert any(e["event"] == "rx" and e["type"] == "Hello" for e in events)


def control(path: Path, *lines: str) -> list[str]:
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as s:
        s.connect(str(path))
        f = s.makefile("rw")
        answers = []
        for line in lines:
            f.write(line + "\n")
            f.flush()
            answers.append(f.readline().strip())
        return answers


def test_control_socket_injects_faults_and_reports_status(tmp_path: Path) -> None:
    sock = tmp_path / "ctl.sock"
    port = serial.serial_for_url(f"stimsim://?virtual=1&control={sock}")
    try:
        answers = control(
            sock, "inject electrode_open 1", "inject impedance 2500 2", "link drop 0.5",
            "link clear", "inject bogus 1", "frobnicate", "status",
        )  # fmt: skip
        assert answers[:4] == ["ok"] * 4
        assert answers[4].startswith("error") and answers[5].startswith("error")
        status = json.loads(answers[6])
        assert status["state"] == State.IDLE.name and status["fault"] == "NONE"
        assert status["impedance"][:2] == [10_000_000, 2500]
        assert status["outputs"] == [0, 0, 0, 0]
    finally:
        port.close()
    assert not sock.exists()


def test_impedance_validity_is_a_url_parameter() -> None:
    port = serial.serial_for_url("stimsim://?virtual=1&impedance_valid_ms=3600000")
    try:
        assert port.device.config.impedance_valid_ms == 3_600_000
    finally:
        port.close()


def test_lockstep_holds_device_time_until_the_host_waits() -> None:
    port = serial.serial_for_url("stimsim://?lockstep=1", timeout=0.05)
    try:
        assert port.virtual and port.lockstep
        assert port.read(10) == b""  # nobody is waiting for the device: time stands still
        assert port.device.time_ms == 0
        with port.host_waiting():
            port.read(10)  # the read timeout's worth of device time runs while the host waits
        assert port.device.time_ms == 50
        port.write(encode(Hello(seq=1, protocol_version=PROTOCOL_VERSION)))
        assert port.read(10) == b""  # the HELLO waits, unanswered, until the host waits
        assert port.device.time_ms == 50
        with port.host_waiting():
            assert isinstance(read_messages(port, 1)[0], DeviceInfo)
    finally:
        port.close()


def test_lockstep_read_returns_when_the_port_closes_under_it() -> None:
    port = serial.serial_for_url("stimsim://?lockstep=1", timeout=None)
    result: list[bytes] = []
    reader = threading.Thread(target=lambda: result.append(port.read(1)))
    reader.start()
    port.close()
    reader.join(timeout=5)
    assert not reader.is_alive() and result == [b""]


def test_a_virtual_read_of_bytes_already_sent_runs_no_device_time() -> None:
    port = serial.serial_for_url("stimsim://?virtual=1", timeout=0.5)
    try:
        port.write(encode(Hello(seq=1, protocol_version=PROTOCOL_VERSION)))
        first = port.read(1)  # the device runs until it answers
        ticks, pending = port.device.tick_count, port.in_waiting
        assert first and pending > 0
        rest = port.read(pending)
        assert len(rest) == pending and port.device.tick_count == ticks
        assert isinstance(FrameDecoder().feed(first + rest)[0], DeviceInfo)
        assert port.read(pending + 1)  # more than was sent: the device runs on for it
        assert port.device.tick_count > ticks
    finally:
        port.close()


@pytest.mark.parametrize("size", [0, -1])
def test_a_read_of_no_bytes_returns_nothing_and_leaves_what_is_pending(size: int) -> None:
    port = serial.serial_for_url("stimsim://?virtual=1", timeout=0.5)
    try:
        port.write(encode(Hello(seq=1, protocol_version=PROTOCOL_VERSION)))
        port.read(1)
        ticks, pending = port.device.tick_count, port.in_waiting
        assert port.read(size) == b""
        assert (port.device.tick_count, port.in_waiting) == (ticks, pending)
    finally:
        port.close()
