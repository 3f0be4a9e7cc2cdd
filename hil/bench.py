"""`python -m hil.bench`: every performance figure in one report (table + JSON).

Groups (``--only GROUP,...``; all but soak by default, ``--soak`` adds it): estop, watchdog,
stream, codec, validate, sim (virtual speed-ups: scripted host, device alone, stimctl's Controller;
idle CPU, orphan lifetime), tick, link_noise, soak.
The soak's durations: ``STIMCTL_SOAK_RUN_MIN`` and ``STIMCTL_SOAK_TUI_MIN`` (minutes, default 10
and 2; 0 skips that part); ``STIMCTL_SOAK_KEEP=DIR`` keeps its records and device traces."""

from __future__ import annotations

import argparse
import json
import math
import os
import platform
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
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


#: Iterations of ``reference_loop_ms``' loop (about a quarter of a second on the bench machine).
REFERENCE_LOOP = 3_000_000


def reference_loop_ms() -> float:
    """Milliseconds this interpreter takes for a plain Python loop (``REFERENCE_LOOP`` additions of
    squares in a function), best of three: how fast the machine runs Python right now (111-121 ms
    on the bench machine in its faster hours). A virtual machine's speed drifts with its
    neighbours (seen there: the same code 15-25% slower in some hours of a day, idle, no steal
    time shown), and the interpreter's build counts too (Debian's python3.11 runs this loop in
    28% less time than a pyenv build without PGO/LTO on the same machine): read a figure beside
    it. It is reported, never used to scale a figure."""
    best = math.inf
    for _ in range(3):
        start, s = time.perf_counter(), 0
        for i in range(REFERENCE_LOOP):
            s += i * i
        best = min(best, time.perf_counter() - start)
    return round(best * 1000, 1)


def machine() -> dict[str, Any]:
    return {
        "platform": platform.platform(),
        "processor": platform.processor() or platform.machine(),
        "python": platform.python_version(),
        "python_executable": os.path.realpath(sys.executable),
        "python_loop_ms": reference_loop_ms(),
        "cpu_count": os.cpu_count(),
        "git_sha": git_sha(),
        "date": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        "load_average": [round(x, 2) for x in os.getloadavg()],
    }


@dataclass(frozen=True, slots=True)
class Options:
    """What every group may use: the device (None: the simulator in its own process)."""

    port: str | None
    trace: str | None
    quick: bool
    log: Callable[[str], None]


@dataclass(frozen=True, slots=True)
class Figure:
    """One reported figure: ``key`` in the JSON report (dotted: nested), a table row."""

    key: str
    value: Any
    unit: str
    what: str
    table: bool = True


# --- the groups: each runs its measurements and returns its figures --------------------------


def _estop(o: Options) -> list[Figure]:
    from hil.benchmarks import estop

    n = 20 if o.quick else ESTOP_TRIALS
    o.log(f"e-stop latency: {n} trials")
    e = estop.measure(trials=n, port=o.port, trace=o.trace)
    value = {"p50": e["p50_us"], "p99": e["p99_us"], "max": e["max_us"], "n": e["n"]}
    return [Figure("estop_latency_us", value, "us", "estop() -> output zero (trace)")]


def _watchdog(o: Options) -> list[Figure]:
    n = 5 if o.quick else WATCHDOG_TRIALS
    o.log(f"watchdog trip: {n} host processes killed")
    wd = watchdog_trip(n, o.port, o.trace)
    return [
        Figure("watchdog_trip_ms", {k: wd[k] for k in ("p50", "p99", "max", "n")}, "ms",
               "host SIGKILL -> output zero"),
        Figure("machine.watchdog_trip_faults", wd["faults"], "", "", table=False),
    ]  # fmt: skip


def _stream(o: Options) -> list[Figure]:
    from hil.benchmarks import stream

    seconds = 5.0 if o.quick else STREAM_SECONDS
    o.log(f"stream: 8 channels, {seconds:g} s real time")
    s = stream.measure(seconds=seconds, port=o.port)
    keys = ("channels", "seconds", "blocks", "late_blocks", "underruns", "host_cpu_percent")
    return [Figure("stream", {k: s[k] for k in keys}, "", "8-channel real-time session")]


