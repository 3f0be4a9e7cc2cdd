"""The bench's simulator: ``stimctl sim`` on a pty in its own process; stimsim:// file params."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from urllib.parse import parse_qsl, urlencode, urlsplit

from hil.benchconfig import REPO, BenchError

SIM_START_TIMEOUT_S = 15.0


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
) -> tuple[subprocess.Popen[str], str, Path, Path]:
    """Start ``stimctl sim`` (firmware_sim) on a pseudo-terminal in its own process."""
    trace, control = workdir / "trace.jsonl", workdir / "control.sock"
    cmd = [sys.executable, "-m", "stimctl", "sim", "--trace", str(trace), "--control", str(control)]
    cmd += args or []
    stderr = (workdir / "sim.stderr").open("w")
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=stderr, text=True, cwd=REPO)
    stderr.close()
    assert proc.stdout is not None
    deadline = time.monotonic() + SIM_START_TIMEOUT_S
    line = ""
    os.set_blocking(proc.stdout.fileno(), True)
    while time.monotonic() < deadline and proc.poll() is None:
        line = proc.stdout.readline().strip()
        if line.startswith("PORT "):
            break
    if not line.startswith("PORT "):
        proc.kill()
        log = (workdir / "sim.stderr").read_text()[-2000:]
        raise BenchError(f"stimctl sim did not announce its port: {line!r}\n{log}")
    for _ in range(100):  # the control socket appears right after the port
        if control.exists():
            break
        time.sleep(0.02)
    return proc, line.split(" ", 1)[1], trace, control


def stop_sim_process(proc: subprocess.Popen[str]) -> int:
    if proc.poll() is None:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout=5)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
    return int(proc.returncode)
