"""The virtual clock's event-driven path against the tick-by-tick reference (DeviceConfig
tick_by_tick): random short sessions (every profile mode, 1-8 channels, both shapes, scheduled
faults, pauses, re-ramps, gain changes, stops, e-stops, watchdog silences, link delay) must give
the same trace, the same messages (every TELEMETRY value) and the same pulse and charge totals.

240 cases by default; STIMCTL_SLOW=1 runs 2,000. The host steps time to the device's next
output (``run_ticks(until_output=True)``); BULK_CASES more step it in fixed slices as the benches do
(``run_ticks(n)``: the quiet runs then put each TELEMETRY frame due in them themselves).
"""

from __future__ import annotations

import os
import random
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from firmware_sim import Device, DeviceConfig
from firmware_sim.faults import FaultSpec
from firmware_sim.limits import HardwareLimits
from firmware_sim.scripted import ScriptedHost
from stimctl.host.schedule import compile_schedule
from stimctl.protocol import (
    BLOCK_FLAG_LAST,
    Ack,
    Adjust,
    Block,
    ChannelSetting,
    EStop,
    Heartbeat,
    Message,
    Pause,
    Resume,
    Shape,
    Start,
    State,
    Stop,
    Telemetry,
)
from stimctl.rules.profile import parse_profile

CASES = 2000 if os.environ.get("STIMCTL_SLOW") == "1" else 240
BULK_CASES = CASES // 4
FILL_MS = 200
FAULT_KINDS = ("electrode_open", "electrode_short", "drift", "overcurrent", "reset", "underrun")


@dataclass(frozen=True, slots=True)
class Case:
    """One random session: what the host streams, what it does when, what the device suffers."""

    channels: int
    shape: int
    blocks: tuple[Block, ...]
    actions: tuple[tuple[int, Message | None], ...]  # (ms after START, message; None: go silent)
    faults: tuple[FaultSpec, ...]
    delay_ms: int
    end_ms: int


def _phase(rng: random.Random) -> dict[str, Any]:
    duration = rng.choice((0.2, 0.3, 0.5, 0.8, 1.0, 1.5))
    phase: dict[str, Any] = {
        "duration_s": duration,
        "pulse_width_us": rng.choice((100, 200, 300, 450)),
    }
    mode = rng.choice(("continuous", "dense_disperse", "intermittent"))
    phase["mode"] = mode
    if mode == "dense_disperse":
        phase["frequency_hz"] = [rng.choice((2, 4, 15)), rng.choice((50, 80, 100))]
        phase["switch_s"] = rng.choice((0.05, 0.1, 0.3))
    else:
        phase["frequency_hz"] = rng.choice((1, 2, 10, 33, 100))
    if mode == "intermittent":
        phase["on_s"] = rng.choice((0.1, 0.2))
        phase["off_s"] = rng.choice((0.05, 0.1))
    if rng.random() < 0.5:
        phase["ramp_up_s"] = round(duration * rng.choice((0.1, 0.3)), 3)
    return phase


def make_case(seed: int) -> Case:
    rng = random.Random(seed)
    channels = rng.randint(1, 8)
    amplitudes = [rng.choice((0.1, 0.25, 0.5, 1.0, 2.0)) for _ in range(channels)]
    profile = parse_profile(
        {
            "schema": "stimctl.profile/1",
            "name": f"case {seed}",
            "waveform": {"shape": "biphasic_symmetric"},
            "channels": [
                {"id": i + 1, "anode": "ST36", "cathode": "LR3", "amplitude_ma": a}
                for i, a in enumerate(amplitudes)
            ],
            "phases": [_phase(rng) for _ in range(rng.randint(1, 3))],
        }
    )
    schedule = compile_schedule(profile, block_ms=rng.choice((10, 20, 50)))
    blocks = tuple(
        Block(
            index=row.index,
            duration_ms=row.duration_ms,
            flags=BLOCK_FLAG_LAST if row.last else 0,
            channels=tuple(
                ChannelSetting(a, row.frequency_dhz, row.pulse_width_us) for a in row.amplitude_ua
            ),
        )
        for row in schedule.rows()
    )
    total = schedule.total_ms
    actions: list[tuple[int, Message | None]] = []
    for _ in range(rng.choice((0, 0, 1, 2, 3))):
        at = rng.randrange(1, total)
        kind = rng.choice(("pause", "adjust", "stop", "estop", "silence"))
        if kind == "pause":
            actions.append((at, Pause()))
            ramp = rng.choice((0, 100_000, 1_000_000, 5_000_000))
            actions.append((at + rng.randint(1, 150), Resume(ramp_na_per_s=ramp)))
        elif kind == "adjust":
            gain = rng.choice((500, 800, 1200, 1500))
            actions.append((at, Adjust(channel=rng.randint(1, channels), gain_permille=gain)))
        elif kind == "stop":
            actions.append((at, Stop(ramp_ms=rng.choice((0, 10, 100, 300)))))
        elif kind == "estop":
            actions.append((at, EStop()))
        else:
            actions.append((at, None))
    faults = tuple(
        FaultSpec(rng.choice(FAULT_KINDS), rng.randint(1, channels), rng.randrange(total))
        for _ in range(rng.choice((0, 0, 0, 1, 2)))
    )
    return Case(
        channels=channels,
        shape=rng.choice((Shape.BIPHASIC_SYMMETRIC, Shape.BIPHASIC_ASYMMETRIC)),
        blocks=blocks,
        actions=tuple(sorted(actions, key=lambda a: a[0])),
        faults=faults,
        delay_ms=rng.choice((0, 0, 0, 3)),
        end_ms=total + 400,
    )


