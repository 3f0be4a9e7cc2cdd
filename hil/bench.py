"""`python -m hil.bench`: every performance figure in one report (table + JSON)."""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from hil.benchconfig import BenchConfig, git_sha
from hil.hostproc import HostProcess
from hil.measure import format_value, summarize, text_table, write_record
from hil.simprocess import start_sim_process, stop_sim_process

WATCHDOG_TRIALS = 20
ESTOP_TRIALS = 200
STREAM_SECONDS = 60.0


def watchdog_trip(
    trials: int = WATCHDOG_TRIALS, port: str | None = None, trace: str | None = None
) -> dict[str, Any]:
    """Host process SIGKILLed while RUNNING -> all outputs zero in the device trace (ms).

    Returns p50/p99/max/n and, separately, which fault latched (COMMS_LOSS when the watchdog
    fired first, UNDERRUN when the FIFO ran dry first).
    """
    with tempfile.TemporaryDirectory(prefix="hil-wd-") as tmp:
        proc = None
        if port is None:
            proc, port, trace_path, control = start_sim_process(Path(tmp))
        elif trace is None:
            raise ValueError("with --port, give the device trace (--trace) too")
        else:
            trace_path, control = Path(trace), None
        bench = BenchConfig(
            port=port, kind="port", capabilities=frozenset({"trace", "host_process"}),
            trace_path=trace_path, control_path=control,
        )  # fmt: skip
        trips: list[float] = []
        faults: dict[str, int] = {}
        try:
            for _ in range(trials):
                trips.append(_one_trip(bench, faults))
        finally:
            if proc is not None:
                stop_sim_process(proc)
    return {**summarize(trips), "faults": faults}


def _one_trip(bench: BenchConfig, faults: dict[str, int]) -> float:
    from hil.devicelink import DeviceLink

    since = bench.trace_offset()
    host = HostProcess(bench.port, "RUNNING")
    t_kill = host.kill()
    fault = bench.wait_event(since, "fault", timeout=2.0)
    zero = bench.wait_output_zero(since, t_kill, timeout=2.0)
    if fault is None or zero is None:
        raise RuntimeError("the device did not fault with output zero after the host died")
    faults[str(fault["fault"])] = faults.get(str(fault["fault"]), 0) + 1
    with DeviceLink(bench.port) as link:  # clear the latched fault for the next trial
        link.hello()
        link.reset_to_idle()
    return (int(zero["t_ns"]) - t_kill) / 1e6


def machine() -> dict[str, Any]:
    return {
        "platform": platform.platform(),
        "processor": platform.processor() or platform.machine(),
        "python": platform.python_version(),
        "cpu_count": os.cpu_count(),
        "git_sha": git_sha(),
        "date": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
    }


def run(port: str | None, trace: str | None, quick: bool, log: Callable[[str], None]) -> dict:
    """Run every benchmark; returns the report (the JSON document)."""
    from hil.benchmarks import codec, estop, sim, stream, validate

    estop_n = 20 if quick else ESTOP_TRIALS
    wd_n = 5 if quick else WATCHDOG_TRIALS
    stream_s = 5.0 if quick else STREAM_SECONDS
    report: dict[str, Any] = {"machine": {**machine(), "port": port or "stimctl sim (pty)"}}

    log(f"e-stop latency: {estop_n} trials")
    e = estop.measure(trials=estop_n, port=port, trace=trace)
    report["estop_latency_us"] = {
        "p50": e["p50_us"], "p99": e["p99_us"], "max": e["max_us"], "n": e["n"]
    }  # fmt: skip
    log(f"watchdog trip: {wd_n} host processes killed")
    wd = watchdog_trip(wd_n, port, trace)
    report["watchdog_trip_ms"] = {k: wd[k] for k in ("p50", "p99", "max", "n")}
    report["machine"]["watchdog_trip_faults"] = wd["faults"]
    log(f"stream: 8 channels, {stream_s:g} s real time")
    s = stream.measure(seconds=stream_s, port=port)
    report["stream"] = {
        k: s[k] for k in ("channels", "seconds", "blocks", "late_blocks", "underruns",
                          "host_cpu_percent")
    }  # fmt: skip
    log("codec")
    c = codec.measure(seconds=0.5 if quick else 1.0)
    report["codec"] = {k: c[k] for k in ("encode_per_s", "decode_per_s", "frame_bytes")}
    log("validate")
    report["validate_per_s"] = validate.measure(0.5 if quick else 2.0)["validate_per_s"]
    log("simulator: 30-minute virtual session, real-time tick loop")
    m = sim.measure(seconds=2.0 if quick else 5.0)
    report["sim_virtual_speedup"] = m["sim_virtual_speedup"]
    report["tick_lateness_us"] = {k: m["tick_lateness_us"][k] for k in ("p50", "p99", "max")}
    link_noise_group(report, quick, log)
    return report


