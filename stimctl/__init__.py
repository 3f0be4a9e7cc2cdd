"""stimctl: host software for an electroacupuncture stimulator."""

from __future__ import annotations

__version__ = "0.1.0"
