"""Outcome instruments and their published scoring: HIT-6, MIDAS, pressure pain threshold, HRV.

Each ``score_*`` function takes the answers as given and returns a ``Score`` (what is stored), or
raises ``MeasureError`` naming the field and its allowed range. Pure: no I/O.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal, get_args

__all__ = [
    "HIT6_BANDS",
    "HIT6_POINTS",
    "MEASURE_KINDS",
    "MIDAS_GRADES",
    "MeasureError",
    "MeasureKind",
    "Score",
    "hit6_band",
    "midas_grade",
    "score",
    "score_hit6",
    "score_hrv",
    "score_midas",
    "score_ppt",
]

MeasureKind = Literal["hit6", "midas", "ppt", "hrv"]
MEASURE_KINDS: tuple[str, ...] = get_args(MeasureKind)

HIT6_SOURCE = (
    "Kosinski M et al. A six-item short-form survey for measuring headache impact: the HIT-6."
    " Qual Life Res 2003;12:963-974; HIT-6 scoring guide (QualityMetric)"
)
#: HIT-6 answer -> points (recall: the last 4 weeks).
HIT6_POINTS: dict[str, int] = {
    "never": 6,
    "rarely": 8,
    "sometimes": 10,
    "very-often": 11,
    "always": 13,
}
HIT6_ITEMS = 6
#: (lowest total of the band, band name), ascending: <= 49, 50-55, 56-59, >= 60.
HIT6_BANDS: tuple[tuple[int, str], ...] = (
    (36, "little or no impact"),
    (50, "some impact"),
    (56, "substantial impact"),
    (60, "severe impact"),
)

MIDAS_SOURCE = (
    "Stewart WF et al. Development and testing of the Migraine Disability Assessment (MIDAS)"
    " Questionnaire. Neurology 2001;56(6 Suppl 1):S20-S28"
)
MIDAS_ITEMS = 5
#: Days in the recall period (the last 3 months), the most any item or pair may count.
MIDAS_MAX_DAYS = 90
#: (lowest total of the grade, grade, meaning), ascending: 0-5 I, 6-10 II, 11-20 III, >= 21 IV.
MIDAS_GRADES: tuple[tuple[int, str, str], ...] = (
    (0, "I", "little or no disability"),
    (6, "II", "mild disability"),
    (11, "III", "moderate disability"),
    (21, "IV", "severe disability"),
)

PPT_SOURCE = (
    "Fischer AA. Pressure algometry over normal muscles. Pain 1987;30:115-126 (algometer 0-11"
    " kg/cm2); stimctl policy: 0-20 kg/cm2 accepted"
)
PPT_MAX_KG_CM2 = 20.0
HRV_SOURCE = (
    "Task Force of the ESC and NASPE. Heart rate variability: standards of measurement."
    " Circulation 1996;93:1043-1065 (RMSSD); stimctl policy: 1-300 ms accepted"
)
HRV_RMSSD_MS = (1.0, 300.0)


class MeasureError(ValueError):
    """An answer outside its allowed range; the message names the field and the range."""


@dataclass(frozen=True, slots=True)
class Score:
    """A scored measure: the answers as numbers, the total and its band or grade (or "")."""

    kind: str
    items: tuple[float, ...]
    total: float
    category: str = ""
    source: str = ""

    def to_dict(self) -> dict[str, object]:
        out: dict[str, object] = {"kind": self.kind, "items": list(self.items), "total": self.total}
        if self.kind == "hit6":
            out["band"] = self.category
        elif self.kind == "midas":
            out["grade"] = self.category
        return out


def _count(kind: str, answers: Sequence[object], n: int) -> None:
    if len(answers) != n:
        raise MeasureError(f"{kind}: expected {n} answers, got {len(answers)}")


def _number(field: str, value: object) -> float:
    if isinstance(value, bool):
        raise MeasureError(f"{field}: expected a number, got {value!r}")
    if isinstance(value, int | float):
        number = float(value)
    else:
        try:
            number = float(str(value).strip())
        except ValueError:
            raise MeasureError(f"{field}: expected a number, got {value!r}") from None
    if not math.isfinite(number):
        raise MeasureError(f"{field}: expected a finite number, got {value!r}")
    return number


def _hit6_item(i: int, answer: object) -> int:
    field = f"hit6 item {i + 1}"
    allowed = f"allowed: {', '.join(HIT6_POINTS)} or {'/'.join(map(str, HIT6_POINTS.values()))}"
    if isinstance(answer, str):
        word = answer.strip().lower().replace(" ", "-").replace("_", "-")
        if word in HIT6_POINTS:
            return HIT6_POINTS[word]
    try:
        points = _number(field, answer)
    except MeasureError:
        raise MeasureError(f"{field}: {answer!r} is not an answer ({allowed})") from None
    if points not in HIT6_POINTS.values():
        raise MeasureError(f"{field}: {answer!r} is not an answer ({allowed})")
    return int(points)


def hit6_band(total: int) -> str:
    """The impact band of a HIT-6 total (36-78)."""
    if not HIT6_ITEMS * 6 <= total <= HIT6_ITEMS * 13:
        raise MeasureError(f"hit6 total: {total} outside 36-78")
    return [name for low, name in HIT6_BANDS if total >= low][-1]


def score_hit6(answers: Sequence[object]) -> Score:
    """Six answers as words (never .. always) or points (6/8/10/11/13); total 36-78 and band."""
    _count("hit6", answers, HIT6_ITEMS)
    items = tuple(_hit6_item(i, a) for i, a in enumerate(answers))
    total = sum(items)
    return Score("hit6", tuple(map(float, items)), float(total), hit6_band(total), HIT6_SOURCE)


def midas_grade(total: int) -> str:
    """The MIDAS grade (I-IV) of a total in days."""
    if total < 0:
        raise MeasureError(f"midas total: {total} is below 0")
    return [grade for low, grade, _ in MIDAS_GRADES if total >= low][-1]


def score_midas(answers: Sequence[object]) -> Score:
    """Five day counts (questions 1-5, each 0-90, Q1+Q2 <= 90, Q3+Q4 <= 90); total and grade."""
    _count("midas", answers, MIDAS_ITEMS)
    items: list[int] = []
    for i, answer in enumerate(answers):
        field = f"midas item {i + 1}"
        refusal = MeasureError(f"{field}: {answer!r} days, allowed whole days 0-{MIDAS_MAX_DAYS}")
        try:
            days = _number(field, answer)
        except MeasureError:
            raise refusal from None
        if days != int(days) or not 0 <= days <= MIDAS_MAX_DAYS:
            raise refusal
        items.append(int(days))
    for a, b in ((0, 1), (2, 3)):
        if items[a] + items[b] > MIDAS_MAX_DAYS:
            raise MeasureError(
                f"midas items {a + 1}+{b + 1}: {items[a]} + {items[b]} days, allowed at most"
                f" {MIDAS_MAX_DAYS} together (the days of the second exclude those of the first)"
            )
    total = sum(items)
    return Score("midas", tuple(map(float, items)), float(total), midas_grade(total), MIDAS_SOURCE)


def score_ppt(values: Sequence[object]) -> Score:
    """One or more pressure pain thresholds in kg/cm2 (0 < v <= 20); the total is their mean."""
    if not values:
        raise MeasureError("ppt: expected at least one value in kg/cm2")
    items = []
    for i, value in enumerate(values):
        field = f"ppt value {i + 1}"
        kg = _number(field, value)
        if not 0 < kg <= PPT_MAX_KG_CM2:
            allowed = f"allowed above 0 up to {PPT_MAX_KG_CM2:g}"
            raise MeasureError(f"{field}: {value!r} kg/cm2, {allowed}")
        items.append(kg)
    return Score("ppt", tuple(items), round(math.fsum(items) / len(items), 3), "", PPT_SOURCE)


def score_hrv(values: Sequence[object]) -> Score:
    """One RMSSD in ms (1-300)."""
    _count("hrv", values, 1)
    ms = _number("hrv rmssd", values[0])
    lo, hi = HRV_RMSSD_MS
    if not lo <= ms <= hi:
        raise MeasureError(f"hrv rmssd: {values[0]!r} ms, allowed {lo:g}-{hi:g} ms")
    return Score("hrv", (ms,), ms, "", HRV_SOURCE)


def score(kind: str, values: Sequence[object]) -> Score:
    """Score ``values`` as measure ``kind`` (one of MEASURE_KINDS)."""
    scorers = {"hit6": score_hit6, "midas": score_midas, "ppt": score_ppt, "hrv": score_hrv}
    if kind not in scorers:
        raise MeasureError(f"measure: unknown kind {kind!r} (allowed: {', '.join(MEASURE_KINDS)})")
    return scorers[kind](values)
