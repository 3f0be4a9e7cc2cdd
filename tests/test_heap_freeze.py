"""Short garbage-collector pauses while output can be live (stimctl/host/heapfreeze.py): a full
collection holds the interpreter lock, so no link thread can write during it; in the TUI under
load full collections took 486-588 ms and the device latched COMMS_LOSS. The heap alive when
the device enters a live state is frozen (collections skip it) and thawed at rest."""

from __future__ import annotations

import gc
import time
from collections.abc import Iterator

import pytest

from stimctl.host.heapfreeze import HeapFreeze
from stimctl.host.link import Link
from stimctl.protocol import State, Telemetry
from tests.test_link import FakePort, Recorder

pytestmark = pytest.mark.timeout(20)


@pytest.fixture(autouse=True)
def thawed() -> Iterator[None]:
    gc.unfreeze()
    yield
    gc.unfreeze()


def _telemetry(state: State) -> Telemetry:
    return Telemetry(time_ms=1, state=state, fault=0, fault_channel=0, fifo_blocks=0, fifo_ms=0,
                     block_index=0, next_block=0, channels=())  # fmt: skip


class _Node:
    def __init__(self) -> None:
        self.me = self  # a reference cycle: only the cyclic collector frees it


def test_objects_alive_when_output_can_become_live_are_skipped_by_the_collector() -> None:
    heap = HeapFreeze()
    heap.device_state(State.IDLE)
    nodes = [_Node() for _ in range(1000)]
    assert gc.get_freeze_count() == 0
    heap.device_state(State.ARMED)
    assert gc.get_freeze_count() >= len(nodes)
    walked = {id(o) for o in gc.get_objects()}  # what a full collection walks
    assert not any(id(n) in walked for n in nodes)


def test_each_live_state_freezes_what_it_built_and_rest_thaws_everything() -> None:
    heap = HeapFreeze()
    heap.device_state(State.ARMED)
    later = [_Node() for _ in range(100)]  # built after ARM (a run screen)
    heap.device_state(State.RUNNING)
    assert heap.freezes == 2
    assert not {id(n) for n in later} & {id(o) for o in gc.get_objects()}
    heap.device_state(State.RUNNING)  # the same state again: nothing more
    assert heap.freezes == 2
    heap.device_state(State.IDLE)
    assert gc.get_freeze_count() == 0


@pytest.mark.parametrize("rest", [State.FAULT, State.ESTOP])
def test_a_latched_device_is_at_rest(rest: State) -> None:
    heap = HeapFreeze()
    heap.device_state(State.RUNNING)
    heap.device_state(rest)
    assert gc.get_freeze_count() == 0


def _link_with(keepalive: bool) -> tuple[Link, FakePort]:
    port = FakePort()
    rec = Recorder()
    link = Link(port, "fake://", rec.on_message, rec.on_lost)
    if keepalive:
        link.start_keepalive(0.05, realtime=False)
    return link, port


def _until(ok: object, limit: float = 5.0) -> None:
    deadline = time.monotonic() + limit
    while time.monotonic() < deadline and not ok():  # type: ignore[operator]
        time.sleep(0.01)


def test_a_real_time_link_freezes_on_live_telemetry_and_thaws_on_close() -> None:
    link, port = _link_with(keepalive=True)
    try:
        port.push(_telemetry(State.ARMED))
        _until(lambda: link.heap.freezes == 1)
        assert gc.get_freeze_count() > 0
    finally:
        link.close()
    assert gc.get_freeze_count() == 0


def test_a_link_without_keepalive_never_freezes() -> None:
    """Virtual-clock simulators: host time means nothing to the device, nothing to protect."""
    link, port = _link_with(keepalive=False)
    try:
        port.push(_telemetry(State.RUNNING))
        _until(lambda: link.device_ms is not None)
        assert link.device_ms == 1
        assert link.heap.freezes == 0 and gc.get_freeze_count() == 0
    finally:
        link.close()
