"""Conformance: session handshake (HELLO / DEVICE_INFO), re-handshake, GOODBYE, version checks."""

from __future__ import annotations

import time

import pytest

from hil.benchconfig import BenchConfig
from hil.devicelink import DeviceLink, raw_frame
from stimctl.protocol import (
    CATALOGUE_HASH,
    PROTOCOL_VERSION,
    DeviceInfo,
    Goodbye,
    Heartbeat,
    Hello,
    Nak,
    NakReason,
    State,
    Telemetry,
)


def test_hello_is_answered_with_device_info(device_link: DeviceLink) -> None:
    info = device_link.hello()
    assert info.protocol_version == PROTOCOL_VERSION


def test_device_catalogue_hash_matches_the_host(device_info: DeviceInfo) -> None:
    assert device_info.catalogue_hash == CATALOGUE_HASH


def test_device_runs_the_expected_firmware(bench: BenchConfig, device_info: DeviceInfo) -> None:
    if bench.firmware is None:
        pytest.skip("no expected firmware given (--stim-env firmware = ...)")
    assert device_info.firmware == bench.firmware


def test_device_info_describes_a_usable_device(device_info: DeviceInfo) -> None:
    info = device_info
    assert 1 <= info.channels <= 8  # the channel masks are 8 bits wide
    assert info.tick_hz > 0 and info.telemetry_hz > 0 and info.watchdog_ms > 0
    assert info.fifo_depth > 0 and info.max_lookahead_ms > 0
    assert 0 < info.min_pulse_width_us <= info.max_pulse_width_us
    assert 0 < info.min_frequency_dhz <= info.max_frequency_dhz
    assert info.amplitude_step_ua > 0 and info.max_amplitude_ua % info.amplitude_step_ua == 0
    assert info.max_slew_ua_per_ms > 0


def test_telemetry_flows_once_the_session_is_open(device_link: DeviceLink) -> None:
    telemetry = device_link.telemetry()
    assert len(telemetry.channels) == device_link.info.channels  # type: ignore[union-attr]


def test_hello_again_does_not_change_the_state(device_link: DeviceLink) -> None:
    device_link.enter(State.ARMED)
    device_link.hello()
    assert device_link.telemetry().state == State.ARMED


def test_hello_again_keeps_a_latched_fault(device_link: DeviceLink) -> None:
    device_link.enter(State.ESTOP)
    device_link.hello()
    assert device_link.telemetry().state == State.ESTOP


def test_hello_with_another_protocol_version_is_refused(device_link: DeviceLink) -> None:
    answer = device_link.request(Hello(protocol_version=PROTOCOL_VERSION + 1))
    assert isinstance(answer, Nak) and answer.reason == NakReason.VERSION


def test_frame_of_another_protocol_version_is_refused(device_link: DeviceLink) -> None:
    since = device_link.mark()
    seq = device_link.next_seq()
    device_link.write_raw(raw_frame(Heartbeat.TYPE, seq, version=PROTOCOL_VERSION + 1))
    answer = device_link.answer_to(seq, since=since)
    assert isinstance(answer, Nak) and answer.reason == NakReason.VERSION


def test_goodbye_in_idle_is_acknowledged(device_link: DeviceLink) -> None:
    device_link.command(Goodbye())


def test_goodbye_stops_telemetry(device_link: DeviceLink) -> None:
    info = device_link.info
    assert info is not None
    device_link.command(Goodbye())
    time.sleep(2 / info.telemetry_hz)  # frames already on their way
    since = device_link.mark()
    time.sleep(5 / info.telemetry_hz)
    assert device_link.messages(Telemetry, since) == []


def test_goodbye_outside_idle_is_refused(device_link: DeviceLink) -> None:
    device_link.enter(State.ARMED)
    answer = device_link.request(Goodbye())
    assert isinstance(answer, Nak) and answer.reason == NakReason.BAD_STATE
