"""Simulator figures: virtual-clock speed-up of a 30-min session and real-time tick lateness.

- ``sim_virtual_speedup``: a 30-min dense-disperse 2/100 Hz session (3 s each, 20 ms blocks,
  4 channels, 50 Hz telemetry), streamed by firmware_sim's scripted host in lock-step with the
  device on the virtual clock (device time advances only while the host waits for it); session
  time / wall time, host and device work included (encode, decode, ACK, TELEMETRY, top-ups).
  With it ``sim_virtual_pulses`` (per channel: 300 cycles x (6 + 300) = 91,800) and
  ``sim_virtual_net_charge_uc`` (biphasic symmetric: zero).
- ``device_virtual_speedup``: the device alone, fed the frames that session's host sent, each
  at the device tick it was sent at (its answers read and dropped, not decoded). With it
  ``cpu_speedup``: session time / this thread's CPU time (readable on a busy machine).
- ``controller_virtual_speedup``: stimctl's own host end to end: the ``Controller`` on the
  embedded lock-step simulator (``Controller.connect(None, speed=math.inf)``, a record in a
  temporary directory) running profiles/han-dense-disperse.toml (30 min, 2 channels) from START
  to its outcome; delivered session time / wall time (what ``stimctl run --speed max`` does).
  With it ``cpu_speedup`` (session time / the process's CPU time: the reader thread runs the
  device and the host's bookkeeping; readable on a busy machine) and ``pulses_per_channel``
  (the host's totals, 91,790 for that profile, checked against the device's counters).
- ``tick_lateness_us``: the 1 kHz real-time loop (RealClock, sleep then spin) ticking a device
  with an open session for ``seconds``; how late each tick started (p50, p99, max, in us).
  Also the same loop with plain sleep (spin 0) for comparison.

Figures are printed, never asserted. Usage: ``python -m hil.benchmarks.sim [--seconds S]``.
"""

from __future__ import annotations

import argparse
import math
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

from firmware_sim import Device, DeviceConfig, RealClock
from firmware_sim.scripted import ScriptedHost, dense_disperse
from stimctl.controller import Controller
from stimctl.protocol import PROTOCOL_VERSION, Hello, State, encode

SESSION_MIN = 30
CHANNELS = 4
DENSE_DISPERSE = Path(__file__).resolve().parents[2] / "profiles" / "han-dense-disperse.toml"


def virtual_session(minutes: float = SESSION_MIN, frames: list[tuple[int, bytes]] | None = None
                    ) -> dict[str, Any]:  # fmt: skip
    """The host and device session; ``frames`` (if given) collects (device tick, bytes) of
    everything the host sent after the session was opened."""
    dev = Device(DeviceConfig())
    host = ScriptedHost(dev)
    host.open_session((1 << CHANNELS) - 1)
    if frames is not None:
        receive = dev.receive

        def recording(data: bytes) -> None:
            frames.append((dev.tick_count, bytes(data)))
            receive(data)

        dev.receive = recording  # type: ignore[method-assign]
    t0 = time.perf_counter()
    blocks = host.stream(dense_disperse(minutes, CHANNELS))
    wall = time.perf_counter() - t0
    return {
        "session_s": minutes * 60,
        "wall_s": round(wall, 3),
        "sim_virtual_speedup": round(minutes * 60 / wall, 1),
        "blocks": blocks,
        **_totals(dev),
    }


def _totals(dev: Device) -> dict[str, Any]:
    stats = [dev.output_stage.stats(c) for c in range(1, CHANNELS + 1)]
    return {
        "pulses_per_channel": stats[0].pulses,
        "net_charge_uc": stats[0].net_charge_uc,
        "same_on_every_channel": len(set(stats)) == 1,
    }


def device_session(minutes: float = SESSION_MIN) -> dict[str, Any]:
    """The device alone, fed the frames of ``virtual_session`` at the ticks they were sent."""
    frames: list[tuple[int, bytes]] = []
    virtual_session(minutes, frames)
    dev = Device(DeviceConfig())
    host = ScriptedHost(dev)
    host.open_session((1 << CHANNELS) - 1)  # not timed, as in virtual_session
    offset = dev.tick_count - frames[0][0]
    end = frames[-1][0] + offset + int(minutes * 60_000) * dev.ticks_per_ms
    t0, cpu0 = time.perf_counter(), time.thread_time()
    for tick, data in frames:
        dev.run_ticks(tick + offset - dev.tick_count)
        dev.read_tx()
        dev.receive(data)
    while dev.state is State.RUNNING and dev.tick_count < end:
        dev.run_ticks(1000)
        dev.read_tx()
    wall, cpu = time.perf_counter() - t0, time.thread_time() - cpu0
    return {
        "session_s": minutes * 60,
        "wall_s": round(wall, 3),
        "device_virtual_speedup": round(minutes * 60 / wall, 1),
        "cpu_speedup": round(minutes * 60 / cpu, 1) if cpu > 0 else float("inf"),
        "frames": len(frames),
        **_totals(dev),
    }


