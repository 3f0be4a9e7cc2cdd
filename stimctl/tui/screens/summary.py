"""End-of-session summary: outcome, delivered time, pulses and charge per channel, record path."""

from __future__ import annotations

from typing import TYPE_CHECKING, ClassVar

from rich.console import Group
from rich.table import Table
from rich.text import Text
from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import Horizontal, Vertical
from textual.widgets import Button, Static

from stimctl.tui.format import clock
from stimctl.tui.screens.base import StimScreen

if TYPE_CHECKING:
    from stimctl.host.status import SessionSummary


def summary_renderable(
    summary: SessionSummary | None, anchor: str | None = None, unreadable: str = ""
) -> Group:
    """The summary as a Rich group (None: it could not be read, ``unreadable`` says why)."""
    head = Table.grid(padding=(0, 2))
    head.add_column(style="bold")
    head.add_column()
    outcome = summary.outcome if summary is not None else None
    head.add_row("Outcome", outcome.value if outcome is not None else f"unknown ({unreadable})")
    head.add_row("Delivered", clock(summary.delivered_s if summary is not None else None))
    head.add_row("Record", (summary.record_path if summary is not None else None) or "not recorded")
    if anchor:
        head.add_row("Anchor", f"{anchor}  (the record's tag now: for the chart)")
    per = Table(expand=True, show_edge=False)
    for name in ("channel", "pulses", "charge (µC)"):
        per.add_column(name, justify="right" if name != "channel" else "left")
    channels = summary.channels if summary is not None else ()
    for ch in sorted(channels, key=lambda c: c.id):
        per.add_row(f"CH{ch.id}", str(ch.pulses), f"{ch.charge_uc:.1f}")
    faults = summary.faults if summary is not None else ()
    lines = [Text(f"{f.code}  CH{f.channel or '-'}  {f.message}") for f in faults] or [
        Text("no faults")
    ]
    return Group(head, Text(""), per, Text(""), Text("Faults", style="bold"), *lines)


class SummaryScreen(StimScreen):
    """Shown when a session ends (completed, stopped, or after a fault was acknowledged)."""

    TITLE_TEXT = "Session summary"
    KEYS_HINT = "Enter new session · Ctrl+Q quit"
    BINDINGS: ClassVar[list[BindingType]] = [Binding("enter", "new_session", "New session")]

    def __init__(
        self, summary: SessionSummary | None, anchor: str | None = None, unreadable: str = ""
    ) -> None:
        super().__init__()
        self.summary = summary
        self.unreadable = unreadable
        self.record_anchor = anchor  # not ``anchor``: that is a Widget method

    def compose_body(self) -> ComposeResult:
        with Vertical(id="summary-body"):
            yield Static(
                summary_renderable(self.summary, self.record_anchor, self.unreadable),
                id="summary",
                classes="panel",
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
