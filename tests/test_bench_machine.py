"""The bench's machine entry: what a reader needs to compare figures taken at different times."""

from __future__ import annotations

import pytest

from hil import bench


def test_the_machine_entry_says_how_fast_this_interpreter_runs_right_now(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(bench, "REFERENCE_LOOP", 30_000)  # the same loop, shorter
    m = bench.machine()
    assert m["python_loop_ms"] > 0
    assert m["python_executable"]
    report = {"machine": m, "_figures": [bench.Figure("x", 1, "", "a figure")]}
    assert f"reference loop {m['python_loop_ms']} ms" in bench.table(report)


def test_the_reference_loop_time_grows_with_the_loop(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(bench, "REFERENCE_LOOP", 1_000)
    short = bench.reference_loop_ms()
    monkeypatch.setattr(bench, "REFERENCE_LOOP", 300_000)
    assert bench.reference_loop_ms() > short
