"""End-of-session summary: outcome, delivered time, pulses and charge per channel, record path."""

from __future__ import annotations

from typing import Any, ClassVar

from rich.console import Group
from rich.table import Table
from rich.text import Text
from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import Horizontal, Vertical
from textual.widgets import Button, Static

from stimctl.tui.format import clock, field
from stimctl.tui.screens.base import StimScreen


def summary_renderable(summary: Any, anchor: str | None = None) -> Group:
    head = Table.grid(padding=(0, 2))
    head.add_column(style="bold")
    head.add_column()
    head.add_row(
        "Outcome", str(getattr(field(summary, "outcome"), "value", field(summary, "outcome")))
    )
    head.add_row("Delivered", clock(field(summary, "delivered_s")))
    head.add_row("Record", str(field(summary, "record_path") or "not recorded"))
    if anchor:
        head.add_row("Anchor", f"{anchor}  (the record's tag now: for the chart)")
    per = Table(expand=True, show_edge=False)
    for name in ("channel", "pulses", "charge (µC)"):
        per.add_column(name, justify="right" if name != "channel" else "left")
    channels = field(summary, "channels") or {}
    items = (
        channels.items() if isinstance(channels, dict) else ((field(c, "id"), c) for c in channels)
    )
    for cid, ch in sorted(items, key=lambda item: item[0]):
        per.add_row(
            f"CH{cid}", str(field(ch, "pulses", 0)), f"{float(field(ch, 'charge_uc', 0.0)):.1f}"
        )
    faults = field(summary, "faults") or ()
    lines = [
        Text(f"{field(f, 'code')}  CH{field(f, 'channel') or '-'}  {field(f, 'message') or ''}")
        for f in faults
    ] or [Text("no faults")]
    return Group(head, Text(""), per, Text(""), Text("Faults", style="bold"), *lines)


class SummaryScreen(StimScreen):
    """Shown when a session ends (completed, stopped, or after a fault was acknowledged)."""

    TITLE_TEXT = "Session summary"
    KEYS_HINT = "Enter new session · Ctrl+Q quit"
    BINDINGS: ClassVar[list[BindingType]] = [Binding("enter", "new_session", "New session")]

    def __init__(self, summary: Any, anchor: str | None = None) -> None:
        super().__init__()
        self.summary = summary
        self.anchor = anchor

    def compose_body(self) -> ComposeResult:
        with Vertical(id="summary-body"):
            yield Static(
                summary_renderable(self.summary, self.anchor), id="summary", classes="panel"
            )
            with Horizontal(classes="actions"):
                yield Button("New session  (Enter)", id="new-session", variant="primary")

    def on_mount(self) -> None:
        self.query_one("#summary", Static).border_title = "Session summary"

    def on_button_pressed(self, event: Button.Pressed) -> None:
        if event.button.id == "new-session":
            event.stop()
            self.action_new_session()

    def action_new_session(self) -> None:
        self.stim.back_to_setup()
