"""Validation leaves no reference cycles behind (issue 15).

A finding formats its message lazily from the rule context; when the context also held the
finding (the phase walk's results in ``RuleContext.shared``) every validation with such a finding
left a cycle for the cyclic collector, and scripted validation of thousands of profiles paid
for full collections over every live object (seen as one slow pass in three of the bench).
"""

from __future__ import annotations

import contextlib
import gc
from collections import Counter
from collections.abc import Iterator

import pytest

from hil.benchmarks.profilegen import generate
from stimctl.rules.profile import Profile, ProfileError, loads_profile
from stimctl.rules.validation import validate_profile


@contextlib.contextmanager
def saved_garbage() -> Iterator[list[object]]:
    """What the cyclic collector finds unreachable from here on, kept in gc.garbage."""
    gc.collect()
    gc.set_debug(gc.DEBUG_SAVEALL)
    try:
        yield gc.garbage
    finally:
        gc.set_debug(0)
        gc.garbage.clear()


def _parsed(count: int) -> list[Profile]:
    parsed = []
    for generated in generate(count, seed=15):
        with contextlib.suppress(ProfileError):
            parsed.append(loads_profile(generated.raw, generated.fmt))
    return parsed


def test_validating_profiles_leaves_no_cyclic_garbage() -> None:
    profiles = _parsed(300)  # generating and parsing are not what is judged here
    with saved_garbage() as garbage:
        reports = [validate_profile(p) for p in profiles]
        findings = [v for r in reports for v in r.violations]
        codes = Counter(v.code for v in findings)
        assert codes["ramp-rate-max"] and codes["current-density-iec"]  # lazy messages made
        del reports, findings
        gc.collect()
        kinds = Counter(type(o).__name__ for o in garbage)
        assert not garbage, f"reference cycles left by validation: {kinds.most_common(5)}"


def test_a_finding_still_reads_its_message_after_its_context_is_gone() -> None:
    for report in (validate_profile(p) for p in _parsed(120)):
        for v in report.violations:
            if v.code == "ramp-rate-max":
                assert "mA/s" in v.message  # formatted now, from the context it kept
                return
    pytest.fail("no ramp-rate-max finding among the generated profiles")
