"""Simulator figures: virtual-clock speed-up of a 30-min session and real-time tick lateness.

- ``sim_virtual_speedup``: a 30-min dense-disperse 2/100 Hz session (3 s each, 20 ms blocks,
  4 channels, 50 Hz telemetry), streamed by firmware_sim's scripted host on the virtual clock;
  session time / wall time (host and device codec work included).
- ``tick_lateness_us``: the 1 kHz real-time loop (RealClock, sleep then spin) ticking a device
  with an open session for ``seconds``; how late each tick started (p50, p99, max, in us).
  Also the same loop with plain sleep (spin 0) for comparison.

Figures are printed, never asserted. Usage: ``python -m hil.benchmarks.sim [--seconds S]``.
"""

from __future__ import annotations

import argparse
import threading
import time
from typing import Any

from firmware_sim import Device, DeviceConfig, RealClock
from firmware_sim.scripted import ScriptedHost, dense_disperse
from stimctl.protocol import PROTOCOL_VERSION, Hello, encode

SESSION_MIN = 30
CHANNELS = 4


def virtual_session(minutes: float = SESSION_MIN) -> dict[str, Any]:
    dev = Device(DeviceConfig())
    host = ScriptedHost(dev)
    host.open_session((1 << CHANNELS) - 1)
    t0 = time.perf_counter()
    blocks = host.stream(dense_disperse(minutes, CHANNELS))
    wall = time.perf_counter() - t0
    stats = dev.output_stage.stats(1)
    return {
        "session_s": minutes * 60,
        "wall_s": round(wall, 3),
        "sim_virtual_speedup": round(minutes * 60 / wall, 1),
        "blocks": blocks,
        "pulses_per_channel": stats.pulses,
        "net_charge_uc": stats.net_charge_uc,
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
    return {
        "sim_virtual_speedup": session["sim_virtual_speedup"],
        "virtual_session": session,
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
