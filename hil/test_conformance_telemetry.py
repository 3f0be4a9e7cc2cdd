"""Conformance: telemetry rate and content, STATE_EVENT on every state change."""

from __future__ import annotations

import itertools
import time

from hil.devicelink import DeviceLink
from stimctl.protocol import DeviceInfo, State, StateEvent, Telemetry

WINDOW_S = 1.0


def _collect(link: DeviceLink, seconds: float) -> list[Telemetry]:
    since = link.mark()
    time.sleep(seconds)
    return link.messages(Telemetry, since)


def test_telemetry_period_in_device_time_is_one_over_telemetry_hz(
    device_link: DeviceLink, device_info: DeviceInfo, measure: object
) -> None:
    device_link.start_keepalive()
    frames = _collect(device_link, WINDOW_S)
    gaps = [b.time_ms - a.time_ms for a, b in itertools.pairwise(frames)]
    period_ms = 1000 / device_info.telemetry_hz
    assert gaps, "no telemetry"
    measure(
        "telemetry_period_device_ms",
        {"min": min(gaps), "max": max(gaps), "n": len(gaps)},
        "ms",
        low=period_ms - 1,
        high=period_ms + 1,
    )
    assert min(gaps) >= period_ms - 1


def test_telemetry_rate_at_the_host_matches_telemetry_hz(
    device_link: DeviceLink, device_info: DeviceInfo, measure: object
) -> None:
    device_link.start_keepalive()
    frames = _collect(device_link, WINDOW_S)
    # Host wall clock over a 1 s window: +-20 % allows for scheduling of the two processes.
    measure(
        "telemetry_rate_hz",
        len(frames) / WINDOW_S,
        "Hz",
        low=0.8 * device_info.telemetry_hz,
        high=1.2 * device_info.telemetry_hz,
    )


def test_telemetry_time_never_goes_back(device_link: DeviceLink) -> None:
    device_link.start_keepalive()
    frames = _collect(device_link, 0.3)
    times = [t.time_ms for t in frames]
    assert times == sorted(times)


def test_telemetry_has_one_record_per_channel(
    device_link: DeviceLink, device_info: DeviceInfo
) -> None:
    assert len(device_link.telemetry().channels) == device_info.channels


def test_state_change_is_announced_with_a_state_event(device_link: DeviceLink) -> None:
    since = device_link.mark()
    device_link.enter(State.ARMED)
    event = device_link.expect(StateEvent, since=since)
    assert (event.previous, event.state) == (State.IDLE, State.ARMED)


def test_idle_telemetry_shows_no_output(device_link: DeviceLink) -> None:
    telemetry = device_link.telemetry()
    assert all(c.set_ua == 0 and c.measured_ua == 0 for c in telemetry.channels)


def test_running_telemetry_shows_the_delivered_current(device_link: DeviceLink) -> None:
    device_link.enter(State.RUNNING, amplitude_ua=500)
    telemetry = device_link.expect(
        Telemetry,
        timeout=2.0,
        since=device_link.mark(),
        where=lambda t: t.channels[0].measured_ua >= 500,
    )
    assert telemetry.channels[0].set_ua == 500
