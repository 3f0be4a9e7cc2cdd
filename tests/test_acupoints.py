"""Specification of the WHO acupoint catalogue and of electrode-site parsing."""

from __future__ import annotations

import dataclasses
from collections import Counter

import pytest
from hypothesis import given
from hypothesis import strategies as st

from stimctl.rules import acupoints
from stimctl.rules.acupoints import (
    MERIDIAN_ALIASES,
    MERIDIANS,
    REGIONS,
    Point,
    Site,
    UnknownPoint,
    catalogue,
    get,
    normalise_code,
    parse_site,
)

WHO_COUNTS = {
    "LU": 11,
    "LI": 20,
    "ST": 45,
    "SP": 21,
    "HT": 9,
    "SI": 19,
    "BL": 67,
    "KI": 27,
    "PC": 9,
    "TE": 23,
    "GB": 44,
    "LR": 14,
    "GV": 28,
    "CV": 24,
}


# --- the catalogue -------------------------------------------------------------------------


def test_catalogue_holds_the_361_who_standard_points() -> None:
    assert len(catalogue()) == 361


def test_meridians_lists_the_who_codes_and_counts_in_who_order() -> None:
    assert MERIDIANS == WHO_COUNTS
    assert list(MERIDIANS) == list(WHO_COUNTS)
    assert sum(MERIDIANS.values()) == 361


def test_each_meridian_has_as_many_points_as_meridians_says() -> None:
    counts = Counter(point.meridian for point in catalogue().values())
    assert counts == Counter(MERIDIANS)


def test_points_are_numbered_contiguously_from_one_on_each_meridian() -> None:
    for meridian, count in MERIDIANS.items():
        numbers = sorted(p.number for p in catalogue().values() if p.meridian == meridian)
        assert numbers == list(range(1, count + 1)), meridian


def test_code_is_meridian_followed_by_number() -> None:
    for code, point in catalogue().items():
        assert code == point.code == f"{point.meridian}{point.number}"


def test_yintang_is_not_gv29_in_the_who_2008_standard() -> None:
    assert "GV29" not in catalogue()
    with pytest.raises(UnknownPoint, match=r"GV has 28 points"):
        parse_site("GV29")


def test_every_region_is_one_of_regions() -> None:
    assert {point.region for point in catalogue().values()} <= set(REGIONS)


def test_regions_lists_the_thirteen_safety_regions() -> None:
    assert REGIONS == (
        "head",
        "face",
        "eye",
        "periorbital",
        "anterior_neck",
        "posterior_neck",
        "chest",
        "abdomen",
        "upper_back",
        "lower_back",
        "sacral",
        "upper_limb",
        "lower_limb",
    )


def test_points_are_midline_exactly_on_gv_and_cv() -> None:
    for point in catalogue().values():
        assert point.midline == (point.meridian in {"GV", "CV"}), point.code
        assert point.bilateral == (not point.midline)


def test_every_point_has_a_capitalised_toneless_pinyin_name() -> None:
    for point in catalogue().values():
        assert point.pinyin.isascii() and point.pinyin.isalpha(), point.code
        assert point.pinyin[0].isupper() and point.pinyin[1:].islower(), point.code


@pytest.mark.parametrize(
    ("code", "pinyin"),
    [
        ("ST36", "Zusanli"),
        ("LR3", "Taichong"),
        ("LI4", "Hegu"),
        ("SP6", "Sanyinjiao"),
        ("PC6", "Neiguan"),
        ("GV20", "Baihui"),
        ("BL43", "Gaohuang"),
        ("GV28", "Yinjiao"),
    ],
)
def test_well_known_points_have_their_standard_names(code: str, pinyin: str) -> None:
    assert get(code).pinyin == pinyin


def test_catalogue_is_read_only_and_loaded_once() -> None:
    assert catalogue() is catalogue()
    with pytest.raises(TypeError):
        catalogue()["XX1"] = get("ST36")  # type: ignore[index]


def test_points_are_immutable() -> None:
    with pytest.raises(dataclasses.FrozenInstanceError):
        get("ST36").region = "head"  # type: ignore[misc]


# --- regions that drive the safety rules -----------------------------------------------------


@pytest.mark.parametrize(
    ("code", "region"),
    [
        ("BL1", "eye"),
        ("ST1", "eye"),
        ("GB1", "periorbital"),
        ("BL2", "periorbital"),
        ("ST2", "periorbital"),
        ("TE23", "periorbital"),
        ("ST9", "anterior_neck"),
        ("LI18", "anterior_neck"),
        ("CV22", "anterior_neck"),
        ("CV23", "anterior_neck"),
        ("GB20", "posterior_neck"),
        ("BL10", "posterior_neck"),
        ("GV15", "posterior_neck"),
        ("GV16", "posterior_neck"),
        ("ST36", "lower_limb"),
        ("LR3", "lower_limb"),
        ("SP6", "lower_limb"),
        ("LI4", "upper_limb"),
        ("PC6", "upper_limb"),
        ("CV4", "abdomen"),
        ("CV17", "chest"),
        ("KI27", "chest"),
        ("BL15", "upper_back"),
        ("BL23", "lower_back"),
        ("BL32", "sacral"),
        ("GV20", "head"),
        ("ST6", "face"),
    ],
)
def test_region_spot_checks(code: str, region: str) -> None:
    assert get(code).region == region


