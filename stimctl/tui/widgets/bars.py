"""Top bar (SIMULATOR badge, operator, state) and the always-visible E-STOP bar with its button."""

from __future__ import annotations

from textual.app import ComposeResult
from textual.containers import Horizontal
from textual.widgets import Button, Label

from stimctl.tui.contract import stim_app


class TopBar(Horizontal):
    """Who and what: SIMULATOR or DEVICE, the screen title, the operator and the host state."""

    def __init__(self, title: str) -> None:
        super().__init__()
        self._target = Label("", id="target-badge")
        self._title = Label(title, id="screen-title")
        self._operator = Label("", id="operator", markup=False)
        self._state = Label("", id="state-badge")

    def compose(self) -> ComposeResult:
        yield from (self._target, self._title, self._operator, self._state)

    def on_mount(self) -> None:
        operator = stim_app(self).operator
        self._operator.update(f"operator: {operator or '—'}")
        self.watch(self.app, "target_text", self._show_target)
        self.watch(self.app, "state_text", self._show_state)

    def _show_target(self, text: str) -> None:
        self._target.update(text)
        self._target.set_class(text.startswith("SIMULATOR"), "simulator")

    def _show_state(self, text: str) -> None:
        badge = self._state
        badge.update(text)
        for name in ("RUNNING", "ARMED", "FAULT", "ESTOP"):
            badge.set_class(text == name, f"state-{name.lower()}")


class EStopBar(Horizontal):
    """Bottom bar on every screen: the E-STOP key and button, never hidden, never disabled."""

    def __init__(self) -> None:
        super().__init__()
        self._button = Button("E-STOP (F12)", id="estop-button", variant="error")
        self._button.can_focus = False  # never a Tab stop: Enter on a stray focus must not E-STOP
        self._keys = Label("", id="screen-keys", markup=False)
        self._sim = Label("", id="sim-badge")

    def compose(self) -> ComposeResult:
        yield from (self._button, self._keys, self._sim)

    def on_mount(self) -> None:
        self._keys.update(getattr(self.screen, "KEYS_HINT", ""))
        self.watch(self.app, "target_text", self._show_target)

    def _show_target(self, text: str) -> None:
        badge = self._sim
        simulator = text.startswith("SIMULATOR")
        badge.update("SIMULATOR" if simulator else "")
        badge.set_class(simulator, "simulator")

    def on_button_pressed(self, event: Button.Pressed) -> None:
        if event.button.id == "estop-button":
            event.stop()
            stim_app(self).action_estop()