def _codec(o: Options) -> list[Figure]:
    from hil.benchmarks import codec

    o.log("codec")
    c = codec.measure(seconds=0.5 if o.quick else 1.0)
    return [
        Figure("codec.encode_per_s", c["encode_per_s"], "1/s", "frames encoded per second"),
        Figure("codec.decode_per_s", c["decode_per_s"], "1/s", "frames decoded per second"),
        Figure("codec.frame_bytes", c["frame_bytes"], "B", "encoded size per message"),
    ]


def _validate(o: Options) -> list[Figure]:
    from hil.benchmarks import validate

    o.log("validate: distinct generated profiles, files then parsed")
    v = validate.measure(2000 if o.quick else validate.COUNT)
    return [
        Figure("validate_per_s", v["validate_per_s"], "1/s", "files read, parsed, validated"),
        Figure("validate_parsed_per_s", v["validate_parsed_per_s"], "1/s", "rules, parsed profile"),
        Figure("validate.files", v["files"], "", "per call (us), distinct profiles"),
        Figure("validate.parsed", v["parsed"], "", "per call (us), distinct profiles"),
    ]


def _sim(o: Options) -> list[Figure]:
    from hil.benchmarks import lifetime, sim

    o.log("simulator: 30-minute virtual session (scripted host and device, device alone,"
          " stimctl's Controller); idle CPU; orphan lifetime")  # fmt: skip
    session = sim.virtual_session()
    device = sim.device_session()
    controller = sim.controller_session()
    idle = lifetime.idle_cpu(2.0 if o.quick else 10.0)
    gone = lifetime.orphan_gone(3 if o.quick else 10)
    return [
        Figure(
            "sim_virtual_speedup",
            session["sim_virtual_speedup"],
            "x",
            "30-min session, host + device, lock-step",
        ),
        Figure(
            "sim_virtual_pulses",
            session["pulses_per_channel"],
            "",
            "pulses per channel in it (91,800)",
        ),
        Figure(
            "sim_virtual_net_charge_uc",
            session["net_charge_uc"],
            "uC",
            "net charge per channel in it (0)",
        ),
        Figure(
            "device_virtual_speedup",
            device["device_virtual_speedup"],
            "x",
            "the same session's frames, device alone",
        ),
        Figure(
            "device_virtual_cpu_speedup",
            device["cpu_speedup"],
            "x",
            "the same over the device's CPU time",
        ),
        Figure(
            "controller_virtual_speedup",
            controller["controller_virtual_speedup"],
            "x",
            "30-min profile, stimctl Controller, lock-step",
        ),
        Figure(
            "controller_virtual_cpu_speedup",
            controller["cpu_speedup"],
            "x",
            "the same over the process's CPU time",
        ),
        Figure(
            "controller_virtual_pulses",
            controller["pulses_per_channel"],
            "",
            "pulses per channel in it (91,790)",
        ),
        Figure("sim_idle_cpu_percent", idle, "%", "idle `stimctl sim`, one core"),
        Figure("orphan_gone_ms", gone, "ms", "host SIGKILL -> simulator gone"),
    ]


def _tick(o: Options) -> list[Figure]:
    from hil.benchmarks import sim

    o.log("simulator: real-time tick loop")
    t = sim.tick_lateness(2.0 if o.quick else 5.0, spin_us=1000)
    value = {k: t[k] for k in ("p50", "p99", "max")}
    return [Figure("tick_lateness_us", value, "us", "1 kHz tick loop lateness")]


def _link_noise(o: Options) -> list[Figure]:
    """Sessions on a noisy link (lock-step simulator in this process; --port is not used)."""
    from hil.benchmarks import link_noise

    sessions = 5 if o.quick else link_noise.SESSIONS
    o.log(f"link noise: {sessions} sessions at flip = drop = {link_noise.RATE:g}")
    figures = [Figure("link_noise", link_noise.measure(sessions), "",
                      "short-demo sessions on a noisy link")]  # fmt: skip
    if not o.quick:
        o.log(f"link noise: a 30-minute dense-disperse session at flip = {link_noise.LONG_FLIP:g}")
        figures.append(Figure("link_noise_30min", link_noise.measure_long(), "",
                              "30 min at flip=0.001 (virtual)"))  # fmt: skip
    return figures