def test_points_over_the_carotid_region_are_anterior_neck() -> None:
    for code in ("ST9", "ST10", "ST11", "LI17", "LI18", "SI16", "SI17", "TE16", "CV22"):
        assert get(code).region == "anterior_neck", code


def test_lower_abdomen_points_are_abdomen() -> None:
    lower = ["CV2", "CV3", "CV4", "CV5", "CV6", "CV7", "ST25", "ST28", "SP13", "KI12"]
    for code in lower:
        assert get(code).region == "abdomen", code


def test_thoracic_chest_points_are_chest() -> None:
    for code in ("LU1", "ST17", "KI22", "PC1", "SP21", "LR14", "CV16", "CV21"):
        assert get(code).region == "chest", code


def test_sacral_foramen_points_are_sacral() -> None:
    for code in ("BL31", "BL32", "BL33", "BL34", "GV2"):
        assert get(code).region == "sacral", code


# --- get ---------------------------------------------------------------------------------------


def test_get_returns_the_point_for_a_canonical_code() -> None:
    point = get("ST36")
    assert point == Point("ST36", "Zusanli", "ST", 36, "lower_limb", False)


@pytest.mark.parametrize("code", ["st36", "LV3", "ST36-L", "XX1", ""])
def test_get_accepts_canonical_codes_only(code: str) -> None:
    with pytest.raises(KeyError):
        get(code)


# --- aliases and spelling ------------------------------------------------------------------


def test_meridian_aliases_map_to_canonical_codes() -> None:
    assert MERIDIAN_ALIASES == {
        "LV": "LR",
        "LIV": "LR",
        "TH": "TE",
        "SJ": "TE",
        "TW": "TE",
        "TB": "TE",
        "DU": "GV",
        "REN": "CV",
        "P": "PC",
        "H": "HT",
        "K": "KI",
        "UB": "BL",
    }
    assert set(MERIDIAN_ALIASES.values()) <= set(MERIDIANS)
    assert not set(MERIDIAN_ALIASES) & set(MERIDIANS)


@pytest.mark.parametrize(
    ("text", "code"),
    [
        ("LV3", "LR3"),
        ("lv3", "LR3"),
        ("LV-3", "LR3"),
        ("Liv3", "LR3"),
        ("LIV-3", "LR3"),
        ("TH5", "TE5"),
        ("SJ5", "TE5"),
        ("TW5", "TE5"),
        ("TB5", "TE5"),
        ("Du20", "GV20"),
        ("Ren12", "CV12"),
        ("P6", "PC6"),
        ("H7", "HT7"),
        ("K3", "KI3"),
        ("UB40", "BL40"),
    ],
)
def test_alias_forms_normalise_to_the_who_code(text: str, code: str) -> None:
    assert normalise_code(text) == code


@pytest.mark.parametrize(
    ("text", "code"),
    [
        ("ST36", "ST36"),
        ("st36", "ST36"),
        ("St-36", "ST36"),
        ("st 36", "ST36"),
        (" ST36 ", "ST36"),
        ("BL01", "BL1"),
        ("ST036", "ST36"),
    ],
)
def test_case_hyphen_space_and_leading_zeros_are_accepted(text: str, code: str) -> None:
    assert normalise_code(text) == code


def test_li_is_large_intestine_and_liv_is_liver() -> None:
    assert normalise_code("LI4") == "LI4"
    assert normalise_code("LIV4") == "LR4"
    assert get(normalise_code("li4")).pinyin == "Hegu"


def test_normalise_code_refuses_a_side() -> None:
    with pytest.raises(UnknownPoint, match=r"has a side.*parse_site"):
        normalise_code("ST36-L")


# --- parse_site ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "label"),
    [
        ("ST36-L", "ST36-L"),
        ("st36-l", "ST36-L"),
        ("ST36-r", "ST36-R"),
        ("ST36L", "ST36-L"),
        ("LV-3-R", "LR3-R"),
        ("Liv3-L", "LR3-L"),
        ("SJ5-R", "TE5-R"),
        ("P6-L", "PC6-L"),
        ("GV20", "GV20"),
        ("du20", "GV20"),
        ("Ren-12", "CV12"),
    ],
)
def test_parse_site_gives_the_canonical_label(text: str, label: str) -> None:
    assert parse_site(text).label == label


def test_site_keeps_point_side_and_original_text() -> None:
    site = parse_site("lv3-r")
    assert site == Site(point=get("LR3"), side="R", text="lv3-r")


