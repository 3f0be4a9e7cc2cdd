"""E-stop latency: from ``Controller.estop()`` to output zero in the simulator's trace, over a pty.

The simulator runs in its own process (``python -m firmware_sim --trace F``) on its real clock,
whose trace stamps are ``time.monotonic_ns()``: the same clock as the host's stamp taken just
before ``estop()``. Each trial: acknowledge, impedance check, arm, start, wait for output, e-stop.
Run: ``python -m hil.benchmarks.estop [--trials N] [--port PTY --trace FILE]``.
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from pathlib import Path
from typing import Any

from stimctl.controller import Controller
from stimctl.host.status import HostState

PROFILE = Path(__file__).resolve().parents[2] / "profiles" / "short-demo.toml"


class _TraceTail:
    """Follows a JSON-lines trace file."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.offset = path.stat().st_size if path.exists() else 0

    def new_events(self) -> list[dict[str, Any]]:
        if not self.path.exists():
            return []
        with self.path.open("rb") as f:
            f.seek(self.offset)
            data = f.read()
        end = data.rfind(b"\n") + 1
        self.offset += end
        return [json.loads(line) for line in data[:end].splitlines() if line.strip()]


def _zero_time_ns(tail: _TraceTail, t0: int, timeout: float = 2.0) -> int:
    """t_ns of the output-zero events the e-stop caused (the ESTOP fault is traced after them)."""
    deadline = time.monotonic() + timeout
    zero_ns: int | None = None
    while time.monotonic() < deadline:
        for e in tail.new_events():
            if e["t_ns"] < t0:
                continue
            if e["event"] == "output" and e["amplitude_ua"] == 0:
                zero_ns = max(zero_ns or 0, int(e["t_ns"]))
            if e["event"] == "fault" and e["fault"] == "ESTOP":
                if zero_ns is None:
                    raise RuntimeError("ESTOP traced without an output-zero event")
                return zero_ns
        time.sleep(0.002)
    raise TimeoutError("no ESTOP in the trace")


def _trial(ctl: Controller, tail: _TraceTail) -> int:
    if ctl.state in (HostState.FAULT, HostState.ESTOP):
        ctl.acknowledge_fault()
    ctl.check_impedance()
    ctl.arm(confirm=True)
    tail.new_events()  # skip what came before
    ctl.start()
    deadline = time.monotonic() + 3.0
    while not any(e["event"] == "output" and e["amplitude_ua"] > 0 for e in tail.new_events()):
        if time.monotonic() > deadline:
            raise TimeoutError("no output in the trace within 3 s of START")
        time.sleep(0.001)
    t0 = time.monotonic_ns()
    ctl.estop()
    return _zero_time_ns(tail, t0) - t0


def _stats(values_ns: list[int]) -> dict[str, float]:
    us = sorted(v / 1000 for v in values_ns)

    def pct(p: float) -> float:
        return us[min(len(us) - 1, round(p / 100 * (len(us) - 1)))]

    return {"n": len(us), "p50_us": pct(50), "p99_us": pct(99), "max_us": us[-1],
            "min_us": us[0]}  # fmt: skip


def measure(trials: int = 200, port: str | None = None, trace: str | None = None) -> dict:
    """E-stop latency figures (microseconds). Without ``port``, starts its own simulator."""
    proc = None
    with tempfile.TemporaryDirectory(prefix="estop-") as tmp:
        if port is None:
            from hil.simprocess import start_sim_process

            proc, port, trace_path, _ = start_sim_process(Path(tmp))
        elif trace is None:
            raise ValueError("with port, give the simulator's trace file too")
        else:
            trace_path = Path(trace)
        try:
            with Controller.connect(port) as ctl:
                ctl.load(PROFILE)
                tail = _TraceTail(trace_path)
                latencies = [_trial(ctl, tail) for _ in range(trials)]
        finally:
            if proc is not None:
                from hil.simprocess import stop_sim_process

                stop_sim_process(proc)
    return {"benchmark": "estop", "trials": trials, **_stats(latencies)}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m hil.benchmarks.estop", description=__doc__)
    parser.add_argument("--trials", type=int, default=200)
    parser.add_argument("--port", help="pty of a running `python -m firmware_sim --trace F`")
    parser.add_argument("--trace", help="that simulator's trace file")
    args = parser.parse_args(argv)
    result = measure(args.trials, args.port, args.trace)
    print(f"e-stop latency over {result['trials']} trials: p50 {result['p50_us']:.0f} us,"
          f" p99 {result['p99_us']:.0f} us, max {result['max_us']:.0f} us")  # fmt: skip
    print(json.dumps(result))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
