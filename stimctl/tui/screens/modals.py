"""Modal dialogs: typed confirmation (ARM, quit) and an operator note; both keep the E-STOP bar."""

from __future__ import annotations

from typing import ClassVar

from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import Horizontal, Vertical
from textual.screen import ModalScreen
from textual.widgets import Button, Input, Label, Static

from stimctl.tui.widgets import EStopBar


class ConfirmModal(ModalScreen[bool]):
    """Explicit confirmation: the operator types a word (e.g. ARM) and presses Enter."""

    BINDINGS: ClassVar[list[BindingType]] = [Binding("escape", "cancel", "Cancel")]
    KEYS_HINT = "type the word, Enter confirm · Esc cancel"

    def __init__(self, title: str, body: str, word: str) -> None:
        super().__init__()
        self._title = title
        self._body = body
        self.word = word

    def compose(self) -> ComposeResult:
        with Vertical(classes="dialog"):
            yield Label(self._title, classes="dialog-title")
            yield Static(self._body, classes="dialog-body")
            yield Label(f"Type {self.word} and press Enter to confirm; Esc cancels.")
            yield Input(placeholder=self.word, id="confirm-input")
            yield Label("", id="notice", markup=False)
            with Horizontal(classes="dialog-buttons"):
                yield Button("Confirm", id="confirm", variant="warning")
                yield Button("Cancel", id="cancel")
        yield EStopBar()

    def on_mount(self) -> None:
        self.query_one("#confirm-input", Input).focus()

    def _try_confirm(self) -> None:
        typed = self.query_one("#confirm-input", Input).value.strip().upper()
        if typed == self.word.upper():
            self.dismiss(True)
        else:
            self.query_one("#notice", Label).update(f"Type {self.word} exactly to confirm.")

    def on_input_submitted(self, event: Input.Submitted) -> None:
        event.stop()
        self._try_confirm()

    def on_button_pressed(self, event: Button.Pressed) -> None:
        if event.button.id == "confirm":
            event.stop()
            self._try_confirm()
        elif event.button.id == "cancel":
            event.stop()
            self.dismiss(False)

    def action_cancel(self) -> None:
        self.dismiss(False)


class NoteModal(ModalScreen[str | None]):
    """A free-text operator note for the event log (e.g. 'patient reports tingling')."""

    BINDINGS: ClassVar[list[BindingType]] = [Binding("escape", "cancel", "Cancel")]
    KEYS_HINT = "Enter save · Esc cancel"

    def compose(self) -> ComposeResult:
        with Vertical(classes="dialog"):
            yield Label("Operator note", classes="dialog-title")
            yield Input(placeholder="what the patient reports, what you changed…", id="note-input")
            with Horizontal(classes="dialog-buttons"):
                yield Button("Save", id="save", variant="primary")
                yield Button("Cancel", id="cancel")
        yield EStopBar()

    def on_mount(self) -> None:
        self.query_one("#note-input", Input).focus()

    def on_input_submitted(self, event: Input.Submitted) -> None:
        event.stop()
        self.dismiss(event.value.strip() or None)

    def on_button_pressed(self, event: Button.Pressed) -> None:
        event.stop()
        if event.button.id == "save":
            self.dismiss(self.query_one("#note-input", Input).value.strip() or None)
        else:
            self.dismiss(None)

    def action_cancel(self) -> None:
        self.dismiss(None)
