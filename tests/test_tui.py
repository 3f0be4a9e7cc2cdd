"""The clinician TUI driven by Pilot against the real Controller on the in-process simulator."""

from __future__ import annotations

import asyncio
import errno
import io
import json
import math
import re
import threading
from collections.abc import Awaitable, Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from rich.console import Console
from textual import events
from textual.keys import _character_to_key
from textual.pilot import Pilot
from textual.widgets import Button, OptionList

from stimctl.controller import Controller
from stimctl.host.errors import InterlockError, RecordFailed
from stimctl.host.status import HostState
from stimctl.tui.app import StimApp
from stimctl.tui.messages import DeviceCallDone, TelemetrySlot
from stimctl.tui.screens import (
    ConfirmModal,
    FaultScreen,
    NoteModal,
    PreflightScreen,
    RunScreen,
    SetupScreen,
    SummaryScreen,
)
from stimctl.tui.widgets.device_panel import DevicePanel

PROFILES = Path(__file__).resolve().parent.parent / "profiles"
SEED = "seed-st36-lr3.toml"
SIZE = (120, 40)
POLL_S = 0.02
POLL_LIMIT = 1500  # bounded polling: at most this many pauses per condition


@pytest.fixture
def controllers() -> Iterator[list[Controller]]:
    """Every controller the app connects, closed after the test whatever happens."""
    made: list[Controller] = []
    yield made
    for ctrl in made:
        ctrl.close()


def virtual_sim(
    made: list[Controller], record: Path | None = None, **sim_options: str
) -> Callable[[], Controller]:
    """A connect callable: the embedded simulator on the virtual clock (fast, deterministic)."""

    def connect() -> Controller:
        # On the virtual clock device time runs far ahead of wall time while the UI waits for
        # keys, so the device's own impedance validity (300 s of device time) is lengthened;
        # the host's guard (60 s of wall time) is unchanged.
        ctrl = Controller.connect(
            None,
            speed=math.inf,
            record=record,
            sim_options={
                "channels": "4",
                "lockstep": "0",
                "impedance_valid_ms": "86400000",
                **sim_options,
            },
        )
        made.append(ctrl)
        return ctrl

    return connect


def make_app(made: list[Controller], record: Path | None = None, **sim_options: str) -> StimApp:
    connect = virtual_sim(made, record, **sim_options)
    return StimApp(connect, operator="test", profiles_dir=PROFILES)


def drive(app: StimApp, scenario: Callable[[Pilot], Awaitable[None]]) -> None:
    """Run ``scenario`` against the real app under ``App.run_test`` at a fixed size."""

    async def main() -> None:
        async with app.run_test(size=SIZE) as pilot:
            await scenario(pilot)

    asyncio.run(main())


async def press(pilot: Pilot, *keys: str) -> None:
    """Pilot.press without its CPU-idle heuristic.

    Pilot.press waits (up to 1 s, twice per key) for the *process* to go idle; the virtual-clock
    simulator in this process never idles, so every key would cost 2 s. Keys take the same
    path as real ones (driver -> App, priority bindings first, then the focused widget).
    """
    app = pilot.app
    for key in keys:
        name = _character_to_key(key) if len(key) == 1 and not key.isalnum() else key
        char = key if len(key) == 1 else None
        event = events.Key(name, char)
        event.set_sender(app)
        app._driver.send_message(event)  # type: ignore[union-attr]
        await pilot.pause(POLL_S)


async def until(pilot: Pilot, condition: Callable[[], object], what: str) -> None:
    """Wait for ``condition`` by bounded polling (never a wall-clock assertion)."""
    for _ in range(POLL_LIMIT):
        if condition():
            return
        await pilot.pause(POLL_S)
    app: StimApp = pilot.app  # type: ignore[assignment]
    state_now = app.controller.state if app.controller else None
    recent = "\n".join(app.event_lines[-8:])
    raise AssertionError(
        f"timed out waiting for: {what}; screen {type(app.screen).__name__}, "
        f"state {state_now}; recent events:\n{recent}"
    )


def text_of(widget: Any) -> str:
    """What a Static/Label shows, as plain text (Rich renderables rendered at 200 columns)."""
    console = Console(width=200, file=io.StringIO(), color_system=None)
    console.print(widget.content)
    return console.file.getvalue()  # type: ignore[attr-defined]


def on_screen(app: StimApp, kind: type) -> bool:
    """``kind`` is the current screen and its frame is mounted (nested children may follow)."""
    return isinstance(app.screen, kind) and bool(app.screen.query("EStopBar"))


