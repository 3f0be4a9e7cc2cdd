"""What is validated is what is sent: device resolution, runtime guard, channel ids, JSON = TOML."""

from __future__ import annotations

import json
import math
import threading
import tomllib
from pathlib import Path
from types import SimpleNamespace

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from stimctl import SafetyEnvelope, validate_profile
from stimctl.cli import main
from stimctl.host.errors import InterlockError
from stimctl.host.guard import check_block
from stimctl.host.plateau import check_plateau
from stimctl.host.schedule import compile_schedule
from stimctl.host.session import Session, SessionContext
from stimctl.protocol import Block, ChannelSetting
from stimctl.rules.profile import Profile, parse_profile
from stimctl.rules.validation import validate_bytes

ROOT = Path(__file__).resolve().parent.parent
PROFILES = sorted((ROOT / "profiles").glob("*.toml"))
DEMO = ROOT / "profiles" / "short-demo.toml"


def _data(amplitude_ma: float = 0.5, **phase: object) -> dict:
    return {
        "schema": "stimctl.profile/1",
        "name": "t",
        "needle": {"diameter_mm": 0.5, "insertion_mm": 75},
        "waveform": {"shape": "biphasic_symmetric"},
        "channels": [
            {"id": 1, "anode": "ST36-L", "cathode": "LR3-L", "amplitude_ma": amplitude_ma}
        ],
        "phases": [
            {
                "duration_s": 60,
                "mode": "continuous",
                "frequency_hz": 2,
                "pulse_width_us": 200,
                "ramp_up_s": 10,
                "ramp_down_s": 10,
                **phase,
            }
        ],
    }


# --- device resolution ---------------------------------------------------------------------------


def test_a_pulse_width_the_device_would_round_up_is_refused() -> None:
    """9.99 mA x 600.6 us is 5.999 uC as written but 9990 uA x 601 us = 6.004 uC as sent."""
    report = validate_profile(parse_profile(_data(9.99, pulse_width_us=600.6)))
    assert [(v.code, v.loc) for v in report.errors] == [
        ("device-resolution", "phases[0].pulse_width_us")
    ]


def test_the_representable_neighbour_is_accepted_and_sent_as_written() -> None:
    profile = parse_profile(_data(9.99, pulse_width_us=600))
    assert validate_profile(profile).ok
    schedule = compile_schedule(profile)
    assert set(schedule.pulse_width_us.tolist()) == {600}
    assert int(schedule.amplitude_ua.max()) * 600 / 1e6 <= 6.0


@pytest.mark.parametrize(
    ("field", "value"),
    [("frequency_hz", 2.05), ("frequency_hz", 0.05 + 2)],
)
def test_a_frequency_off_the_01_hz_grid_is_refused(field: str, value: float) -> None:
    report = validate_profile(parse_profile(_data(**{field: value})))
    assert {(v.code, v.loc) for v in report.errors} == {("device-resolution", f"phases[0].{field}")}


def test_a_frequency_on_the_grid_despite_float_noise_is_accepted() -> None:
    assert validate_profile(parse_profile(_data(frequency_hz=0.1 * 23))).ok  # 2.3000000000000003


def test_a_dense_disperse_switch_under_a_millisecond_is_refused() -> None:
    data = _data(mode="dense_disperse", frequency_hz=[2, 100], switch_s=0.0005)
    report = validate_profile(parse_profile(data))
    assert [(v.code, v.loc) for v in report.errors] == [("device-resolution", "phases[0].switch_s")]


def test_an_amplitude_beyond_the_protocol_field_is_refused_under_a_wide_envelope() -> None:
    wide = SafetyEnvelope(max_amplitude_ma=100.0, max_phase_charge_uc=100.0)
    data = _data(70.0, duration_s=100, ramp_up_s=40, ramp_down_s=40)
    report = validate_profile(parse_profile(data), wide)
    assert ("device-resolution", "channels[0].amplitude_ma") in {
        (v.code, v.loc) for v in report.errors
    }


_representable = st.fixed_dictionaries(
    {
        "amplitude": st.integers(10, 10_000).map(lambda ua: ua / 1000),
        "pw": st.integers(50, 1000),
        "f": st.integers(10, 2000).map(lambda dhz: dhz / 10),
        "shape": st.sampled_from(["biphasic_symmetric", "biphasic_asymmetric"]),
    }
)