def run_case(
    case: Case, trace: Path, tick_by_tick: bool, slice_ms: int | None = None
) -> dict[str, Any]:
    """Open a session, START, and play the case to ``end_ms`` after START, as a host that tops
    the FIFO up from every TELEMETRY (heartbeats when there is nothing to send). The host steps
    time to the device's next output, or (``slice_ms``) in slices of that many ms, reading what
    the device sent after each."""
    config = DeviceConfig(
        limits=HardwareLimits(channels=case.channels),
        faults=case.faults,
        delay_ms=case.delay_ms,
        trace=str(trace),
        tick_by_tick=tick_by_tick,
    )
    dev = Device(config)
    host = ScriptedHost(dev)
    host.open_session((1 << case.channels) - 1, case.shape)
    blocks = iter(case.blocks)
    pending = next(blocks, None)
    queued = 0
    while pending is not None and queued + pending.duration_ms <= FILL_MS:
        host.send(pending)
        queued += pending.duration_ms
        pending = next(blocks, None)
    host.send(Start())
    start = dev.tick_count
    end = start + case.end_ms * dev.ticks_per_ms
    actions = list(case.actions)
    silent = False
    while dev.tick_count < end:
        due = start + actions[0][0] * dev.ticks_per_ms if actions else end
        if dev.tick_count >= due:
            msg = actions.pop(0)[1]
            if msg is None:
                silent = True
            else:
                host.send(msg)
            continue
        if slice_ms is None:
            dev.run_ticks(min(due, end) - dev.tick_count, until_output=True)
        else:
            dev.run_ticks(min(due, end, dev.tick_count + slice_ms * dev.ticks_per_ms)
                          - dev.tick_count)  # fmt: skip
        for m in host._collect():
            if not isinstance(m, Telemetry) or silent:
                continue
            room = FILL_MS - m.fifo_ms if m.state in (State.RUNNING, State.PAUSED) else 0
            if (pending is None or pending.duration_ms > room) and (
                dev.tick_count - host.last_send_tick >= 50 * dev.ticks_per_ms
            ):
                host.send(Heartbeat())
            while pending is not None and pending.duration_ms <= room:
                host.send(pending)
                room -= pending.duration_ms
                pending = next(blocks, None)
    dev.close()
    return {
        "received": host.received,
        "stats": dev.stats(),
        "status": dev.status(),
        "tick_count": dev.tick_count,
        "trace": trace.read_text().splitlines(),
    }


@pytest.mark.parametrize("seed", range(CASES))
def test_event_driven_run_equals_tick_by_tick_run(seed: int, tmp_path: Path) -> None:
    case = make_case(seed)
    reference = run_case(case, tmp_path / "ticks.jsonl", tick_by_tick=True)
    fast = run_case(case, tmp_path / "events.jsonl", tick_by_tick=False)
    assert fast["trace"] == reference["trace"]
    assert fast["received"] == reference["received"]
    assert fast["stats"] == reference["stats"]
    assert fast["status"] == reference["status"]
    assert fast["tick_count"] == reference["tick_count"]


