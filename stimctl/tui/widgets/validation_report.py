"""Validation report: every violation with its code, field, limit, actual value and explanation."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from rich.console import Group
from rich.table import Table
from rich.text import Text
from textual.widgets import Static

from stimctl.tui.format import value

if TYPE_CHECKING:
    from stimctl import Report


def verdict(report: Report | None) -> tuple[str, str]:
    """(text, css class) summarising a report for the operator."""
    if report is None:
        return "No profile selected.", "neutral"
    errors, warnings = len(report.errors), len(report.warnings)
    if errors:
        return (
            f"{errors} error(s), {warnings} warning(s): this profile CANNOT be armed.",
            "refused",
        )
    if warnings:
        return f"Valid with {warnings} warning(s): acknowledge them to continue.", "warned"
    return "Valid: no violations.", "valid"


class ValidationReport(Static):
    """Renders a stimctl Report (or nothing yet)."""

    def __init__(self, **kwargs: Any) -> None:
        super().__init__("", **kwargs)
        self.border_title = "Validation"
        self.show(None)

    def show(self, report: Report | None) -> None:
        text, css = verdict(report)
        for name in ("neutral", "refused", "warned", "valid"):
            self.set_class(name == css, f"report-{name}")
        head = Text(text, style="bold")
        if report is None or not report.violations:
            self.update(head)
            return
        table = Table(expand=True, show_edge=False, pad_edge=False)
        table.add_column("", no_wrap=True, width=5)
        table.add_column("code", no_wrap=True)
        table.add_column("field", no_wrap=True)
        table.add_column("limit", justify="right", no_wrap=True)
        table.add_column("actual", justify="right", no_wrap=True)
        table.add_column("explanation", ratio=1)
        ordered = sorted(report.violations, key=lambda v: (v.severity != "error", v.code))
        for v in ordered:
            sev = (
                Text("ERR", style="bold red")
                if v.severity == "error"
                else Text("WARN", style="bold yellow")
            )
            table.add_row(
                sev, v.code, v.loc or "(profile)", value(v.limit), value(v.actual), v.message
            )
        self.update(Group(head, table))
