"""The fast builders (``violation``, ``violation_later``, ``report``) make exactly what the
dataclasses make: same type, same fields, frozen, equal, hashed and shown alike."""

from __future__ import annotations

import copy
import dataclasses
import pickle

import pytest
from hypothesis import given
from hypothesis import strategies as st

from stimctl.rules.report import Report, report
from stimctl.rules.violations import Violation, violation, violation_later

values = st.one_of(st.none(), st.floats(allow_nan=False), st.integers(), st.text(max_size=8))
texts = st.text(max_size=12)
severities = st.sampled_from(["error", "warning", "info"])


@given(texts, severities, texts, texts, values, values, texts)
def test_violation_is_the_dataclass(code, severity, loc, message, limit, actual, source) -> None:
    made = violation(code, severity, loc, message, limit, actual, source)  # type: ignore[arg-type]
    expected = Violation(code, severity, loc, message, limit, actual, source)  # type: ignore[arg-type]
    assert type(made) is Violation
    assert dataclasses.astuple(made) == dataclasses.astuple(expected)
    assert made == expected and hash(made) == hash(expected) and repr(made) == repr(expected)
    assert pickle.loads(pickle.dumps(made)) == expected
    assert copy.copy(made) == expected


@given(texts, severities, texts, texts, values, values, texts)
def test_violation_later_is_the_dataclass(
    code, severity, loc, message, limit, actual, source
) -> None:
    asked: list[int] = []

    def text() -> str:
        asked.append(1)
        return message

    made = violation_later(code, severity, loc, text, limit, actual, source)  # type: ignore[arg-type]
    expected = Violation(code, severity, loc, message, limit, actual, source)  # type: ignore[arg-type]
    assert isinstance(made, Violation) and not asked  # the message is not written yet
    assert (made.code, made.severity, made.loc, made.limit, made.actual, made.source) == (
        code,
        severity,
        loc,
        limit,
        actual,
        source,
    )
    assert made == expected and made.message == message and asked == [1]
    assert hash(made) == hash(expected) and repr(made) == repr(expected)
    assert made.to_dict() == expected.to_dict() and asked == [1]  # written once


@pytest.mark.parametrize("build", [violation, violation_later])
def test_built_violations_stay_frozen(build) -> None:
    made = build("code", "error", "loc", (lambda: "text") if build is violation_later else "text")
    for name in ("code", "severity", "loc", "message", "limit", "actual", "source"):
        with pytest.raises(dataclasses.FrozenInstanceError):
            setattr(made, name, "other")
    with pytest.raises((AttributeError, TypeError)):
        made.extra = 1  # type: ignore[attr-defined]


@given(st.lists(st.tuples(texts, severities), max_size=4), st.one_of(st.none(), texts))
def test_report_is_the_dataclass(findings, path) -> None:
    violations = tuple(violation(code, severity, "loc", "text") for code, severity in findings)  # type: ignore[arg-type]
    made = report(violations, None, path)
    expected = Report(violations, None, path)
    assert type(made) is Report
    assert dataclasses.astuple(made) == dataclasses.astuple(expected)
    assert made == expected and repr(made) == repr(expected) and made.codes == expected.codes
    assert made.ok == expected.ok and made.to_dict() == expected.to_dict()
    with pytest.raises(dataclasses.FrozenInstanceError):
        made.path = "other"  # type: ignore[misc]


_OBSERVERS = {
    "codes": lambda r: r.codes,
    "astuple": dataclasses.astuple,
    "eq": lambda r: r,
    "repr": repr,
    "hash": hash,
    "pickle": lambda r: pickle.loads(pickle.dumps(r)),
    "copy": copy.copy,
    "getstate": lambda r: r.__getstate__(),
}


@pytest.mark.parametrize("observer", sorted(_OBSERVERS))
@given(st.lists(st.tuples(texts, severities), min_size=1, max_size=4))
def test_report_codes_written_when_first_read_look_the_same(observer, findings) -> None:
    """report() leaves codes to Report.__getattr__: whatever reads the report first (the codes,
    its fields, equality, repr, hash, pickle, copy) sees what the dataclass has."""
    violations = tuple(violation(code, severity, "loc", "text") for code, severity in findings)  # type: ignore[arg-type]
    look = _OBSERVERS[observer]
    assert look(report(violations, None)) == look(Report(violations, None))
    made = report(violations, None)
    look(made)
    assert made.codes == frozenset(code for code, _ in findings)
    with pytest.raises(AttributeError, match="'Report' object has no attribute 'other'"):
        made.other  # type: ignore[attr-defined]  # noqa: B018


def test_violation_later_takes_a_maker_and_its_arguments() -> None:
    made = violation_later("code", "error", "loc", (lambda a, b: f"{a} and {b}", 1, "two"))
    assert made == Violation("code", "error", "loc", "1 and two")
    assert made.message == "1 and two" and made.to_dict()["message"] == "1 and two"
