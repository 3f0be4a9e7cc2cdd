"""The device's own rise limits: the slew ceiling, RESUME's re-ramp, no ADJUST while PAUSED
(issue 10, item 3). The device never trusts the host to ramp."""

from __future__ import annotations

import json
from pathlib import Path

from firmware_sim import Device, DeviceConfig
from firmware_sim.fastpath import quiet_horizon
from firmware_sim.scripted import ScriptedHost, uniform_block
from stimctl.protocol import (
    PROTOCOL_VERSION,
    Ack,
    Adjust,
    Arm,
    Hello,
    ImpedanceCheck,
    ImpedanceResult,
    Message,
    Nak,
    NakReason,
    Pause,
    Resume,
    Start,
    State,
)

N = 4
POLICY_UA_PER_MS = 2  # ramp-rate-max, 2 mA/s (docs/SAFETY.md)
DAC_STEP_UA = 10


class Fed:
    """Channel 1 running at ``amp`` uA, fed one 20 ms block per 20 ms; records every tick."""

    def __init__(self, amp: int) -> None:
        self.h = ScriptedHost(Device(DeviceConfig()))
        self.h.command(Hello(protocol_version=PROTOCOL_VERSION))
        self.h.command(ImpedanceCheck(channel_mask=1))
        self.h.wait_for(ImpedanceResult)
        assert isinstance(self.h.command(Arm(channel_mask=1, shape=0)), Ack)
        self.amp = amp
        self.trace: list[int] = []
        self.next = 0
        for _ in range(6):
            self.feed()
        assert isinstance(self.h.command(Start()), Ack)

    def feed(self) -> None:
        self.h.send(uniform_block(self.next, N, self.amp, 20, 200, mask=1))
        self.next += 1

    def tick(self) -> None:
        self.h.device.tick()
        self.trace.append(self.h.device.output_stage.channels[0].delivered_ua)

    def run(self, ms: int) -> None:
        for _ in range(ms):
            if self.h.device.tick_count % 20 == 0 and self.h.device.state is not State.PAUSED:
                self.feed()
            self.tick()
        self.h.pump(0)
        assert not [m for m in self.h.received if isinstance(m, Nak)]

    def command(self, msg: Message) -> Ack | Nak:
        seq = self.h.send(msg)
        self.tick()
        self.h.pump(0)
        return next(m for m in self.h.received if isinstance(m, Ack | Nak) and m.ack_seq == seq)


def worst_rise(trace: list[int], window: int) -> int:
    return max((b - a for a, b in zip(trace, trace[window:], strict=False)), default=0)


def test_adjust_while_paused_is_refused_bad_state() -> None:
    f = Fed(500)
    f.run(300)
    assert isinstance(f.command(Pause()), Ack)
    answer = f.command(Adjust(channel=1, gain_permille=1100))
    assert isinstance(answer, Nak) and answer.reason == NakReason.BAD_STATE
    f.h.received.clear()
    assert f.h.device.gains[0] == 1000


def test_resume_without_a_host_ramp_rises_no_faster_than_the_slew_ceiling() -> None:
    """The issue's trace: 10 mA plateau, PAUSE, RESUME: 0 -> 10 mA in 1 s on the old device."""
    f = Fed(10_000)
    f.run(5200)
    assert f.trace[-1] == 10_000
    f.command(Pause())
    assert f.trace[-1] == 0
    start = len(f.trace)
    f.command(Resume())
    f.run(1000)
    after = f.trace[start:]
    assert max(after) <= POLICY_UA_PER_MS * 1000 + DAC_STEP_UA
    for window in (100, 500, 1000):
        assert worst_rise(after, window) <= POLICY_UA_PER_MS * window + DAC_STEP_UA


def test_resume_re_ramps_along_the_line_the_host_asks_for() -> None:
    f = Fed(500)
    f.run(300)
    f.command(Pause())
    start = len(f.trace)
    f.command(Resume(ramp_na_per_s=50_000))  # 50 uA/s: the seed's 0.5 mA over 10 s
    f.run(10_100)
    after = f.trace[start:]
    for t in (100, 1000, 4000, 9000):
        assert after[t] <= 50 * (t + 1) // 1000 and after[t] >= 50 * t // 1000 - DAC_STEP_UA
    assert after[-1] == 500


def test_the_re_ramp_ends_once_its_line_passes_every_target() -> None:
    f = Fed(100)
    f.run(100)
    f.command(Pause())
    f.command(Resume(ramp_na_per_s=1_000_000))  # 1 mA/s: 100 uA in 100 ms
    f.run(50)
    assert f.h.device.reramp_rate_na_per_s != 0
    assert quiet_horizon(f.h.device) == 0
    f.run(100)
    assert f.h.device.reramp_rate_na_per_s == 0
    assert f.trace[-1] == 100


def test_louder_blocks_during_the_re_ramp_stay_under_its_line() -> None:
    f = Fed(200)
    f.run(200)
    f.command(Pause())
    start = len(f.trace)
    f.command(Resume(ramp_na_per_s=100_000))  # 100 uA/s
    f.amp = 1000
    f.run(3000)
    after = f.trace[start:]
    assert all(a <= 100 * (t + 1) // 1000 for t, a in enumerate(after))


def test_the_trace_names_the_pulse_width_of_every_output_change(tmp_path: Path) -> None:
    """The charge per phase can be read from the trace alone (amplitude x pulse width)."""
    path = tmp_path / "trace.jsonl"
    h = ScriptedHost(Device(DeviceConfig(trace=str(path))))
    h.open_session(1)
    for i in range(6):
        h.send(uniform_block(i, N, 100, 20, 200, mask=1))
    h.command(Start())
    h.pump(100)
    for i in range(6, 9):
        h.send(uniform_block(i, N, 100, 20, 300, mask=1))
    h.pump(60)
    h.device.close()
    outputs = [e for line in path.read_text().splitlines()
               if (e := json.loads(line))["event"] == "output"]  # fmt: skip
    assert outputs[0]["pulse_width_us"] == 200 and outputs[0]["amplitude_ua"] == 10
    assert outputs[-1] == {**outputs[-1], "amplitude_ua": 100, "pulse_width_us": 300}
