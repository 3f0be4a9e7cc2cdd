"""Conformance: interlock order enforced by the device; the output stage (ramps, PAUSE, STOP)."""

from __future__ import annotations

import itertools
import time
from typing import Any

import pytest

from hil.benchconfig import BenchConfig
from hil.devicelink import DeviceLink
from stimctl.protocol import (
    Arm,
    ClearFault,
    DeviceInfo,
    Disarm,
    Fault,
    ImpedanceStatus,
    Nak,
    NakReason,
    Pause,
    Resume,
    Start,
    State,
    Stop,
    Telemetry,
)

AMPLITUDE_UA = 500


def _outputs(events: list[dict[str, Any]], channel: int = 1) -> list[dict[str, Any]]:
    return [e for e in events if e["event"] == "output" and e["channel"] == channel]


def _max_rise_per_ms(outputs: list[dict[str, Any]]) -> float:
    """The steepest rise between consecutive output changes (uA per ms of device time)."""
    worst = 0.0
    for a, b in itertools.pairwise(outputs):
        rise = b["amplitude_ua"] - a["amplitude_ua"]
        if rise > 0:
            worst = max(worst, rise / max(1, b["device_ms"] - a["device_ms"]))
    return worst


def _first_step_max(info: DeviceInfo) -> int:
    """The first output change after START/RESUME: one slew step (whole DAC steps) at most."""
    return max(info.max_slew_ua_per_ms, info.amplitude_step_ua)


def _forget_impedance_checks(link: DeviceLink) -> None:
    """CLEAR_FAULT invalidates every impedance check (checks of earlier tests stay valid)."""
    link.enter(State.ESTOP)
    link.command(ClearFault())
    link.wait_state(State.IDLE)


def test_arm_without_an_impedance_check_is_refused(device_link: DeviceLink) -> None:
    _forget_impedance_checks(device_link)
    answer = device_link.request(Arm(channel_mask=1, shape=0))
    assert isinstance(answer, Nak) and answer.reason == NakReason.IMPEDANCE_NOT_CHECKED


def test_arm_of_a_channel_not_checked_is_refused(
    device_link: DeviceLink, device_info: DeviceInfo
) -> None:
    if device_info.channels < 2:
        pytest.skip("needs a device with two channels")
    _forget_impedance_checks(device_link)
    device_link.check_impedance(1)
    answer = device_link.request(Arm(channel_mask=0b11, shape=0))
    assert isinstance(answer, Nak) and answer.reason == NakReason.IMPEDANCE_NOT_CHECKED


@pytest.mark.needs("fault_injection")
def test_arm_after_a_failed_impedance_check_is_refused(
    faults: BenchConfig, device_link: DeviceLink
) -> None:
    faults.control("inject electrode_open 1")
    result = device_link.check_impedance(1)
    assert result.channels[0].status == ImpedanceStatus.OPEN
    answer = device_link.request(Arm(channel_mask=1, shape=0))
    assert isinstance(answer, Nak) and answer.reason == NakReason.IMPEDANCE_FAILED


def test_start_from_idle_is_refused(device_link: DeviceLink) -> None:
    answer = device_link.request(Start())
    assert isinstance(answer, Nak) and answer.reason == NakReason.BAD_STATE


@pytest.mark.needs("trace")
def test_output_ramps_up_from_zero_at_start(
    bench: BenchConfig, device_link: DeviceLink, device_info: DeviceInfo, measure: Any
) -> None:
    since = bench.trace_offset()
    device_link.enter(State.RUNNING, amplitude_ua=AMPLITUDE_UA)
    device_link.expect(
        Telemetry, 2.0, device_link.mark(), where=lambda t: t.channels[0].measured_ua >= 500
    )
    outputs = _outputs(bench.trace_events(since))
    assert outputs and outputs[0]["amplitude_ua"] <= _first_step_max(device_info)
    measure(
        "start_ramp_ua_per_ms", _max_rise_per_ms(outputs), "uA/ms",
        high=device_info.max_slew_ua_per_ms,
    )  # fmt: skip


