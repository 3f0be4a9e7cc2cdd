"""Benchmark: compile time of a 60-min 8-channel dense-disperse profile (median, p99, max in ms)."""

from __future__ import annotations

import statistics
import time
from typing import Any

from stimctl.host.schedule import compile_schedule
from stimctl.rules.profile import Profile, parse_profile

RUNS = 50


def benchmark_profile() -> Profile:
    """60 min of 2/100 Hz dense-disperse, 3 s switch, 30 s ramps, on 8 channels."""
    return parse_profile(
        {
            "schema": "stimctl.profile/1",
            "name": "benchmark: 60 min dense-disperse, 8 channels",
            "waveform": {"shape": "biphasic_symmetric"},
            "channels": [
                {"id": i, "anode": "ST36", "cathode": "LR3", "amplitude_ma": 0.1 * i + 0.3}
                for i in range(1, 9)
            ],
            "phases": [
                {
                    "duration_s": 3600,
                    "mode": "dense_disperse",
                    "frequency_hz": [2, 100],
                    "pulse_width_us": [600, 200],
                    "switch_s": 3,
                    "ramp_up_s": 30,
                    "ramp_down_s": 30,
                }
            ],
        }
    )


def measure(runs: int = RUNS, block_ms: int = 20) -> dict[str, Any]:
    """Compile the benchmark profile ``runs`` times; timings in ms and the schedule size."""
    profile = benchmark_profile()
    compile_schedule(profile, block_ms=block_ms)  # warm-up
    times = []
    for _ in range(runs):
        t0 = time.perf_counter()
        schedule = compile_schedule(profile, block_ms=block_ms)
        times.append((time.perf_counter() - t0) * 1000.0)
    times.sort()
    return {
        "runs": runs,
        "block_ms": block_ms,
        "blocks": schedule.n_blocks,
        "channels": len(schedule.channel_ids),
        "median_ms": statistics.median(times),
        "p99_ms": times[min(len(times) - 1, round(0.99 * (len(times) - 1)))],
        "max_ms": times[-1],
    }


def main() -> None:
    """Print the figures."""
    r = measure()
    print(
        f"compile_schedule: 60 min dense-disperse, {r['channels']} channels, "
        f"{r['blocks']} blocks of <= {r['block_ms']} ms, {r['runs']} runs"
    )
    print(f"  median {r['median_ms']:.1f} ms   p99 {r['p99_ms']:.1f} ms   max {r['max_ms']:.1f} ms")


if __name__ == "__main__":
    main()
