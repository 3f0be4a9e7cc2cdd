"""Benchmark: profiles validated per second (read, parse, all rules) on one core.

``python -m hil.benchmarks.validate [SECONDS]`` prints the rate and the median, p99 and max
time of one validation in microseconds, cycling through the profile library.
"""

from __future__ import annotations

import statistics
import sys
import time
from pathlib import Path

from stimctl.rules.validation import find_profiles, validate_file

LIBRARY = Path(__file__).resolve().parents[2] / "profiles"


def measure(seconds: float = 2.0) -> dict[str, float | int]:
    """Validate library profiles round-robin for ``seconds``; rate and per-call times (us)."""
    paths = find_profiles(LIBRARY)
    for path in paths:  # warm-up: imports, acupoint catalogue, pydantic schemas
        validate_file(path)
    times_ns: list[int] = []
    clock = time.perf_counter_ns
    deadline = clock() + int(seconds * 1e9)
    i = 0
    while clock() < deadline:
        start = clock()
        validate_file(paths[i % len(paths)])
        times_ns.append(clock() - start)
        i += 1
    times_us = sorted(t / 1000 for t in times_ns)
    total_s = sum(times_ns) / 1e9
    return {
        "validate_per_s": len(times_us) / total_s,
        "profiles": len(paths),
        "validations": len(times_us),
        "median_us": statistics.median(times_us),
        "p99_us": times_us[min(len(times_us) - 1, int(len(times_us) * 0.99))],
        "max_us": times_us[-1],
    }


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    result = measure(float(args[0]) if args else 2.0)
    print(
        f"validate: {result['validate_per_s']:.0f} profiles/s (single core, "
        f"{result['profiles']} library profiles, {result['validations']} validations)\n"
        f"  per validation: median {result['median_us']:.0f} us, "
        f"p99 {result['p99_us']:.0f} us, max {result['max_us']:.0f} us"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
