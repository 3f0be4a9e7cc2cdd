"""HIT-6, MIDAS, PPT and HRV scoring against their published rules; out-of-range answers refused."""

from __future__ import annotations

import pytest

from stimctl.clinic.instruments import (
    MeasureError,
    hit6_band,
    midas_grade,
    score,
    score_hit6,
    score_hrv,
    score_midas,
    score_ppt,
)


@pytest.mark.parametrize(
    ("word", "points"),
    [("never", 6), ("rarely", 8), ("sometimes", 10), ("very often", 11), ("always", 13)],
)
def test_hit6_items_score_6_8_10_11_13(word: str, points: int) -> None:
    assert score_hit6([word] * 6).items == (float(points),) * 6
    assert score_hit6([points] * 6).total == 6 * points


def test_hit6_total_runs_from_36_to_78() -> None:
    assert score_hit6(["never"] * 6).total == 36
    assert score_hit6(["always"] * 6).total == 78


@pytest.mark.parametrize(
    ("total", "band"),
    [
        (36, "little or no impact"),
        (49, "little or no impact"),
        (50, "some impact"),
        (55, "some impact"),
        (56, "substantial impact"),
        (59, "substantial impact"),
        (60, "severe impact"),
        (78, "severe impact"),
    ],
)
def test_hit6_bands_at_their_edges(total: int, band: str) -> None:
    assert hit6_band(total) == band


def test_hit6_band_of_a_scored_form() -> None:
    result = score_hit6(["never", "rarely", "sometimes", "very-often", "always", 13])
    assert (result.total, result.category) == (61, "severe impact")
    assert result.to_dict()["band"] == "severe impact"


@pytest.mark.parametrize("answer", [7, 12, 0, "often", "", -6, True])
def test_hit6_refuses_an_answer_that_is_not_on_the_scale(answer: object) -> None:
    with pytest.raises(MeasureError, match=r"hit6 item 3: .* \(allowed: never, rarely"):
        score_hit6([6, 6, answer, 6, 6, 6])


def test_hit6_needs_six_answers() -> None:
    with pytest.raises(MeasureError, match="expected 6 answers, got 5"):
        score_hit6([6] * 5)


@pytest.mark.parametrize(
    ("total", "grade"), [(0, "I"), (5, "I"), (6, "II"), (10, "II"), (11, "III"), (20, "III"),
                         (21, "IV"), (270, "IV")]
)  # fmt: skip
def test_midas_grades_at_their_edges(total: int, grade: str) -> None:
    assert midas_grade(total) == grade


def test_midas_total_is_the_sum_of_the_five_day_counts() -> None:
    result = score_midas([2, 3, 1, 4, 1])
    assert (result.total, result.category) == (11, "III")
    assert result.to_dict()["grade"] == "III"


@pytest.mark.parametrize("days", [-1, 91, 2.5, "x"])
def test_midas_refuses_items_outside_0_to_90_whole_days(days: object) -> None:
    with pytest.raises(MeasureError, match=r"midas item 5: .*allowed whole days 0-90"):
        score_midas([0, 0, 0, 0, days])


def test_midas_refuses_q1_plus_q2_over_90_days() -> None:
    assert score_midas([45, 45, 0, 0, 0]).total == 90
    with pytest.raises(MeasureError, match=r"midas items 1\+2: 46 \+ 45 days, allowed at most 90"):
        score_midas([46, 45, 0, 0, 0])


def test_midas_refuses_q3_plus_q4_over_90_days() -> None:
    with pytest.raises(MeasureError, match=r"midas items 3\+4"):
        score_midas([0, 0, 90, 1, 0])


def test_ppt_is_the_mean_of_its_readings_in_kg_per_cm2() -> None:
    assert score_ppt(["3.0", 4.0, 5]).total == 4.0


@pytest.mark.parametrize("value", [0, -1, 20.5, "nan", "inf"])
def test_ppt_refuses_readings_outside_its_range(value: object) -> None:
    with pytest.raises(MeasureError, match="ppt value 1"):
        score_ppt([value])


def test_hrv_takes_one_rmssd_in_ms_within_1_to_300() -> None:
    assert score_hrv(["42"]).total == 42
    with pytest.raises(MeasureError, match="allowed 1-300 ms"):
        score_hrv([301])
    with pytest.raises(MeasureError, match="expected 1 answers"):
        score_hrv([40, 41])


def test_unknown_measure_kind_is_refused_by_name() -> None:
    with pytest.raises(MeasureError, match="unknown kind 'sf12'"):
        score("sf12", [1])
