"""Streaming over a pty: a real-time 8-channel session; late blocks, underruns, host CPU percent.

The simulator runs in its own process (``python -m firmware_sim --channels 8``) on its real clock.
Host CPU percent = this process's CPU time / wall time over the session (reader thread, streamer,
record and the waiting main thread together).
Run: ``python -m hil.benchmarks.stream [--seconds N]``.
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from pathlib import Path

from stimctl.controller import Controller
from stimctl.rules.profile import loads_profile
from stimctl.rules.validation import validate_profile

#: Eight channels, each a same-side lower-limb pair (no contralateral or trunk paths).
_PAIRS = (
    ("ST36-L", "ST37-L"), ("ST36-R", "ST37-R"), ("SP6-L", "SP9-L"), ("SP6-R", "SP9-R"),
    ("GB34-L", "GB39-L"), ("GB34-R", "GB39-R"), ("LR3-L", "KI3-L"), ("LR3-R", "KI3-R"),
)  # fmt: skip


def eight_channel_profile(seconds: float) -> str:
    """A continuous 10 Hz, 8-channel profile of ``seconds`` (TOML text)."""
    ramp = min(5.0, seconds / 4)
    channels = "".join(
        f'\n[[channels]]\nid = {i}\nanode = "{a}"\ncathode = "{c}"\namplitude_ma = 0.5\n'
        for i, (a, c) in enumerate(_PAIRS, start=1)
    )
    return (
        'schema = "stimctl.profile/1"\nname = "bench 8 channels"\n'
        '[waveform]\nshape = "biphasic_symmetric"\n' + channels +
        f'\n[[phases]]\nduration_s = {seconds}\nmode = "continuous"\nfrequency_hz = 10\n'
        f"pulse_width_us = 200\nramp_up_s = {ramp}\nramp_down_s = {ramp}\n"
    )  # fmt: skip


def measure(seconds: float = 60, port: str | None = None, record: str | None = None) -> dict:
    """Stream an 8-channel session of ``seconds`` in real time; returns the figures."""
    profile = loads_profile(eight_channel_profile(seconds))
    report = validate_profile(profile)
    if not report.ok:
        raise RuntimeError(f"bench profile invalid: {report.errors[0]}")
    proc = None
    with tempfile.TemporaryDirectory(prefix="stream-") as tmp:
        if port is None:
            from hil.simprocess import start_sim_process

            proc, port, _, _ = start_sim_process(Path(tmp), ["--channels", "8"])
        try:
            rec = Path(record) if record else Path(tmp) / "record.jsonl"
            with Controller.connect(port, record=rec) as ctl:
                ctl.load(profile)
                ctl.check_impedance()
                ctl.arm(confirm=True, acknowledge_warnings=True)
                cpu0, wall0 = time.process_time(), time.monotonic()
                ctl.start()
                outcome = ctl.wait(timeout=seconds + 30)
                cpu, wall = time.process_time() - cpu0, time.monotonic() - wall0
                summary, status = ctl.summary(), ctl.status()
        finally:
            if proc is not None:
                from hil.simprocess import stop_sim_process

                stop_sim_process(proc)
    return {
        "benchmark": "stream", "channels": 8, "seconds": seconds,
        "outcome": outcome.value if outcome else "timeout", "wall_s": round(wall, 3),
        "blocks": status.blocks_sent, "late_blocks": summary.late_blocks,
        "underruns": summary.underruns, "naks": summary.naks,
        "frame_errors": status.frame_errors, "host_cpu_percent": round(100 * cpu / wall, 1),
        "pulses": [c.pulses for c in summary.channels],
        "faults": [f"{f.code} ({f.source}): {f.message}" for f in summary.faults],
    }  # fmt: skip


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m hil.benchmarks.stream", description=__doc__)
    parser.add_argument("--seconds", type=float, default=60)
    parser.add_argument("--port", help="pty of a running `python -m firmware_sim --channels 8`")
    parser.add_argument("--record", help="keep the session record here")
    args = parser.parse_args(argv)
    r = measure(args.seconds, args.port, args.record)
    print(f"stream 8 ch x {r['seconds']:g} s: {r['outcome']}, {r['blocks']} blocks,"
          f" late {r['late_blocks']}, underruns {r['underruns']}, NAKs {r['naks']},"
          f" host CPU {r['host_cpu_percent']:.1f} %")  # fmt: skip
    for fault in r["faults"]:
        print(f"fault: {fault}")
    print(json.dumps(r))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
