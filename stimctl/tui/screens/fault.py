"""Fault screen: takes over on a device fault or E-STOP; output is already zero; acknowledge."""

from __future__ import annotations

from typing import Any, ClassVar

from rich.table import Table
from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import Center, Vertical
from textual.widgets import Button, Label, Static

from stimctl.tui.format import LATCHED_STATES, field, state_name
from stimctl.tui.messages import DeviceCallDone
from stimctl.tui.screens.base import StimScreen

#: The host fault a session record that cannot be written latches (stimctl.host.stopping).
RECORD_FAILED = "RECORD_FAILED"


def fault_table(fault: Any, state: str, when: str) -> Table:
    grid = Table.grid(padding=(0, 2))
    grid.add_column(style="bold", no_wrap=True)
    grid.add_column()
    code = field(fault, "code") or ("ESTOP" if state == "ESTOP" else state)
    grid.add_row("What happened", str(code))
    grid.add_row("Detail", str(field(fault, "message") or "operator E-STOP"))
    channel = field(fault, "channel")
    grid.add_row("Channel", f"CH{channel}" if channel else "all channels")
    device_ms = field(fault, "device_time_ms")
    grid.add_row("Device time", f"{device_ms / 1000:.3f} s" if device_ms is not None else "—")
    grid.add_row("Host time", when)
    grid.add_row("Reported by", str(field(fault, "source") or "host"))
    if code == RECORD_FAILED:
        grid.add_row("Output", "RAMPED DOWN to zero (the normal stop); nothing more can be armed")
        grid.add_row("Record", "unwritten lines are kept and rescued when stimctl closes")
    else:
        grid.add_row("Output", "ZERO: the device stopped all channels")
    return grid


class FaultScreen(StimScreen):
    """Nothing else until the operator acknowledges (CLEAR_FAULT); then impedance again."""

    TITLE_TEXT = "FAULT"
    KEYS_HINT = "Enter acknowledge · Ctrl+Q quit"
    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("enter", "acknowledge", "Acknowledge", priority=True),
    ]

    def __init__(self, reason: str = "") -> None:
        super().__init__()
        self.reason = reason
        self.busy = False

    def compose_body(self) -> ComposeResult:
        with Vertical(id="fault-body"):
            title, details = self._content()
            yield Label(title, id="fault-title")
            yield Static(details, id="fault-details")
            yield Label(
                "Check the patient and the electrodes, then acknowledge. "
                "Impedance must be checked again before re-arming.",
                id="fault-advice",
            )
            with Center():
                yield Button("Acknowledge  (Enter)", id="acknowledge", variant="error")
            yield Label("", id="notice", markup=False)

    def _content(self) -> tuple[str, Table]:
        ctrl = self.stim.controller
        state = state_name(getattr(ctrl, "state", None))
        fault = getattr(ctrl, "fault", None)
        if state == "ESTOP" or self.reason == "estop":
            title = "E-STOP: OUTPUT AT ZERO"
        elif field(fault, "code") == RECORD_FAILED:
            title = "RECORD FAILED: SESSION STOPPED (RAMP-DOWN)"
        else:
            title = "FAULT: OUTPUT AT ZERO"
        when = self.stim.time_text(field(fault, "host_time"))
        return title, fault_table(fault, state, when)

    def refresh_fault(self) -> None:
        title, details = self._content()
        self.query_one("#fault-title", Label).update(title)
        self.query_one("#fault-details", Static).update(details)

    def update_status(self, status: Any) -> None:
        ctrl = self.stim.controller
        key = (getattr(ctrl, "state", None), getattr(ctrl, "fault", None))
        if key != getattr(self, "_shown", None):
            self._shown = key
            self.refresh_fault()

    def on_button_pressed(self, event: Button.Pressed) -> None:
        if event.button.id == "acknowledge":
            event.stop()
            self.action_acknowledge()

    def action_acknowledge(self) -> None:
        if self.busy:
            return
        ctrl = self.stim.controller
        if state_name(getattr(ctrl, "state", None)) not in LATCHED_STATES:
            self.stim.fault_acknowledged()
            return
        self.busy = True
        self.say("Acknowledging…")
        self.stim.call_device(self, "acknowledge", ctrl.acknowledge_fault)

    def on_device_call_done(self, message: DeviceCallDone) -> None:
        message.stop()
        self.busy = False
        if message.ok:
            self.stim.fault_acknowledged()
        else:
            self.say(f"Acknowledge refused: {message.error}", error=True)
