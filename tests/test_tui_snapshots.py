"""Snapshots (pytest-textual-snapshot) of the TUI's main screens at 120x40, real simulator.

The flows run against the real Controller on the virtual-clock simulator; before each shot the
view is frozen (``view_frozen``) and fed fixed telemetry and a fixed event log, and the app's
clock is fixed, so nothing that depends on wall time reaches the picture.
"""

from __future__ import annotations

import math
from dataclasses import replace
from datetime import datetime
from pathlib import Path
from typing import Any

import pytest
from test_tui import (
    POLL_S,
    PROFILES,
    SEED,
    arm_and_start,
    choose_profile,
    on_screen,
    press,
    until,
)
from textual.pilot import Pilot
from textual.widgets import Input

from stimctl.controller import Controller
from stimctl.host.status import ChannelStatus, Status
from stimctl.tui.app import StimApp
from stimctl.tui.screens import ConfirmModal, FaultScreen, PreflightScreen, SummaryScreen
from stimctl.tui.widgets import ChannelRow, EventLog

SIZE = (120, 40)
FIXED_NOW = datetime(2026, 1, 15, 9, 30, 0)
EVENTS = [
    "09:30:00  stimctl tui started; operator Dr. Example",
    "09:30:00  connected to the embedded simulator",
    "09:30:05  profile seed-st36-lr3.toml: valid (0 errors, 0 warnings)",
]


@pytest.fixture
def controllers() -> Any:
    made: list[Controller] = []
    yield made
    for ctrl in made:
        ctrl.close()


@pytest.fixture
def library(tmp_path: Path) -> Path:
    """A small profile library: the seed and one that breaks a hard limit."""
    seed = (PROFILES / SEED).read_text()
    (tmp_path / SEED).write_text(seed)
    (tmp_path / "too-strong.toml").write_text(
        seed.replace("amplitude_ma = 0.5", "amplitude_ma = 80")
    )
    return tmp_path


def make_app(made: list[Controller], library: Path, **sim: str) -> StimApp:
    def connect() -> Controller:
        options = {"channels": "4", "lockstep": "0", **sim}  # the UI never waits: free-running
        ctrl = Controller.connect(None, speed=math.inf, sim_options=options)
        made.append(ctrl)
        return ctrl

    return StimApp(connect, operator="Dr. Example", profiles_dir=library, clock=lambda: FIXED_NOW)


def quiet_link(status: Status, **changes: Any) -> Status:
    """A status with link-health figures that do not depend on timing."""
    return replace(
        status,
        heartbeat_age_ms=20.0,
        fifo_ms=0,
        frame_errors=0,
        naks=0,
        late_blocks=0,
        underruns=0,
        **changes,
    )


async def freeze(pilot: Pilot, status: Status | None = None) -> None:
    """Stop live updates; show ``status`` (or the current one, quietened) and fixed events."""
    app: StimApp = pilot.app  # type: ignore[assignment]
    app.view_frozen = True
    await pilot.pause(POLL_S)
    app.apply_status(status or quiet_link(app.controller.status()))
    app.event_lines[:] = EVENTS
    for log in app.screen.query(EventLog):
        log.clear()
        log._shown = 0
    app.event_count += 1
    for field in app.screen.query(Input):
        field.cursor_blink = False
    await pilot.pause(POLL_S)
    app.controller.close()  # output to zero; the process goes idle so the screenshot is quick


def running_status(app: StimApp, t: float) -> Status:
    """Synthetic 2 Hz telemetry for the run screen: plateau 0.6 mA, measured current wobbles."""
    wobble = 0.6 * (0.5 + 0.5 * math.sin(t))
    channel = ChannelStatus(
        id=1,
        set_ma=0.6,
        measured_ma=round(wobble, 3),
        impedance_ohm=1500,
        pulses=int(2 * (312 + t)),
        plateau_ma=0.6,
    )
    return quiet_link(
        app.controller.status(),
        state=type(app.controller.state)("RUNNING"),
        channels=(channel,),
        phase_index=0,
        phase_count=1,
        phase_mode="continuous",
        elapsed_s=312.0,
        remaining_s=1488.0,
        device_time_ms=312_000,
    )


