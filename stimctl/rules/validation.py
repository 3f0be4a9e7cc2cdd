"""Validation entry points (validate_profile, validate_file, validate_bytes) and discovery."""

from __future__ import annotations

import os
from collections.abc import Iterable
from pathlib import Path
from typing import Literal

from stimctl.rules.envelope import SafetyEnvelope
from stimctl.rules.parsed import as_parsed
from stimctl.rules.placement import PATIENT_FLAGS
from stimctl.rules.profile import (
    Profile,
    ProfileError,
    format_for,
    loads_profile,
    parse_profile,
    schema_violation,
)
from stimctl.rules.recheck import sound
from stimctl.rules.report import Report, report
from stimctl.rules.safety import run_rules
from stimctl.rules.violations import Violation

__all__ = [
    "PATIENT_FLAGS",
    "PROFILE_SUFFIXES",
    "Report",
    "Violation",
    "find_profiles",
    "validate_bytes",
    "validate_file",
    "validate_profile",
]

PROFILE_SUFFIXES = (".toml", ".json")
_DEFAULT_ENVELOPE = SafetyEnvelope()
_KNOWN_FLAGS = frozenset(PATIENT_FLAGS)
_NO_FLAGS: frozenset[str] = frozenset()


def check_patient(patient: Iterable[str]) -> frozenset[str]:
    """The patient flags as a set; ValueError for a flag that is not in PATIENT_FLAGS."""
    flags = patient if type(patient) is frozenset else frozenset(patient)
    if flags <= _KNOWN_FLAGS:
        return flags
    unknown = sorted(flags - _KNOWN_FLAGS)
    if unknown:
        raise ValueError(
            f"unknown patient flag(s) {', '.join(unknown)}; known: {', '.join(PATIENT_FLAGS)}"
        )
    return flags


def validate_profile(
    profile: Profile,
    envelope: SafetyEnvelope | None = None,
    patient: Iterable[str] = (),
) -> Report:
    """Run every safety rule over a parsed profile.

    ``patient`` holds flags from PATIENT_FLAGS (ValueError for others). The profile's structure
    is checked again first: one built past pydantic (``model_copy(update=...)``,
    ``model_construct``) may hold a negative or non-finite figure, which every rule's "above
    the limit" comparison would pass; it gets ``schema`` errors instead. The rules judge the
    profile as parsing makes it: the given one when it holds exactly that (``recheck.sound``),
    else its dump parsed again, and the report carries the profile judged.
    """
    flags = check_patient(patient) if patient else _NO_FLAGS
    judged = profile
    if not (as_parsed(profile) or sound(profile)):  # as_parsed: sound's first, cheap answer
        try:
            judged = parse_profile(profile.model_dump(by_alias=True))
        except ProfileError as error:
            return Report(error.violations, profile)
    violations = run_rules(judged, envelope or _DEFAULT_ENVELOPE, flags)
    return report(tuple(violations), judged)


def validate_bytes(
    raw: bytes,
    fmt: Literal["toml", "json"] = "toml",
    envelope: SafetyEnvelope | None = None,
    patient: Iterable[str] = (),
    path: str | None = None,
) -> Report:
    """Parse and validate profile text; parse and schema failures become ``schema`` violations."""
    flags = check_patient(patient)
    try:
        profile = loads_profile(raw, fmt)
    except ProfileError as error:
        return Report(error.violations, None, path)
    violations = run_rules(profile, envelope or _DEFAULT_ENVELOPE, flags)
    return report(tuple(violations), profile, path)  # validate_profile's, with the path


def validate_file(
    path: str | Path,
    envelope: SafetyEnvelope | None = None,
    patient: Iterable[str] = (),
) -> Report:
    """Load and validate one file; never raises for bad content (unreadable files included)."""
    flags = check_patient(patient)
    try:
        # os.fspath refuses a file descriptor as Path() did; pathlib costs as much as the read
        with open(os.fspath(path), "rb") as file:
            raw = file.read()
    except OSError as error:
        message = f"cannot read: {error.strerror or error}"
        return Report((schema_violation("", message),), None, str(path))
    return validate_bytes(raw, format_for(path), envelope, flags, str(path))


def find_profiles(path: str | Path) -> list[Path]:
    """``path`` itself if it is a file, else every *.toml/*.json below it, sorted.

    FileNotFoundError when the path does not exist.
    """
    root = Path(path)
    if root.is_file():
        return [root]
    if not root.is_dir():
        raise FileNotFoundError(f"{path}: no such file or directory")
    return sorted(
        p for p in root.rglob("*") if p.suffix.lower() in PROFILE_SUFFIXES and p.is_file()
    )
