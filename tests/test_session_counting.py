"""The session's delivered time, pulse and charge totals, frame by frame from TELEMETRY.

The totals are specified by the plain per-frame rule below (the device's running counters,
restarts after a reset carried over, charge = new pulses x set current x the block's pulse
width); the session must reach exactly the same dictionaries, float for float, on any stream.
"""

from __future__ import annotations

from pathlib import Path

from hypothesis import given, settings
from hypothesis import strategies as st

from stimctl.controller import Controller
from stimctl.host.schedule import Schedule, compile_schedule
from stimctl.host.session import Session
from stimctl.protocol import ChannelTelemetry, State, Telemetry
from stimctl.rules.profile import load_profile

DEMO = Path(__file__).resolve().parent.parent / "profiles" / "han-dense-disperse.toml"
SCHEDULE = compile_schedule(load_profile(DEMO))


class Spec:
    """The rule, written plainly: what the session's totals must equal."""

    def __init__(self, schedule: Schedule | None) -> None:
        self.schedule = schedule
        self.prev: Telemetry | None = None
        self.elapsed_ms = 0
        self.pulses: dict[int, int] = {}
        self.charge_uc: dict[int, float] = {}
        self.base: dict[int, int] = {}
        self.raw: dict[int, int] = {}

    def feed(self, tel: Telemetry) -> None:
        if self.prev is not None and State(self.prev.state) in (State.RUNNING, State.STOPPING):
            self.elapsed_ms += max(0, tel.time_ms - self.prev.time_ms)
        self.prev = tel
        s, pw = self.schedule, 0
        if s is not None and s.n_blocks:
            pw = int(s.pulse_width_us[min(tel.block_index, s.n_blocks - 1)])
        for ch, item in enumerate(tel.channels, start=1):
            before = self.raw.get(ch, 0)
            if item.pulses < before:
                self.base[ch] = self.base.get(ch, 0) + before
                before = 0
            if item.pulses > before:
                new = (item.pulses - before) * item.set_ua * pw / 1e6
                self.charge_uc[ch] = self.charge_uc.get(ch, 0.0) + new
            self.raw[ch] = item.pulses
            self.pulses[ch] = self.base.get(ch, 0) + item.pulses


def _session(schedule: Schedule | None) -> Session:
    session = Controller().session
    if schedule is not None:
        profile = load_profile(DEMO)
        session.load(profile, None, schedule)  # type: ignore[arg-type]
    return session


_frame = st.tuples(
    st.integers(0, 60),  # ms since the last frame
    st.sampled_from([s.value for s in State]),
    st.integers(0, SCHEDULE.n_blocks + 50),  # block index (past the end too)
    st.lists(st.tuples(st.integers(0, 3), st.sampled_from([0, 400, 1000, 1370])),
             min_size=4, max_size=4),  # (pulse step: 3 = counter restart, set_ua)
)  # fmt: skip


def _tel(time_ms: int, state: int, block: int, channels: list[tuple[int, int]]) -> Telemetry:
    """A TELEMETRY frame; ``channels``: (pulse counter, set current in uA) per channel."""
    items = tuple(ChannelTelemetry(set_ua, set_ua, 1500, pulses) for pulses, set_ua in channels)
    return Telemetry(time_ms=time_ms, state=state, fault=0, fault_channel=0, fifo_blocks=0,
                     fifo_ms=0, block_index=block, next_block=block, channels=items)  # fmt: skip


def _stream(frames: list) -> list[Telemetry]:
    out, t, counts = [], 0, [0, 0, 0, 0]
    for dt, state, block, channels in frames:
        t += dt
        for i, (step, _) in enumerate(channels):
            counts[i] = 0 if step == 3 else counts[i] + step * 7
        out.append(
            _tel(t, state, block, [(n, c[1]) for n, c in zip(counts, channels, strict=True)])
        )
    return out


@settings(max_examples=200, deadline=None)
@given(st.lists(_frame, max_size=40), st.booleans())
def test_totals_follow_the_per_frame_rule_exactly(frames: list, loaded: bool) -> None:
    schedule = SCHEDULE if loaded else None
    session, spec = _session(schedule), Spec(schedule)
    for tel in _stream(frames):
        session.count_telemetry(tel)
        spec.feed(tel)
    assert session.elapsed_ms == spec.elapsed_ms
    assert session.pulses == spec.pulses
    assert session.charge_uc == spec.charge_uc


def test_a_counter_restart_keeps_the_pulses_counted_before_it() -> None:
    session = _session(SCHEDULE)
    for t, pulses in enumerate((100, 250, 3, 10)):
        session.count_telemetry(_tel(20 * t, State.RUNNING, 0, [(pulses, 1000)]))
    assert session.pulses == {1: 250 + 10}
    assert session.elapsed_ms == 60
