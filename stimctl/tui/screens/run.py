"""Run screen: START, per-channel amplitude with bounded +/- steps, live current, STOP, notes."""

from __future__ import annotations

from typing import Any, ClassVar

from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import Horizontal, Vertical
from textual.widgets import Button, Label, ProgressBar, Static

from stimctl.tui.format import ACTIVE_STATES, clock, field, state_name
from stimctl.tui.messages import DeviceCallDone
from stimctl.tui.screens.base import StimScreen
from stimctl.tui.screens.modals import NoteModal
from stimctl.tui.widgets import ChannelRow, DevicePanel, EventLog

STEP_MA = 0.1  # one +/- press; the controller bounds it again (envelope, ramp-rate limit)
#: States in which +/- work; greyed out otherwise (PAUSED: a change made while the output is zero
#: would arrive at once on RESUME, so the controller and the device refuse it).
ADJUSTABLE = ("ARMED", "RUNNING")


class RunScreen(StimScreen):
    """The session: armed, running, paused, stopping; ends in the summary or the fault screen."""

    TITLE_TEXT = "Run"
    KEYS_HINT = "F5 start · ↑↓ channel · +/- amplitude · P pause · S stop · N note"
    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("f5", "start", "Start"),
        Binding("up", "select(-1)", "Channel up", show=False),
        Binding("down", "select(1)", "Channel down", show=False),
        Binding("plus,equals_sign", "adjust(1)", "+ amplitude"),
        Binding("minus,underscore", "adjust(-1)", "- amplitude"),
        Binding("p", "pause", "Pause/resume"),
        Binding("s", "stop", "STOP (ramp down)"),
        Binding("n", "note", "Note"),
    ]

    def __init__(self) -> None:
        super().__init__()
        self.selected = 0
        self.started = False
        self.ended = False
        self.device_state = ""  # the device state of the last telemetry shown

    def compose_body(self) -> ComposeResult:
        profile = self.stim.profile
        with Horizontal(id="run-body"):
            with Vertical(id="run-main"):
                with Horizontal(id="run-head"):
                    yield Static("", id="phase-info")
                    yield Static("", id="time-info")
                yield ProgressBar(total=max(profile.duration_s, 1.0), show_eta=False, id="progress")
                with Vertical(id="channels"):
                    for ch in profile.channels:
                        yield ChannelRow(ch.id, f"{ch.anode}→{ch.cathode}")
                with Horizontal(classes="actions"):
                    yield Button("−0.1 mA  (-)", id="minus", classes="adjust", disabled=True)
                    yield Button("+0.1 mA  (+)", id="plus", classes="adjust", disabled=True)
                    yield Label("selected channel; greyed out while paused", id="adjust-hint")
                with Horizontal(classes="actions"):
                    yield Button("START  (F5)", id="start", variant="success")
                    yield Button("Pause  (P)", id="pause", disabled=True)
                    yield Button("STOP (ramp down)  (S)", id="stop", variant="warning")
                    yield Button("Note  (N)", id="note")
                yield Label(
                    "ARMED: output is zero. Press F5 to START (ramps up from zero).",
                    id="notice",
                    markup=False,
                )
                yield EventLog(id="event-log")
            yield DevicePanel(id="device-panel")

    def on_mount(self) -> None:
        self._select(0)
        if self.stim.last_status is not None:
            self.update_status(self.stim.last_status, record=False)

    @property
    def rows(self) -> list[ChannelRow]:
        return list(self.query(ChannelRow))

    def _select(self, index: int) -> None:
        rows = self.rows
        self.selected = max(0, min(len(rows) - 1, index))
        for i, row in enumerate(rows):
            row.set_class(i == self.selected, "selected")

    # --- telemetry --------------------------------------------------------------------------
    def update_status(self, status: Any, *, record: bool = True) -> None:
        self.query_one(DevicePanel).show_status(status)
        state = state_name(field(status, "state"))
        mode = field(status, "phase_mode") or "—"
        index, count = field(status, "phase_index", 0), field(status, "phase_count", 0)
        self.query_one("#phase-info", Static).update(
            f"{state}   phase {min(index + 1, count) if count else '—'}/{count or '—'}: {mode}"
        )
        elapsed, remaining = field(status, "elapsed_s"), field(status, "remaining_s")
        self.query_one("#time-info", Static).update(
            f"elapsed {clock(elapsed)}   remaining {clock(remaining)}"
        )
        self.query_one("#progress", ProgressBar).update(progress=float(elapsed or 0.0))
        by_id = {field(c, "id"): c for c in field(status, "channels", ()) or ()}
        for row in self.rows:
            row.show(by_id.get(row.channel), record=record)
        pause = self.query_one("#pause", Button)
        pause.label = "Resume  (P)" if state == "PAUSED" else "Pause  (P)"
        pause.disabled = state not in ("RUNNING", "PAUSED")
        self.query_one("#start", Button).disabled = state != "ARMED"
        if state != self.device_state:
            self.device_state = state
            for button in self.query(".adjust").results(Button):
                button.disabled = state not in ADJUSTABLE
            self.refresh_bindings()
        if self.started and not self.ended and state not in ACTIVE_STATES:
            self.session_ended(state)

    def session_ended(self, state: str) -> None:
        self.ended = True
        if state in ("FAULT", "ESTOP"):
            return  # the fault screen takes over; the summary follows the acknowledgement
        self.stim.show_summary()

    # --- actions ----------------------------------------------------------------------------
    def on_button_pressed(self, event: Button.Pressed) -> None:
        actions = {
            "start": self.action_start,
            "pause": self.action_pause,
            "minus": lambda: self.action_adjust(-1),
            "plus": lambda: self.action_adjust(1),
            "stop": self.action_stop,
            "note": self.action_note,
        }
        if event.button.id in actions:
            event.stop()
            actions[event.button.id]()

    def action_start(self) -> None:
        if self.started:
            return
        self.started = True
        self.stim.session_started = True
        self.query_one("#start", Button).disabled = True
        self.say("Starting: ramping up from zero…")
        self.stim.call_device(self, "start", self.stim.controller.start)

    def action_select(self, delta: int) -> None:
        self._select(self.selected + delta)

    def check_action(self, action: str, parameters: tuple[object, ...]) -> bool | None:
        """+/- are disabled (greyed) outside ARMED and RUNNING."""
        if action == "adjust" and self.device_state not in ADJUSTABLE:
            return None
        return True

    def action_adjust(self, direction: int) -> None:
        row = self.rows[self.selected]
        try:
            new = self.stim.controller.adjust(row.channel, direction * STEP_MA)
        except Exception as error:  # InterlockError, CommandRejected: shown, never fatal
            self.say(f"CH{row.channel}: adjustment refused: {error}", error=True)
            return
        self.stim.log_event(f"CH{row.channel} plateau -> {new:.2f} mA")
        self.say(f"CH{row.channel} plateau {new:.2f} mA")

    def action_pause(self) -> None:
        state = state_name(self.stim.controller.state)
        if state == "RUNNING":
            self.stim.call_device(self, "pause", self.stim.controller.pause)
        elif state == "PAUSED":
            self.stim.call_device(self, "resume", self.stim.controller.resume)

    def action_stop(self) -> None:
        self.say("STOP: ramping down to zero…")
        self.stim.call_device(self, "stop", self.stim.controller.stop)

    def action_note(self) -> None:
        self.app.push_screen(NoteModal(), self._noted)

    def _noted(self, text: str | None) -> None:
        if text and self.stim.controller is not None:
            self.stim.controller.note(text)  # into the session record; the event log shows it

    def on_device_call_done(self, message: DeviceCallDone) -> None:
        message.stop()
        if not message.ok:
            if message.name == "start":
                self.started = False
                self.stim.session_started = False
            self.say(f"{message.name} refused: {message.error}", error=True)
            return
        if message.name == "start":
            self.say("RUNNING. +/- adjust the selected channel; S stops with a ramp down.")
        elif message.name == "stop":
            self.say("Stopped.")
            state = state_name(self.stim.controller.state)
            if not self.ended and state not in ACTIVE_STATES:
                self.session_ended(state)
