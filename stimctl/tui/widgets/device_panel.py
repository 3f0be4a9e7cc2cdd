"""Device panel: connection, firmware, serial, channels, limits and link health."""

from __future__ import annotations

from typing import Any

from rich.table import Table
from textual.widgets import Static

from stimctl.tui.format import field


def _limit_lines(limits: Any) -> list[tuple[str, str]]:
    if not limits:
        return []
    items = limits.items() if isinstance(limits, dict) else vars(limits).items()
    return [(f"  {key}", str(val)) for key, val in sorted(items)]


class DevicePanel(Static):
    """What is connected and how healthy the link is; refreshed from telemetry."""

    def __init__(self, **kwargs: Any) -> None:
        super().__init__("connecting…", **kwargs)
        self.border_title = "Device"
        self._controller: Any = None
        self._status: Any = None

    def on_mount(self) -> None:
        app = self.app
        self.show(getattr(app, "controller", None), getattr(app, "last_status", None))

    def show(self, controller: Any, status: Any = None) -> None:
        self._controller = controller
        self._status = status
        self.update(self._render_table())

    def show_status(self, status: Any) -> None:
        self._status = status
        self.update(self._render_table())

    def _render_table(self) -> Table | str:
        ctrl = self._controller
        if ctrl is None:
            error = getattr(self.app, "connect_error", None)
            return f"not connected: {error}" if error else "connecting…"
        device = ctrl.device
        grid = Table.grid(padding=(0, 1))
        grid.add_column(style="bold", no_wrap=True)
        grid.add_column()
        kind = "SIMULATOR (embedded)" if ctrl.is_simulator else "device"
        grid.add_row("Connection", f"{ctrl.url}")
        grid.add_row("Target", kind)
        grid.add_row("Firmware", str(field(device, "firmware", "?")))
        grid.add_row("Serial", str(field(device, "serial", "?")))
        grid.add_row("Channels", str(field(device, "channels", "?")))
        grid.add_row("Tick / watchdog", f"{field(device, 'tick_hz', '?')} Hz / "
                     f"{field(device, 'watchdog_ms', '?')} ms")
        grid.add_row("Limits", "")
        for key, val in _limit_lines(field(device, "limits")):
            grid.add_row(key, val)
        grid.add_row("Link health", "")
        status = self._status
        if status is None:
            grid.add_row("  heartbeat", "—")
        else:
            grid.add_row("  heartbeat age", f"{field(status, 'heartbeat_age_ms', 0):.0f} ms")
            grid.add_row("  FIFO level", f"{field(status, 'fifo_ms', 0):.0f} ms")
            grid.add_row("  frame errors", str(field(status, "frame_errors", 0)))
            grid.add_row("  NAKs", str(field(status, "naks", 0)))
            grid.add_row("  late blocks", str(field(status, "late_blocks", 0)))
        return grid
