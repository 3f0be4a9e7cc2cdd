"""Black-box: `python -m firmware_sim` in its own process, on a pseudo-terminal, with a trace."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import time
from dataclasses import replace
from pathlib import Path

import serial

from firmware_sim.scripted import uniform_block
from stimctl.protocol import (
    PROTOCOL_VERSION,
    Ack,
    Arm,
    DeviceInfo,
    FrameDecoder,
    Hello,
    ImpedanceCheck,
    ImpedanceResult,
    Message,
    Start,
    encode,
)

WATCHDOG_MS = 200


class Link:
    """Just enough of a host to talk to the simulator over a real serial port."""

    def __init__(self, port: serial.Serial) -> None:
        self.port, self.decoder, self.seq = port, FrameDecoder(), 0

    def send(self, msg: Message) -> int:
        self.seq += 1
        self.port.write(encode(replace(msg, seq=self.seq)))
        return self.seq

    def wait(self, kind: type[Message], seq: int | None = None, timeout: float = 3.0) -> Message:
        end = time.monotonic() + timeout
        while time.monotonic() < end:
            for m in self.decoder.feed(self.port.read(self.port.in_waiting or 1)):
                if isinstance(m, kind) and (seq is None or getattr(m, "ack_seq", seq) == seq):
                    return m
        raise TimeoutError(f"no {kind.__name__}")


def read_trace(path: Path) -> list[dict[str, object]]:
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


def test_simulator_process_trips_its_watchdog_when_the_host_goes_silent(tmp_path: Path) -> None:
    trace = tmp_path / "trace.jsonl"
    proc = subprocess.Popen(
        [sys.executable, "-m", "firmware_sim", "--trace", str(trace),
         "--watchdog-ms", str(WATCHDOG_MS)],
        stdout=subprocess.PIPE, text=True,
    )  # fmt: skip
    try:
        assert proc.stdout is not None
        first = proc.stdout.readline().split()
        assert first[0] == "PORT"
        with serial.Serial(first[1], timeout=0.05) as port:
            link = Link(port)
            link.send(Hello(protocol_version=PROTOCOL_VERSION))
            assert isinstance(link.wait(DeviceInfo), DeviceInfo)
            assert isinstance(link.wait(Ack, link.send(ImpedanceCheck(channel_mask=1))), Ack)
            link.wait(ImpedanceResult)
            assert isinstance(link.wait(Ack, link.send(Arm(channel_mask=1, shape=0))), Ack)
            for i in range(12):  # 240 ms queued: longer than the watchdog
                link.send(uniform_block(i, 4, amplitude_ua=500, frequency_dhz=1000, mask=1))
            assert isinstance(link.wait(Ack, link.send(Start())), Ack)
            # ... and now the host goes silent.
            deadline = time.monotonic() + 5
            while time.monotonic() < deadline:
                if any(e["event"] == "fault" for e in read_trace(trace)):
                    break
                time.sleep(0.05)
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=5) == 0
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()

    events = read_trace(trace)
    last_rx = max(e["device_ms"] for e in events if e["event"] == "rx")
    (fault,) = [e for e in events if e["event"] == "fault"]
    assert fault["fault"] == "COMMS_LOSS" and fault["channel"] == 0
    assert any(e["event"] == "state" and e["state"] == "RUNNING" for e in events)
    outputs = [e for e in events if e["event"] == "output"]
    assert any(e["amplitude_ua"] > 0 for e in outputs), "output was live before the fault"
    # Device time: the fault latches watchdog_ms after the last frame, within one tick.
    assert WATCHDOG_MS <= fault["device_ms"] - last_rx <= WATCHDOG_MS + 1  # type: ignore[operator]
    # ... and every output is zero from that tick on (same device tick, same or later t_ns).
    final = {e["channel"]: e for e in outputs}
    assert all(e["amplitude_ua"] == 0 for e in final.values())
    assert all(e["device_ms"] == fault["device_ms"] for e in final.values())
    assert all(e["t_ns"] <= fault["t_ns"] for e in final.values())  # type: ignore[operator]
    state = [e for e in events if e["event"] == "state"][-1]
    assert (state["state"], state["previous"]) == ("FAULT", "RUNNING")
