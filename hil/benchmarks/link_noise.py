"""Link noise: whole sessions on a link that flips and drops bytes (docs/PROTOCOL.md, "Link
recovery").

- ``link_noise``: ``sessions`` runs of profiles/short-demo.toml (60 s, 2 channels, 3000 blocks)
  through stimctl's Controller on the lock-step simulator, each with its own link seed, at
  ``flip`` = ``drop`` = ``rate`` (per byte, both directions). ``completed``: sessions that ended
  COMPLETED with exactly the expected pulses on every channel; ``retransmits``: blocks and
  commands written again, summed over the sessions; ``underruns``: the host's underrun count,
  summed.
- ``link_noise_30min`` (not with ``--quick``): one 30-minute dense-disperse session
  (profiles/han-dense-disperse.toml) at flip = 0.001; its outcome, retransmissions and the wall
  time it took on the virtual clock.

Figures are printed, never asserted. Usage: ``python -m hil.benchmarks.link_noise``.
"""

from __future__ import annotations

import argparse
import json
import math
import time
from pathlib import Path
from typing import Any

from stimctl.controller import Controller
from stimctl.host.status import Outcome

PROFILES = Path(__file__).resolve().parents[2] / "profiles"
RATE = 0.0001
SESSIONS = 20
LONG_FLIP = 0.001


def session(profile: Path, seed: int, flip: float, drop: float) -> dict[str, Any]:
    """One session on the noisy link: outcome, exact or not, retransmissions, underruns."""
    options = {"flip": f"{flip:g}", "drop": f"{drop:g}", "seed": str(seed)}
    t0 = time.perf_counter()
    with Controller.connect(None, speed=math.inf, sim_options=options) as ctl:
        ctl.load(profile)
        ctl.check_impedance()
        ctl.arm(confirm=True, acknowledge_warnings=True)
        ctl.start()
        outcome = ctl.wait()
        summary = ctl.summary()
    exact = all(c.pulses == c.expected_pulses for c in summary.channels)
    return {
        "outcome": outcome.value if outcome else None,
        "completed": outcome is Outcome.COMPLETED and exact,
        "retransmits": summary.retransmits,
        "underruns": summary.underruns,
        "wall_s": round(time.perf_counter() - t0, 2),
    }


def measure(sessions: int = SESSIONS, rate: float = RATE) -> dict[str, Any]:
    demo = PROFILES / "short-demo.toml"
    runs = [session(demo, seed, rate, rate) for seed in range(1, sessions + 1)]
    return {
        "rate": rate,
        "sessions": sessions,
        "completed": sum(r["completed"] for r in runs),
        "retransmits": sum(r["retransmits"] for r in runs),
        "underruns": sum(r["underruns"] for r in runs),
    }


def measure_long(flip: float = LONG_FLIP) -> dict[str, Any]:
    run = session(PROFILES / "han-dense-disperse.toml", 1, flip, 0.0)
    return {"flip": flip, "minutes": 30, **run}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sessions", type=int, default=SESSIONS)
    parser.add_argument("--rate", type=float, default=RATE)
    parser.add_argument("--long", action="store_true", help="also the 30-minute session")
    args = parser.parse_args()
    report: dict[str, Any] = {"link_noise": measure(args.sessions, args.rate)}
    if args.long:
        report["link_noise_30min"] = measure_long()
    print(json.dumps(report, indent=2))


if __name__ == "__main__":
    main()
