"""Soak under load: real-time sessions while two CPU-bound processes keep both cores busy.

- ``run``: `stimctl run` (its own process) against `stimctl sim` on a pty, a ``run_minutes``
  real-time session (default 10) of short-demo stretched to that length.
- ``tui``: the terminal UI (Textual, headless under ``App.run_test``, driven by Pilot as an
  operator would: profile, preflight, impedance, ARM, START) on the embedded real-time
  simulator, a ``tui_minutes`` session (default 2).

Each reports {sessions, completed, false_trips}: a false trip is a session that ended in a
COMMS_LOSS (the device's watchdog) although the host never stopped. Runs only when asked
(``python -m hil.bench --soak`` or ``--only soak``): it takes ``run_minutes + tui_minutes``.
Run alone: ``python -m hil.benchmarks.soak [--run-minutes M] [--tui-minutes M] [--sessions N]``.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import subprocess
import sys
import tempfile
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

from stimctl.host.record import Summary, summarise
from stimctl.host.simprocess import SimulatorProcess

ROOT = Path(__file__).resolve().parents[2]
DEMO = ROOT / "profiles" / "short-demo.toml"
BURNERS = 2


@contextlib.contextmanager
def cpu_burners(n: int = BURNERS) -> Iterator[None]:
    """``n`` CPU-bound processes (a busy clinic PC), stopped on exit."""
    procs = [subprocess.Popen([sys.executable, "-c", "while True: pass"]) for _ in range(n)]
    try:
        yield
    finally:
        for p in procs:
            p.kill()
            p.wait()


def stretched_profile(folder: Path, minutes: float) -> Path:
    """short-demo (10 Hz, 2 channels) lasting ``minutes``."""
    path = folder / f"soak-{minutes:g}min.toml"
    ramp = min(5.0, minutes * 60 / 4)
    path.write_text(DEMO.read_text().replace("duration_s = 60", f"duration_s = {minutes * 60:g}")
                    .replace("ramp_up_s = 5", f"ramp_up_s = {ramp:g}")
                    .replace("ramp_down_s = 5", f"ramp_down_s = {ramp:g}"))  # fmt: skip
    return path


def _tally(summaries: list[Summary | str]) -> dict[str, Any]:
    """Summaries of the records (a string: why a session left no record)."""

    def comms_loss(s: Summary | str) -> bool:
        return not isinstance(s, str) and any("COMMS_LOSS" in json.dumps(f) for f in s.faults)

    return {
        "sessions": len(summaries),
        "completed": sum(not isinstance(s, str) and s.outcome == "COMPLETED" for s in summaries),
        "false_trips": sum(comms_loss(s) for s in summaries),
        "outcomes": [s if isinstance(s, str) else s.outcome for s in summaries],
    }


def _summary(record: Path, why: str) -> Summary | str:
    try:
        return summarise(record)
    except OSError:
        return f"no record: {why.strip().splitlines()[-1:] or ['?']}"


def run_sessions(minutes: float, sessions: int, folder: Path) -> dict[str, Any]:
    """`stimctl run --port <pty>` against `stimctl sim`, each session in real time."""
    profile = stretched_profile(folder, minutes)
    summaries: list[Summary | str] = []
    for i in range(sessions):
        record = folder / f"run-{i}.jsonl"
        with SimulatorProcess() as sim:
            done = subprocess.run(
                [sys.executable, "-m", "stimctl", "run", str(profile), "--yes", "--port",
                 sim.port, "--record", str(record)],
                cwd=folder, capture_output=True, text=True, timeout=minutes * 60 + 120,
            )  # fmt: skip
        summaries.append(_summary(record, done.stderr))
    return _tally(summaries)


def tui_sessions(minutes: float, sessions: int, folder: Path) -> dict[str, Any]:
    """The TUI on the embedded real-time simulator, driven by Pilot through a whole session."""
    profiles = folder / "tui-profiles"
    profiles.mkdir(exist_ok=True)
    profile = stretched_profile(profiles, minutes)
    summaries: list[Summary | str] = []
    for i in range(sessions):
        record = folder / f"tui-{i}.jsonl"
        why = ""
        try:
            asyncio.run(_tui_session(profiles, profile.name, record, minutes * 60 + 60))
        except Exception as exc:  # a soak reports what happened, it does not stop
            why = f"{type(exc).__name__}: {exc}"
        summaries.append(_summary(record, why))
    return _tally(summaries)


async def _tui_session(profiles: Path, name: str, record: Path, limit_s: float) -> None:
    from textual import events
    from textual.pilot import Pilot
    from textual.widgets import OptionList

    from stimctl.controller import Controller
    from stimctl.host.status import HostState
    from stimctl.tui.app import StimApp
    from stimctl.tui.screens import ConfirmModal, PreflightScreen, RunScreen

    app = StimApp(lambda: Controller.connect(None, record=record, operator="soak"),
                  operator="soak", profiles_dir=profiles)  # fmt: skip

    async def until(pilot: Pilot, ok: Callable[[], object], limit: float = 30.0) -> None:
        for _ in range(int(limit / 0.05)):
            if ok():
                return
            await pilot.pause(0.05)
        raise TimeoutError("the TUI did not get there")

    async def press(pilot: Pilot, *keys: str) -> None:
        for key in keys:
            event = events.Key(key, key if len(key) == 1 else None)
            event.set_sender(app)
            app._driver.send_message(event)  # type: ignore[union-attr]
            await pilot.pause(0.05)

    try:
        async with app.run_test(size=(120, 40)) as pilot:
            await until(pilot, lambda: app.controller is not None)
            options: OptionList = app.screen.query_one("#profile-list", OptionList)
            await until(pilot, lambda: options.option_count > 0)
            names = [options.get_option_at_index(k).prompt for k in range(options.option_count)]
            options.focus()
            options.highlighted = names.index(name)
            await pilot.pause(0.1)
            await press(pilot, "enter")
            await until(pilot, lambda: app.report is not None)
            await press(pilot, "f5")
            await until(pilot, lambda: isinstance(app.screen, PreflightScreen))
            await press(pilot, "i")
            await until(pilot, lambda: app.screen.impedance_ok())  # type: ignore[attr-defined]
            await press(pilot, "a")
            await until(pilot, lambda: isinstance(app.screen, ConfirmModal))
            await press(pilot, "A", "R", "M", "enter")
            await until(pilot, lambda: isinstance(app.screen, RunScreen))
            await press(pilot, "f5")
            await until(pilot, lambda: app.controller.state is not HostState.ARMED)
            await until(pilot, lambda: app.controller.summary().outcome is not None, limit_s)
    finally:
        if app.controller is not None:
            app.controller.close()


def measure(run_minutes: float = 10.0, tui_minutes: float = 2.0, sessions: int = 1) -> dict:
    with tempfile.TemporaryDirectory(prefix="soak-") as tmp, cpu_burners():
        folder = Path(tmp)
        return {
            "load": f"{BURNERS} CPU-bound processes",
            "run": {"minutes": run_minutes, **run_sessions(run_minutes, sessions, folder)},
            "tui": {"minutes": tui_minutes, **tui_sessions(tui_minutes, sessions, folder)},
        }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m hil.benchmarks.soak", description=__doc__)
    parser.add_argument("--run-minutes", type=float, default=10.0)
    parser.add_argument("--tui-minutes", type=float, default=2.0)
    parser.add_argument("--sessions", type=int, default=1, help="sessions of each kind")
    args = parser.parse_args(argv)
    print(json.dumps(measure(args.run_minutes, args.tui_minutes, args.sessions), indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
