"""Course plan format stimctl.course/1: stages, interval, taper, measures due; TOML loading.

A plan names its profiles by path (relative to the plan file) or ``"none"`` for manual-only
sessions. ``load_plan`` reads the plan and every profile it names, with their bytes and sha256, so
that a course can store exactly what it began with; ``stored_plan`` rebuilds it from those bytes.
See docs/COURSE.md.
"""

from __future__ import annotations

import hashlib
import tomllib
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import date, timedelta
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator
from pydantic_core import PydanticCustomError

from stimctl.clinic.instruments import MEASURE_KINDS, MeasureKind
from stimctl.rules.envelope import RULES
from stimctl.rules.profile import Profile, ProfileError, format_loc, loads_profile
from stimctl.rules.validation import validate_profile
from stimctl.rules.violations import Report, Value, Violation

__all__ = [
    "COURSE_SCHEMA",
    "NO_STIMULATION",
    "LoadedPlan",
    "Plan",
    "PlanError",
    "PlanProfile",
    "Stage",
    "Taper",
    "load_plan",
    "plan_report",
    "stored_plan",
]

COURSE_SCHEMA = "stimctl.course/1"
#: The ``profile`` of a stage whose sessions are given without stimulation (manual acupuncture).
NO_STIMULATION = "none"
#: Longest baseline diary and interval a plan may ask for (policy: a quarter).
MAX_DAYS = 92
MAX_SESSIONS = 200
#: Reads a profile a plan names (its reference) as bytes; OSError or KeyError when it cannot.
ReadProfile = Callable[[str], bytes]

Days = Annotated[int, Field(ge=1, le=MAX_DAYS)]
SessionNumber = Annotated[int, Field(ge=1, le=MAX_SESSIONS)]


def _at(loc: tuple[int | str, ...], message: str, **ctx: Any) -> PydanticCustomError:
    return PydanticCustomError("structure", message, {**ctx, "at": loc})


class _Strict(BaseModel):
    model_config = ConfigDict(strict=True, extra="forbid", allow_inf_nan=False, frozen=True)


class Stage(_Strict):
    """Sessions ``first..last`` (inclusive) with their focus and the profile they use."""

    sessions: Annotated[list[SessionNumber], Field(min_length=2, max_length=2)]
    name: Annotated[str, Field(min_length=1, max_length=200)]
    focus: str = ""
    tracked: str = ""
    expected: str = ""
    profile: Annotated[str, Field(min_length=1, max_length=500)]

    @model_validator(mode="after")
    def _ordered(self) -> Stage:
        if self.sessions[0] > self.sessions[1]:
            raise _at(("sessions",), "first session {a} is after last session {b}",
                      a=self.sessions[0], b=self.sessions[1])  # fmt: skip
        return self

    @property
    def first(self) -> int:
        return self.sessions[0]

    @property
    def last(self) -> int:
        return self.sessions[1]

    @property
    def stimulates(self) -> bool:
        return self.profile != NO_STIMULATION


class Taper(_Strict):
    """``sessions`` more sessions, ``interval_days`` apart, with the last stage's profile."""

    sessions: SessionNumber
    interval_days: Days


class MeasureDue(_Strict):
    """A measure due at the listed session numbers (0: the baseline, before session 1)."""

    kind: MeasureKind
    sessions: Annotated[list[Annotated[int, Field(ge=0, le=MAX_SESSIONS)]], Field(min_length=1)]