def _soak(o: Options) -> list[Figure]:
    from hil.benchmarks import soak

    run_min, tui_min, keep = soak.durations(o.quick, os.environ)
    o.log(f"soak: {run_min:g} min stimctl run + {tui_min:g} min TUI under 2 CPU-bound processes")
    r = soak.measure(run_min, tui_min, keep=keep)
    whats = {"run": "stimctl run vs stimctl sim (pty), loaded",
             "tui": "TUI session (Pilot), loaded"}  # fmt: skip
    return [Figure(f"soak.{part}", r[part], "", what) for part, what in whats.items() if part in r]


@dataclass(frozen=True, slots=True)
class Group:
    run: Callable[[Options], list[Figure]]
    default: bool = True  # False: only when asked (--soak, --only)


#: Every bench group, in report order: one line each (``--only`` takes these names).
GROUPS: dict[str, Group] = {
    "estop": Group(_estop),
    "watchdog": Group(_watchdog),
    "stream": Group(_stream),
    "codec": Group(_codec),
    "validate": Group(_validate),
    "sim": Group(_sim),
    "tick": Group(_tick),
    "link_noise": Group(_link_noise),
    "soak": Group(_soak, default=False),
}


def selected(only: str | None, soak: bool) -> list[str]:
    """The groups to run: ``only`` (comma-separated names) or every default group (+ soak)."""
    if only:
        names = [n.strip() for n in only.split(",") if n.strip()]
        unknown = [n for n in names if n not in GROUPS]
        if unknown or not names:
            raise ValueError(f"unknown bench group(s) {unknown}; known: {', '.join(GROUPS)}")
        return names
    return [n for n, g in GROUPS.items() if g.default or (soak and n == "soak")]


def run(
    port: str | None,
    trace: str | None,
    quick: bool,
    log: Callable[[str], None],
    groups: list[str] | None = None,
) -> dict:
    """Run the groups (default: every default group); returns the report (the JSON document)."""
    opts = Options(port, trace, quick, log)
    report: dict[str, Any] = {"machine": {**machine(), "port": port or "stimctl sim (pty)"}}
    figures: list[Figure] = []
    for name in groups or selected(None, False):
        for fig in GROUPS[name].run(opts):
            figures.append(fig)
            head, _, tail = fig.key.partition(".")
            if tail and head in ("machine", "soak", "codec", "validate"):
                report.setdefault(head, {})[tail] = fig.value
            else:
                report[fig.key] = fig.value
    report["_figures"] = figures
    return report


def table(report: dict[str, Any]) -> str:
    """The report as a readable table."""
    rows = [[f.key, format_value(f.value), f.unit, f.what]
            for f in report.get("_figures", []) if f.table]  # fmt: skip
    m = report["machine"]
    head = (f"{m['platform']} | {m['processor']} | {m['cpu_count']} CPUs | Python {m['python']}"
            f" ({m.get('python_executable')}) | reference loop {m.get('python_loop_ms')} ms"
            f" | load {m.get('load_average')}")  # fmt: skip
    return head + "\n" + text_table(["figure", "value", "unit", "what"], rows)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m hil.bench", description=__doc__)
    parser.add_argument("--port", help="device port (default: firmware_sim in its own process)")
    parser.add_argument("--trace", help="the device's trace file (needed with --port)")
    parser.add_argument("--json", metavar="FILE", help="write the report as JSON")
    parser.add_argument("--quick", action="store_true", help="fewer trials, shorter stream")
    parser.add_argument(
        "--only", metavar="GROUP,...", help=f"run only these groups: {', '.join(GROUPS)}"
    )
    parser.add_argument(
        "--soak", action="store_true",
        help="add the soak group (10 min stimctl run + 2 min TUI under two CPU-bound processes)",
    )  # fmt: skip
    args = parser.parse_args(argv)
    try:
        groups = selected(args.only, args.soak)
    except ValueError as exc:
        parser.error(str(exc))
    if "soak" in groups:
        from hil.benchmarks import soak

        try:
            soak.durations(args.quick, os.environ)
        except ValueError as exc:
            parser.error(str(exc))

    def log(text: str) -> None:
        print(f"[hil.bench] {text}", file=sys.stderr, flush=True)

    report = run(args.port, args.trace, args.quick, log, groups)
    print(table(report))
    report.pop("_figures")
    if args.json:
        write_record(Path(args.json), report)
        log(f"wrote {args.json}")
    else:
        print(json.dumps(report, indent=2, sort_keys=True, default=str))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
