"""`stimctl sim`: the simulator in its own process on a pseudo-terminal, as any client sees it."""

from __future__ import annotations

import signal
import subprocess
import sys
import time

import serial

from stimctl.cli import main
from stimctl.protocol import PROTOCOL_VERSION, DeviceInfo, FrameDecoder, Hello, encode

STIMCTL = [sys.executable, "-m", "stimctl"]


def test_sim_prints_its_port_first_answers_hello_and_exits_0_on_sigterm() -> None:
    proc = subprocess.Popen(
        [*STIMCTL, "sim", "--channels", "2", "--serial", "BENCH42"],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )  # fmt: skip
    try:
        assert proc.stdout is not None
        first = proc.stdout.readline().split()
        assert first[0] == "PORT"
        with serial.Serial(first[1], timeout=0.2) as port:
            port.reset_input_buffer()
            port.write(encode(Hello(seq=1, protocol_version=PROTOCOL_VERSION)))
            decoder, infos = FrameDecoder(), []
            deadline = time.monotonic() + 10
            while not infos and time.monotonic() < deadline:
                infos = [m for m in decoder.feed(port.read(256)) if isinstance(m, DeviceInfo)]
        assert (infos[0].serial, infos[0].channels) == ("BENCH42", 2)
    finally:
        proc.send_signal(signal.SIGTERM)
        code = proc.wait(timeout=10)
    assert code == 0


def test_sim_with_an_unknown_option_is_a_usage_error(capsys) -> None:
    assert main(["sim", "--no-such-option"]) == 2
    assert "unrecognized arguments: --no-such-option" in capsys.readouterr().err


def test_other_commands_still_refuse_unknown_options(capsys) -> None:
    assert main(["validate", "--no-such-option", "profiles"]) == 2
    assert "unrecognized arguments" in capsys.readouterr().err


def test_sim_at_its_top_speed_with_a_session_open_still_exits_0_on_sigterm() -> None:
    # 1000 x: ticks come due faster than one process can run them; the loop runs them in
    # steps and sees the stop between two (at 1e9 it used to spin and ignore SIGTERM).
    proc = subprocess.Popen([*STIMCTL, "sim", "--speed", "1000", "--watchdog-ms", "60000"],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)  # fmt: skip
    try:
        assert proc.stdout is not None
        path = proc.stdout.readline().split()[1]
        with serial.Serial(path, timeout=0.2) as port:
            port.write(encode(Hello(seq=1, protocol_version=PROTOCOL_VERSION)))
            assert port.read(64)  # the session is open: 50 Hz of device-time telemetry
    finally:
        proc.send_signal(signal.SIGTERM)
        code = proc.wait(timeout=30)
    assert code == 0


def test_sim_refuses_a_speed_beyond_its_range_as_a_usage_error(capsys) -> None:
    for bad in ("1e9", "0", "nan", "-1"):
        assert main(["sim", f"--speed={bad}"]) == 2
        assert "speed must be > 0 and <= 1000" in capsys.readouterr().err