@pytest.mark.parametrize("seed", range(CASES, CASES + BULK_CASES))
def test_event_driven_run_in_slices_equals_tick_by_tick_run(seed: int, tmp_path: Path) -> None:
    """The same, the host stepping time in slices (7-50 ms) as hil.benchmarks.sim does: the
    quiet runs put the TELEMETRY frames due in them (``fastpath.run_quiet`` with ``put``)."""
    case = make_case(seed)
    slice_ms = random.Random(seed).choice((7, 20, 50))
    reference = run_case(case, tmp_path / "ticks.jsonl", tick_by_tick=True, slice_ms=slice_ms)
    fast = run_case(case, tmp_path / "events.jsonl", tick_by_tick=False, slice_ms=slice_ms)
    assert fast["trace"] == reference["trace"]
    assert fast["received"] == reference["received"]
    assert fast["stats"] == reference["stats"]
    assert fast["status"] == reference["status"]
    assert fast["tick_count"] == reference["tick_count"]


def test_the_cases_cover_live_output_ramps_faults_and_every_mode() -> None:
    """The generator is not vacuous: the cases pause, re-ramp, adjust, stop, e-stop, suffer
    faults of every kind and use every channel count."""
    seen: set[str] = set()
    for seed in range(CASES):
        case = make_case(seed)
        seen.update(f.kind for f in case.faults)
        seen.update(type(m).__name__ for _, m in case.actions if m is not None)
        seen.add(f"channels{case.channels}")
    assert {"Pause", "Resume", "Adjust", "Stop", "EStop"} <= seen
    assert set(FAULT_KINDS) <= seen
    assert {f"channels{n}" for n in range(1, 9)} <= seen


def _count_full_ticks(monkeypatch: pytest.MonkeyPatch) -> list[int]:
    """From now on, count the device's full ticks (``Device.tick`` calls) in the returned cell."""
    ticks = [0]
    original = Device.tick

    def counted(self: Device) -> None:
        ticks[0] += 1
        original(self)

    monkeypatch.setattr(Device, "tick", counted)
    return ticks


def test_a_slew_ramp_runs_one_tick_per_dac_step_not_per_millisecond(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """500 uA under the 2 uA/ms ceiling takes 250 ms in 10 uA steps: the event-driven path runs
    a full tick only at the 50 steps (and the block, telemetry and input events), not 250."""
    dev = Device(DeviceConfig(limits=HardwareLimits(channels=1), watchdog_ms=5000))
    host = ScriptedHost(dev)
    host.open_session(1)
    blocks = [
        Block(index=i, duration_ms=50, flags=BLOCK_FLAG_LAST if i == 5 else 0,
              channels=(ChannelSetting(500, 20, 200),))
        for i in range(6)
    ]  # fmt: skip
    for block in blocks[:4]:
        host.send(block)
    assert isinstance(host.command(Start()), Ack)
    ticks = _count_full_ticks(monkeypatch)
    host.pump(100)
    host.send(blocks[4])
    host.send(blocks[5])
    host.pump(155)
    assert dev.output_stage.channels[0].delivered_ua == 500
    assert ticks[0] < 80


def test_a_boundary_between_blocks_of_the_same_settings_costs_no_tick(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A plateau streamed in 20 ms blocks: over 200 ms the event-driven path runs a full tick
    for the 10 telemetry frames and the received blocks, not for the 10 block boundaries."""
    dev = Device(DeviceConfig(limits=HardwareLimits(channels=2), watchdog_ms=5000))
    host = ScriptedHost(dev)
    host.open_session(3)
    setting = (ChannelSetting(100, 1000, 200), ChannelSetting(100, 1000, 200))
    blocks = [Block(index=i, duration_ms=20, channels=setting) for i in range(17)]
    for block in blocks[:12]:
        host.send(block)
    assert isinstance(host.command(Start()), Ack)
    host.pump(100)  # 100 uA reached after 50 ms (slew ceiling 2 uA/ms)
    for block in blocks[12:]:
        host.send(block)
    ticks = _count_full_ticks(monkeypatch)
    host.pump(200)
    assert dev.state is State.RUNNING and dev.fifo.block_index == 15
    assert [ch.delivered_ua for ch in dev.output_stage.channels] == [100, 100]
    assert ticks[0] <= 12  # 10 telemetry frames, the input, and nothing per block
