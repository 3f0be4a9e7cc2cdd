"""`stimctl validate`: exit codes, human output, and the documented --json format."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from stimctl.cli import main

ROOT = Path(__file__).parent.parent
PROFILES = ROOT / "profiles"
BAD = ROOT / "tests" / "bad_profiles"
SEED = PROFILES / "seed-st36-lr3.toml"


def _run(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str, str]:
    code = main(["validate", *map(str, args)])
    out, err = capsys.readouterr()
    return code, out, err


def test_library_folder_exits_0(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = _run(capsys, PROFILES)
    assert code == 0
    assert out.count("\n") == len(list(PROFILES.glob("*.toml")))


def test_profile_with_an_error_exits_1(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = _run(capsys, BAD / "amplitude-max.toml")
    assert code == 1
    assert "amplitude-max at channels[0].amplitude_ma: actual 10.5 vs limit 10" in out


def test_unparsable_file_exits_1(capsys: pytest.CaptureFixture[str]) -> None:
    assert _run(capsys, BAD / "malformed-toml.toml")[0] == 1


def test_warnings_alone_exit_0(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = _run(capsys, BAD / "point-alias-lv3.toml")
    assert code == 0
    assert "warning point-alias at channels[0].cathode" in out


def test_one_bad_profile_among_good_ones_exits_1(capsys: pytest.CaptureFixture[str]) -> None:
    assert _run(capsys, SEED, BAD / "ramp-required-first-phase.toml")[0] == 1


def test_missing_path_exits_2(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    code, _, err = _run(capsys, SEED, tmp_path / "nope.toml")
    assert code == 2
    assert "nope.toml" in err


def test_folder_without_profiles_exits_2(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    assert _run(capsys, tmp_path)[0] == 2


def test_unknown_patient_flag_exits_2(capsys: pytest.CaptureFixture[str]) -> None:
    code, _, err = _run(capsys, "--patient", "pacemaker", SEED)
    assert code == 2
    assert "pacemaker" in err


def test_bad_envelope_file_exits_2(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    envelope = tmp_path / "site.toml"
    envelope.write_text("max_amplitude = 5\n")
    assert _run(capsys, "--envelope", envelope, SEED)[0] == 2


def test_no_path_is_a_usage_error(capsys: pytest.CaptureFixture[str]) -> None:
    assert _run(capsys)[0] == 2


def test_patient_flags_accept_a_comma_list(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = _run(capsys, "--patient", "epilepsy,implanted-device", SEED)
    assert code == 1
    assert "patient-implanted-device" in out and "patient-epilepsy" in out


def test_site_envelope_can_refuse_a_library_profile(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    envelope = tmp_path / "site.toml"
    envelope.write_text("max_session_s = 600\n")
    code, out, _ = _run(capsys, "--envelope", envelope, SEED)
    assert code == 1
    assert "duration-max at phases" in out


def test_folders_are_searched_recursively_for_toml_and_json(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    (tmp_path / "a" / "b").mkdir(parents=True)
    shutil.copy(SEED, tmp_path / "a" / "seed.toml")
    shutil.copy(BAD / "json-point-alias.json", tmp_path / "a" / "b" / "alias.json")
    (tmp_path / "a" / "notes.txt").write_text("not a profile")
    code, out, _ = _run(capsys, "--json", tmp_path)
    assert code == 0
    paths = [Path(r["path"]).relative_to(tmp_path) for r in json.loads(out)]
    assert paths == [Path("a/b/alias.json"), Path("a/seed.toml")]  # sorted by path


def test_json_output_is_an_array_of_path_ok_violations(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = _run(capsys, "--json", SEED, BAD / "amplitude-max.toml")
    reports = json.loads(out)
    assert code == 1
    assert [list(r) for r in reports] == [["path", "ok", "violations"]] * 2
    assert [r["ok"] for r in reports] == [True, False]


def test_json_violation_keys_are_in_documented_order(capsys: pytest.CaptureFixture[str]) -> None:
    _, out, _ = _run(capsys, "--json", BAD / "amplitude-max.toml")
    [violation] = json.loads(out)[0]["violations"]
    assert list(violation) == ["code", "severity", "loc", "message", "limit", "actual", "source"]
    assert (violation["limit"], violation["actual"]) == (10.0, 10.5)


def test_json_output_is_strict_json_even_for_infinite_figures(
    capsys: pytest.CaptureFixture[str],
) -> None:
    _, out, _ = _run(capsys, "--json", BAD / "huge-amplitude-1e308.toml")
    reports = json.loads(out, parse_constant=lambda c: pytest.fail(f"non-JSON constant {c}"))
    assert "inf" in {v["actual"] for v in reports[0]["violations"]}


def test_json_output_is_byte_identical_across_runs(capsys: pytest.CaptureFixture[str]) -> None:
    first = _run(capsys, "--json", BAD)[1]
    assert _run(capsys, "--json", BAD)[1] == first


def test_a_path_given_twice_is_validated_once(capsys: pytest.CaptureFixture[str]) -> None:
    _, out, _ = _run(capsys, "--json", SEED, SEED)
    assert len(json.loads(out)) == 1


def test_benchmark_measure_validates_each_generated_profile_once() -> None:
    from hil.benchmarks.validate import measure

    result = measure(40)
    assert result["files"]["distinct"] == 40
    assert 0 < result["parsed"]["distinct"] < 40  # the profiles that parse
    assert result["validate_per_s"] > 0
    assert result["validate_parsed_per_s"] > 0
