"""Top bar (SIMULATOR badge, operator, state) and the always-visible E-STOP bar with its button."""

from __future__ import annotations

from textual.app import ComposeResult
from textual.containers import Horizontal
from textual.widgets import Button, Label


class TopBar(Horizontal):
    """Who and what: SIMULATOR or DEVICE, the screen title, the operator and the host state."""

    def __init__(self, title: str) -> None:
        super().__init__()
        self._title = title

    def compose(self) -> ComposeResult:
        yield Label("", id="target-badge")
        yield Label(self._title, id="screen-title")
        yield Label("", id="operator")
        yield Label("", id="state-badge")

    def on_mount(self) -> None:
        self.watch(self.app, "target_text", self._show_target)
        self.watch(self.app, "state_text", self._show_state)
        operator = getattr(self.app, "operator", "")
        self.query_one("#operator", Label).update(f"operator: {operator or '—'}")

    def _show_target(self, text: str) -> None:
        badge = self.query_one("#target-badge", Label)
        badge.update(text)
        badge.set_class(text.startswith("SIMULATOR"), "simulator")

    def _show_state(self, text: str) -> None:
        badge = self.query_one("#state-badge", Label)
        badge.update(text)
        for name in ("RUNNING", "ARMED", "FAULT", "ESTOP"):
            badge.set_class(text == name, f"state-{name.lower()}")


class EStopBar(Horizontal):
    """Bottom bar on every screen: the E-STOP key and button, never hidden, never disabled."""

    def compose(self) -> ComposeResult:
        yield Button("E-STOP (F12)", id="estop-button", variant="error")
        yield Label("", id="screen-keys")
        yield Label("", id="sim-badge")

    def on_mount(self) -> None:
        button = self.query_one("#estop-button", Button)
        button.can_focus = False  # never a Tab stop: Enter on a stray focus must not E-STOP
        self.watch(self.app, "target_text", self._show_target)
        keys = getattr(self.screen, "KEYS_HINT", "")
        self.query_one("#screen-keys", Label).update(keys)

    def _show_target(self, text: str) -> None:
        badge = self.query_one("#sim-badge", Label)
        simulator = text.startswith("SIMULATOR")
        badge.update("SIMULATOR" if simulator else "")
        badge.set_class(simulator, "simulator")

    def on_button_pressed(self, event: Button.Pressed) -> None:
        if event.button.id == "estop-button":
            event.stop()
            self.app.action_estop()  # type: ignore[attr-defined]
