"""The bench's controller figure (hil/benchmarks/sim.py): stimctl's Controller end to end."""

from __future__ import annotations

from pathlib import Path

import pytest

from hil.benchmarks.sim import controller_session

pytestmark = pytest.mark.timeout(60)

DEMO = Path(__file__).resolve().parent.parent / "profiles" / "short-demo.toml"


def test_controller_session_completes_with_the_expected_pulses_the_device_counted() -> None:
    r = controller_session(DEMO)
    assert r["outcome"] == "COMPLETED"
    assert r["session_s"] == pytest.approx(60.0)
    expected = r["expected_pulses"]
    assert r["pulses_per_channel"] == (expected[0] if len(set(expected)) == 1 else expected)
    assert r["device_agrees"]
