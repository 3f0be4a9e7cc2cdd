"""Headache diary: one entry per day, its checks, and the CSV import layout (docs/COURSE.md).

Pure: ``diary_entry`` checks one day's answers, ``read_diary_csv`` parses a whole file (every row
checked before anything is stored). Errors name the field and its allowed range.
"""

from __future__ import annotations

import csv
import io
import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import date
from typing import Literal, get_args

__all__ = [
    "CSV_COLUMNS",
    "MEDICATION_CLASSES",
    "DiaryEntry",
    "DiaryError",
    "MedicationClass",
    "diary_entry",
    "parse_date",
    "read_diary_csv",
]

#: Acute medication classes as ICHD-3 8.2 groups them (8.2.1 ergotamine, 8.2.2 triptan,
#: 8.2.3 non-opioid analgesic: paracetamol, NSAID; 8.2.4 opioid; 8.2.5 combination analgesic).
MedicationClass = Literal["ergot", "triptan", "paracetamol", "nsaid", "opioid", "combination"]
MEDICATION_CLASSES: tuple[str, ...] = get_args(MedicationClass)
#: The CSV layout: a header row with exactly these columns, in this order.
CSV_COLUMNS = ("date", "headache", "intensity", "hours", "aura", "medication")
MAX_INTENSITY = 10
MAX_HOURS = 24.0
_YES, _NO = ("yes", "y", "1", "true"), ("no", "n", "0", "false")


class DiaryError(ValueError):
    """A diary answer outside its allowed range (the message names the field)."""


@dataclass(frozen=True, slots=True)
class DiaryEntry:
    """One day of the diary."""

    day: date
    headache: bool
    intensity: int | None = None
    hours: float | None = None
    aura: bool = False
    medication: tuple[str, ...] = ()


def parse_date(text: str, field: str = "date") -> date:
    """An ISO date (YYYY-MM-DD); DiaryError otherwise."""
    try:
        return date.fromisoformat(text.strip())
    except ValueError:
        raise DiaryError(f"{field}: {text!r} is not a date (YYYY-MM-DD)") from None


def parse_yes_no(text: str, field: str) -> bool:
    word = text.strip().lower()
    if word in _YES:
        return True
    if word in _NO:
        return False
    raise DiaryError(f"{field}: {text!r}, allowed yes or no")


def diary_entry(
    day: date,
    headache: bool,
    intensity: int | None = None,
    hours: float | None = None,
    aura: bool = False,
    medication: Iterable[str] = (),
    today: date | None = None,
) -> DiaryEntry:
    """Check one day's answers: intensity 1-10 and hours 0-24 on a headache day (none without
    one), medication classes from MEDICATION_CLASSES, a date not after ``today``."""
    if today is not None and day > today:
        raise DiaryError(f"date: {day.isoformat()} is in the future (today is {today.isoformat()})")
    if intensity is not None:
        if isinstance(intensity, bool) or not isinstance(intensity, int):
            raise DiaryError(f"intensity: {intensity!r}, allowed whole numbers 0-{MAX_INTENSITY}")
        if headache and not 1 <= intensity <= MAX_INTENSITY:
            raise DiaryError(f"intensity: {intensity}, allowed 1-{MAX_INTENSITY} on a headache day")
        if not headache and intensity != 0:
            raise DiaryError(f"intensity: {intensity}, allowed 0 (or none) without a headache")
    if hours is not None:
        if not math.isfinite(hours) or not 0 <= hours <= MAX_HOURS:
            raise DiaryError(f"hours: {hours:g}, allowed 0-{MAX_HOURS:g}")
        if not headache and hours != 0:
            raise DiaryError(f"hours: {hours:g}, allowed 0 or none without a headache")
    classes: list[str] = []
    for name in medication:
        name = name.strip().lower()
        if name not in MEDICATION_CLASSES:
            raise DiaryError(
                f"medication: {name!r} is not a class (allowed: {', '.join(MEDICATION_CLASSES)})"
            )
        if name not in classes:
            classes.append(name)
    return DiaryEntry(day, headache, intensity, hours, aura, tuple(classes))


def _row(cells: Sequence[str], today: date | None) -> DiaryEntry:
    day = parse_date(cells[0])
    headache = parse_yes_no(cells[1], "headache")
    intensity: int | None = None
    if cells[2].strip():
        try:
            intensity = int(cells[2])
        except ValueError:
            raise DiaryError(
                f"intensity: {cells[2]!r}, allowed whole numbers 0-{MAX_INTENSITY}"
            ) from None
    hours: float | None = None
    if cells[3].strip():
        try:
            hours = float(cells[3])
        except ValueError:
            raise DiaryError(f"hours: {cells[3]!r}, allowed 0-{MAX_HOURS:g}") from None
    aura = parse_yes_no(cells[4], "aura") if cells[4].strip() else False
    medication = [m for m in cells[5].split(";") if m.strip()]
    return diary_entry(day, headache, intensity, hours, aura, medication, today)


def read_diary_csv(text: str, name: str = "CSV", today: date | None = None) -> list[DiaryEntry]:
    """Every row of a diary CSV (CSV_COLUMNS header, one row a day, no date twice); DiaryError
    ``NAME:LINE: field: message`` at the first bad row."""
    reader = csv.reader(io.StringIO(text))
    try:
        header = next(reader)
    except StopIteration:
        header_text = ",".join(CSV_COLUMNS)
        raise DiaryError(f"{name}: empty file (expected the header {header_text})") from None
    if tuple(h.strip().lower() for h in header) != CSV_COLUMNS:
        raise DiaryError(f"{name}:1: header must be exactly {','.join(CSV_COLUMNS)}")
    entries: list[DiaryEntry] = []
    seen: dict[date, int] = {}
    for line, cells in enumerate(reader, start=2):
        if not any(c.strip() for c in cells):
            continue
        if len(cells) != len(CSV_COLUMNS):
            n = len(CSV_COLUMNS)
            raise DiaryError(f"{name}:{line}: expected {n} columns, got {len(cells)}")
        try:
            entry = _row(cells, today)
        except DiaryError as error:
            raise DiaryError(f"{name}:{line}: {error}") from None
        if entry.day in seen:
            raise DiaryError(
                f"{name}:{line}: date: {entry.day.isoformat()} is also on line {seen[entry.day]}"
            )
        seen[entry.day] = line
        entries.append(entry)
    if not entries:
        raise DiaryError(f"{name}: no diary rows after the header")
    return entries