@settings(max_examples=40, deadline=None)
@given(_representable)
def test_what_validation_accepts_is_sent_with_no_larger_figures(p: dict) -> None:
    data = _data(p["amplitude"], pulse_width_us=p["pw"], frequency_hz=p["f"], duration_s=20,
                 ramp_up_s=5, ramp_down_s=5)  # fmt: skip
    data["waveform"]["shape"] = p["shape"]
    profile = parse_profile(data)
    if not validate_profile(profile).ok:
        return
    schedule = compile_schedule(profile)
    on = schedule.frequency_dhz > 0
    assert set(schedule.pulse_width_us.tolist()) == {p["pw"]}
    assert {f / 10 for f in schedule.frequency_dhz[on].tolist()} == {p["f"]}
    sent_ma = schedule.amplitude_ua.max() / 1000
    assert sent_ma <= p["amplitude"]
    assert sent_ma * schedule.pulse_width_us.max() / 1000 <= 6.0 + 1e-12


# --- the host runtime guard ----------------------------------------------------------------------


def _block(*settings: tuple[int, int, int]) -> Block:
    return Block(index=7, duration_ms=20, channels=tuple(ChannelSetting(*s) for s in settings))


def test_the_runtime_guard_refuses_a_block_above_the_phase_charge_limit() -> None:
    """The issue's 9990 uA x 601 us = 6.004 uC, had it reached the stream."""
    why = check_block(_block((9990, 20, 601)), SafetyEnvelope(), {1: 1000}, {})
    assert why is not None and "6.00399 uC per phase above max_phase_charge_uc 6" in why


def test_the_runtime_guard_counts_the_live_gain_in_the_charge() -> None:
    block = _block((5000, 20, 1000))
    assert check_block(block, SafetyEnvelope(), {1: 1000}, {}) is None
    assert "uC per phase" in (check_block(block, SafetyEnvelope(), {1: 1300}, {}) or "")


def test_the_runtime_guard_sums_channels_sharing_a_site() -> None:
    block = _block((3500, 20, 1000), (3500, 20, 1000))
    gains = {1: 1000, 2: 1000}
    assert check_block(block, SafetyEnvelope(), gains, {}) is None
    why = check_block(block, SafetyEnvelope(), gains, {"ST36-L": (1, 2)})
    assert why == "block 7 site ST36-L (channels 1, 2): 7 uC per phase above max_phase_charge_uc 6"


# --- channel ids and the device ----------------------------------------------------------------


def test_a_channel_id_above_the_device_channel_count_is_refused() -> None:
    data = _data()
    data["channels"][0]["id"] = 6
    report = validate_profile(parse_profile(data), SafetyEnvelope(max_channels=4))
    [error] = report.errors
    assert (error.code, error.loc, error.limit, error.actual) == (
        "channel-count-max",
        "channels[0].id",
        4,
        6,
    )