async def find(pilot: Pilot, selector: str) -> Any:
    """The current screen's widget for ``selector``, once mounted (children mount after parents)."""
    await until(pilot, lambda: pilot.app.screen.query(selector), f"widget {selector}")
    return pilot.app.screen.query_one(selector)


def state(app: StimApp) -> HostState:
    return app.controller.state


def plateau(app: StimApp, channel: int = 1) -> float:
    return next(c.plateau_ma for c in app.controller.status().channels if c.id == channel)


def output_is_zero(app: StimApp) -> bool:
    """The device reports zero set and measured current on every channel (its telemetry)."""
    status = app.controller.status()
    return all(c.set_ma == 0 and c.measured_ma == 0 for c in status.channels)


def simulator_output_is_zero(app: StimApp) -> bool:
    """The in-process simulator's output stage delivers nothing on any channel (the truth)."""
    port = app.controller.link.port
    with port.lock:
        return not port.device.output_stage.any_output


async def choose_profile(pilot: Pilot, name: str) -> None:
    app: StimApp = pilot.app  # type: ignore[assignment]
    await until(pilot, lambda: app.controller is not None, "connected")
    options: OptionList = await find(pilot, "#profile-list")

    def index() -> int | None:  # the screen fills the list after the list has mounted
        names = [options.get_option_at_index(i).prompt for i in range(options.option_count)]
        return names.index(name) if name in names else None

    await until(pilot, lambda: index() is not None, f"profile {name} listed")
    options.focus()
    options.highlighted = index()
    await until(pilot, lambda: options.has_focus and options.highlighted == index(),
                "profile highlighted")  # fmt: skip
    await press(pilot, "enter")
    await until(pilot, lambda: app.report is not None, "validation report")


async def arm_and_start(pilot: Pilot, profile: str = SEED, *, expect_fault: bool = False) -> None:
    """Set-up -> preflight -> impedance -> ARM (typed confirm) -> START, by keyboard."""
    app: StimApp = pilot.app  # type: ignore[assignment]
    await choose_profile(pilot, profile)
    assert app.report.ok
    await press(pilot, "f5")
    await until(pilot, lambda: on_screen(app, PreflightScreen), "preflight screen")
    await press(pilot, "i")
    await until(pilot, lambda: app.screen.impedance_ok(), "impedance OK")
    await press(pilot, "a")
    await until(pilot, lambda: on_screen(app, ConfirmModal), "ARM confirmation")
    await press(pilot, *"ARM", "enter")
    await until(pilot, lambda: on_screen(app, RunScreen), "run screen")
    assert state(app) is HostState.ARMED
    await press(pilot, "f5")
    await until(pilot, lambda: state(app) is not HostState.ARMED, "START acknowledged")
    if expect_fault:
        return  # an injected fault may already have stopped the session
    assert state(app) is HostState.RUNNING


# --- acceptance 1: the whole session by keyboard, then E-STOP from a modal with an Input ------
def test_session_select_check_arm_start_adjust_stop(controllers: list[Controller]) -> None:
    app = make_app(controllers)

    async def scenario(pilot: Pilot) -> None:
        await arm_and_start(pilot)
        before = plateau(app)
        await press(pilot, "plus")
        await until(pilot, lambda: plateau(app) > before, "plateau raised")
        assert plateau(app) == pytest.approx(before + 0.1)
        await press(pilot, "minus", "minus")
        await until(pilot, lambda: plateau(app) < before, "plateau lowered")
        await press(pilot, "s")
        await until(pilot, lambda: on_screen(app, SummaryScreen), "summary")
        assert state(app) not in (HostState.RUNNING, HostState.STOPPING)
        assert simulator_output_is_zero(app)
        await until(pilot, lambda: output_is_zero(app), "zero output reported")
        text = text_of(await find(pilot, "#summary"))
        assert "STOPPED" in text
        assert "CH1" in text

    drive(app, scenario)


def test_plus_minus_are_greyed_out_while_paused_and_change_nothing(
    controllers: list[Controller],
) -> None:
    """Issue 10: a change made while the output is zero would arrive at once on RESUME."""
    app = make_app(controllers)

    async def scenario(pilot: Pilot) -> None:
        await arm_and_start(pilot)
        before = plateau(app)
        await press(pilot, "p")
        await until(pilot, lambda: state(app) is HostState.PAUSED, "paused")
        plus = await find(pilot, "#plus")
        await until(pilot, lambda: plus.disabled, "+ greyed out")
        assert (await find(pilot, "#minus")).disabled
        await press(pilot, "plus")
        await pilot.click("#plus")
        assert plateau(app) == before
        await press(pilot, "p")
        await until(pilot, lambda: state(app) is HostState.RUNNING, "resumed")
        await until(pilot, lambda: not plus.disabled, "+ usable again")

    drive(app, scenario)


