"""The bench's simulator: firmware_sim on a pty in its own process; stimsim:// file params."""

from __future__ import annotations

import time
from pathlib import Path
from urllib.parse import parse_qsl, urlencode, urlsplit

from hil.benchconfig import REPO, BenchError
from stimctl.host.errors import StimctlError
from stimctl.host.simprocess import SimulatorProcess


def with_sim_params(url: str, workdir: Path) -> tuple[str, Path, Path]:
    """A stimsim:// URL with trace= and control= set (kept if the URL already has them)."""
    parts = urlsplit(url)
    query = dict(parse_qsl(parts.query))
    query.setdefault("trace", str(workdir / "trace.jsonl"))
    query.setdefault("control", str(workdir / "control.sock"))
    new = f"{parts.scheme}://{parts.netloc}{parts.path}?{urlencode(query, safe='/')}"
    return new, Path(query["trace"]), Path(query["control"])


def start_sim_process(
    workdir: Path, args: list[str] | None = None
) -> tuple[SimulatorProcess, str, Path, Path]:
    """Start the simulator (firmware_sim, as ``stimctl sim``) on a pseudo-terminal in its own
    process, with its trace and control socket in ``workdir``."""
    trace, control = workdir / "trace.jsonl", workdir / "control.sock"
    try:
        sim = SimulatorProcess(
            ["--trace", str(trace), "--control", str(control), *(args or [])], cwd=REPO
        )
    except StimctlError as exc:
        raise BenchError(str(exc)) from exc
    for _ in range(100):  # the control socket appears right after the port
        if control.exists():
            break
        time.sleep(0.02)
    return sim, sim.port, trace, control


def stop_sim_process(sim: SimulatorProcess) -> int:
    """SIGTERM (then SIGKILL); the simulator's exit code."""
    return sim.stop()
