"""The simulator process's footprint: idle CPU, and how long an orphan takes to go.

- ``sim_idle_cpu_percent`` {no_host, session_idle}: CPU of `stimctl sim` (its own process, pty)
  over ``seconds`` with no host, and with a host connected in IDLE (heartbeats and 50 Hz
  telemetry); percent of one core, from /proc/<pid>/stat (goal: <= 5 %).
- ``orphan_gone_ms`` {p50, max, n}: a host (`python -m hil.benchmarks.lifetime --host`, which
  starts the embedded real-time simulator) SIGKILLed; wall time until the simulator is gone.

Figures are printed, never asserted. Run: ``python -m hil.benchmarks.lifetime``.
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from hil.measure import summarize
from stimctl.host.simprocess import SimulatorProcess

ROOT = Path(__file__).resolve().parents[2]


def cpu_seconds(pid: int) -> float:
    """utime + stime of ``pid`` in seconds (Linux /proc)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def cpu_percent(pid: int, seconds: float) -> float:
    c0, t0 = cpu_seconds(pid), time.monotonic()
    time.sleep(seconds)
    return round(100 * (cpu_seconds(pid) - c0) / (time.monotonic() - t0), 2)


def idle_cpu(seconds: float = 5.0) -> dict[str, float]:
    from stimctl.controller import Controller

    with SimulatorProcess() as sim:
        time.sleep(0.5)  # start-up done
        no_host = cpu_percent(sim.pid, seconds)
        with Controller.connect(sim.port):
            session_idle = cpu_percent(sim.pid, seconds)
    return {"no_host": no_host, "session_idle": session_idle}


def _alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return False
    return state != "Z"


def orphan_gone(trials: int = 5) -> dict[str, Any]:
    """SIGKILL a host that started the embedded simulator; ms until the simulator is gone."""
    times: list[float] = []
    for _ in range(trials):
        host = subprocess.Popen([sys.executable, "-m", "hil.benchmarks.lifetime", "--host"],
                                stdout=subprocess.PIPE, text=True, cwd=ROOT)  # fmt: skip
        assert host.stdout is not None
        sim = int(host.stdout.readline().split()[1])
        t0 = time.monotonic()
        host.send_signal(signal.SIGKILL)
        host.wait()
        host.stdout.close()
        while _alive(sim):
            if time.monotonic() - t0 > 30:
                raise RuntimeError(f"the orphaned simulator {sim} is still alive after 30 s")
            time.sleep(0.001)
        times.append((time.monotonic() - t0) * 1000)
    return summarize(times)


def _host() -> int:
    """Connect to the embedded real-time simulator, print ``SIM <pid>``, wait to be killed."""
    from stimctl.controller import Controller

    ctl = Controller.connect(None)
    assert ctl.connection.sim_process is not None
    print(f"SIM {ctl.connection.sim_process.pid}", flush=True)
    while True:
        time.sleep(3600)


def measure(seconds: float = 5.0, trials: int = 5) -> dict[str, Any]:
    return {"sim_idle_cpu_percent": idle_cpu(seconds), "orphan_gone_ms": orphan_gone(trials)}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m hil.benchmarks.lifetime", description=__doc__)
    parser.add_argument("--seconds", type=float, default=5.0)
    parser.add_argument("--trials", type=int, default=5)
    parser.add_argument("--host", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.host:
        return _host()
    print(json.dumps(measure(args.seconds, args.trials)))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