class Plan(_Strict):
    """A treatment course in format stimctl.course/1."""

    schema_id: Literal["stimctl.course/1"] = Field(alias="schema")
    name: Annotated[str, Field(min_length=1, max_length=200)]
    description: str = ""
    source: Annotated[str, Field(min_length=1)]
    baseline_days: Annotated[int, Field(ge=0, le=MAX_DAYS)]
    interval_days: Days
    response_check_session: SessionNumber
    stages: Annotated[list[Stage], Field(min_length=1, max_length=MAX_SESSIONS)]
    taper: list[Taper] = []
    measures: list[MeasureDue] = []

    @model_validator(mode="after")
    def _structure(self) -> Plan:
        expected = 1
        for i, stage in enumerate(self.stages):
            if stage.first != expected:
                raise _at(("stages", i, "sessions"),
                          "stages must follow on without gaps: this one should start at"
                          " session {n}", n=expected)  # fmt: skip
            expected = stage.last + 1
        total = self.total_sessions
        if total > MAX_SESSIONS:
            message = "the plan has {n} sessions, more than {m}"
            raise _at(("taper",), message, n=total, m=MAX_SESSIONS)
        if self.response_check_session > self.stages[-1].last:
            raise _at(("response_check_session",),
                      "session {n} is after the last stage (session {m})",
                      n=self.response_check_session, m=self.stages[-1].last)  # fmt: skip
        for i, due in enumerate(self.measures):
            for j, number in enumerate(due.sessions):
                if number > total:
                    raise _at(("measures", i, "sessions", j),
                              "session {n} is beyond the plan ({m} sessions)",
                              n=number, m=total)  # fmt: skip
        return self

    # --- the plan session by session --------------------------------------------------------
    @property
    def weekly_sessions(self) -> int:
        """Sessions in the stages (before the taper)."""
        return self.stages[-1].last

    @property
    def total_sessions(self) -> int:
        return self.weekly_sessions + sum(t.sessions for t in self.taper)

    @property
    def ea_from_session(self) -> int | None:
        """The first session of the first stage that stimulates (None: the plan never does)."""
        return next((s.first for s in self.stages if s.stimulates), None)

    def stage_for(self, number: int) -> Stage:
        """The stage of session ``number``; taper sessions (and any beyond) use the last one."""
        return next((s for s in self.stages if s.first <= number <= s.last), self.stages[-1])

    def in_taper(self, number: int) -> bool:
        return number > self.weekly_sessions

    def interval_before(self, number: int) -> int:
        """Days the plan asks between session ``number - 1`` and session ``number``."""
        if number <= self.weekly_sessions:
            return self.interval_days
        end = self.weekly_sessions
        for taper in self.taper:
            end += taper.sessions
            if number <= end:
                return taper.interval_days
        return self.taper[-1].interval_days if self.taper else self.interval_days

    def measures_due(self, number: int) -> tuple[str, ...]:
        """The measure kinds due at session ``number`` (0: baseline), in MEASURE_KINDS order."""
        kinds = {due.kind for due in self.measures if number in due.sessions}
        return tuple(k for k in MEASURE_KINDS if k in kinds)

    def planned_dates(self, start: date) -> tuple[date, ...]:
        """The date of each session if session 1 is on ``start`` and every interval is kept."""
        dates = [start]
        for number in range(2, self.total_sessions + 1):
            dates.append(dates[-1] + timedelta(days=self.interval_before(number)))
        return tuple(dates)

    def profile_refs(self) -> tuple[str, ...]:
        """Each profile the stages name, once, in stage order."""
        refs: list[str] = []
        for stage in self.stages:
            if stage.stimulates and stage.profile not in refs:
                refs.append(stage.profile)
        return tuple(refs)


@dataclass(frozen=True, slots=True)
class PlanProfile:
    """A profile a plan names: its reference, exact bytes, sha256 and parsed form."""

    ref: str
    raw: bytes
    sha256: str
    profile: Profile


@dataclass(frozen=True, slots=True)
class LoadedPlan:
    """A plan with its exact bytes and sha256 and each profile it names (by reference)."""

    plan: Plan
    raw: bytes
    sha256: str
    profiles: dict[str, PlanProfile] = field(default_factory=dict)
    path: str | None = None

    def profile_for(self, number: int) -> PlanProfile | None:
        """The profile of session ``number``'s stage; None for a manual-only stage."""
        stage = self.plan.stage_for(number)
        return self.profiles[stage.profile] if stage.stimulates else None


class PlanError(ValueError):
    """A plan that cannot be used; ``report`` holds the located violations."""

    def __init__(self, report: Report) -> None:
        self.report = report
        lines = [f"{v.loc or '(plan)'}: {v.message}" for v in report.errors]
        where = f"{report.path}: " if report.path else ""
        super().__init__(where + "invalid course plan: " + "; ".join(lines))


def _schema(loc: str, message: str, actual: Value = None) -> Violation:
    rule = RULES["course-schema"]
    return Violation(rule.code, rule.severity, loc, message, None, actual, rule.source)