def test_setup_screen_with_the_seed_profile(snap_compare, controllers, library) -> None:
    app = make_app(controllers, library)

    async def run_before(pilot: Pilot) -> None:
        await choose_profile(pilot, SEED)
        await freeze(pilot)

    assert snap_compare(app, terminal_size=SIZE, run_before=run_before)


def test_setup_screen_refusing_a_profile_with_errors(snap_compare, controllers, library) -> None:
    app = make_app(controllers, library)

    async def run_before(pilot: Pilot) -> None:
        await choose_profile(pilot, "too-strong.toml")
        await press(pilot, "f5")  # refused: the notice says why
        await freeze(pilot)

    assert snap_compare(app, terminal_size=SIZE, run_before=run_before)


async def checked_preflight(pilot: Pilot, app: StimApp) -> None:
    """Seed profile chosen, on to preflight, impedance checked and passed."""
    await choose_profile(pilot, SEED)
    await press(pilot, "f5")
    await until(pilot, lambda: on_screen(app, PreflightScreen), "preflight")
    await press(pilot, "i")
    await until(pilot, lambda: app.screen.impedance_ok(), "impedance OK")


def test_preflight_screen_after_the_impedance_check(snap_compare, controllers, library) -> None:
    app = make_app(controllers, library)

    async def run_before(pilot: Pilot) -> None:
        await checked_preflight(pilot, app)
        await freeze(pilot)

    assert snap_compare(app, terminal_size=SIZE, run_before=run_before)


def test_arm_confirmation_modal(snap_compare, controllers, library) -> None:
    app = make_app(controllers, library)

    async def run_before(pilot: Pilot) -> None:
        await checked_preflight(pilot, app)
        await press(pilot, "a")
        await until(pilot, lambda: on_screen(app, ConfirmModal), "modal")
        await press(pilot, "A", "R")
        await freeze(pilot)

    assert snap_compare(app, terminal_size=SIZE, run_before=run_before)


def test_run_screen_with_live_current(snap_compare, controllers, library) -> None:
    app = make_app(controllers, library)

    async def run_before(pilot: Pilot) -> None:
        await arm_and_start(pilot)
        await freeze(pilot)
        for row in app.screen.query(ChannelRow):
            row._history.clear()
        for step in range(60):
            app.apply_status(running_status(app, step / 3))
        app.screen.say("RUNNING. +/- adjust the selected channel; S stops with a ramp down.")
        await pilot.pause(POLL_S)

    assert snap_compare(app, terminal_size=SIZE, run_before=run_before)


def test_fault_screen_after_an_open_electrode(
    snap_compare,
    controllers,
    library,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    app = make_app(controllers, library, fault="electrode_open:1@3000")

    async def run_before(pilot: Pilot) -> None:
        await arm_and_start(pilot, expect_fault=True)
        await until(pilot, lambda: on_screen(app, FaultScreen), "fault screen")
        await freeze(pilot)
        # the device clock counts from power-on, i.e. from when the test connected: fix it
        fault = replace(app.controller.fault, device_time_ms=63_000)
        monkeypatch.setattr(Controller, "fault", property(lambda _self: fault))
        app.screen.refresh_fault()
        await pilot.pause(POLL_S)

    assert snap_compare(app, terminal_size=SIZE, run_before=run_before)


def test_summary_screen_after_an_acknowledged_fault(snap_compare, controllers, library) -> None:
    app = make_app(controllers, library, fault="electrode_open:1@3000")

    async def run_before(pilot: Pilot) -> None:
        await arm_and_start(pilot, expect_fault=True)
        await until(pilot, lambda: on_screen(app, FaultScreen), "fault screen")
        await press(pilot, "enter")
        await until(pilot, lambda: on_screen(app, SummaryScreen), "summary")
        await freeze(pilot)

    assert snap_compare(app, terminal_size=SIZE, run_before=run_before)
