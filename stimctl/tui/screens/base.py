"""StimScreen: the frame every full screen shares (top bar with SIMULATOR badge, E-STOP bar)."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, ClassVar

from textual.app import ComposeResult
from textual.screen import Screen

from stimctl.tui.widgets import EStopBar, TopBar

if TYPE_CHECKING:
    from stimctl.tui.app import StimApp


class StimScreen(Screen[Any]):
    """A full screen with the top bar and the E-STOP bar; subclasses fill ``compose_body``."""

    TITLE_TEXT: ClassVar[str] = ""
    KEYS_HINT: ClassVar[str] = ""

    @property
    def stim(self) -> StimApp:
        return self.app  # type: ignore[return-value]

    def compose(self) -> ComposeResult:
        yield TopBar(self.TITLE_TEXT)
        yield from self.compose_body()
        yield EStopBar()

    def compose_body(self) -> ComposeResult:
        return iter(())

    def update_status(self, status: Any) -> None:
        """Called by the app with the newest telemetry (never a queue of stale ones)."""

    def say(self, text: str, *, error: bool = False) -> None:
        """Show a one-line notice on this screen (``#notice``) if it has one."""
        for notice in self.query("#notice"):
            notice.update(text)  # type: ignore[attr-defined]
            notice.set_class(error, "error")