def link_noise_group(report: dict[str, Any], quick: bool, log: Callable[[str], None]) -> None:
    """Group ``link_noise``: sessions on a noisy link (lock-step simulator, any --port ignored)."""
    from hil.benchmarks import link_noise

    sessions = 5 if quick else link_noise.SESSIONS
    log(f"link noise: {sessions} sessions at flip = drop = {link_noise.RATE:g}")
    report["link_noise"] = link_noise.measure(sessions)
    if not quick:
        log(f"link noise: a 30-minute dense-disperse session at flip = {link_noise.LONG_FLIP:g}")
        report["link_noise_30min"] = link_noise.measure_long()


def table(report: dict[str, Any]) -> str:
    """The report as a readable table."""
    rows: list[list[str]] = []

    def add(name: str, value: Any, unit: str, meaning: str) -> None:
        rows.append([name, format_value(value), unit, meaning])

    add("estop_latency_us", report["estop_latency_us"], "us", "estop() -> output zero (trace)")
    add("watchdog_trip_ms", report["watchdog_trip_ms"], "ms", "host SIGKILL -> output zero")
    add("stream", report["stream"], "", "8-channel real-time session")
    codec = report["codec"]
    add("codec.encode_per_s", codec["encode_per_s"], "1/s", "frames encoded per second")
    add("codec.decode_per_s", codec["decode_per_s"], "1/s", "frames decoded per second")
    add("codec.frame_bytes", codec["frame_bytes"], "B", "encoded size per message")
    add("validate_per_s", report["validate_per_s"], "1/s", "profiles validated per second")
    add("sim_virtual_speedup", report["sim_virtual_speedup"], "x", "30-min session, virtual")
    add("tick_lateness_us", report["tick_lateness_us"], "us", "1 kHz tick loop lateness")
    if "link_noise" in report:
        add("link_noise", report["link_noise"], "", "short-demo sessions on a noisy link")
    if "link_noise_30min" in report:
        add("link_noise_30min", report["link_noise_30min"], "", "30 min at flip=0.001 (virtual)")
    m = report["machine"]
    head = f"{m['platform']} | {m['processor']} | {m['cpu_count']} CPUs | Python {m['python']}"
    return head + "\n" + text_table(["figure", "value", "unit", "what"], rows)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m hil.bench", description=__doc__)
    parser.add_argument("--port", help="device port (default: firmware_sim in its own process)")
    parser.add_argument("--trace", help="the device's trace file (needed with --port)")
    parser.add_argument("--json", metavar="FILE", help="write the report as JSON")
    parser.add_argument("--quick", action="store_true", help="fewer trials, shorter stream")
    args = parser.parse_args(argv)

    def log(text: str) -> None:
        print(f"[hil.bench] {text}", file=sys.stderr, flush=True)

    report = run(args.port, args.trace, args.quick, log)
    print(table(report))
    if args.json:
        write_record(Path(args.json), report)
        log(f"wrote {args.json}")
    else:
        print(json.dumps(report, indent=2, sort_keys=True, default=str))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