@pytest.mark.needs("trace")
@pytest.mark.parametrize("rate_na_per_s", [0, 1_000_000], ids=["slew-ceiling", "1-mA-per-s"])
def test_output_ramps_up_again_from_zero_at_resume(
    bench: BenchConfig, device_link: DeviceLink, device_info: DeviceInfo, rate_na_per_s: int
) -> None:
    device_link.enter(State.PAUSED, amplitude_ua=AMPLITUDE_UA)
    since = bench.trace_offset()
    device_link.command(Resume(ramp_na_per_s=rate_na_per_s))
    device_link.wait_state(State.RUNNING)
    time.sleep(0.05)
    outputs = _outputs(bench.trace_events(since))
    assert outputs and outputs[0]["amplitude_ua"] <= _first_step_max(device_info)
    assert _max_rise_per_ms(outputs) <= device_info.max_slew_ua_per_ms
    if rate_na_per_s:  # the re-ramp line: rate x time since RESUME (its first output change)
        t0 = outputs[0]["device_ms"] - 1
        for o in outputs:
            line = rate_na_per_s * (o["device_ms"] - t0) / 1e6
            assert o["amplitude_ua"] <= line + device_info.amplitude_step_ua


@pytest.mark.needs("trace")
def test_pause_sets_the_output_to_zero_in_the_same_tick(
    bench: BenchConfig, device_link: DeviceLink
) -> None:
    streamer = device_link.enter(State.RUNNING, amplitude_ua=AMPLITUDE_UA)
    assert streamer is not None
    device_link.expect(
        Telemetry, 2.0, device_link.mark(), where=lambda t: t.channels[0].measured_ua > 0
    )
    since = bench.trace_offset()
    t0 = time.monotonic_ns()
    device_link.command(Pause())
    streamer.stop()
    rx = bench.wait_event(since, "rx", type="Pause")
    zero = bench.wait_event(since, "output", amplitude_ua=0)
    assert rx is not None and zero is not None and zero["t_ns"] >= t0
    assert zero["device_ms"] == rx["device_ms"]


def test_stop_ramps_down_to_idle_without_a_fault(device_link: DeviceLink) -> None:
    streamer = device_link.enter(State.RUNNING, amplitude_ua=AMPLITUDE_UA)
    assert streamer is not None
    device_link.command(Stop(ramp_ms=100))
    telemetry = device_link.wait_state(State.IDLE, timeout=2.0)
    streamer.stop()
    assert telemetry.fault == Fault.NONE and all(c.measured_ua == 0 for c in telemetry.channels)


@pytest.mark.needs("trace")
def test_stop_ramps_down_over_ramp_ms(
    bench: BenchConfig, device_link: DeviceLink, device_info: DeviceInfo, measure: Any
) -> None:
    streamer = device_link.enter(State.RUNNING, amplitude_ua=AMPLITUDE_UA)
    assert streamer is not None
    device_link.expect(
        Telemetry, 2.0, device_link.mark(), where=lambda t: t.channels[0].measured_ua >= 500
    )
    since = bench.trace_offset()
    device_link.command(Stop(ramp_ms=100))
    device_link.wait_state(State.IDLE, timeout=2.0)
    streamer.stop()
    rx = bench.first_event(since, "rx", type="Stop")
    outputs = _outputs(bench.trace_events(since))
    assert rx is not None and outputs and outputs[-1]["amplitude_ua"] == 0
    levels = [o["amplitude_ua"] for o in outputs]
    assert levels == sorted(levels, reverse=True)  # never rises while stopping
    tick_ms = 1000 / device_info.tick_hz
    measure(
        "stop_ramp_ms", outputs[-1]["device_ms"] - rx["device_ms"], "ms",
        low=100 - 2 * tick_ms, high=100 + 2 * tick_ms,
    )  # fmt: skip


def test_disarm_returns_to_idle(device_link: DeviceLink) -> None:
    device_link.enter(State.ARMED)
    device_link.command(Disarm())
    assert device_link.wait_state(State.IDLE).state == State.IDLE
