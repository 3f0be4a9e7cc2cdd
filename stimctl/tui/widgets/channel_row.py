"""One output channel on the run screen: set, plateau and measured current, pulses, sparkline."""

from __future__ import annotations

from collections import deque
from typing import TYPE_CHECKING

from textual.app import ComposeResult
from textual.containers import Horizontal
from textual.widgets import Label, Sparkline

from stimctl.tui.format import ma, ohm

if TYPE_CHECKING:
    from stimctl.host.status import ChannelStatus

HISTORY = 60  # samples kept for the sparkline


class ChannelRow(Horizontal):
    """Channel N: electrodes, numbers and a sparkline of the measured current."""

    def __init__(self, channel: int, electrodes: str) -> None:
        super().__init__(id=f"channel-{channel}", classes="channel-row")
        self.channel = channel
        self.electrodes = electrodes
        self._history: deque[float] = deque([0.0] * HISTORY, maxlen=HISTORY)

    def compose(self) -> ComposeResult:
        yield Label(f"CH{self.channel}", classes="ch-id")
        yield Label(self.electrodes, classes="ch-electrodes", markup=False)
        yield Label("", classes="ch-numbers", markup=False)
        yield Sparkline(list(self._history), classes="ch-spark")

    def on_mount(self) -> None:
        self.show(None)

    def show(self, channel_status: ChannelStatus | None, *, record: bool = True) -> None:
        numbers = self.query_one(".ch-numbers", Label)
        if channel_status is None:
            numbers.update("set —  plateau —  measured —")
            return
        measured = channel_status.measured_ma
        numbers.update(
            f"set {ma(channel_status.set_ma)}  "
            f"plateau {ma(channel_status.plateau_ma)}  "
            f"measured {ma(measured)}  "
            f"Z {ohm(channel_status.impedance_ohm)}  "
            f"pulses {channel_status.pulses}"
        )
        if record:
            self._history.append(float(measured))
            self.query_one(Sparkline).data = list(self._history)
