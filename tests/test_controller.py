"""Controller on the embedded simulator (virtual lock-step clock): sessions, live control."""

from __future__ import annotations

import json
import math
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from pytest_mock import MockerFixture

from stimctl.controller import Controller
from stimctl.host.errors import CommandRejected, InterlockError, LinkError, ProtocolMismatch
from stimctl.host.status import Event, HostState, Outcome, Status
from stimctl.host.verification import verify
from stimctl.protocol import EStop, FrameDecoder, Start
from stimctl.rules.envelope import SafetyEnvelope

pytestmark = pytest.mark.timeout(60)

DEMO = Path(__file__).resolve().parent.parent / "profiles" / "short-demo.toml"


def _until(ctl: Controller, cond: Callable[[], bool], timeout: float = 20.0) -> None:
    """Let the device run until ``cond`` holds (lock-step: device time runs only while we wait)."""
    assert ctl.wait_until(lambda _status: cond(), timeout), "condition not reached"


@pytest.fixture
def ctl(tmp_path: Path) -> Iterator[Controller]:
    c = Controller.connect(None, speed=math.inf, record=tmp_path / "session.jsonl")
    yield c
    c.close()


def _armed(ctl: Controller) -> Controller:
    ctl.load(DEMO)
    ctl.check_impedance()
    ctl.arm(confirm=True)
    return ctl


def _running(ctl: Controller, after_s: float = 6.0) -> Controller:
    _armed(ctl).start()
    _until(ctl, lambda: ctl.status().elapsed_s >= after_s)
    return ctl


def test_connect_to_the_embedded_simulator_reads_device_and_narrows_the_envelope(
    ctl: Controller,
) -> None:
    assert ctl.is_simulator and ctl.state is HostState.IDLE
    assert len(ctl.device.limits_hash) == 64
    assert ctl.envelope.max_channels == min(ctl.device.channels, SafetyEnvelope().max_channels)


def test_session_completes_and_host_totals_match_the_device_counters(ctl: Controller) -> None:
    _armed(ctl).start()
    assert ctl.wait(timeout=30) is Outcome.COMPLETED
    device = ctl.link.port.device.stats()["channels"]
    assert [c.pulses for c in ctl.summary().channels] == [device[0]["pulses"], device[1]["pulses"]]
    assert ctl.state is HostState.COMPLETED


def test_session_streams_without_late_blocks_or_underruns_on_the_virtual_clock(
    ctl: Controller,
) -> None:
    _armed(ctl).start()
    ctl.wait(timeout=30)
    summary = ctl.summary()
    assert (summary.late_blocks, summary.underruns, summary.naks) == (0, 0, 0)
    assert ctl.status().blocks_sent == ctl.status().blocks_total


def test_record_of_a_completed_session_verifies_and_has_every_kind(
    ctl: Controller, tmp_path: Path
) -> None:
    _armed(ctl).start()
    ctl.wait(timeout=30)
    ctl.close()
    path = tmp_path / "session.jsonl"
    kinds = {json.loads(line)["kind"] for line in path.read_text().splitlines()}
    assert verify(path).ok
    assert {
        "session",
        "device",
        "profile",
        "command",
        "state",
        "telemetry",
        "summary",
        "end",
    } <= kinds


def test_stop_ramps_down_over_the_profiles_ramp_down(ctl: Controller, tmp_path: Path) -> None:
    _running(ctl)
    ctl.stop()
    assert ctl.wait(timeout=30) is Outcome.STOPPED
    ctl.close()
    lines = [json.loads(x) for x in (tmp_path / "session.jsonl").read_text().splitlines()]
    stops = [e["data"] for e in lines if e["kind"] == "command" and e["data"]["name"] == "STOP"]
    assert stops == [pytest.approx({**stops[0], "ramp_ms": 5000, "result": "ack"})]


def test_estop_zeroes_the_output_and_latches_estop(ctl: Controller) -> None:
    _running(ctl)
    ctl.estop()
    assert ctl.wait(timeout=10) is Outcome.ESTOP
    device = ctl.link.port.device
    assert device.state.name == "ESTOP" and not any(device.status()["outputs"])
    assert ctl.state is HostState.ESTOP


def test_adjust_raises_the_plateau_by_one_step_and_sets_the_device_gain(ctl: Controller) -> None:
    _running(ctl)
    assert ctl.adjust(1, +0.1) == pytest.approx(0.6)
    assert ctl.link.port.device.gains[0] == 1200


def test_adjust_clamps_a_large_request_to_one_step(ctl: Controller) -> None:
    _running(ctl)
    assert ctl.adjust(2, -1.0) == pytest.approx(0.4)


def test_adjust_is_rate_limited_between_calls(ctl: Controller) -> None:
    _running(ctl)
    now = [100.0]
    ctl.interlock.clock = lambda: now[0]
    ctl.adjust(1, +0.1)
    now[0] += 0.01  # 2 mA/s x 10 ms = 0.02 mA allowed
    assert ctl.adjust(1, +0.1) == pytest.approx(0.62)


