"""Link threads under load: the keep-alive writer and the reader ask for real-time scheduling (a
busy PC's scheduler held a whole host silent for 465 ms, past the device watchdog), say what they
got, and the link measures its longest silence on the wire (docs/PROTOCOL.md, "Keep-alive under
load")."""

from __future__ import annotations

import logging
import os
import sys
import threading
import time
from collections.abc import Iterator

import pytest
from pytest_mock import MockerFixture

from stimctl.host.link import Link
from stimctl.host.threadpriority import (
    HOST_NICE,
    LINK_THREAD_PRIORITY,
    favour_process,
    raise_to_realtime,
)
from stimctl.protocol import State
from tests.test_heap_freeze import _telemetry
from tests.test_link import FakePort, Recorder

pytestmark = pytest.mark.timeout(20)

linux_only = pytest.mark.skipif(not sys.platform.startswith("linux"), reason="SCHED_RR: Linux")


@pytest.fixture
def link() -> Iterator[Link]:
    rec = Recorder()
    lk = Link(FakePort(), "fake://", rec.on_message, rec.on_lost)
    yield lk
    lk.close()


def _until(ok: object, limit: float = 5.0) -> None:
    deadline = time.monotonic() + limit
    while time.monotonic() < deadline and not ok():  # type: ignore[operator]
        time.sleep(0.01)


@linux_only
def test_the_keepalive_and_reader_threads_ask_for_sched_rr(
    link: Link, mocker: MockerFixture
) -> None:
    calls: list[tuple[int, int, int, int]] = []
    mocker.patch.object(
        os, "sched_setscheduler",
        lambda pid, policy, param: calls.append(
            (pid, policy, param.sched_priority, threading.get_native_id())),
    )  # fmt: skip
    mocker.patch.object(os, "setpriority")
    link.start_keepalive(0.05)
    _until(lambda: len(calls) >= 2)
    reader = link.reader.native_id
    assert (reader, os.SCHED_RR, LINK_THREAD_PRIORITY) in [c[:3] for c in calls]
    own = [c for c in calls if c[0] == 0]  # the keep-alive thread, on itself
    assert own and own[0][1:3] == (os.SCHED_RR, LINK_THREAD_PRIORITY)
    assert own[0][3] not in (reader, threading.get_native_id())
    assert link.priority == f"SCHED_RR {LINK_THREAD_PRIORITY}, nice {HOST_NICE}"


@linux_only
def test_refused_realtime_leaves_the_threads_normal_says_why_and_keeps_feeding(
    link: Link, mocker: MockerFixture, caplog: pytest.LogCaptureFixture
) -> None:
    refuse = PermissionError(1, "Operation not permitted")
    mocker.patch.object(os, "sched_setscheduler", side_effect=refuse)
    mocker.patch.object(os, "setpriority", side_effect=refuse)
    mocker.patch.object(os, "getpriority", return_value=0)
    with caplog.at_level(logging.WARNING, logger="stimctl.host.link"):
        link.start_keepalive(0.05)
    assert link.priority == "normal (Operation not permitted), nice 0 (Operation not permitted)"
    assert "Operation not permitted" in caplog.text
    frames = link.tx_frames
    _until(lambda: link.tx_frames >= frames + 3)
    assert link.tx_frames >= frames + 3  # HEARTBEATs flow at normal priority


def test_without_realtime_nothing_is_asked(link: Link, mocker: MockerFixture) -> None:
    spy = mocker.patch.object(os, "sched_setscheduler", create=True)
    nice = mocker.patch.object(os, "setpriority", create=True)
    link.start_keepalive(0.05, realtime=False)
    frames = link.tx_frames
    _until(lambda: link.tx_frames >= frames + 2)
    spy.assert_not_called()
    nice.assert_not_called()
    assert link.priority == "normal"


def test_raise_to_realtime_never_raises(mocker: MockerFixture) -> None:
    mocker.patch.object(os, "sched_setscheduler", side_effect=OSError(22, "Invalid argument"),
                        create=True)  # fmt: skip
    got = raise_to_realtime(12345)
    assert got.startswith("normal (")


@linux_only
def test_with_permission_the_link_threads_really_run_sched_rr(link: Link) -> None:
    if raise_to_realtime(threading.get_native_id(), 1).startswith("normal"):
        pytest.skip("this process may not use SCHED_RR (not root, no RLIMIT_RTPRIO)")
    os.sched_setscheduler(0, os.SCHED_OTHER, os.sched_param(0))  # undo it for this thread
    link.start_keepalive(0.05)
    _until(lambda: link._keepalive is not None and link._keepalive.native_id is not None)
    assert os.sched_getscheduler(link.reader.native_id) == os.SCHED_RR
    keepalive = link._keepalive
    assert keepalive is not None and keepalive.native_id is not None
    _until(lambda: os.sched_getscheduler(keepalive.native_id) == os.SCHED_RR)
    assert os.sched_getscheduler(keepalive.native_id) == os.SCHED_RR


def test_the_longest_silence_on_the_wire_is_measured(link: Link) -> None:
    """The host not scheduled for 0.3 s (here: its write lock held that long) while output can
    be live: the link's ``tx_gap_max_s``, which the record's summary carries, shows at least
    that silence; at rest (IDLE) a silence is not counted."""
    link.start_keepalive(0.05, realtime=False)
    _until(lambda: link.tx_frames >= 2)
    with link._wlock:  # at rest: not counted
        time.sleep(0.3)
    frames = link.tx_frames
    _until(lambda: link.tx_frames > frames)
    assert link.tx_gap_max_s < 0.3
    link.port.push(_telemetry(State.ARMED))  # type: ignore[attr-defined]
    _until(lambda: link.heap.live)
    with link._wlock:
        time.sleep(0.3)
    frames = link.tx_frames
    _until(lambda: link.tx_frames > frames)
    assert link.tx_gap_max_s >= 0.3


@linux_only
def test_favouring_the_process_renices_every_thread_and_never_raises(
    mocker: MockerFixture,
) -> None:
    niced: dict[int, int] = {}
    mocker.patch.object(os, "getpriority", return_value=0)
    mocker.patch.object(os, "setpriority", lambda which, tid, n: niced.__setitem__(tid, n))
    stop = threading.Event()
    other = threading.Thread(target=stop.wait)
    other.start()
    try:
        assert favour_process() == f"nice {HOST_NICE}"
    finally:
        stop.set()
        other.join()
    assert {threading.get_native_id(), other.native_id} <= set(niced)
    assert set(niced.values()) == {HOST_NICE}
    mocker.patch.object(os, "setpriority", side_effect=PermissionError(13, "Permission denied"))
    assert favour_process() == "nice 0 (Permission denied)"
