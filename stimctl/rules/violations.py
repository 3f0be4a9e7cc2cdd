"""Violation: one finding of a safety or schema rule (``Report`` in report.py gathers them)."""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Literal

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


_new = object.__new__


class _Draft:
    """A Violation being built: the same slots, written with plain attribute stores, then
    turned into a Violation (or ``_LaterViolation``) by ``__class__`` assignment, which Python
    allows between classes with the same slots and layout (a field added to Violation is a
    slot added here too: the assignment checks it and raises TypeError otherwise). The rules
    make one per finding: the frozen dataclass's __init__ goes through object.__setattr__ by
    name for each field, and each slot descriptor's ``__set__`` called alone costs as much as
    the whole draft (tests/test_violations_build.py)."""

    __slots__ = Violation.__slots__


def violation(
    code: str,
    severity: Severity,
    loc: str,
    message: str,
    limit: Value = None,
    actual: Value = None,
    source: str = "",
) -> Violation:
    """``Violation(...)``, built in a fraction of the time: the rules make one per finding."""
    made = _new(_Draft)
    made.code = code
    made.severity = severity
    made.loc = loc
    made.message = message
    made.limit = limit
    made.actual = actual
    made.source = source
    made.__class__ = Violation  # type: ignore[assignment]
    return made  # type: ignore[return-value]


_MESSAGE = Violation.__dict__["message"]  # the slot itself, past the frozen __setattr__


class _LaterViolation(Violation):
    """A Violation whose message is written when first read (``violation_later``): most
    findings are only counted or checked for errors, and formatting figures is much of what a
    finding costs. Equal to, hashed and shown as the Violation with that message."""

    __slots__ = ()

    @property  # type: ignore[override]
    def message(self) -> str:
        text = _MESSAGE.__get__(self)
        if type(text) is not str:  # (maker, *arguments) or a function of none
            text = text[0](*text[1:]) if type(text) is tuple else text()
            _MESSAGE.__set__(self, text)
        return text  # type: ignore[no-any-return]

    @message.setter
    def message(self, text: str) -> None:  # dataclass __init__/__setstate__ write through here
        _MESSAGE.__set__(self, text)

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, Violation):
            return NotImplemented
        return all(getattr(self, k) == getattr(other, k) for k in VIOLATION_KEYS)

    __hash__ = Violation.__hash__

    def __repr__(self) -> str:
        return "Violation" + Violation.__repr__(self).removeprefix(type(self).__qualname__)


def violation_later(
    code: str,
    severity: Severity,
    loc: str,
    message: Callable[[], str] | tuple[Any, ...],
    limit: Value = None,
    actual: Value = None,
    source: str = "",
) -> Violation:
    """``violation`` with the message made by ``message()`` when first read; or, for a
    tuple ``(maker, *arguments)``, by ``maker(*arguments)`` (a tuple is built in a third of
    the time of a function with defaults, and a rule may make thousands of findings)."""
    made = _new(_Draft)
    made.code = code
    made.severity = severity
    made.loc = loc
    made.message = message
    made.limit = limit
    made.actual = actual
    made.source = source
    made.__class__ = _LaterViolation  # type: ignore[assignment]
    return made  # type: ignore[return-value]