def test_estop_works_with_a_modal_open_and_an_input_focused(
    controllers: list[Controller],
) -> None:
    app = make_app(controllers)

    async def scenario(pilot: Pilot) -> None:
        await arm_and_start(pilot)
        await until(pilot, lambda: not output_is_zero(app), "current flowing")
        await press(pilot, "n")
        await until(pilot, lambda: on_screen(app, NoteModal), "note modal")
        await press(pilot, *"tingling")
        note = await find(pilot, "#note-input")
        assert app.focused is note
        assert note.value == "tingling"  # printable keys reach the Input ...
        await press(pilot, "f12")  # ... but F12 is the App's, with priority
        assert state(app) is HostState.ESTOP
        await until(pilot, lambda: on_screen(app, FaultScreen), "fault screen")
        await until(pilot, lambda: simulator_output_is_zero(app), "simulator output zero")
        await until(pilot, lambda: output_is_zero(app), "zero output reported")
        title = await find(pilot, "#fault-title")
        await until(pilot, lambda: "E-STOP" in text_of(title), "E-STOP title")

    drive(app, scenario)


def test_estop_button_is_on_every_screen_and_clickable(
    controllers: list[Controller],
) -> None:
    app = make_app(controllers)

    async def scenario(pilot: Pilot) -> None:
        await arm_and_start(pilot)
        assert await find(pilot, "#estop-button")
        await pilot.click("#estop-button")
        assert state(app) is HostState.ESTOP
        await until(pilot, lambda: on_screen(app, FaultScreen), "fault screen")

    drive(app, scenario)


# --- acceptance 2: a profile with errors cannot be armed --------------------------------------
def test_profile_with_errors_cannot_be_armed(
    controllers: list[Controller],
    tmp_path: Path,
) -> None:
    bad = tmp_path / "too-strong.toml"
    bad.write_text((PROFILES / SEED).read_text().replace("amplitude_ma = 0.5", "amplitude_ma = 80"))
    app = make_app(controllers)

    async def scenario(pilot: Pilot) -> None:
        await until(pilot, lambda: app.controller is not None, "connected")
        (await find(pilot, "#profile-path")).focus()
        await press(pilot, *str(bad), "enter")
        await until(pilot, lambda: app.report is not None, "report")
        assert not app.report.ok
        report_text = text_of(await find(pilot, "#report"))
        assert "CANNOT be armed" in report_text
        first = app.report.errors[0]
        assert first.code in report_text
        assert (await find(pilot, "#to-preflight")).disabled
        await press(pilot, "f5")
        await pilot.pause(POLL_S)
        assert isinstance(app.screen, SetupScreen)
        assert "cannot be armed" in text_of(await find(pilot, "#notice"))
        with pytest.raises(InterlockError):
            app.controller.arm(confirm=True)

    drive(app, scenario)


def test_warnings_must_be_acknowledged_before_preflight(
    controllers: list[Controller],
) -> None:
    app = make_app(controllers)

    async def scenario(pilot: Pilot) -> None:
        await choose_profile(pilot, SEED)
        (await find(pilot, "#flag-epilepsy")).value = True  # seed + epilepsy: a warning
        await until(pilot, lambda: app.report.warnings, "warning")
        assert app.report.ok
        assert (await find(pilot, "#to-preflight")).disabled
        assert app.preflight_refusal() == "Acknowledge the warnings first."
        (await find(pilot, "#ack-warnings")).value = True
        await until(
            pilot,
            lambda: not app.screen.query_one("#to-preflight", Button).disabled,
            "preflight enabled",
        )

    drive(app, scenario)


def test_patient_flag_that_makes_an_error_refuses_the_profile(
    controllers: list[Controller],
) -> None:
    app = make_app(controllers)

    async def scenario(pilot: Pilot) -> None:
        await choose_profile(pilot, SEED)
        (await find(pilot, "#flag-implanted-device")).value = True
        await until(pilot, lambda: not app.report.ok, "refused")
        assert "patient-implanted-device" in text_of(await find(pilot, "#report"))
        assert (await find(pilot, "#to-preflight")).disabled

    drive(app, scenario)


