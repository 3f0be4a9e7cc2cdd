"""The bad-profile corpus: every file is rejected (or warned about) with the expected code and loc.

Expectations live in each file's leading comments (``# expect: CODE LOC``, ``# envelope: FILE``,
``# patient: FLAG[,FLAG]``) or, for files that cannot hold a comment, in ``manifest.toml``.
LOC ``-`` stands for the whole file; an optional third word overrides the rule's severity
(``path-contralateral`` is a warning between two legs). Every code found must be expected,
and the report is ok exactly when no expected finding is an error.
"""

from __future__ import annotations

import tomllib
from dataclasses import dataclass
from pathlib import Path

import pytest

from stimctl.rules.envelope import RULES, SafetyEnvelope
from stimctl.rules.validation import validate_file

CORPUS = Path(__file__).parent / "bad_profiles"
MANIFEST = tomllib.loads((CORPUS / "manifest.toml").read_text(encoding="utf-8"))


@dataclass(frozen=True)
class Expectation:
    path: Path
    expect: tuple[tuple[str, str, str], ...]
    envelope: str | None
    patient: tuple[str, ...]


def _parse_pair(text: str) -> tuple[str, str, str]:
    code, loc, *severity = text.split()
    return code, "" if loc == "-" else loc, severity[0] if severity else RULES[code].severity


def _from_comments(path: Path) -> Expectation:
    expect, envelope, patient = [], None, ()
    for line in path.read_text(encoding="utf-8").splitlines():
        if not line.startswith("#"):
            break
        key, _, value = line[1:].strip().partition(":")
        if key == "expect":
            expect.append(_parse_pair(value))
        elif key == "envelope":
            envelope = value.strip()
        elif key == "patient":
            patient = tuple(value.strip().split(","))
    return Expectation(path, tuple(expect), envelope, patient)


def _expectation(path: Path) -> Expectation:
    entry = MANIFEST.get(path.name)
    if entry is None:
        return _from_comments(path)
    return Expectation(
        path,
        tuple(_parse_pair(e) for e in entry["expect"]),
        entry.get("envelope"),
        tuple(entry.get("patient", ())),
    )


CASES = sorted(p for p in CORPUS.iterdir() if p.is_file() and p.name != "manifest.toml")


def test_corpus_is_large_enough() -> None:
    assert len(CASES) >= 40


def test_every_rule_code_has_a_case_in_the_corpus() -> None:
    covered = {code for path in CASES for code, _, _ in _expectation(path).expect}
    profile_rules = {code for code in RULES if not code.startswith("course-")}
    assert profile_rules <= covered  # course rules: tests/test_courserules.py


def test_every_manifest_entry_names_a_corpus_file() -> None:
    assert set(MANIFEST) <= {p.name for p in CASES}


@pytest.mark.parametrize("path", CASES, ids=lambda p: p.name)
def test_bad_profile_is_reported_with_expected_code_and_location(path: Path) -> None:
    case = _expectation(path)
    assert case.expect, f"{path.name} has no expectation"
    envelope = (
        SafetyEnvelope.from_toml(CORPUS / "envelopes" / case.envelope) if case.envelope else None
    )
    report = validate_file(path, envelope, case.patient)
    found = {(v.code, v.loc, v.severity) for v in report.violations}
    assert set(case.expect) <= found, report.violations
    assert {v.code for v in report.violations} <= {code for code, _, _ in case.expect}
    assert report.ok is all(severity == "warning" for _, _, severity in case.expect)
