"""Link recovery end to end (docs/PROTOCOL.md, "Link recovery"): on a noisy link a session costs
retransmissions, not the session; at heavy noise it ends safely; keep-alive and reconnection do
not depend on the reader thread or on an operator.

The noisy sessions run on the lock-step virtual clock (deterministic per seed); the 20-seed figure
is the bench's (`python -m hil.bench --only link_noise`).
"""

from __future__ import annotations

import itertools
import math
import os
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from types import SimpleNamespace

import pytest
from pytest_mock import MockerFixture

from stimctl.controller import Controller
from stimctl.host import linkretry
from stimctl.host.record import summarise
from stimctl.host.status import HostState, Outcome
from stimctl.protocol import (
    HELLO_RETRY_MS,
    MIN_WATCHDOG_MS,
    PROTOCOL_VERSION,
    Block,
    FrameDecoder,
    Hello,
    State,
)

pytestmark = pytest.mark.timeout(120)

PROFILES = Path(__file__).resolve().parent.parent / "profiles"
DEMO = PROFILES / "short-demo.toml"
SLOW = os.environ.get("STIMCTL_SLOW") == "1"


def _noisy(tmp_path: Path, **sim: str) -> Controller:
    return Controller.connect(
        None, speed=math.inf, sim_options=sim, record=tmp_path / "session.jsonl"
    )


def _run(ctl: Controller, profile: Path = DEMO, timeout: float = 60) -> Outcome | None:
    ctl.load(profile)
    ctl.check_impedance()
    ctl.arm(confirm=True, acknowledge_warnings=True)
    ctl.start()
    return ctl.wait(timeout=timeout)


def _exact(ctl: Controller) -> bool:
    return all(c.pulses == c.expected_pulses for c in ctl.summary().channels)


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_a_session_on_a_noisy_link_delivers_every_pulse(tmp_path: Path, seed: int) -> None:
    with _noisy(tmp_path, flip="0.0001", drop="0.0001", seed=str(seed)) as ctl:
        assert _run(ctl) is Outcome.COMPLETED
        summary = ctl.summary()
        assert _exact(ctl), summary.channels
        assert summary.underruns == 0
        assert summary.retransmits > 0  # about 30 blocks are lost per 60 s session at this rate
        assert summary.retransmits == ctl.status().retransmits


@pytest.mark.skipif(not SLOW, reason="slow: run with STIMCTL_SLOW=1")
def test_a_30_minute_dense_disperse_session_completes_at_one_flip_in_1000(tmp_path: Path) -> None:
    with _noisy(tmp_path, flip="0.001", seed="7") as ctl:
        assert _run(ctl, PROFILES / "han-dense-disperse.toml", timeout=900) is Outcome.COMPLETED
        assert _exact(ctl) and ctl.summary().underruns == 0


def _set_noise(ctl: Controller, flip: float) -> None:
    port = ctl.link.port  # type: ignore[union-attr]
    with port.lock:
        port.device.link.flip = flip


@pytest.mark.parametrize("seed", [1, 2])
def test_at_heavy_noise_a_session_completes_exactly_or_ends_safe(tmp_path: Path, seed: int) -> None:
    """One bit in twenty bytes flipped, from the middle of a session on: it either still
    completes with exact counts, or ends with zero output, a latched fault and a closed record."""
    ctl = _noisy(tmp_path, seed=str(seed))
    port = ctl.link.port  # type: ignore[union-attr]
    ctl.load(DEMO)
    ctl.check_impedance()
    ctl.arm(confirm=True, acknowledge_warnings=True)
    ctl.start()
    assert ctl.wait_until(lambda s: s.elapsed_s >= 2, timeout=30)
    _set_noise(ctl, 0.05)
    outcome = ctl.wait(timeout=60)
    with port.lock:
        device_state, output = port.device.state, port.device.output_stage.any_output
    ctl.close()
    record = summarise(tmp_path / "session.jsonl")
    assert record.closed
    if outcome is Outcome.COMPLETED:
        assert _exact(ctl)
    else:
        assert outcome is Outcome.FAULT, outcome
        assert device_state in (State.FAULT, State.ESTOP), device_state
        assert not output
        assert record.faults


def test_a_lost_block_is_written_again_and_the_session_is_exact(
    tmp_path: Path, mocker: MockerFixture
) -> None:
    with _noisy(tmp_path) as ctl:
        _lose_block_frames(ctl, mocker, {50, 51, 52})  # three in a row, once each
        assert _run(ctl) is Outcome.COMPLETED
        assert _exact(ctl)
        assert ctl.session.streamer is not None and ctl.session.streamer.stats.resent >= 3


def test_the_last_block_lost_is_written_again_after_the_timer(
    tmp_path: Path, mocker: MockerFixture
) -> None:
    """No block follows the LAST one to draw a NAK: the retransmission timer finds it."""
    with _noisy(tmp_path) as ctl:
        ctl.load(DEMO)
        last = ctl.session.schedule.n_blocks - 1  # type: ignore[union-attr]
        _lose_block_frames(ctl, mocker, {last})
        ctl.check_impedance()
        ctl.arm(confirm=True, acknowledge_warnings=True)
        ctl.start()
        assert ctl.wait(timeout=60) is Outcome.COMPLETED
        assert _exact(ctl)


