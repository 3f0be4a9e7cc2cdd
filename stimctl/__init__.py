"""stimctl: host software for an electroacupuncture stimulator."""

from __future__ import annotations

from importlib import import_module
from typing import TYPE_CHECKING, Any

__version__ = "0.1.0"

if TYPE_CHECKING:
    from stimctl.rules.envelope import SafetyEnvelope
    from stimctl.rules.profile import ProfileError, load_profile
    from stimctl.rules.validation import Report, Violation, validate_file, validate_profile

#: Public name -> module; imported on first use so that `stimctl --help` stays fast.
_EXPORTS = {
    "Controller": "stimctl.controller",
    "load_profile": "stimctl.rules.profile",
    "ProfileError": "stimctl.rules.profile",
    "SafetyEnvelope": "stimctl.rules.envelope",
    "Report": "stimctl.rules.report",
    "Violation": "stimctl.rules.violations",
    "validate_file": "stimctl.rules.validation",
    "validate_profile": "stimctl.rules.validation",
}

__all__ = [
    "Controller",
    "ProfileError",
    "Report",
    "SafetyEnvelope",
    "Violation",
    "__version__",
    "load_profile",
    "validate_file",
    "validate_profile",
]


def __getattr__(name: str) -> Any:
    if name in _EXPORTS:
        return getattr(import_module(_EXPORTS[name]), name)
    raise AttributeError(f"module 'stimctl' has no attribute {name!r}")
