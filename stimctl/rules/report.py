"""Report: every finding of validating one profile, with the profile it judged."""

from __future__ import annotations

from dataclasses import dataclass, field
from operator import attrgetter
from typing import TYPE_CHECKING, Any

from stimctl.rules.profile import Profile
from stimctl.rules.violations import Violation

__all__ = ["Report", "report"]


@dataclass(frozen=True, slots=True)
class Report:
    """Outcome of validating one profile: ok when no violation is an error."""

    violations: tuple[Violation, ...] = ()
    profile: Profile | None = None
    path: str | None = None
    codes: frozenset[str] = field(init=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "codes", frozenset([v.code for v in self.violations]))

    if not TYPE_CHECKING:  # (mypy would take every attribute as one)

        def __getattr__(self, name: str) -> Any:
            """``codes`` of a report ``report()`` made, written when first read (reached only
            for a slot never set): most reports are only checked for errors or shown, and the
            set costs a third of what the report does."""
            if name != "codes":
                raise AttributeError(f"{type(self).__name__!r} object has no attribute {name!r}")
            codes = frozenset(map(_CODE, self.violations))
            object.__setattr__(self, "codes", codes)
            return codes

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


_new = object.__new__
_NO_CODES: frozenset[str] = frozenset()
_CODE = attrgetter("code")  # map() with it: no comprehension's call


class _Draft:
    """A Report being built: Report's own slots, written with plain attribute stores, then
    made a Report by ``__class__`` assignment (allowed only for the same slots and layout);
    ``violations._Draft`` says why (each slot descriptor's ``__set__`` costs as much)."""

    __slots__ = Report.__slots__


def report(
    violations: tuple[Violation, ...], profile: Profile | None, path: str | None = None
) -> Report:
    """``Report(violations, profile, path)``, built in a fraction of the time (the frozen
    dataclass's __init__ sets each field through object.__setattr__ by name)."""
    made = _new(_Draft)
    made.violations = violations
    made.profile = profile
    made.path = path
    if not violations:
        made.codes = _NO_CODES  # else written when first read (Report.__getattr__)
    made.__class__ = Report  # type: ignore[assignment]
    return made  # type: ignore[return-value]