def _lose_block_frames(ctl: Controller, mocker: MockerFixture, indices: set[int]) -> None:
    """The first frame of each block in ``indices`` never reaches the device."""
    port = ctl.link.port  # type: ignore[union-attr]
    write, pending = port.write, set(indices)

    def lossy_write(data: bytes) -> int | None:
        for msg in FrameDecoder().feed(bytes(data)):
            if isinstance(msg, Block) and msg.index in pending:
                pending.discard(msg.index)
                return len(data)
        return write(data)

    mocker.patch.object(port, "write", side_effect=lossy_write)


def test_silence_in_idle_ends_the_device_session_and_the_host_comes_back_alone(
    tmp_path: Path,
) -> None:
    with _noisy(tmp_path) as ctl:
        port = ctl.link.port  # type: ignore[union-attr]
        ctl.link.mute = True  # type: ignore[union-attr]  # a host not scheduled for a while
        assert ctl.wait_until(lambda _s: not port.device.session_open, timeout=10)
        ctl.link.mute = False  # type: ignore[union-attr]
        readings = ctl.check_impedance()  # NAK NO_SESSION -> HELLO -> the check again
        assert all(r.ok for r in readings.values())
        assert ctl.state is HostState.IDLE and ctl.fault is None
        assert port.device.fault.name == "NONE"
        assert ctl.link.sessions_reopened + ctl.link.probes >= 1  # type: ignore[union-attr]


@pytest.fixture
def realtime(tmp_path: Path) -> Iterator[Controller]:
    ctl = Controller.connect("stimsim://", record=tmp_path / "rt.jsonl")
    yield ctl
    ctl.close()


def test_the_keepalive_does_not_wait_for_a_stalled_reader_thread(realtime: Controller) -> None:
    """A telemetry subscriber (a UI) that blocks the reader thread for 1 s (5 watchdog periods)
    while ARMED: the keep-alive thread feeds the watchdog, nothing latches."""
    ctl = realtime
    ctl.load(DEMO)
    ctl.check_impedance()
    ctl.arm(confirm=True, acknowledge_warnings=True)
    stalled = threading.Event()

    def slow_ui(_status: object) -> None:
        if not stalled.is_set():
            stalled.set()
            time.sleep(1.0)

    unsubscribe = ctl.on_telemetry(slow_ui)
    assert stalled.wait(2)
    time.sleep(1.2)
    unsubscribe()
    port = ctl.link.port  # type: ignore[union-attr]
    with port.lock:
        assert port.device.state is State.ARMED, port.device.fault
    assert ctl.state is HostState.ARMED


def test_a_host_silent_in_idle_finds_the_session_again_without_a_fault(
    realtime: Controller,
) -> None:
    """Real time: the host writes nothing for 0.6 s (its probes are lost too); the device ends
    its idle session; the host's HELLO probes, repeated while the device is silent, reopen it."""
    ctl = realtime
    link = ctl.link
    assert link is not None
    port = link.port
    link.mute = True
    time.sleep(0.6)
    with port.lock:
        assert not port.device.session_open
    link.mute = False
    deadline = time.monotonic() + 3.0
    while time.monotonic() < deadline and not port.device.session_open:
        ctl.status()  # supervision runs on the caller's thread too
        time.sleep(0.05)
    assert port.device.session_open and link.probes >= 2
    time.sleep(2.5)  # longer than the host's 2 s silence limit: the session stays
    assert ctl.status().state is HostState.IDLE and ctl.fault is None
    assert all(r.ok for r in ctl.check_impedance().values())


def test_hello_is_repeated_with_a_new_frame_before_the_smallest_watchdog_could_expire(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Before a session there is no device clock: HELLO is paced on host time, HELLO_RETRY_MS,
    shorter than any watchdog a device may report, so a session opened by a HELLO whose
    DEVICE_INFO was lost is fed again before it can end. Host time is a fake clock here."""
    clock = [0.0]

    def monotonic() -> float:
        clock[0] += 0.001
        return clock[0]

    monkeypatch.setattr(linkretry, "time", SimpleNamespace(monotonic=monotonic))
    sent: list[float] = []
    fake = SimpleNamespace(device_ms=None, lost=None, send=lambda msg, track: sent.append(clock[0]))
    pending = linkretry.Pending(Hello(protocol_version=PROTOCOL_VERSION))
    pending.done = SimpleNamespace(wait=lambda timeout: False)  # type: ignore[assignment]
    linkretry.handshake(fake, pending, deadline=1.0)  # type: ignore[arg-type]
    gaps_ms = [(b - a) * 1000 for a, b in itertools.pairwise(sent)]
    assert len(sent) >= 1000 // MIN_WATCHDOG_MS and pending.attempts == len(sent)
    assert max(gaps_ms) < MIN_WATCHDOG_MS and max(gaps_ms) <= HELLO_RETRY_MS + 5
