"""Specification of schedule compilation: profile -> blocks of per-channel device settings."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from stimctl.host.schedule import BlockRow, compile_schedule
from stimctl.rules.profile import Profile, load_profile, parse_profile

LIBRARY = Path(__file__).resolve().parent.parent / "profiles"


def make_profile(*phases: dict[str, Any], amplitudes_ma: tuple[float, ...] = (0.5,)) -> Profile:
    return parse_profile(
        {
            "schema": "stimctl.profile/1",
            "name": "test",
            "waveform": {"shape": "biphasic_symmetric"},
            "channels": [
                {"id": i + 1, "anode": "ST36", "cathode": "LR3", "amplitude_ma": a}
                for i, a in enumerate(amplitudes_ma)
            ],
            "phases": list(phases),
        }
    )


def continuous(duration_s: float, f: float = 2, pw: float = 200, **ramps: float) -> dict:
    return {
        "duration_s": duration_s,
        "mode": "continuous",
        "frequency_hz": f,
        "pulse_width_us": pw,
        **ramps,
    }


def dense(duration_s: float, switch_s: float = 3, f=(2, 100), pw: Any = 200, **ramps) -> dict:
    return {
        "duration_s": duration_s,
        "mode": "dense_disperse",
        "frequency_hz": list(f),
        "pulse_width_us": list(pw) if isinstance(pw, tuple) else pw,
        "switch_s": switch_s,
        **ramps,
    }


def intermittent(duration_s: float, on_s: float, off_s: float, f: float = 2, **ramps) -> dict:
    return {
        "duration_s": duration_s,
        "mode": "intermittent",
        "frequency_hz": f,
        "pulse_width_us": 200,
        "on_s": on_s,
        "off_s": off_s,
        **ramps,
    }


def boundaries(schedule) -> set[int]:
    return set(schedule.start_ms.tolist()) | {schedule.total_ms}


# --- reference figures -------------------------------------------------------------------------


def test_2hz_for_30_minutes_without_ramps_expects_3600_pulses_per_channel():
    schedule = compile_schedule(make_profile(continuous(1800), amplitudes_ma=(0.5, 0.5)))
    assert schedule.expected_pulses().tolist() == [3600, 3600]


def test_a_pulse_that_falls_at_zero_amplitude_is_not_expected():
    # 3600 accumulator wraps; the last one (t = 1800 s) falls in the final block of the
    # ramp-down, whose amplitude is 0: 3599 pulses are delivered.
    schedule = compile_schedule(
        make_profile(continuous(1800, ramp_up_s=10, ramp_down_s=10), amplitudes_ma=(0.5, 0.5))
    )
    assert schedule.amplitude_ua[-1].tolist() == [0, 0]
    assert schedule.expected_pulses().tolist() == [3599, 3599]


def test_dense_disperse_2_100hz_3s_switch_for_30_minutes_expects_91800_pulses():
    schedule = compile_schedule(make_profile(dense(1800, switch_s=3)))
    assert schedule.expected_pulses().tolist() == [91_800]


def test_total_duration_equals_the_profile_duration():
    profile = make_profile(continuous(12.5), dense(7.25, switch_s=1.5), intermittent(3, 1, 0.5))
    assert compile_schedule(profile).total_ms == 22_750


# --- block layout ------------------------------------------------------------------------------


def test_blocks_are_block_ms_long_and_back_to_back():
    schedule = compile_schedule(make_profile(continuous(1)), block_ms=20)
    assert schedule.n_blocks == 50
    assert set(schedule.duration_ms.tolist()) == {20}
    assert np.array_equal(schedule.start_ms, np.arange(0, 1000, 20))


def test_a_phase_whose_length_is_not_a_multiple_of_block_ms_ends_with_a_shorter_block():
    schedule = compile_schedule(make_profile(continuous(0.05), continuous(0.05)), block_ms=20)
    assert schedule.duration_ms.tolist() == [20, 20, 10, 20, 20, 10]
    assert schedule.phase_index.tolist() == [0, 0, 0, 1, 1, 1]


def test_blocks_are_cut_at_dense_disperse_switches():
    schedule = compile_schedule(make_profile(dense(0.1, switch_s=0.03)), block_ms=20)
    assert {30, 60, 90} <= boundaries(schedule)
    assert schedule.duration_ms.tolist() == [20, 10, 20, 10, 20, 10, 10]


def test_blocks_are_cut_at_intermittent_on_and_off_edges():
    schedule = compile_schedule(make_profile(intermittent(0.2, on_s=0.05, off_s=0.03)))
    assert {50, 80, 130, 160, 200} <= boundaries(schedule)


def test_arrays_have_the_protocol_dtypes_and_are_read_only():
    schedule = compile_schedule(make_profile(continuous(1), amplitudes_ma=(1, 2, 3)))
    assert schedule.amplitude_ua.shape == (schedule.n_blocks, 3)
    for name in ("duration_ms", "amplitude_ua", "frequency_dhz", "pulse_width_us"):
        assert getattr(schedule, name).dtype == np.uint16
    assert schedule.start_ms.dtype == np.int64
    assert schedule.phase_index.dtype == np.int16
    with pytest.raises(ValueError):
        schedule.amplitude_ua[0, 0] = 1


# --- settings ----------------------------------------------------------------------------------


def test_frequency_is_in_decihertz_and_pulse_width_in_microseconds():
    schedule = compile_schedule(make_profile(continuous(1, f=2.5, pw=350)))
    assert set(schedule.frequency_dhz.tolist()) == {25}
    assert set(schedule.pulse_width_us.tolist()) == {350}


def test_dense_disperse_starts_at_the_first_frequency_and_alternates():
    schedule = compile_schedule(make_profile(dense(12, switch_s=3)))
    seconds = [schedule.frequency_dhz[schedule.block_at(t)] for t in (0, 3000, 6000, 9000)]
    assert seconds == [20, 1000, 20, 1000]


def test_a_pulse_width_pair_follows_the_dense_disperse_frequency():
    schedule = compile_schedule(make_profile(dense(6, switch_s=3, pw=(600, 200))))
    pairs = set(zip(schedule.frequency_dhz.tolist(), schedule.pulse_width_us.tolist(), strict=True))
    assert pairs == {(20, 600), (1000, 200)}


def test_intermittent_off_windows_deliver_nothing():
    schedule = compile_schedule(make_profile(intermittent(10, on_s=2, off_s=3)))
    off = (schedule.start_ms % 5000) >= 2000
    assert off.any()
    assert not schedule.frequency_dhz[off].any()
    assert not schedule.amplitude_ua[off].any()
    assert schedule.frequency_dhz[~off].all()


def test_each_channel_column_carries_its_own_plateau_in_profile_order():
    schedule = compile_schedule(make_profile(continuous(1), amplitudes_ma=(0.5, 1.2)))
    assert schedule.channel_ids == (1, 2)
    assert schedule.amplitude_ua[0].tolist() == [500, 1200]


def test_amplitude_is_rounded_down_to_the_device_step():
    schedule = compile_schedule(
        make_profile(continuous(1), amplitudes_ma=(0.537,)), amplitude_step_ua=10
    )
    assert set(schedule.amplitude_ua[:, 0].tolist()) == {530}


def test_plateau_amplitude_is_the_same_in_every_phase():
    schedule = compile_schedule(make_profile(continuous(1), dense(6), intermittent(2, 1, 1)))
    for phase in range(3):
        amplitudes = schedule.amplitude_ua[schedule.phase_index == phase, 0]
        assert amplitudes.max() == 500  # an on-window's edges ramp to the same plateau


# --- ramps -------------------------------------------------------------------------------------


def test_without_a_ramp_the_plateau_starts_at_once():
    schedule = compile_schedule(make_profile(continuous(1)))
    assert schedule.amplitude_ua[0, 0] == 500


def test_ramp_up_takes_the_envelope_at_each_block_start_from_zero():
    schedule = compile_schedule(make_profile(continuous(2, ramp_up_s=0.1)), block_ms=20)
    assert schedule.amplitude_ua[:6, 0].tolist() == [0, 100, 200, 300, 400, 500]


def test_ramp_down_takes_the_envelope_at_each_block_end_down_to_zero():
    schedule = compile_schedule(make_profile(continuous(2, ramp_down_s=0.1)), block_ms=20)
    assert schedule.amplitude_ua[-6:, 0].tolist() == [500, 400, 300, 200, 100, 0]


def test_each_intermittent_on_window_ramps_up_from_zero_and_down_to_zero():
    schedule = compile_schedule(make_profile(intermittent(10, on_s=2, off_s=3, window_ramp_s=0.5)))
    for window_start in (0, 5000):
        first = schedule.block_at(window_start)
        last = schedule.block_at(window_start + 1999)
        assert schedule.amplitude_ua[first, 0] == 0
        assert schedule.amplitude_ua[last, 0] == 0
        assert schedule.amplitude_ua[schedule.block_at(window_start + 1000), 0] == 500


def test_an_on_window_cut_by_the_phase_end_ramps_down_to_the_phase_end():
    schedule = compile_schedule(make_profile(intermittent(6, on_s=2, off_s=3, window_ramp_s=0.5)))
    assert schedule.total_ms == 6000
    assert schedule.amplitude_ua[-1, 0] == 0
    assert schedule.amplitude_ua[schedule.block_at(5400), 0] > 0


def test_phase_ramps_of_an_intermittent_phase_span_the_phase_not_each_window():
    """Issue 10 item 6: 5 s on / 5 s off with a 10 s phase ramp (refused before): the first
    window rises with the phase ramp, the second one reaches the plateau; ramp_down_s ends the
    phase at zero."""
    profile = make_profile(
        intermittent(30, on_s=5, off_s=5, ramp_up_s=10, ramp_down_s=10, window_ramp_s=0.25)
    )
    schedule = compile_schedule(profile)
    at = [int(schedule.amplitude_ua[schedule.block_at(t), 0]) for t in (2500, 4700, 12_500)]
    assert at[0] == 120  # 0.5 mA x 2.48 s / 10 s: the phase ramp, not the window's
    assert at[1] <= 240  # still under the phase ramp at the window's end
    assert at[2] == 500  # the second window is past the phase ramp
    assert int(schedule.amplitude_ua[schedule.block_at(22_500), 0]) == 370  # 7.5 s / 10 s down


def test_on_window_edges_default_to_the_ramp_rate_max():
    """Without window_ramp_s, each edge takes the strongest plateau / ramp-rate-max."""
    schedule = compile_schedule(
        make_profile(intermittent(20, on_s=10, off_s=10), amplitudes_ma=(1,))
    )
    rising = schedule.amplitude_ua[: schedule.block_at(600), 0].tolist()
    assert rising[0] == 0 and rising[-1] == 1000  # 1 mA at 2 mA/s: 0.5 s
    assert max(np.diff(rising)) <= 2 * 20 + 10  # 2 uA/ms over a 20 ms block, one step
    slow = compile_schedule(
        make_profile(intermittent(20, on_s=10, off_s=10), amplitudes_ma=(1,)),
        max_ramp_rate_ma_per_s=0.5,
    )
    assert slow.amplitude_ua[slow.block_at(1000), 0] == 500  # 2 s edges at a site's 0.5 mA/s


def test_the_library_intermittent_profile_delivers_what_it_did():
    """Before window_ramp_s, ramp_up_s/ramp_down_s (2 s) shaped every on-window; the library
    profile now says window_ramp_s = 2 and delivers the same blocks: each 10 s window a 2 s
    trapezoid, 1 mA plateau, nothing in the 10 s off-windows."""
    profile = load_profile(LIBRARY / "intermittent-10hz-st36-st40.toml")
    schedule = compile_schedule(profile)
    pos = (schedule.start_ms % 20_000).astype(float)
    end = pos + schedule.duration_ms
    trapezoid = np.clip(np.minimum(pos / 2000, (10_000 - end) / 2000), 0, 1) * (pos < 10_000)
    expected = np.floor(np.round(trapezoid * 1000, 6) / 10) * 10
    assert schedule.amplitude_ua[:, 0].tolist() == expected.astype(int).tolist()


# --- access ------------------------------------------------------------------------------------


def test_phase_at_names_the_phase_running_at_a_time():
    schedule = compile_schedule(make_profile(continuous(1), dense(6), continuous(1)))
    assert [schedule.phase_at(t) for t in (0, 999, 1000, 6999, 7000, 7999)] == [0, 0, 1, 1, 2, 2]


def test_rows_give_plain_ints_and_flag_only_the_final_block_last():
    schedule = compile_schedule(make_profile(continuous(0.06)), block_ms=20)
    rows = list(schedule.rows())
    assert rows[0] == BlockRow(0, 20, (500,), 20, 200, 0, False)
    assert [r.last for r in rows] == [False, False, True]
    assert list(schedule.rows(1, 2)) == rows[1:2]


def test_scaled_changes_one_channel_and_rounds_down_to_the_step():
    schedule = compile_schedule(make_profile(continuous(1), amplitudes_ma=(0.5, 1.0)))
    half = schedule.scaled(2, 0.333)
    assert half.amplitude_ua[0].tolist() == [500, 330]
    assert schedule.amplitude_ua[0].tolist() == [500, 1000]


def test_a_frequency_beyond_the_protocol_range_is_refused():
    with pytest.raises(ValueError, match="frequency_hz"):
        compile_schedule(make_profile(continuous(1, f=7000)))


def test_a_switch_time_below_one_millisecond_is_refused():
    with pytest.raises(ValueError, match="switch_s"):
        compile_schedule(make_profile(dense(1, switch_s=0.0005)))


# --- properties --------------------------------------------------------------------------------


@st.composite
def phases(draw: st.DrawFn) -> dict[str, Any]:
    mode = draw(st.sampled_from(["continuous", "dense_disperse", "intermittent"]))
    duration_ms = draw(st.integers(1, 3000))
    f = st.sampled_from([0.5, 1, 2, 3.3, 10, 47.5, 100, 250])
    phase: dict[str, Any] = {
        "duration_s": duration_ms / 1000,
        "mode": mode,
        "pulse_width_us": draw(st.sampled_from([100, 200, 500])),
    }
    if mode == "dense_disperse":
        phase |= {"frequency_hz": [draw(f), draw(f)], "switch_s": draw(st.integers(1, 900)) / 1000}
    else:
        phase["frequency_hz"] = draw(f)
    if mode == "intermittent":
        on_ms = draw(st.integers(1, 900))
        phase |= {"on_s": on_ms / 1000, "off_s": draw(st.integers(1, 900)) / 1000}
        if on_ms >= 2 and draw(st.booleans()):
            phase["window_ramp_s"] = draw(st.integers(1, on_ms // 2)) / 1000
    up = draw(st.integers(0, duration_ms))
    down = draw(st.integers(0, duration_ms - up))
    return phase | {"ramp_up_s": up / 1000, "ramp_down_s": down / 1000}


profiles = st.builds(
    lambda ph, amps: make_profile(*ph, amplitudes_ma=tuple(amps)),
    st.lists(phases(), min_size=1, max_size=3),
    st.lists(
        st.floats(0.01, 20, allow_nan=False).map(lambda a: round(a, 3)), min_size=1, max_size=3
    ),
)


def edges_ms(profile: Profile) -> tuple[list[int], set[int], list[int]]:
    """Phase starts, every phase/switch/window edge, and on-window starts (integer-ms profiles)."""
    starts, edges, windows, t = [], {0}, [], 0
    for phase in profile.phases:
        length = round(phase.duration_s * 1000)
        starts.append(t)
        if phase.mode == "dense_disperse":
            step = round(phase.switch_s * 1000)
            edges |= {t + k for k in range(0, length, step)}
        elif phase.mode == "intermittent":
            on, period = round(phase.on_s * 1000), round((phase.on_s + phase.off_s) * 1000)
            for k in range(0, length, period):
                windows.append(t + k)
                edges |= {t + k} | ({t + k + on} if k + on < length else set())
        t += length
        edges.add(t)
    return starts, edges, windows


def reference_pulses(schedule) -> list[int]:
    """The device accumulator, tick by tick (docs/PROTOCOL.md, Output and timing): a pulse is
    delivered on a channel when the accumulator wraps and that channel's amplitude is above 0."""
    acc = 0
    pulses = [0] * len(schedule.channel_ids)
    for row in schedule.rows():
        for _ in range(row.duration_ms):
            acc += row.frequency_dhz * 1000
            while acc >= 10_000_000:
                acc -= 10_000_000
                for c, amplitude in enumerate(row.amplitude_ua):
                    pulses[c] += amplitude > 0
    return pulses


