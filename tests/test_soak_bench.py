"""The soak bench's bookkeeping (hil/benchmarks/soak.py): what counts as a false trip, the link
figures it reads from a record, and its durations from the environment. The soak itself is the
bench's (`python -m hil.bench --only soak`); it runs for minutes and never in the suite."""

from __future__ import annotations

from pathlib import Path

import pytest

from hil import bench
from hil.benchmarks import soak
from stimctl.host.record import SessionRecord, Summary


def _ended(fault: str | None, outcome: str) -> Summary:
    faults = ({"code": fault, "source": "device"},) if fault else ()
    return Summary(path="nowhere.jsonl", lines=3, faults=faults, outcome=outcome)


@pytest.mark.parametrize("fault", ["COMMS_LOSS", "UNDERRUN"])
def test_a_session_that_went_silent_too_long_is_a_false_trip(fault: str) -> None:
    tally = soak._tally([_ended(fault, "FAULT"), _ended(None, "COMPLETED")])
    assert (tally["sessions"], tally["completed"], tally["false_trips"]) == (2, 1, 1)


def test_other_faults_and_missing_records_are_not_false_trips() -> None:
    tally = soak._tally([_ended("ELECTRODE_OPEN", "FAULT"), "no record: boom"])
    assert (tally["completed"], tally["false_trips"]) == (0, 0)
    assert tally["outcomes"] == ["FAULT", "no record: boom"]


def test_the_link_figures_come_from_the_records_summary_line(tmp_path: Path) -> None:
    path = tmp_path / "r.jsonl"
    with SessionRecord(path) as record:
        record.append("summary", {"link": {"tx_gap_max_ms": 61.5, "priority": "SCHED_RR 10"}})
    assert soak.link_figures(path) == {"tx_gap_max_ms": 61.5, "priority": "SCHED_RR 10"}


def test_durations_default_to_the_acceptance_and_follow_the_environment(tmp_path: Path) -> None:
    assert soak.durations(False, {}) == (10.0, 2.0, None)
    assert soak.durations(True, {}) == (0.5, 0.5, None)
    env = {"STIMCTL_SOAK_RUN_MIN": "2", "STIMCTL_SOAK_TUI_MIN": "0",
           "STIMCTL_SOAK_KEEP": str(tmp_path)}  # fmt: skip
    assert soak.durations(False, env) == (2.0, 0.0, tmp_path)


@pytest.mark.parametrize("bad", ["-1", "inf", "nan", "ten"])
def test_a_bad_soak_duration_is_a_usage_error(
    bad: str, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("STIMCTL_SOAK_RUN_MIN", bad)
    with pytest.raises(SystemExit) as exit_:
        bench.main(["--only", "soak"])
    assert exit_.value.code == 2
    assert "STIMCTL_SOAK_RUN_MIN" in capsys.readouterr().err