def controller_session(profile: Path = DENSE_DISPERSE) -> dict[str, Any]:
    """stimctl's Controller on the embedded lock-step simulator: ``profile`` from START to its
    outcome (connect, load, impedance check and ARM are not timed)."""
    with tempfile.TemporaryDirectory(prefix="bench-controller-") as tmp:
        record = Path(tmp) / "session.jsonl"
        with Controller.connect(None, speed=math.inf, record=record) as ctl:
            ctl.load(profile)
            ctl.check_impedance()
            ctl.arm(confirm=True, acknowledge_warnings=True)
            t0, cpu0 = time.perf_counter(), time.process_time()
            ctl.start()
            outcome = ctl.wait()
            wall, cpu = time.perf_counter() - t0, time.process_time() - cpu0
            summary = ctl.summary()
            link = ctl.link
            port = link.port if link is not None else None
            device = getattr(port, "device", None)
            counters = [c["pulses"] for c in device.stats()["channels"]] if device else []
    session_s = summary.delivered_s
    pulses = [c.pulses for c in summary.channels]
    return {
        "outcome": outcome.value if outcome else None,
        "session_s": session_s,
        "wall_s": round(wall, 3),
        "cpu_s": round(cpu, 3),
        "controller_virtual_speedup": round(session_s / wall, 1),
        "cpu_speedup": round(session_s / cpu, 1) if cpu > 0 else float("inf"),
        "pulses_per_channel": pulses[0] if len(set(pulses)) == 1 else pulses,
        "expected_pulses": [c.expected_pulses for c in summary.channels],
        "device_agrees": pulses == counters[: len(pulses)],
    }


def tick_lateness(seconds: float = 5.0, spin_us: int = 1000) -> dict[str, float]:
    clock = RealClock(1000, spin_us=spin_us)
    dev = Device(DeviceConfig(watchdog_ms=60_000), clock)
    dev.receive(encode(Hello(seq=1, protocol_version=PROTOCOL_VERSION)))
    stop = threading.Event()
    timer = threading.Timer(seconds, stop.set)
    timer.start()

    def step(ticks: int) -> None:
        dev.run_ticks(ticks)
        dev.read_tx()

    clock.run(step, stop)
    timer.cancel()
    return {k: round(v, 1) for k, v in clock.lateness_us().items()}


def measure(seconds: float = 5.0, minutes: float = SESSION_MIN) -> dict[str, Any]:
    session = virtual_session(minutes)
    controller = controller_session()
    return {
        "sim_virtual_speedup": session["sim_virtual_speedup"],
        "virtual_session": session,
        "controller_virtual_speedup": controller["controller_virtual_speedup"],
        "controller_session": controller,
        "tick_lateness_us": tick_lateness(seconds, spin_us=1000),
        "tick_lateness_plain_sleep_us": tick_lateness(seconds, spin_us=0),
    }


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m hil.benchmarks.sim", description=__doc__)
    parser.add_argument("--seconds", type=float, default=5.0, help="real-time loop duration")
    parser.add_argument("--minutes", type=float, default=SESSION_MIN, help="virtual session")
    args = parser.parse_args(argv)
    r = measure(args.seconds, args.minutes)
    s = r["virtual_session"]
    print(
        f"sim_virtual_speedup: x{s['sim_virtual_speedup']} ({s['session_s']:.0f} s session in"
        f" {s['wall_s']:.2f} s; {s['blocks']} blocks; {s['pulses_per_channel']} pulses/channel;"
        f" net charge {s['net_charge_uc']} uC)"
    )
    c = r["controller_session"]
    print(
        f"controller_virtual_speedup: x{c['controller_virtual_speedup']} ({c['session_s']:.0f} s"
        f" session in {c['wall_s']:.2f} s, CPU {c['cpu_s']:.2f} s: x{c['cpu_speedup']};"
        f" {c['outcome']}; {c['pulses_per_channel']} pulses/channel,"
        f" device agrees: {c['device_agrees']})"
    )
    for key, label in (
        ("tick_lateness_us", "sleep+spin"),
        ("tick_lateness_plain_sleep_us", "plain sleep"),
    ):
        t = r[key]
        print(
            f"{key} ({label}, {t['ticks']:.0f} ticks): p50 {t['p50']:.1f}  p99 {t['p99']:.1f}"
            f"  max {t['max']:.1f}"
        )


if __name__ == "__main__":
    main()
