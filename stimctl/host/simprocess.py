"""The simulator in its own process: firmware_sim served on a pseudo-terminal, started by the host.

The embedded simulator runs in real (or scaled) time in a process of its own, so that its 1 kHz
loop and the host (a UI, a CLI) never share an interpreter lock: the device's timing is then as
real as a stimulator's, and a busy host cannot starve it. Only the virtual lock-step clock runs
in-process (``stimsim://?virtual=1``).
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Mapping, Sequence
from pathlib import Path

from firmware_sim.clock import MAX_SPEED, check_speed
from firmware_sim.options import CLI_FLAGS
from stimctl.host.errors import StimctlError

__all__ = [
    "MAX_SPEED", "SIM_OPTION_FLAGS", "SimulatorProcess", "check_speed", "register_stimsim_urls",
    "sim_args",
]  # fmt: skip

START_TIMEOUT_S = 15.0


def register_stimsim_urls() -> None:
    """Make ``stimsim://`` URLs openable in this process (the in-process virtual clock).

    This module is the only host module that imports firmware_sim (tests/layers.py checks it).
    """
    import firmware_sim  # noqa: F401  (importing it registers the URL handler with pyserial)


STOP_TIMEOUT_S = 5.0

#: simulator option (stimsim:// URL parameter name) -> `stimctl sim` flag: firmware_sim's table
SIM_OPTION_FLAGS = CLI_FLAGS


def sim_args(speed: float | None, options: Mapping[str, str] | None) -> list[str]:
    """Command-line flags for the simulator from a speed and stimsim-style options."""
    args: list[str] = []
    if speed is not None and speed != 1:
        args += ["--speed", f"{speed:g}"]
    for name, value in (options or {}).items():
        flag = SIM_OPTION_FLAGS.get(name)
        if flag is None:
            known = ", ".join(sorted(SIM_OPTION_FLAGS))
            raise ValueError(f"unknown simulator option {name!r} (known: {known})")
        args += [flag, str(value)]
    return args


class SimulatorProcess:
    """``stimctl sim ARGS`` (firmware_sim) in its own process; ``port`` is the pty it serves on.

    It dies with this process however this one ends (SIGKILL included), and sees to that itself
    (``--parent``): its stdin is a pipe whose only writer is this process, so the pipe's EOF
    means we are gone; it also checks ``getppid()``. Linux's PR_SET_PDEATHSIG is asked for only
    when we spawn from the main thread: the kernel sends it when the spawning *thread* ends, and
    a UI connects from a worker thread that ends long before the UI. Its own session (no
    controlling terminal) keeps a terminal's Ctrl-C for the host, which then stops it.
    """

    def __init__(self, args: Sequence[str] = (), *, cwd: str | Path | None = None) -> None:
        self._stderr = tempfile.TemporaryFile(mode="w+")  # noqa: SIM115 (closed in stop)
        watch = ["--parent", str(os.getpid())]
        if threading.current_thread() is threading.main_thread():
            watch.append("--pdeathsig")
        cmd = [sys.executable, "-m", "stimctl", "sim", *watch, *args]  # = `stimctl sim ARGS`
        self.proc = subprocess.Popen(
            cmd, stdout=subprocess.PIPE, stderr=self._stderr, stdin=subprocess.PIPE,
            text=True, cwd=cwd, start_new_session=True,  # a terminal's Ctrl-C goes to the host
        )  # fmt: skip
        self.port = self._read_port()

    def _read_port(self) -> str:
        assert self.proc.stdout is not None
        deadline = time.monotonic() + START_TIMEOUT_S
        line = ""
        while time.monotonic() < deadline and self.proc.poll() is None:
            line = self.proc.stdout.readline().strip()
            if line.startswith("PORT "):
                return line.split(" ", 1)[1]
        if self.proc.poll() is None:
            self.proc.kill()
        self.proc.wait()
        self._stderr.seek(0)
        why = self._stderr.read().strip().splitlines()[-1:] or [f"first line {line!r}"]
        self.stop()
        raise StimctlError(f"the simulator did not start: {why[0]}")

    def stop(self) -> int:
        """SIGTERM, then SIGKILL if it does not exit in time; its exit code. Idempotent."""
        if self.proc.stdin is not None:
            with contextlib.suppress(OSError):
                self.proc.stdin.close()  # the parent pipe's EOF: it stops by itself as well
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=STOP_TIMEOUT_S)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        if self.proc.stdout is not None:
            self.proc.stdout.close()
        self._stderr.close()
        return int(self.proc.returncode)

    @property
    def pid(self) -> int:
        return self.proc.pid

    def __enter__(self) -> SimulatorProcess:
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()
