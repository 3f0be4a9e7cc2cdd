"""Device panel: connection, firmware, serial, channels, limits and link health."""

from __future__ import annotations

from typing import Any

from textual.widgets import Static

from stimctl.tui.format import field


def _limit_lines(limits: Any) -> list[tuple[str, str]]:
    if not limits:
        return []
    items = limits.items() if isinstance(limits, dict) else vars(limits).items()
    return [(f"  {key}", str(val)) for key, val in sorted(items)]


_HEALTH = ("heartbeat_age_ms", "fifo_ms", "frame_errors", "naks", "retransmits", "late_blocks")


class DevicePanel(Static):
    """What is connected and how healthy the link is; refreshed from telemetry."""

    def __init__(self, **kwargs: Any) -> None:
        super().__init__("connecting…", markup=False, **kwargs)
        self.border_title = "Device"
        self._controller: Any = None
        self._status: Any = None
        self._shown: tuple[Any, ...] | None = None

    def on_mount(self) -> None:
        app = self.app
        self.show(getattr(app, "controller", None), getattr(app, "last_status", None))

    def show(self, controller: Any, status: Any = None) -> None:
        self._controller = controller
        self._status = status
        self.update(self._render_table())

    def show_status(self, status: Any) -> None:
        self._status = status
        key = tuple(field(status, name) for name in _HEALTH)
        if key != self._shown:  # repaint only when a figure changed
            self._shown = key
            self.update(self._render_table())

    def _render_table(self) -> str:
        """Plain text (cheap to repaint at telemetry rate, unlike a Rich table)."""
        ctrl = self._controller
        if ctrl is None:
            error = getattr(self.app, "connect_error", None)
            return f"not connected: {error}" if error else "connecting…"
        device = ctrl.device
        rows: list[tuple[str, str]] = [
            ("Connection", str(ctrl.url)),
            ("Target", "SIMULATOR (embedded)" if ctrl.is_simulator else "device"),
            ("Firmware", str(field(device, "firmware", "?"))),
            ("Serial", str(field(device, "serial", "?"))),
            ("Channels", str(field(device, "channels", "?"))),
            ("Tick", f"{field(device, 'tick_hz', '?')} Hz"),
            ("Watchdog", f"{field(device, 'watchdog_ms', '?')} ms"),
            ("Limits", ""),
            *_limit_lines(field(device, "limits")),
            ("Link health", ""),
        ]
        status = self._status
        if status is None:
            rows.append(("  heartbeat", "—"))
        else:
            rows += [
                ("  heartbeat age", f"{field(status, 'heartbeat_age_ms', 0):.0f} ms"),
                ("  FIFO level", f"{field(status, 'fifo_ms', 0):.0f} ms"),
                ("  frame errors", str(field(status, "frame_errors", 0))),
                ("  NAKs", str(field(status, "naks", 0))),
                ("  retransmits", str(field(status, "retransmits", 0))),
                ("  late blocks", str(field(status, "late_blocks", 0))),
            ]
        width = max(len(name) for name, _ in rows) + 1
        return "\n".join(f"{name:<{width}}{val}".rstrip() for name, val in rows)
