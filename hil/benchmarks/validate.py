"""Benchmark: profiles validated per second on one core, over distinct generated profiles.

Two figures, each over profiles that are all different (``hil.benchmarks.profilegen``: valid
and invalid, 1-8 channels, every mode), each validated once, so no cache can flatter them:

* ``validate_per_s``: files read, parsed (TOML/JSON, schema) and checked by every rule
  (``validate_file`` on files written to a temporary folder);
* ``validate_parsed_per_s``: every rule on profiles already parsed (``validate_profile``).

``python -m hil.benchmarks.validate [COUNT]`` prints both with the median, p99 and max time of
one call, the number of distinct profiles, the machine and the commit.
"""

from __future__ import annotations

import statistics
import sys
import tempfile
import time
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

from hil.benchmarks.profilegen import generate, parsable, write
from stimctl.rules.validation import find_profiles, validate_file, validate_profile

LIBRARY = Path(__file__).resolve().parents[2] / "profiles"
#: Distinct generated profiles per run (the issue asks for at least 2,000).
COUNT = 4000


def _timed(items: Iterable[Any], call: Callable[[Any], object]) -> dict[str, float | int]:
    """``call`` once per item: the rate and per-call times (us), wall and this thread's CPU."""
    times_ns: list[int] = []
    clock = time.perf_counter_ns
    cpu_start = time.thread_time_ns()
    for item in items:
        start = clock()
        call(item)
        times_ns.append(clock() - start)
    cpu_s = (time.thread_time_ns() - cpu_start) / 1e9
    times_us = sorted(t / 1000 for t in times_ns)
    n = len(times_us)
    return {
        "per_s": n / (sum(times_ns) / 1e9),
        "cpu_per_s": n / cpu_s if cpu_s > 0 else float("inf"),
        "distinct": n,
        "median_us": statistics.median(times_us),
        "p99_us": times_us[min(n - 1, int(n * 0.99))],
        "max_us": times_us[-1],
    }


def measure(count: int = COUNT, seed: int = 15) -> dict[str, Any]:
    """Validate ``count`` distinct generated profiles as files, then the parsable ones again
    as parsed profiles; ``validate_per_s``, ``validate_parsed_per_s`` and per-call figures."""
    for path in find_profiles(LIBRARY):  # warm-up: imports, acupoint catalogue, schemas
        validate_file(path)
    generated = generate(count, seed)
    with tempfile.TemporaryDirectory(prefix="stimctl-validate-bench-") as tmp:
        paths = write(Path(tmp), generated)
        files = _timed(paths, validate_file)
    rules = _timed(parsable(generated), validate_profile)
    return {
        "validate_per_s": files["per_s"],
        "validate_parsed_per_s": rules["per_s"],
        "files": files,
        "parsed": rules,
    }


def _line(name: str, figures: dict[str, Any], what: str) -> str:
    return (
        f"{name}: {figures['per_s']:,.0f}/s over {figures['distinct']:,} distinct {what} "
        f"(CPU time: {figures['cpu_per_s']:,.0f}/s)\n"
        f"  per call: median {figures['median_us']:.0f} us, p99 {figures['p99_us']:.0f} us, "
        f"max {figures['max_us']:.0f} us"
    )


def main(argv: list[str] | None = None) -> int:
    from hil.bench import machine

    args = sys.argv[1:] if argv is None else argv
    result = measure(int(args[0]) if args else COUNT)
    m = machine()
    print(
        f"{m['platform']} | {m['processor']} | {m['cpu_count']} CPUs | Python {m['python']}"
        f" | git {m['git_sha']} | {m['date']}\n"
        + _line("validate_per_s", result["files"], "generated files (read, parse, rules)")
        + "\n"
        + _line("validate_parsed_per_s", result["parsed"], "parsed profiles (rules only)")
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