# --- acceptance 3: an electrode fault takes over and blocks re-arming ------------------------
def test_electrode_fault_takes_over_and_blocks_rearming_until_acknowledged(
    controllers: list[Controller],
) -> None:
    app = make_app(controllers, fault="electrode_open:1@3000")

    async def scenario(pilot: Pilot) -> None:
        await arm_and_start(pilot, expect_fault=True)
        await until(pilot, lambda: on_screen(app, FaultScreen), "fault screen")
        assert state(app) is HostState.FAULT
        assert simulator_output_is_zero(app)  # zeroed in the tick the fault was detected
        await until(pilot, lambda: output_is_zero(app), "zero output reported")
        details = text_of(await find(pilot, "#fault-details"))
        assert "ELECTRODE_OPEN" in details
        assert "CH1" in details
        # nothing else until acknowledged: preflight keys do nothing, the interlock refuses
        await press(pilot, "f5", "i", "a", "escape")
        assert isinstance(app.screen, FaultScreen)
        assert app.preflight_refusal() == "Acknowledge the fault first."
        with pytest.raises(InterlockError):
            app.controller.arm(confirm=True)
        await press(pilot, "enter")
        await until(pilot, lambda: on_screen(app, SummaryScreen), "summary")
        assert state(app) is HostState.IDLE
        assert "ELECTRODE_OPEN" in text_of(await find(pilot, "#summary"))
        await press(pilot, "enter")
        await until(pilot, lambda: on_screen(app, SetupScreen), "set-up")
        await until(pilot, lambda: app.can_preflight(), "profile re-validated")
        await press(pilot, "f5")
        await until(
            pilot, lambda: on_screen(app, PreflightScreen) and app.screen.query("#arm"), "preflight"
        )
        assert (await find(pilot, "#arm")).disabled  # impedance must be re-checked

    drive(app, scenario)


def test_a_connection_finishing_while_the_set_up_screen_composes_is_shown_once_it_mounts(
    controllers: list[Controller],
) -> None:
    # Found under CPU load: the connect worker finished between the set-up screen entering the
    # stack and its widgets mounting, and the app crashed on a query (NoMatches).
    app = make_app(controllers)

    async def scenario(pilot: Pilot) -> None:
        await until(pilot, lambda: app.controller is not None, "connected")
        screen = SetupScreen()
        app.push_screen(screen)
        app.on_device_call_done(DeviceCallDone("connect", result=app.controller))  # not mounted
        await until(pilot, lambda: on_screen(app, SetupScreen) and screen.is_mounted, "mounted")
        assert screen.query_one(DevicePanel)._controller is app.controller

    drive(app, scenario)


# --- telemetry hand-off --------------------------------------------------------------------
def test_telemetry_slot_replaces_a_stale_sample_instead_of_queueing() -> None:
    slot = TelemetrySlot()
    assert slot.put(1) is True  # first sample: post one TelemetryReady
    assert slot.put(2) is False  # still pending: replaced, nothing posted
    assert slot.put(3) is False
    assert slot.take() == 3
    assert slot.replaced == 2
    assert slot.put(4) is True


def test_telemetry_from_the_io_thread_never_queues_more_than_one_message(
    controllers: list[Controller],
) -> None:
    app = make_app(controllers)
    posted: list[object] = []

    async def scenario(pilot: Pilot) -> None:
        await until(pilot, lambda: app.controller is not None, "connected")
        for unsubscribe in app._unsubscribe:  # only this test's thread feeds the slot now
            unsubscribe()
        app.post_message = posted.append  # type: ignore[method-assign]
        app.telemetry.take()
        status = app.controller.status()
        worker = threading.Thread(
            target=lambda: [app._telemetry_from_io(status) for _ in range(1000)]
        )
        worker.start()
        worker.join()
        assert len(posted) == 1
        assert app.telemetry.take() is status

    drive(app, scenario)


def test_a_clinic_patient_preselects_its_flags_and_they_cannot_be_changed(
    controllers: list[Controller],
) -> None:
    app = StimApp(
        virtual_sim(controllers),
        operator="test",
        profiles_dir=PROFILES,
        patient_id="P7",
        patient_flags=frozenset({"pregnant"}),
    )

    async def scenario(pilot: Pilot) -> None:
        pregnant = await find(pilot, "#flag-pregnant")
        assert "P7" in str((await find(pilot, "#patient-label")).render())
        await until(pilot, lambda: pregnant.value and pregnant.disabled, "flags from the clinic")
        assert not app.screen.query_one("#flag-epilepsy").value
        assert app.screen.query_one("#flag-epilepsy").disabled
        await choose_profile(pilot, "han-dense-disperse.toml")  # SP6
        await until(pilot, lambda: app.report is not None, "report")
        assert "patient-pregnancy-point" in app.report.codes and not app.report.ok

    drive(app, scenario)