def test_midline_site_has_no_side() -> None:
    assert parse_site("GV20").side is None


def test_canonical_input_is_not_flagged_as_normalised() -> None:
    assert parse_site("ST36-L").normalised is False
    assert parse_site("GV20").normalised is False


@pytest.mark.parametrize("text", ["LV3-L", "st36-l", "ST-36-L", "Du20", "BL01-R", " GV20"])
def test_alias_case_or_hyphen_forms_are_flagged_as_normalised(text: str) -> None:
    assert parse_site(text).normalised is True


# --- errors ------------------------------------------------------------------------------------


def test_bilateral_point_without_side_is_refused_with_a_hint() -> None:
    with pytest.raises(UnknownPoint, match=r"^'ST36' is bilateral: add a side, e\.g\. 'ST36-L'$"):
        parse_site("ST36")


def test_bilateral_alias_without_side_names_the_canonical_point() -> None:
    with pytest.raises(UnknownPoint, match=r"'LR3' is bilateral.*got 'lv3'"):
        parse_site("lv3")


def test_midline_point_with_side_is_refused() -> None:
    with pytest.raises(UnknownPoint, match=r"^'GV20' is a midline point: it takes no side"):
        parse_site("GV20-L")


def test_unknown_meridian_is_refused() -> None:
    with pytest.raises(UnknownPoint, match=r"^'XX9' is not a WHO standard point.*'XX'"):
        parse_site("XX9")


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("ST46-L", r"\(ST has 45 points\)"),
        ("LV15-L", r"\(LR has 14 points\)"),
        ("CV25", r"\(CV has 24 points\)"),
        ("ST0-L", r"\(ST has 45 points\)"),
    ],
)
def test_number_out_of_range_is_refused_with_the_meridian_size(text: str, message: str) -> None:
    with pytest.raises(UnknownPoint, match=message):
        parse_site(text)


@pytest.mark.parametrize("text", ["", "   "])
def test_empty_input_is_refused(text: str) -> None:
    with pytest.raises(UnknownPoint, match=r"^empty point code"):
        parse_site(text)


@pytest.mark.parametrize(
    "text", ["ST", "36", "ST36-X", "ST36-L-R", "ST--36", "ST 36 L extra", "ST3.6", "Zusanli"]
)
def test_malformed_input_is_refused(text: str) -> None:
    with pytest.raises(UnknownPoint):
        parse_site(text)


def test_unknown_point_is_a_value_error() -> None:
    assert issubclass(UnknownPoint, ValueError)


# --- property ---------------------------------------------------------------------------------


@given(
    code=st.sampled_from(sorted(catalogue())),
    side=st.sampled_from(["L", "R"]),
    hyphen=st.booleans(),
)
def test_every_point_round_trips_through_parse_site_in_lower_case(
    code: str, side: str, hyphen: bool
) -> None:
    point = get(code)
    number = f"-{point.number}" if hyphen else str(point.number)
    text = f"{point.meridian}{number}".lower()
    if point.bilateral:
        text += f"-{side.lower()}"
    site = parse_site(text)
    assert site.point is point
    assert site.side == (side if point.bilateral else None)
    assert site.normalised is True
    assert parse_site(site.label).label == site.label


def test_every_catalogue_code_is_its_own_canonical_form() -> None:
    for code, point in catalogue().items():
        assert normalise_code(code) == code
        label = f"{code}-R" if point.bilateral else code
        assert parse_site(label).label == label


def test_module_docstring_says_what_it_provides() -> None:
    assert acupoints.__doc__ is not None
    assert "acupoint catalogue" in acupoints.__doc__.splitlines()[0]


def test_parse_site_answers_a_text_asked_again_the_same_way() -> None:
    """parse_site remembers its answers: the same Site again, the same refusal again."""
    assert parse_site("lv3-r") is parse_site("lv3-r")
    messages = []
    for _ in range(2):
        with pytest.raises(UnknownPoint) as refused:
            parse_site("ST36")
        messages.append(str(refused.value))
    assert messages[0] == messages[1]
    assert "bilateral" in messages[0]


_ATTRIBUTES = ("point", "side", "text", "label", "normalised", "region_side")


@pytest.mark.parametrize("spelling", ["{code}{side}", "{lower}-0{number}{side}"])
def test_parsed_sites_are_the_sites_the_constructor_makes(spelling: str) -> None:
    """parse_site builds its Site through the slots' setters: the same in every attribute."""
    for code, point in acupoints.catalogue().items():
        for side in (None,) if point.midline else ("L", "R"):
            text = spelling.format(
                code=code,
                lower=point.meridian.lower(),
                number=point.number,
                side="" if side is None else f"-{side}",
            )
            parsed = parse_site(text)
            made = Site(point=point, side=side, text=text)
            assert [getattr(parsed, a) for a in _ATTRIBUTES] == [
                getattr(made, a) for a in _ATTRIBUTES
            ]
