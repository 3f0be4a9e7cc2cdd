"""Diary entries: ranges named on refusal; the CSV layout, all rows checked before any is kept."""

from __future__ import annotations

from datetime import date

import pytest

from stimctl.clinic.diary import CSV_COLUMNS, DiaryError, diary_entry, read_diary_csv

DAY = date(2026, 3, 1)


def test_a_headache_day_keeps_intensity_hours_aura_and_medication() -> None:
    entry = diary_entry(DAY, True, 7, 4.5, True, ["Triptan", "nsaid", "triptan"])
    assert (entry.intensity, entry.hours, entry.aura) == (7, 4.5, True)
    assert entry.medication == ("triptan", "nsaid")


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"headache": True, "intensity": 11}, "intensity: 11, allowed 1-10 on a headache day"),
        ({"headache": True, "intensity": 0}, "intensity: 0, allowed 1-10"),
        ({"headache": False, "intensity": 3}, "intensity: 3, allowed 0 .or none. without"),
        ({"headache": True, "hours": 25.0}, "hours: 25, allowed 0-24"),
        ({"headache": False, "hours": 2.0}, "hours: 2, allowed 0 or none without"),
        ({"headache": True, "medication": ["aspirin"]}, "medication: 'aspirin' is not a class"),
    ],
)
def test_bad_values_are_refused_with_the_field_and_the_allowed_range(
    kwargs: dict[str, object], message: str
) -> None:
    with pytest.raises(DiaryError, match=message):
        diary_entry(DAY, **kwargs)  # type: ignore[arg-type]


def test_a_day_in_the_future_is_refused() -> None:
    with pytest.raises(DiaryError, match="is in the future"):
        diary_entry(date(2026, 3, 2), False, today=DAY)


def _csv(*rows: str) -> str:
    return "\n".join([",".join(CSV_COLUMNS), *rows]) + "\n"


def test_csv_rows_become_entries_with_empty_cells_as_none() -> None:
    entries = read_diary_csv(_csv("2026-03-01,yes,6,3,yes,triptan;nsaid", "2026-03-02,no,,,,"))
    assert [e.day for e in entries] == [date(2026, 3, 1), date(2026, 3, 2)]
    assert entries[0].medication == ("triptan", "nsaid") and entries[0].aura
    assert (entries[1].headache, entries[1].intensity, entries[1].hours) == (False, None, None)


def test_csv_error_names_the_file_line_and_field() -> None:
    text = _csv("2026-03-01,yes,6,3,,", "2026-03-02,maybe,,,,")
    with pytest.raises(DiaryError, match=r"^d.csv:3: headache: 'maybe', allowed yes or no$"):
        read_diary_csv(text, "d.csv")


def test_csv_with_a_date_twice_is_refused() -> None:
    with pytest.raises(DiaryError, match=r"d\.csv:3: date: 2026-03-01 is also on line 2"):
        read_diary_csv(_csv("2026-03-01,no,,,,", "2026-03-01,yes,2,,,"), "d.csv")


def test_csv_needs_the_documented_header() -> None:
    with pytest.raises(DiaryError, match="header must be exactly date,headache,intensity"):
        read_diary_csv("day,headache\n2026-03-01,no\n", "d.csv")
    with pytest.raises(DiaryError, match="expected 6 columns, got 5"):
        read_diary_csv(_csv("2026-03-01,no,,,"), "d.csv")