# --- issue 12: a record that cannot be written stops the session; the anchor is shown ---------
def test_a_record_that_fails_mid_session_takes_over_as_record_failed_and_ramps_down(
    controllers: list[Controller], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    app = make_app(controllers, tmp_path / "r.jsonl")

    def full(fd: int, data: object) -> int:
        raise OSError(errno.ENOSPC, "No space left on device")

    async def scenario(pilot: Pilot) -> None:
        await arm_and_start(pilot, "short-demo.toml")
        monkeypatch.setattr("stimctl.host.record._write", full)
        await until(pilot, lambda: on_screen(app, FaultScreen), "fault screen")
        title = text_of(await find(pilot, "#fault-title"))
        assert "RECORD FAILED" in title
        assert "RAMPED DOWN" in text_of(await find(pilot, "#fault-details"))
        await until(pilot, lambda: app.controller.status().device_state == "IDLE", "ramped down")
        await press(pilot, "enter")
        await until(pilot, lambda: on_screen(app, SummaryScreen), "summary")
        assert "RECORD_FAILED" in text_of(await find(pilot, "#summary"))
        with pytest.raises(RecordFailed):  # no session without its record
            app.controller.arm(confirm=True)

    drive(app, scenario)


@pytest.mark.parametrize(
    ("extra", "code"),
    [(["--patient-id", "nobody"], 1), (["--db", "postgresql+psycopg://x@127.0.0.1:1/x"], 3)],
)
def test_stimctl_tui_refuses_an_unknown_patient_or_an_unreachable_database(
    extra: list[str], code: int, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from stimctl.cli import main

    db = ["--db", f"sqlite:///{tmp_path / 'c.db'}"] if "--db" not in extra else []
    assert main(["tui", "--record", str(tmp_path / "r.jsonl"), *extra, *db]) == code
    assert len(capsys.readouterr().err.strip().splitlines()) == 1
    assert not (tmp_path / "r.jsonl").exists()


def test_the_summary_shows_the_records_anchor(
    controllers: list[Controller], tmp_path: Path
) -> None:
    app = make_app(controllers, tmp_path / "r.jsonl")

    async def scenario(pilot: Pilot) -> None:
        await arm_and_start(pilot, "short-demo.toml")
        await press(pilot, "s")
        await until(pilot, lambda: on_screen(app, SummaryScreen), "summary")
        shown = app.screen.anchor  # the record's tag when the session ended, 12 hex digits
        text = text_of(await find(pilot, "#summary"))
        assert re.search(rf"Anchor +{shown} ", text) and len(shown) == 12
        tags = [json.loads(line)["tag"] for line in (tmp_path / "r.jsonl").read_text().splitlines()]
        assert any(tag.startswith(shown) for tag in tags)  # `record verify --expect` finds it

    drive(app, scenario)


def test_a_patient_picked_from_the_clinic_database_gets_the_row_and_fixes_the_flags(
    controllers: list[Controller], tmp_path: Path
) -> None:
    from stimctl.cli.run_clinic import ClinicRun
    from stimctl.clinic.db import open_database
    from stimctl.clinic.patients import add_patient
    from stimctl.clinic.schema import ensure_current
    from stimctl.clinic.sessions import list_sessions

    db = open_database(f"sqlite:///{tmp_path / 'c.db'}")
    ensure_current(db)
    with db.session() as session:
        add_patient(session, "P8", flags=["pregnant"])
        add_patient(session, "P9")
    clinic = ClinicRun(db, None)
    clinic.open("test", tmp_path / "r.jsonl", (), "tui")
    app = StimApp(virtual_sim(controllers), operator="test", profiles_dir=PROFILES, clinic=clinic)

    async def scenario(pilot: Pilot) -> None:
        picker = await find(pilot, "#patient-picker")
        await until(pilot, lambda: len(picker._options) == 3, "patients listed")  # + the prompt
        await choose_profile(pilot, "han-dense-disperse.toml")  # SP6: valid without flags
        assert app.report.ok
        picker.value = "P8"
        await until(pilot, lambda: app.report is not None and not app.report.ok, "re-validated")
        assert "patient-pregnancy-point" in app.report.codes
        pregnant = app.screen.query_one("#flag-pregnant")
        assert pregnant.value and pregnant.disabled and picker.disabled

    try:
        drive(app, scenario)
        with db.session() as session:
            (row,) = list_sessions(session, "P8")
            assert (row.number, row.flags, row.outcome) == (1, ["pregnant"], None)
    finally:
        db.dispose()