def test_run_refuses_a_channel_the_simulator_does_not_have_at_load(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    bad = tmp_path / "channel-6.toml"
    bad.write_text(DEMO.read_text().replace("id = 2", "id = 6", 1))
    code = main(["run", str(bad), "--yes", "--speed", "max", "--record", str(tmp_path / "r.jsonl"),
                 "--sim", "channels=4"])  # fmt: skip
    err = capsys.readouterr().err
    assert code == 1 and "Traceback" not in err
    assert "channel-count-max at channels[1].id" in err
    lines = [json.loads(line) for line in (tmp_path / "r.jsonl").read_text().splitlines()]
    assert "refused" in {line["kind"] for line in lines}  # refused at LOAD, before any command
    commands = {line["data"]["name"] for line in lines if line["kind"] == "command"}
    assert commands == {"GOODBYE"}  # no IMPEDANCE_CHECK, ARM or START


def test_run_refuses_a_switch_under_the_device_tick_without_a_traceback(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    bad = tmp_path / "fast-switch.toml"
    bad.write_text(
        DEMO.read_text()
        .replace('mode = "continuous"', 'mode = "dense_disperse"')
        .replace("frequency_hz = 10", "frequency_hz = [2, 100]\nswitch_s = 0.0005")
    )
    code = main(["run", str(bad), "--yes", "--speed", "max", "--record", str(tmp_path / "r.jsonl")])
    err = capsys.readouterr().err
    assert code == 1 and "Traceback" not in err
    assert "device-resolution at phases[0].switch_s" in err


# --- JSON accepts exactly what TOML accepts -----------------------------------------------------


def test_json_with_a_duplicate_key_is_refused_at_the_key() -> None:
    raw = json.dumps(_data()).replace(
        '"amplitude_ma": 0.5', '"amplitude_ma": 0.5, "amplitude_ma": 9'
    )
    report = validate_bytes(raw.encode(), "json")
    assert [(v.code, v.loc) for v in report.violations] == [("schema", "channels[0].amplitude_ma")]
    assert "more than once" in report.violations[0].message


def test_toml_with_a_duplicate_key_is_refused_too() -> None:
    raw = DEMO.read_text().replace("amplitude_ma = 0.5", "amplitude_ma = 0.5\namplitude_ma = 9", 1)
    assert validate_bytes(raw.encode(), "toml").codes == {"schema"}


def test_json_null_is_refused_where_toml_has_no_way_to_write_it() -> None:
    data = _data()
    data["phases"][0]["switch_s"] = None  # "no switch" as null: TOML cannot say this
    report = validate_bytes(json.dumps(data).encode(), "json")
    assert [(v.code, v.loc) for v in report.violations] == [("schema", "phases[0].switch_s")]


@pytest.mark.parametrize(("toml_value", "json_value"), [("nan", "NaN"), ("inf", "Infinity"),
                                                        ("-inf", "-Infinity")])  # fmt: skip
def test_nan_and_infinities_are_refused_alike_in_both(toml_value: str, json_value: str) -> None:
    toml_raw = DEMO.read_text().replace("amplitude_ma = 0.5", f"amplitude_ma = {toml_value}", 1)
    json_raw = json.dumps(_data()).replace('"amplitude_ma": 0.5', f'"amplitude_ma": {json_value}')
    found = [
        {(v.code, v.loc) for v in validate_bytes(raw.encode(), fmt).violations}
        for raw, fmt in ((toml_raw, "toml"), (json_raw, "json"))
    ]
    assert found[0] == found[1] == {("schema", "channels[0].amplitude_ma")}


def test_a_date_is_refused_in_toml_as_its_string_is_in_json() -> None:
    toml_raw = DEMO.read_text().replace("duration_s = 60", "duration_s = 2024-01-01", 1)
    data = tomllib.loads(DEMO.read_text())
    data["phases"][0]["duration_s"] = "2024-01-01"
    found = [
        {(v.code, v.loc) for v in validate_bytes(raw.encode(), fmt).violations}
        for raw, fmt in ((toml_raw, "toml"), (json.dumps(data), "json"))
    ]
    assert found[0] == found[1] == {("schema", "phases[0].duration_s")}


@pytest.mark.parametrize("path", PROFILES, ids=lambda p: p.name)
def test_every_library_profile_reads_the_same_as_json(path: Path) -> None:
    as_toml = validate_bytes(path.read_bytes(), "toml")
    as_json = validate_bytes(json.dumps(tomllib.loads(path.read_text())).encode(), "json")
    assert as_toml.profile == as_json.profile and as_toml.violations == as_json.violations
    assert not math.isnan(as_json.profile.duration_s)  # type: ignore[union-attr]


# --- live changes see the shared sites too ------------------------------------------------------


def _two_on_st36(amplitude_ma: float) -> Profile:
    data = _data(amplitude_ma)
    data["channels"].append(
        {"id": 2, "anode": "ST36-L", "cathode": "SP6-L", "amplitude_ma": amplitude_ma}
    )
    return parse_profile(data)


def test_adjust_is_refused_when_the_shared_needle_would_pass_the_limit() -> None:
    profile = _two_on_st36(4.95)
    check_plateau(profile, 1, 5.05, validate_profile)  # 10.0 mA at ST36-L: at the limit
    with pytest.raises(InterlockError, match=r"amplitude-max at site\[ST36-L\]\.channels\[0,1\]"):
        check_plateau(profile, 1, 5.2, validate_profile)


def test_the_session_guard_knows_the_loaded_profile_s_shared_sites() -> None:
    profile = _two_on_st36(3.5)
    lock = threading.RLock()
    connection = SimpleNamespace(envelope=SafetyEnvelope())
    ctx = SessionContext(lock, threading.Condition(lock), None, connection, None, None)  # type: ignore[arg-type]
    session = Session(ctx)
    session.load(profile, validate_profile(profile), compile_schedule(profile))
    for ch in (1, 2):  # both at their prescription (gain 1000 permille), as after ARM
        session.adjusted(ch, 3.5, 1000, at=0.0)
    assert session.shared_sites == {"ST36-L": (1, 2)}
    block = _block((3500, 20, 1000), (3500, 20, 1000))
    why = session.guard(block.index, block.channels)
    assert why is not None and "site ST36-L (channels 1, 2): 7 uC per phase" in why
