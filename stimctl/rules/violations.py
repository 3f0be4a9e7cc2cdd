"""Violation (one finding of a safety or schema rule) and Report (all findings for one profile)."""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Literal

if TYPE_CHECKING:
    from stimctl.rules.profile import Profile

#: "info" is a finding that needs no acknowledgement (e.g. course-responder).
Severity = Literal["error", "warning", "info"]
Value = float | int | str | None

#: Key order of a violation in JSON output (part of the documented contract).
VIOLATION_KEYS: tuple[str, ...] = (
    "code",
    "severity",
    "loc",
    "message",
    "limit",
    "actual",
    "source",
)


def _json_value(value: Value) -> Value:
    """Numbers stay numbers; inf/nan (not valid JSON) become the strings 'inf', '-inf', 'nan'."""
    if isinstance(value, float) and not math.isfinite(value):
        return str(value)
    return value


@dataclass(frozen=True, slots=True)
class Violation:
    """One finding: a stable code, its severity, where it is (``channels[0].amplitude_ma``)."""

    code: str
    severity: Severity
    loc: str
    message: str
    limit: Value = None
    actual: Value = None
    source: str = ""

    @property
    def is_error(self) -> bool:
        return self.severity == "error"

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready mapping with keys in ``VIOLATION_KEYS`` order."""
        return {
            "code": self.code,
            "severity": self.severity,
            "loc": self.loc,
            "message": self.message,
            "limit": _json_value(self.limit),
            "actual": _json_value(self.actual),
            "source": self.source,
        }


@dataclass(frozen=True, slots=True)
class Report:
    """Outcome of validating one profile: ok when no violation is an error."""

    violations: tuple[Violation, ...] = ()
    profile: Profile | None = None
    path: str | None = None
    codes: frozenset[str] = field(init=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "codes", frozenset([v.code for v in self.violations]))

    @property
    def errors(self) -> tuple[Violation, ...]:
        return tuple(v for v in self.violations if v.severity == "error")

    @property
    def warnings(self) -> tuple[Violation, ...]:
        return tuple(v for v in self.violations if v.severity == "warning")

    @property
    def infos(self) -> tuple[Violation, ...]:
        return tuple(v for v in self.violations if v.severity == "info")

    @property
    def ok(self) -> bool:
        return not any(v.severity == "error" for v in self.violations)

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready mapping ``{path, ok, violations}`` (the ``--json`` element)."""
        return {
            "path": self.path,
            "ok": self.ok,
            "violations": [v.to_dict() for v in self.violations],
        }
