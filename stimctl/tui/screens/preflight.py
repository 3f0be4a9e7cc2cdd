"""Preflight screen: profile summary, per-channel impedance check, ARM with typed confirmation."""

from __future__ import annotations

from typing import TYPE_CHECKING, ClassVar, cast

from rich.table import Table
from rich.text import Text
from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import Horizontal, Vertical
from textual.widgets import Button, Label, Static

from stimctl.tui.format import clock, ohm
from stimctl.tui.messages import DeviceCallDone
from stimctl.tui.screens.base import StimScreen
from stimctl.tui.screens.modals import ConfirmModal
from stimctl.tui.widgets import DevicePanel, EventLog

if TYPE_CHECKING:
    from stimctl.host.status import ImpedanceReading, Status
    from stimctl.rules.profile import Profile


def profile_table(profile: Profile) -> Table:
    """Channels and phases of a profile, as the clinician prescribed them."""
    table = Table.grid(padding=(0, 2))
    table.add_column(style="bold")
    table.add_column()
    table.add_row("Profile", profile.name)
    table.add_row("Waveform", profile.waveform.shape)
    for ch in profile.channels:
        table.add_row(f"CH{ch.id}", f"{ch.anode} → {ch.cathode}  at {ch.amplitude_ma:g} mA")
    for i, ph in enumerate(profile.phases, 1):
        table.add_row(
            f"Phase {i}",
            f"{ph.mode}  {ph.frequency_hz} Hz  {ph.pulse_width_us} µs  {clock(ph.duration_s)}",
        )
    table.add_row("Duration", clock(profile.duration_s))
    return table


def impedance_table(profile: Profile, readings: dict[int, ImpedanceReading] | None) -> Table:
    table = Table(expand=True, show_edge=False)
    for name in ("channel", "electrodes", "impedance", "status", ""):
        table.add_column(name)
    for ch in profile.channels:
        reading = (readings or {}).get(ch.id)
        if reading is None:
            table.add_row(f"CH{ch.id}", f"{ch.anode} → {ch.cathode}", "—", "not checked", "")
            continue
        mark = Text("OK", style="bold green") if reading.ok else Text("FAIL", style="bold red")
        table.add_row(
            f"CH{ch.id}", f"{ch.anode} → {ch.cathode}", ohm(reading.ohm), reading.status, mark
        )
    return table


class PreflightScreen(StimScreen):
    """Check every active channel's impedance, then ARM after an explicit confirmation."""

    TITLE_TEXT = "Preflight"
    KEYS_HINT = "I impedance · A arm · B back · Ctrl+Q quit"
    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("i", "impedance", "Impedance"),
        Binding("a", "arm", "Arm"),
        Binding("b", "back", "Back"),
    ]

    def __init__(self) -> None:
        super().__init__()
        self.readings: dict[int, ImpedanceReading] | None = None
        self.busy = False

    def compose_body(self) -> ComposeResult:
        with Horizontal(id="preflight-body"):
            yield DevicePanel(id="device-panel")
            with Vertical(id="preflight-main"):
                yield Static(id="profile-summary", classes="panel")
                yield Static(id="impedance", classes="panel")
                with Horizontal(classes="actions"):
                    yield Button("Check impedance  (I)", id="check-impedance", variant="primary")
                    yield Button("ARM…  (A)", id="arm", variant="warning", disabled=True)
                    yield Button("Back  (B)", id="back")
                yield Label(
                    "Run the impedance check on every channel before arming.",
                    id="notice",
                    markup=False,
                )
                yield EventLog(id="event-log")

    @property
    def profile(self) -> Profile:
        """The loaded profile (preflight opens only once one is loaded)."""
        profile = self.stim.profile
        assert profile is not None, "preflight follows a loaded profile"
        return profile

    def on_mount(self) -> None:
        profile = self.profile
        self.query_one("#profile-summary", Static).update(profile_table(profile))
        self.query_one("#profile-summary", Static).border_title = "Prescription"
        self.query_one("#impedance", Static).border_title = "Impedance"
        self._show_readings()

    def _show_readings(self) -> None:
        self.query_one("#impedance", Static).update(impedance_table(self.profile, self.readings))
        self.query_one("#arm", Button).disabled = self.busy or not self.impedance_ok()
        self.query_one("#check-impedance", Button).disabled = self.busy

    def impedance_ok(self) -> bool:
        if not self.readings:
            return False
        readings = self.readings
        return all(c.id in readings and readings[c.id].ok for c in self.profile.channels)

    def update_status(self, status: Status) -> None:
        self.query_one(DevicePanel).show_status(status)

    def on_button_pressed(self, event: Button.Pressed) -> None:
        actions = {
            "check-impedance": self.action_impedance,
            "arm": self.action_arm,
            "back": self.action_back,
        }
        if event.button.id in actions:
            event.stop()
            actions[event.button.id]()

    def action_impedance(self) -> None:
        if self.busy:
            return
        self.busy = True
        self.readings = None
        self.say("Measuring impedance…")
        self._show_readings()
        self.stim.call_device(self, "impedance", self.stim.require_controller().check_impedance)

    def action_arm(self) -> None:
        if self.busy:
            return
        reason = self.stim.preflight_refusal() or (
            None if self.impedance_ok() else "Impedance must pass on every channel first."
        )
        if reason:
            self.say(reason, error=True)
            return
        profile = self.profile
        body = (
            f"{profile.name}\n{len(profile.channels)} channel(s); output stays at zero until "
            f"START and then ramps up from zero."
        )
        if self.stim.report is not None and self.stim.report.warnings:
            body += f"\n{len(self.stim.report.warnings)} warning(s) acknowledged."
        self.app.push_screen(ConfirmModal("ARM the stimulator?", body, "ARM"), self._armed)

    def _armed(self, confirmed: bool | None) -> None:
        if not confirmed:
            self.say("ARM cancelled.")
            return
        self.busy = True
        self._show_readings()
        self.say("Arming…")
        self.stim.call_device(self, "arm", self.stim.arm)

    def action_back(self) -> None:
        if not self.busy:
            self.app.pop_screen()

    def on_device_call_done(self, message: DeviceCallDone) -> None:
        message.stop()
        self.busy = False
        if message.name == "impedance":
            if message.ok:
                self.readings = dict(cast("dict[int, ImpedanceReading]", message.result))
                self.say(
                    "Impedance OK on every channel: you may ARM."
                    if self.impedance_ok()
                    else "Impedance check FAILED: fix the electrodes and check again.",
                    error=not self.impedance_ok(),
                )
            else:
                self.say(f"Impedance check failed: {message.error}", error=True)
        elif message.name == "arm":
            if message.ok:
                from stimctl.tui.screens.run import RunScreen

                self.app.push_screen(RunScreen())
            else:
                self.say(f"ARM refused: {message.error}", error=True)
        self._show_readings()
