"""A host in its own process: ``python -m hil.hostproc``, and HostProcess to start and kill it."""

from __future__ import annotations

import argparse
import json
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from hil.devicelink import DeviceLink, LinkTimeout
from stimctl.protocol import State, Telemetry

PROFILE = Path(__file__).resolve().parents[1] / "profiles" / "short-demo.toml"


def controller_session(port: str, state: str, profile: Path = PROFILE) -> Any:
    """A stimctl Controller on ``port`` brought to ``state`` (IDLE, ARMED or RUNNING with
    output already above zero), running ``profile``."""
    from stimctl.controller import Controller

    ctl = Controller.connect(port)
    try:
        if state in ("ARMED", "RUNNING"):
            report = ctl.load(profile)
            ctl.check_impedance()
            ctl.arm(confirm=True, acknowledge_warnings=bool(report.warnings))
        if state == "RUNNING":
            ctl.start()
            deadline = time.monotonic() + 3.0
            while not all(c.measured_ma > 0 for c in ctl.status().channels if c.plateau_ma > 0):
                if time.monotonic() > deadline:
                    raise LinkTimeout("no output within 3 s of START")
                time.sleep(0.01)
    except BaseException:
        ctl.close()
        raise
    return ctl


class HostProcess:
    """``python -m hil.hostproc`` as a child process: a host in its own process to kill."""

    def __init__(
        self,
        port: str,
        state: str,
        *,
        then: str = "wait",
        host: str = "controller",
        timeout: float = 10.0,
    ) -> None:
        cmd = [sys.executable, "-m", "hil.hostproc", "--port", port, "--state", state,
               "--then", then, "--host", host]  # fmt: skip
        root = Path(__file__).resolve().parents[1]
        self.proc = subprocess.Popen(
            cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, cwd=root
        )
        self.ready = self._line("READY", timeout)
        self.closed_ns = int(self._line("CLOSED", timeout)["t_ns"]) if then == "close" else None

    def _line(self, tag: str, timeout: float) -> dict[str, Any]:
        assert self.proc.stdout is not None
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            line = self.proc.stdout.readline()
            if not line:
                break
            if line.startswith(tag + " "):
                return dict(json.loads(line.split(" ", 1)[1]))
        self.proc.kill()
        _, err = self.proc.communicate(timeout=5)
        raise LinkTimeout(f"host process did not print {tag}: {err[-2000:]}")

    def kill(self) -> int:
        """SIGKILL the host; returns the monotonic time (ns) just before the signal."""
        t_ns = time.monotonic_ns()
        self.proc.send_signal(signal.SIGKILL)
        self.proc.wait(timeout=5)
        if self.proc.stdout is not None:
            self.proc.stdout.close()
        if self.proc.stderr is not None:
            self.proc.stderr.close()
        return t_ns


def _host_main(argv: list[str] | None = None) -> int:
    """Connect, reach ``--state``, print READY, then keep the session alive until killed.

    ``--host controller`` (default) is stimctl's Controller running profiles/short-demo.toml;
    ``--host raw`` is the DeviceLink streaming constant blocks. ``--then close`` closes the port
    abruptly (no GOODBYE) right after READY, prints CLOSED and stays alive.
    """
    parser = argparse.ArgumentParser(prog="python -m hil.hostproc")
    parser.add_argument("--port", required=True)
    parser.add_argument("--state", choices=["IDLE", "ARMED", "RUNNING"], default="RUNNING")
    parser.add_argument("--host", choices=["controller", "raw"], default="controller")
    parser.add_argument("--then", choices=["wait", "close"], default="wait")
    args = parser.parse_args(argv)
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
    if args.host == "controller":
        ctl = controller_session(args.port, args.state)
        ready = {"watchdog_ms": ctl.device.watchdog_ms, "state": args.state}
        close: Callable[[], None] = ctl.link.close
    else:
        link = DeviceLink(args.port)
        info = link.hello()
        link.reset_to_idle()
        link.enter(State[args.state])
        if args.state == "RUNNING":
            link.expect(Telemetry, 2.0, link.mark(), where=lambda t: t.channels[0].measured_ua > 0)
        ready = {"watchdog_ms": info.watchdog_ms, "state": args.state}

        def close() -> None:
            link.close(goodbye=False)

    print("READY " + json.dumps({**ready, "t_ns": time.monotonic_ns()}), flush=True)
    if args.then == "close":
        t_ns = time.monotonic_ns()
        close()
        print("CLOSED " + json.dumps({"t_ns": t_ns}), flush=True)
    while True:
        time.sleep(3600)


if __name__ == "__main__":
    raise SystemExit(_host_main())