@settings(max_examples=150, deadline=None)
@given(profiles)
def test_amplitudes_never_exceed_the_prescription(profile):
    schedule = compile_schedule(profile)
    plateau = np.array([c.amplitude_ma * 1000 for c in profile.channels])
    assert (schedule.amplitude_ua <= plateau + 1e-6).all()


@settings(max_examples=150, deadline=None)
@given(profiles)
def test_every_ramped_up_phase_and_every_on_window_starts_at_zero(profile):
    schedule = compile_schedule(profile)
    starts, _, windows = edges_ms(profile)
    for phase, start in zip(profile.phases, starts, strict=True):
        if phase.ramp_up_s > 0:
            assert not schedule.amplitude_ua[schedule.block_at(start)].any()
    for t in windows:
        assert not schedule.amplitude_ua[schedule.block_at(t)].any()


@settings(max_examples=150, deadline=None)
@given(profiles)
def test_total_duration_is_the_profiles_and_blocks_are_contiguous(profile):
    schedule = compile_schedule(profile)
    assert schedule.total_ms == round(profile.duration_s * 1000)
    assert np.array_equal(schedule.start_ms[1:], schedule.end_ms[:-1])
    assert (schedule.duration_ms > 0).all() and (schedule.duration_ms <= 20).all()


@settings(max_examples=150, deadline=None)
@given(profiles)
def test_block_boundaries_include_every_phase_switch_and_window_edge(profile):
    schedule = compile_schedule(profile)
    _, edges, _ = edges_ms(profile)
    assert edges <= boundaries(schedule)


@settings(max_examples=60, deadline=None)
@given(profiles)
def test_expected_pulses_match_a_tick_by_tick_accumulator(profile):
    schedule = compile_schedule(profile)
    assert schedule.expected_pulses().tolist() == reference_pulses(schedule)
