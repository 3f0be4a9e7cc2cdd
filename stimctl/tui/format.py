"""Plain-text formatting shared by the screens: states, currents, durations, violation values."""

from __future__ import annotations

import math
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from stimctl.host.status import HostState

ACTIVE_STATES = frozenset({"ARMED", "RUNNING", "PAUSED", "STOPPING"})
LATCHED_STATES = frozenset({"FAULT", "ESTOP"})


def state_name(state: HostState | str | None) -> str:
    """A HostState (str enum) or a plain string -> 'RUNNING'."""
    if state is None:
        return "DISCONNECTED"
    return str(getattr(state, "value", state)).upper()


def ma(value: float | None) -> str:
    return "—" if value is None else f"{value:.2f} mA"


def ohm(value: float | None) -> str:
    if value is None or (isinstance(value, float) and not math.isfinite(value)):
        return "open" if value is not None else "—"
    return f"{value / 1000:.2f} kΩ" if value >= 1000 else f"{value:.0f} Ω"


def clock(seconds: float | None) -> str:
    """Seconds -> 'MM:SS' (or 'H:MM:SS')."""
    if seconds is None:
        return "--:--"
    total = max(0, round(seconds))
    hours, rest = divmod(total, 3600)
    minutes, secs = divmod(rest, 60)
    return f"{hours}:{minutes:02d}:{secs:02d}" if hours else f"{minutes:02d}:{secs:02d}"


def value(item: object) -> str:
    """A violation's limit/actual: numbers compactly, None as a dash."""
    if item is None:
        return "—"
    if isinstance(item, float):
        if not math.isfinite(item):
            return str(item)
        return f"{item:.4g}"
    return str(item)


def field(obj: object, name: str, default: Any = None) -> Any:
    """Attribute or mapping key: tolerate dataclasses and dicts from the controller alike."""
    if isinstance(obj, dict):
        return obj.get(name, default)
    return getattr(obj, name, default)