def _sha256(raw: bytes) -> str:
    return hashlib.sha256(raw).hexdigest()


def _parse(raw: bytes) -> tuple[Plan | None, list[Violation]]:
    try:
        data = tomllib.loads(raw.decode("utf-8"))
    except UnicodeDecodeError as error:
        return None, [_schema("", f"not UTF-8 text: {error.reason} at byte {error.start}")]
    except tomllib.TOMLDecodeError as error:
        return None, [_schema("", f"not valid TOML: {error}")]
    try:
        return Plan.model_validate(data), []
    except ValidationError as error:
        out = []
        for item in error.errors(include_url=False):
            parts = tuple(item["loc"]) + tuple((item.get("ctx") or {}).get("at", ()))
            if item["type"] == "literal_error" and parts == ("schema",):
                message = f"schema must be exactly {COURSE_SCHEMA!r}"
            elif item["type"] == "extra_forbidden":
                message = f"unknown key (not part of {COURSE_SCHEMA})"
            elif item["type"] == "missing":
                message = "required key is missing"
            else:
                message = item["msg"]
            actual = item.get("input") if item["type"] != "missing" else None
            shown = actual if isinstance(actual, int | float | str) else None
            out.append(_schema(format_loc(parts), message, shown))
        return None, out


def _read_profiles(plan: Plan, read: ReadProfile) -> tuple[dict[str, PlanProfile], list[Violation]]:
    """Each stage's profile through ``read(ref) -> bytes`` (OSError/KeyError: missing), validated
    against the default envelope; its findings are reported at the stage that names it."""
    profiles: dict[str, PlanProfile] = {}
    out: list[Violation] = []
    for i, stage in enumerate(plan.stages):
        if not stage.stimulates:
            continue
        loc = f"stages[{i}].profile"
        if stage.profile in profiles:
            continue
        try:
            raw = read(stage.profile)
        except (OSError, KeyError) as error:
            reason = getattr(error, "strerror", None) or "not stored"
            out.append(_schema(loc, f"profile {stage.profile!r} cannot be read: {reason}",
                               stage.profile))  # fmt: skip
            continue
        try:
            profile = loads_profile(raw, "json" if stage.profile.endswith(".json") else "toml")
        except ProfileError as error:
            findings: tuple[Violation, ...] = error.violations
            profile = None
        else:
            findings = validate_profile(profile).violations
        for v in findings:
            where = f"{v.loc}: " if v.loc else ""
            out.append(Violation(v.code, v.severity, loc, f"{stage.profile}: {where}{v.message}",
                                 v.limit, v.actual, v.source))  # fmt: skip
        if profile is not None and not any(v.is_error for v in findings):
            profiles[stage.profile] = PlanProfile(stage.profile, raw, _sha256(raw), profile)
    return profiles, out


def plan_report(
    raw: bytes, read: ReadProfile, path: str | None = None
) -> tuple[Report, LoadedPlan | None]:
    """Parse plan bytes and read its profiles through ``read(ref) -> bytes``; the report (schema
    and profile findings, located) and the loaded plan when it has no error."""
    plan, violations = _parse(raw)
    if plan is None:
        return Report(tuple(violations), None, path), None
    profiles, found = _read_profiles(plan, read)
    report = Report(tuple(found), None, path)
    if not report.ok:
        return report, None
    return report, LoadedPlan(plan, raw, _sha256(raw), profiles, path)


def load_plan(path: str | Path) -> tuple[Report, LoadedPlan | None]:
    """Read a plan file and the profiles it names (paths relative to the plan's folder)."""
    path = Path(path)
    try:
        raw = path.read_bytes()
    except OSError as error:
        message = f"cannot read: {error.strerror or error}"
        return Report((_schema("", message),), None, str(path)), None
    folder = path.parent
    return plan_report(raw, lambda ref: (folder / ref).read_bytes(), str(path))


def stored_plan(raw: bytes, profiles: dict[str, bytes]) -> LoadedPlan:
    """A course's stored plan and profiles as loaded; PlanError if they no longer validate."""
    report, loaded = plan_report(raw, lambda ref: profiles[ref])
    if loaded is None:
        raise PlanError(report)
    return loaded
