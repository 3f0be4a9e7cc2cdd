"""StimScreen: the frame every full screen shares (top bar with SIMULATOR badge, E-STOP bar)."""

from __future__ import annotations

from typing import TYPE_CHECKING, ClassVar

from textual.app import ComposeResult
from textual.screen import Screen
from textual.widgets import Label

from stimctl.tui.contract import stim_app
from stimctl.tui.widgets import EStopBar, TopBar

if TYPE_CHECKING:
    from stimctl.host.status import Status
    from stimctl.tui.contract import StimAppContract


class StimScreen(Screen[None]):
    """A full screen with the top bar and the E-STOP bar; subclasses fill ``compose_body``."""

    TITLE_TEXT: ClassVar[str] = ""
    KEYS_HINT: ClassVar[str] = ""

    @property
    def stim(self) -> StimAppContract:
        """The app as screens may use it (typed by its contract, not by importing the app)."""
        return stim_app(self)

    def compose(self) -> ComposeResult:
        yield TopBar(self.TITLE_TEXT)
        yield from self.compose_body()
        yield EStopBar()

    def compose_body(self) -> ComposeResult:
        return iter(())

    def update_status(self, status: Status) -> None:
        """Called by the app with the newest telemetry (never a queue of stale ones)."""

    def say(self, text: str, *, error: bool = False) -> None:
        """Show a one-line notice on this screen (``#notice``) if it has one."""
        for notice in self.query("#notice").results(Label):
            notice.update(text)
            notice.set_class(error, "error")
