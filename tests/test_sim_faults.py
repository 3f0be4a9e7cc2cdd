"""Specification of fault injection: electrodes, overcurrent, reset, underrun, link impairments."""

from __future__ import annotations

import pytest

from firmware_sim import Device, DeviceConfig, FaultSpec
from firmware_sim.faults import FaultSpecError
from firmware_sim.scripted import ScriptedHost, uniform_block
from stimctl.protocol import (
    PROTOCOL_VERSION,
    DeviceInfo,
    Fault,
    FaultEvent,
    Heartbeat,
    Hello,
    Start,
    State,
    Telemetry,
)

N = 4


def running(amp: int = 2000, **cfg: object) -> ScriptedHost:
    h = ScriptedHost(Device(DeviceConfig(**cfg)))  # type: ignore[arg-type]
    h.open_session(0b0011)
    for i in range(10):
        h.command(uniform_block(i, N, amp, 1000, 200, mask=0b0011))
    h.command(Start())
    return h


def keep_fed(h: ScriptedHost, ms: int, first_index: int = 10) -> None:
    for i in range(ms // 20):
        h.send(uniform_block(first_index + i, N, 2000, 1000, 200, mask=0b0011))
        h.pump(20)
        if h.device.state is not State.RUNNING:
            return


def fault_events(h: ScriptedHost) -> list[FaultEvent]:
    return [m for m in h.received if isinstance(m, FaultEvent)]


@pytest.mark.parametrize(
    ("text", "spec"),
    [
        ("electrode_open:1@5000", FaultSpec("electrode_open", 1, 5000)),
        ("open:3", FaultSpec("electrode_open", 3, None)),
        ("short:1", FaultSpec("electrode_short", 1, None)),
        ("overcurrent:2@1500", FaultSpec("overcurrent", 2, 1500)),
        ("reset@3000", FaultSpec("reset", 1, 3000)),
        ("drift:1", FaultSpec("drift", 1, None)),
    ],
)
def test_fault_specs_parse(text: str, spec: FaultSpec) -> None:
    assert FaultSpec.parse(text) == spec


@pytest.mark.parametrize("text", ["", "meltdown", "open:x", "open@", "open,short"])
def test_bad_fault_specs_are_refused(text: str) -> None:
    with pytest.raises(FaultSpecError):
        FaultSpec.parse(text)


@pytest.mark.parametrize(
    ("kind", "fault"),
    [("electrode_open", Fault.ELECTRODE_OPEN), ("electrode_short", Fault.ELECTRODE_SHORT),
     ("overcurrent", Fault.OVERCURRENT)],
)  # fmt: skip
def test_electrode_faults_during_output_latch_with_the_channel(kind: str, fault: Fault) -> None:
    h = running()
    h.pump(100)
    h.device.inject(kind, 2)
    h.pump(1)
    events = fault_events(h)
    assert [(e.fault, e.channel, e.state_before) for e in events] == [(fault, 2, State.RUNNING)]
    assert h.device.interlock.fault_channel == 2


def test_scheduled_fault_fires_at_its_time_after_the_first_start() -> None:
    h = running(faults=(FaultSpec.parse("overcurrent:1@150"),))
    start_ms = h.device.time_ms
    keep_fed(h, 400)
    (event,) = fault_events(h)
    assert event.fault == Fault.OVERCURRENT
    assert h.device.last_rx_ms is not None
    assert event.time_ms == start_ms + 150


def test_impedance_drift_ends_in_compliance_fault() -> None:
    h = running(amp=20_000, watchdog_ms=60_000)
    # 250 ohm per ms while the output slews up at 2 uA/ms: 60 V at ~350 ms, below the open limit
    h.device.inject("drift", 1, 250_000.0)
    keep_fed(h, 600)
    assert h.device.fault in (Fault.COMPLIANCE, Fault.UNDERRUN)
    assert fault_events(h)[0].fault == Fault.COMPLIANCE


def test_injected_underrun_latches_underrun_at_the_end_of_the_playing_block() -> None:
    h = running()
    h.pump(30)
    h.device.inject("underrun")
    h.send(Heartbeat())
    h.pump(2)
    assert h.device.fault is Fault.UNDERRUN


def test_reset_reboots_into_device_reset_and_keeps_the_session_open() -> None:
    h = running()
    h.pump(100)
    h.device.inject("reset")
    h.pump(25)
    (event,) = fault_events(h)
    assert (event.fault, event.state_before) == (Fault.DEVICE_RESET, State.BOOT)
    telemetry = [m for m in h.received if isinstance(m, Telemetry)][-1]
    assert telemetry.state == State.FAULT and telemetry.fault == Fault.DEVICE_RESET
    assert telemetry.time_ms < 30  # uptime restarted
    assert all(c.pulses == 0 for c in telemetry.channels)
    assert h.device.status()["outputs"] == [0] * N


def test_reset_still_runs_the_watchdog() -> None:
    h = running()
    h.device.inject("reset")
    h.pump(300)
    assert h.device.fault is Fault.DEVICE_RESET  # latched first; COMMS_LOSS does not replace it
    assert h.device.session_open


def test_link_delay_delays_both_directions() -> None:
    h = ScriptedHost(Device(DeviceConfig(delay_ms=50)))
    h.send(Hello(protocol_version=PROTOCOL_VERSION))
    start = h.device.tick_count
    h.wait_for(DeviceInfo)
    assert h.device.tick_count - start == 100  # 50 ms there, answered in that tick, 50 back


def test_link_drop_loses_frames_but_the_decoder_resynchronises() -> None:
    h = ScriptedHost(Device(DeviceConfig(watchdog_ms=60_000)))
    h.command(Hello(protocol_version=PROTOCOL_VERSION))
    h.device.link.drop = 0.002
    h.device.link.flip = 0.002
    h.pump(10_000)
    telemetry = [m for m in h.received if isinstance(m, Telemetry)]
    assert 0 < len(telemetry) < 500
    assert h.decoder.stats.errors > 0
    assert h.device.link.dropped + h.device.link.flipped > 0


@pytest.mark.parametrize("kind", ["electrode_open", "electrode_short", "overcurrent"])
def test_injection_at_plateau_is_caught_in_the_next_tick_even_when_ticks_run_in_bulk(
    kind: str,
) -> None:
    h = running(amp=100, watchdog_ms=60_000)
    # at plateau (100 uA at the 2 uA/ms slew ceiling: 50 ms): the bulk path would otherwise
    # skip the electrode checks
    h.pump(100)
    assert h.device.output_stage.at_target
    injected_ms = h.device.time_ms
    h.device.inject(kind, 1)
    h.device.run_ticks(50)
    h.pump(1)
    (event,) = fault_events(h)
    assert event.time_ms == injected_ms + 1
    assert h.device.output_stage.any_output is False


def test_inject_clear_heals_the_channel() -> None:
    h = running(watchdog_ms=60_000)
    h.device.inject("overcurrent", 1)
    h.device.inject("electrode_open", 1)
    h.device.inject("clear", 1)
    h.pump(40)
    assert fault_events(h) == []
    assert h.device.state is State.RUNNING