def test_adjust_beyond_the_envelope_is_refused_naming_the_limit(tmp_path: Path) -> None:
    env = SafetyEnvelope(max_amplitude_ma=0.55)
    with Controller.connect(None, speed=math.inf, envelope=env) as c:
        _running(c)
        with pytest.raises(InterlockError, match="amplitude-max"):
            c.adjust(1, +0.1)


def test_pause_and_resume_then_complete(ctl: Controller) -> None:
    _running(ctl)
    ctl.pause()
    _until(ctl, lambda: ctl.status().device_state == "PAUSED")
    assert not any(ctl.link.port.device.status()["outputs"])
    ctl.resume()
    assert ctl.wait(timeout=30) is Outcome.COMPLETED


def test_block_outside_the_effective_envelope_is_not_written_and_latches_host_limit(
    ctl: Controller,
) -> None:
    _running(ctl)
    ctl._envelope = SafetyEnvelope(max_amplitude_ma=0.3)  # as if the limits had narrowed
    assert ctl.wait(timeout=10) is Outcome.FAULT
    assert ctl.fault is not None and ctl.fault.code == "HOST_LIMIT"
    assert ctl.link.port.device.state.name == "ESTOP"


def test_a_block_the_device_refuses_latches_stream_refused_and_estops(ctl: Controller) -> None:
    _running(ctl)
    port = ctl.link.port
    with port.lock:  # as if the device held a LAST block: it takes no further block (no retry)
        port.device.fifo.expected = None
    assert ctl.wait(timeout=10) is Outcome.FAULT
    assert ctl.fault is not None and ctl.fault.code == "STREAM_REFUSED"
    assert port.device.state.name == "ESTOP"
    assert not port.device.output_stage.any_output


def test_an_estop_lost_on_the_wire_is_sent_again_until_the_device_latches(
    ctl: Controller, mocker: MockerFixture
) -> None:
    _running(ctl)
    port = ctl.link.port
    write, lost = port.write, []

    def lossy_write(data: bytes) -> int | None:
        if not lost and any(isinstance(m, EStop) for m in FrameDecoder().feed(bytes(data))):
            lost.append(data)  # the first ESTOP frame never reaches the device
            return len(data)
        return write(data)

    mocker.patch.object(port, "write", side_effect=lossy_write)
    ctl.estop()
    assert lost
    _until(ctl, lambda: port.device.state.name == "ESTOP")
    assert ctl.session.estop_repeats >= 1
    assert not port.device.output_stage.any_output


def test_a_refused_command_counts_as_one_nak(ctl: Controller) -> None:
    with pytest.raises(CommandRejected):
        ctl.commander.command(ctl.link, Start())  # START in IDLE: NAK BAD_STATE
    _until(ctl, lambda: ctl.status().naks >= 1)
    assert not ctl.wait_until(lambda status: status.naks > 1, timeout=0.05)
    assert ctl.status().naks == 1


def test_an_operator_note_goes_into_the_record_and_to_event_listeners(
    ctl: Controller, tmp_path: Path
) -> None:
    events: list[Event] = []
    ctl.on_event(events.append)
    ctl.note("patient reports tingling")
    ctl.close()
    lines = [json.loads(x) for x in (tmp_path / "session.jsonl").read_text().splitlines()]
    notes = [line["data"] for line in lines if line["kind"] == "note"]
    assert [n["text"] for n in notes] == ["patient reports tingling"]
    assert any(e.kind == "note" and e.message == "patient reports tingling" for e in events)


def test_acknowledging_an_estop_leaves_the_device_idle_without_repeated_estops(
    ctl: Controller,
) -> None:
    for _ in range(3):
        _running(ctl, after_s=1.0)
        ctl.estop()
        ctl.acknowledge_fault()
        repeats = ctl.session.estop_repeats
        start = ctl.status().device_time_ms
        _until(ctl, lambda start=start: ctl.status().device_time_ms > start + 500)
        assert ctl.link.port.device.state.name == "IDLE"
        assert ctl.state is HostState.IDLE and ctl.session.estop_repeats == repeats
        ctl.load(DEMO)


def test_idle_connection_is_kept_alive_by_heartbeats(ctl: Controller) -> None:
    start = ctl.status().device_time_ms
    _until(ctl, lambda: ctl.status().device_time_ms > start + 2000)
    assert ctl.state is HostState.IDLE and ctl.link.port.device.state.name == "IDLE"


def test_telemetry_callbacks_get_status_until_unsubscribed(ctl: Controller) -> None:
    seen: list[Status] = []
    unsubscribe = ctl.on_telemetry(seen.append)
    _until(ctl, lambda: len(seen) >= 3)
    unsubscribe()
    count = len(seen)
    start = ctl.status().device_time_ms
    _until(ctl, lambda: ctl.status().device_time_ms > start + 200)
    assert len(seen) <= count + 1


def test_events_report_state_changes(ctl: Controller) -> None:
    events: list[Event] = []
    ctl.on_event(events.append)
    _armed(ctl)
    _until(ctl, lambda: any(e.kind == "state" and e.data.get("device") == "ARMED" for e in events))


