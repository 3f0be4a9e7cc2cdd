"""Soak under load: real-time sessions while two CPU-bound processes keep both cores busy.

- ``run``: `stimctl run` (its own process) against `stimctl sim` on a pty, a ``run_minutes``
  real-time session (default 10) of short-demo stretched to that length.
- ``tui``: the terminal UI (Textual, headless under ``App.run_test``, driven by Pilot as an
  operator would: profile, preflight, impedance, ARM, START) on the embedded real-time
  simulator, a ``tui_minutes`` session (default 2).

Each reports {sessions, completed, false_trips, tx_gap_max_ms, priority}: a false trip is a
session that ended in COMMS_LOSS (the device's watchdog) or UNDERRUN (the stream ran dry)
although the host never stopped: both mean the host went silent on the wire for longer than
the device allows. ``tx_gap_max_ms`` is the longest host-time silence between two frames the
host wrote (the record's ``link`` figures), ``priority`` what the link threads got. Runs only
when asked (``python -m hil.bench --soak`` or ``--only soak``): it takes ``run_minutes +
tui_minutes``.
Run alone: ``python -m hil.benchmarks.soak [--run-minutes M] [--tui-minutes M] [--sessions N]
[--keep DIR]``; ``--keep`` leaves each session's record (and the device trace of each `stimctl
run` session) in DIR to read after a false trip. The bench takes the durations from
``STIMCTL_SOAK_RUN_MIN`` and ``STIMCTL_SOAK_TUI_MIN`` (minutes; 0 skips that part) and the folder
from ``STIMCTL_SOAK_KEEP``.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import math
import subprocess
import sys
import tempfile
from collections.abc import Callable, Iterator, Mapping
from pathlib import Path
from typing import Any

from stimctl.host.record import Summary, parse_line, summarise
from stimctl.host.simprocess import SimulatorProcess

ROOT = Path(__file__).resolve().parents[2]
RUN_MINUTES, TUI_MINUTES = 10.0, 2.0  # the acceptance's soak (issue 11)
DEMO = ROOT / "profiles" / "short-demo.toml"
BURNERS = 2
#: Faults that mean the host went silent on the wire too long (the device's watchdog; the
#: stream's lookahead ran out) although it never stopped.
FALSE_TRIPS = ("COMMS_LOSS", "UNDERRUN")


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

    def false_trip(s: Summary | str) -> bool:
        return not isinstance(s, str) and any(
            name in json.dumps(f) for f in s.faults for name in FALSE_TRIPS
        )

    records = [s for s in summaries if not isinstance(s, str)]
    return {
        "sessions": len(summaries),
        "completed": sum(s.outcome == "COMPLETED" for s in records),
        "false_trips": sum(false_trip(s) for s in summaries),
        "outcomes": [s if isinstance(s, str) else s.outcome for s in summaries],
        "tx_gap_max_ms": [link_figures(s.path).get("tx_gap_max_ms") for s in records],
        "priority": sorted({str(link_figures(s.path).get("priority")) for s in records}),
    }


def link_figures(record: str | Path) -> dict[str, Any]:
    """The ``link`` figures of a record's summary line ({} when it has none or is unreadable)."""
    found: dict[str, Any] = {}
    try:
        raw = Path(record).read_bytes()
    except OSError:
        return found
    for line in raw.splitlines():
        entry = parse_line(line)
        if entry is not None and entry["kind"] == "summary":
            found = dict(entry["data"].get("link") or {})
    return found


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
        with SimulatorProcess(["--trace", str(folder / f"run-{i}.trace.jsonl")]) as sim:
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


def durations(quick: bool, env: Mapping[str, str]) -> tuple[float, float, Path | None]:
    """The bench's (run, TUI) minutes and record folder: ``STIMCTL_SOAK_RUN_MIN``,
    ``STIMCTL_SOAK_TUI_MIN`` and ``STIMCTL_SOAK_KEEP`` if set, else the acceptance's (0.5 each
    with ``quick``). ValueError for a duration that is not a number >= 0."""
    run_min, tui_min = (0.5, 0.5) if quick else (RUN_MINUTES, TUI_MINUTES)
    picked = []
    for name, default in (("STIMCTL_SOAK_RUN_MIN", run_min), ("STIMCTL_SOAK_TUI_MIN", tui_min)):
        text = env.get(name, "").strip()
        try:
            value = float(text) if text else default
        except ValueError:
            value = math.nan
        if not 0 <= value < math.inf:
            raise ValueError(f"{name} must be a number of minutes >= 0, got {text!r}")
        picked.append(value)
    keep = env.get("STIMCTL_SOAK_KEEP", "").strip()
    return picked[0], picked[1], Path(keep) if keep else None


def measure(
    run_minutes: float = RUN_MINUTES, tui_minutes: float = TUI_MINUTES, sessions: int = 1,
    keep: Path | None = None,
) -> dict:  # fmt: skip
    """Both parts under load (a part of 0 minutes is skipped); ``keep``: leave records there."""
    with contextlib.ExitStack() as stack:
        if keep is None:
            folder = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="soak-")))
        else:
            folder = keep
            folder.mkdir(parents=True, exist_ok=True)
        stack.enter_context(cpu_burners())
        report: dict[str, Any] = {"load": f"{BURNERS} CPU-bound processes"}
        if run_minutes > 0:
            report["run"] = {"minutes": run_minutes,
                             **run_sessions(run_minutes, sessions, folder)}  # fmt: skip
        if tui_minutes > 0:
            report["tui"] = {"minutes": tui_minutes,
                             **tui_sessions(tui_minutes, sessions, folder)}  # fmt: skip
        return report


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m hil.benchmarks.soak", description=__doc__)
    parser.add_argument("--run-minutes", type=float, default=RUN_MINUTES)
    parser.add_argument("--tui-minutes", type=float, default=TUI_MINUTES)
    parser.add_argument("--sessions", type=int, default=1, help="sessions of each kind")
    parser.add_argument("--keep", type=Path, help="leave records and device traces in this folder")
    args = parser.parse_args(argv)
    report = measure(args.run_minutes, args.tui_minutes, args.sessions, args.keep)
    print(json.dumps(report, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
