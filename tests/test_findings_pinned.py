"""Every finding on the library and the bad-profile corpus, pinned (syrupy snapshot).

``test_bad_profiles`` checks that each bad profile raises the codes it is about; this file pins
the complete report of every file (code, severity, loc, message, limit, actual, source, in
order, and ``ok``), so a change made for speed that alters any finding shows up as a diff.
The profiles the benchmark generates are pinned too, as counts per code plus a digest of every
report (under three envelopes and three sets of patient flags). A deliberate change of a rule
updates the snapshot: ``pytest tests/test_findings_pinned.py --snapshot-update``, and the diff
is reviewed with the change.
"""

from __future__ import annotations

import hashlib
import json
from collections import Counter
from pathlib import Path
from typing import Any

import pytest
from syrupy.assertion import SnapshotAssertion
from test_bad_profiles import CASES, CORPUS, _expectation

from hil.benchmarks.profilegen import generate
from stimctl.rules.envelope import SafetyEnvelope
from stimctl.rules.validation import Report, validate_bytes, validate_file

LIBRARY = sorted((Path(__file__).parents[1] / "profiles").glob("*.toml"))


def _pinned(report: Report) -> dict[str, Any]:
    return {"ok": report.ok, "violations": [v.to_dict() for v in report.violations]}


@pytest.mark.parametrize("path", CASES, ids=lambda p: p.name)
def test_bad_profile_report_is_unchanged(path: Path, snapshot: SnapshotAssertion) -> None:
    case = _expectation(path)
    envelope = (
        SafetyEnvelope.from_toml(CORPUS / "envelopes" / case.envelope) if case.envelope else None
    )
    assert _pinned(validate_file(path, envelope, case.patient)) == snapshot


@pytest.mark.parametrize("path", LIBRARY, ids=lambda p: p.name)
def test_library_profile_report_is_unchanged(path: Path, snapshot: SnapshotAssertion) -> None:
    assert _pinned(validate_file(path)) == snapshot


def test_generated_profile_reports_are_unchanged(snapshot: SnapshotAssertion) -> None:
    envelopes = (
        SafetyEnvelope(),
        SafetyEnvelope().narrowed(max_amplitude_ma=3.0, max_channels=4, frequency_hz=(2, 80)),
        SafetyEnvelope(max_shannon_k=1.0, max_current_density_ma_cm2=1.0),
    )
    patients = ((), ("pregnant",), ("pregnant", "epilepsy", "implanted-device"))
    reports = [
        validate_bytes(p.raw, p.fmt, envelopes[i % 3], patients[i // 3 % 3]).to_dict()
        for i, p in enumerate(generate(600, seed=7))
    ]
    counts = Counter(f"{v['code']} {v['severity']}" for r in reports for v in r["violations"])
    digest = hashlib.sha256(json.dumps(reports, sort_keys=True).encode()).hexdigest()
    assert {"counts": dict(sorted(counts.items())), "sha256": digest} == snapshot