def test_status_reports_phase_and_progress_while_running(ctl: Controller) -> None:
    st = _running(ctl).status()
    assert (st.state, st.phase_count, st.phase_mode) == (HostState.RUNNING, 1, "continuous")
    assert st.elapsed_s >= 6.0 and st.remaining_s == pytest.approx(60 - st.elapsed_s)


def test_close_while_running_brings_the_output_to_zero(ctl: Controller) -> None:
    _running(ctl)
    device = ctl.link.port.device
    ctl.close()
    assert device.state.name in ("IDLE", "ESTOP") and not any(device.status()["outputs"])


def test_catalogue_mismatch_at_connect_raises_protocol_mismatch(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr("stimctl.host.linkretry.CATALOGUE_HASH", 0x12345678)
    with pytest.raises(ProtocolMismatch, match="catalogue mismatch"):
        Controller.connect(None, speed=math.inf)


def test_speed_is_refused_with_a_port() -> None:
    with pytest.raises(ValueError, match="simulator only"):
        Controller.connect("stimsim://?virtual=1", speed=10)


def test_device_time_stands_still_while_the_host_is_busy_on_the_lockstep_clock() -> None:
    # Regression (a CI failure): on the free-running virtual clock device time ran ~300x wall
    # time while the host computed, so a 300 s impedance validity could lapse in the second
    # between IMPEDANCE_CHECK and ARM and the ARM was refused. Lock-step holds device time.
    # 30 s validity: free-running, the 0.3 s below is ~90 s of device time. Not 1 s: between the
    # IMPEDANCE_RESULT and check_impedance() returning the host is still waiting, and under load
    # its thread may take a few device seconds to get the interpreter back (seen: 1.9-3 s).
    with Controller.connect(None, speed=math.inf, sim_options={"impedance_valid_ms": "30000"}) as c:
        c.load(DEMO)
        c.check_impedance()
        device = c.link.port.device
        before = device.time_ms
        time.sleep(0.3)  # the host is busy (not waiting): hundreds of device seconds, free-running
        assert device.time_ms - before <= 1000 // device.config.telemetry_hz  # one frame, at most
        c.arm(confirm=True)  # the 30 s impedance validity has not lapsed
        c.start()
        assert c.wait(timeout=30) is Outcome.COMPLETED


def test_speed_inf_is_lock_step_unless_the_caller_asks_for_free_running() -> None:
    with Controller.connect(None, speed=math.inf) as c:
        assert c.link.port.lockstep
    with Controller.connect(None, speed=math.inf, sim_options={"lockstep": "0"}) as c:
        assert c.link.port.virtual and not c.link.port.lockstep


def test_a_held_lockstep_device_is_not_taken_for_a_silent_one(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr("stimctl.host.mirror.DEVICE_SILENCE_S", 0.2)
    with Controller.connect(None, speed=math.inf) as c:
        time.sleep(0.4)  # the host is busy: device time is held, so the device says nothing
        assert c.status().state is HostState.IDLE and c.fault is None
        assert c.wait_until(lambda s: s.device_time_ms > 1000, timeout=10)  # and it speaks again
        assert c.fault is None


def test_the_record_shows_the_host_connecting(ctl: Controller, tmp_path: Path) -> None:
    ctl.close()
    lines = [json.loads(x) for x in (tmp_path / "session.jsonl").read_text().splitlines()]
    host = [line["data"] for line in lines if line["kind"] == "state" and "cause" in line["data"]]
    assert host[0] == {"from": "DISCONNECTED", "to": "IDLE", "cause": "connected"}


def test_a_bad_lockstep_option_is_refused_by_name() -> None:
    with pytest.raises(LinkError, match="bad value 'maybe' for 'lockstep'"):
        Controller.connect(None, speed=math.inf, sim_options={"lockstep": "maybe"})


def test_load_keeps_and_compiles_the_profile_the_rules_judged_not_the_object_handed_in() -> None:
    from stimctl import load_profile

    given = load_profile(DEMO)
    tampered = given.model_copy(
        update={"channels": [given.channels[0].model_copy(update={"amplitude_ma": 1})]}
    )  # an int where parsing gives a float: the rules judge the re-parsed profile
    with Controller.connect(None, speed=math.inf) as ctl:
        report = ctl.load(tampered)
        assert report.profile is not None and report.profile is not tampered
        assert ctl.profile is report.profile
        assert isinstance(ctl.profile.channels[0].amplitude_ma, float)


def test_a_check_asked_again_while_the_device_still_measures_waits_for_the_first_result(
    mocker: MockerFixture,
) -> None:
    # No result within the host's wait: it asks again, and a device still measuring refuses the
    # repeat (BAD_STATE). Under load a burst of late telemetry makes device time jump the same
    # way (seen in the TUI soak): the first check's result must still count.
    mocker.patch("stimctl.host.mirror.IMPEDANCE_RESULT_WAIT_S", 0.0)
    with Controller.connect(None, speed=math.inf) as ctl:
        ctl.link.port.device.config.impedance_check_ms = 60_000
        readings = ctl.check_impedance(timeout=30.0)
        assert readings and all(r.ok for r in readings.values())
