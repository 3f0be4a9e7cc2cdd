"""Event log: the app's running list of session events, shown on any screen that mounts it."""

from __future__ import annotations

from typing import Any

from textual.widgets import Log

from stimctl.tui.contract import stim_app


class EventLog(Log):
    """Follows ``app.event_lines``; each instance catches up on mount and then appends."""

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(max_lines=500, auto_scroll=True, **kwargs)
        self.border_title = "Events"
        self._shown = 0

    def on_mount(self) -> None:
        self.watch(self.app, "event_count", self._catch_up)

    def _catch_up(self, _count: int) -> None:
        lines = stim_app(self).event_lines
        if self._shown < len(lines):
            self.write_lines(lines[self._shown :])
            self._shown = len(lines)
