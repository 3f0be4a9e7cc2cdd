"""Device panel: connection, firmware, serial, channels, limits and link health."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from textual.widgets import Static

from stimctl.tui.contract import stim_app
from stimctl.tui.format import field

if TYPE_CHECKING:
    from stimctl.controller import Controller
    from stimctl.host.status import Status


def _limit_lines(limits: dict[str, int]) -> list[tuple[str, str]]:
    return [(f"  {key}", str(val)) for key, val in sorted(limits.items())]


_HEALTH = ("heartbeat_age_ms", "fifo_ms", "frame_errors", "naks", "retransmits", "late_blocks")


class DevicePanel(Static):
    """What is connected and how healthy the link is; refreshed from telemetry."""

    def __init__(self, **kwargs: Any) -> None:
        super().__init__("connecting…", markup=False, **kwargs)
        self.border_title = "Device"
        self._controller: Controller | None = None
        self._status: Status | None = None
        self._shown: tuple[object, ...] | None = None

    def on_mount(self) -> None:
        app = stim_app(self)
        self.show(app.controller, app.last_status)

    def show(self, controller: Controller | None, status: Status | None = None) -> None:
        self._controller = controller
        self._status = status
        self.update(self._render_table())

    def show_status(self, status: Status) -> None:
        self._status = status
        key = tuple(field(status, name) for name in _HEALTH)
        if key != self._shown:  # repaint only when a figure changed
            self._shown = key
            self.update(self._render_table())

    def _render_table(self) -> str:
        """Plain text (cheap to repaint at telemetry rate, unlike a Rich table)."""
        ctrl = self._controller
        if ctrl is None:
            error = stim_app(self).connect_error
            return f"not connected: {error}" if error else "connecting…"
        device = ctrl.device
        rows: list[tuple[str, str]] = [
            ("Connection", str(ctrl.url)),
            ("Target", "SIMULATOR (embedded)" if ctrl.is_simulator else "device"),
            ("Firmware", device.firmware),
            ("Serial", device.serial),
            ("Channels", str(device.channels)),
            ("Tick", f"{device.tick_hz} Hz"),
            ("Watchdog", f"{device.watchdog_ms} ms"),
            ("Limits", ""),
            *_limit_lines(device.limits),
            ("Link health", ""),
        ]
        status = self._status
        if status is None:
            rows.append(("  heartbeat", "—"))
        else:
            rows += [
                ("  heartbeat age", f"{status.heartbeat_age_ms:.0f} ms"),
                ("  FIFO level", f"{status.fifo_ms:.0f} ms"),
                ("  frame errors", str(status.frame_errors)),
                ("  NAKs", str(status.naks)),
                ("  retransmits", str(status.retransmits)),
                ("  late blocks", str(status.late_blocks)),
            ]
        width = max(len(name) for name, _ in rows) + 1
        return "\n".join(f"{name:<{width}}{val}".rstrip() for name, val in rows)
