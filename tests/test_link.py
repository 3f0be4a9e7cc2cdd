"""Link: handshake checks, request/ack with retries, sequence numbers, vanished ports."""

from __future__ import annotations

import dataclasses
import errno
import threading
import time
from collections.abc import Callable
from pathlib import Path

import pytest

from stimctl.host.errors import CommandRejected, LinkError, ProtocolMismatch
from stimctl.host.link import Link
from stimctl.host.simprocess import SimulatorProcess
from stimctl.protocol import (
    CATALOGUE_HASH,
    PROTOCOL_VERSION,
    SEQ_MODULO,
    Ack,
    Adjust,
    DeviceInfo,
    EStop,
    FrameDecoder,
    Hello,
    Message,
    Nak,
    NakReason,
    Start,
    encode,
)

pytestmark = pytest.mark.timeout(10)

INFO = DeviceInfo(
    protocol_version=PROTOCOL_VERSION, catalogue_hash=CATALOGUE_HASH, fw_major=1, fw_minor=0,
    fw_patch=0, serial="FAKE1", channels=2, fifo_depth=32, max_lookahead_ms=250, tick_hz=1000,
    telemetry_hz=50, watchdog_ms=200, impedance_valid_ms=300_000, max_amplitude_ua=20_000,
    amplitude_step_ua=10, min_pulse_width_us=20, max_pulse_width_us=1000, min_frequency_dhz=5,
    max_frequency_dhz=2500, compliance_mv=60_000, max_slew_ua_per_ms=10,
    impedance_max_ohm=20_000,
)  # fmt: skip


class FakePort:
    """A scripted serial port: answers HELLO with ``info`` and every command with ``answer``."""

    def __init__(self, info: DeviceInfo = INFO) -> None:
        self.info = info
        self.answer: Callable[[Message], Message | None] = lambda m: Ack(
            ack_seq=m.seq, ack_type=m.TYPE
        )
        self.timeout = 0.01
        self.written: list[bytes] = []
        self.received: list[Message] = []
        self._decoder = FrameDecoder()
        self._rx = bytearray()
        self._cond = threading.Condition()
        self.read_error: OSError | None = None

    @property
    def in_waiting(self) -> int:
        return len(self._rx)

    def read(self, size: int = 1) -> bytes:
        with self._cond:
            if self.read_error is not None:
                raise self.read_error
            if not self._rx:
                self._cond.wait(self.timeout)
            out = bytes(self._rx[:size])
            del self._rx[:size]
            return out

    def write(self, data: bytes) -> int:
        self.written.append(bytes(data))
        for msg in self._decoder.feed(data):
            assert isinstance(msg, Message)
            self.received.append(msg)
            reply = self.info if isinstance(msg, Hello) else self.answer(msg)
            if reply is not None:
                self.push(reply)
        return len(data)

    def push(self, msg: Message) -> None:
        with self._cond:
            self._rx += encode(msg)
            self._cond.notify_all()

    def vanish(self) -> None:
        with self._cond:
            self.read_error = OSError(errno.EIO, "Input/output error")
            self._cond.notify_all()

    def close(self) -> None:
        pass


class Recorder:
    def __init__(self) -> None:
        self.messages: list[Message] = []
        self.lost: list[BaseException | None] = []
        self.lost_event = threading.Event()

    def on_message(self, msg: Message) -> None:
        self.messages.append(msg)

    def on_lost(self, exc: BaseException | None) -> None:
        self.lost.append(exc)
        self.lost_event.set()


@pytest.fixture
def port() -> FakePort:
    return FakePort()


@pytest.fixture
def rec() -> Recorder:
    return Recorder()


@pytest.fixture
def link(port: FakePort, rec: Recorder):
    lk = Link(port, "fake://", rec.on_message, rec.on_lost)
    yield lk
    lk.close()


def test_hello_returns_the_device_info(link: Link) -> None:
    assert link.hello(timeout=1).serial == "FAKE1"


def test_catalogue_hash_mismatch_raises_protocol_mismatch(port: FakePort, link: Link) -> None:
    port.info = dataclasses.replace(INFO, catalogue_hash=CATALOGUE_HASH ^ 1)
    with pytest.raises(ProtocolMismatch, match="message catalogue mismatch: device hash"):
        link.hello(timeout=1)


def test_protocol_version_mismatch_raises_protocol_mismatch(port: FakePort, link: Link) -> None:
    port.info = dataclasses.replace(INFO, protocol_version=PROTOCOL_VERSION + 1)
    with pytest.raises(ProtocolMismatch, match=f"device speaks {PROTOCOL_VERSION + 1}"):
        link.hello(timeout=1)


def test_hello_refused_with_nak_version_raises_protocol_mismatch(link: Link) -> None:
    link.port.info = Nak(ack_seq=0, ack_type=Hello.TYPE, reason=NakReason.VERSION)
    with pytest.raises(ProtocolMismatch, match="VERSION"):
        link.hello(timeout=1)


def test_request_returns_the_ack(link: Link) -> None:
    reply = link.request(Start(), timeout=1)
    assert isinstance(reply, Ack) and reply.ack_type == Start.TYPE


def test_nak_raises_command_rejected_with_the_reason(port: FakePort, link: Link) -> None:
    port.answer = lambda m: Nak(ack_seq=m.seq, ack_type=m.TYPE, reason=NakReason.BAD_STATE)
    with pytest.raises(CommandRejected, match="START rejected by the device: BAD_STATE"):
        link.request(Start(), timeout=1)


def test_a_command_whose_answer_was_lost_is_sent_again_with_the_same_seq(
    port: FakePort, link: Link
) -> None:
    answers = iter([None, "ack"])
    port.answer = lambda m: Ack(ack_seq=m.seq, ack_type=m.TYPE) if next(answers) else None
    link.request(Start(), timeout=2)
    assert len(port.received) == 2 and port.received[0] == port.received[1]
    assert link.commands_resent == 1


def test_an_unanswered_command_fails_after_its_timeout(port: FakePort, link: Link) -> None:
    port.answer = lambda m: None
    with pytest.raises(LinkError, match="no answer"):
        link.request(Start(), timeout=0.6)
    assert len(port.received) >= 2 and len({m.seq for m in port.received}) == 1


def test_no_session_is_answered_by_hello_and_the_command_again(port: FakePort, link: Link) -> None:
    answers = iter([NakReason.NO_SESSION, None])
    port.answer = lambda m: (
        Nak(ack_seq=m.seq, ack_type=m.TYPE, reason=reason)
        if (reason := next(answers)) is not None
        else Ack(ack_seq=m.seq, ack_type=m.TYPE)
    )
    assert isinstance(link.request(Start(), timeout=2), Ack)
    assert [type(m).__name__ for m in port.received] == ["Start", "Hello", "Start"]
    assert link.sessions_reopened == 1


def test_sequence_numbers_increase_and_wrap(port: FakePort, link: Link) -> None:
    link._seq = SEQ_MODULO - 2
    for _ in range(3):
        link.send(Start())
    assert [m.seq for m in port.received] == [SEQ_MODULO - 1, 0, 1]


def test_urgent_estop_is_preceded_by_a_delimiter(port: FakePort, link: Link) -> None:
    link.write_urgent(EStop())
    assert port.written[-1].startswith(b"\x00") and isinstance(port.received[-1], EStop)


def test_vanished_port_reports_link_lost_once(port: FakePort, link: Link, rec: Recorder) -> None:
    port.vanish()
    assert rec.lost_event.wait(2)
    time.sleep(0.05)
    assert len(rec.lost) == 1 and isinstance(rec.lost[0], OSError)


def test_vanished_port_fails_a_waiting_request_without_hanging(port: FakePort, link: Link) -> None:
    port.answer = lambda m: None
    threading.Timer(0.05, port.vanish).start()
    with pytest.raises(LinkError, match="lost"):
        link.request(Start(), timeout=5)


def test_send_after_the_port_vanished_raises_link_error(
    port: FakePort, link: Link, rec: Recorder
) -> None:
    port.vanish()
    rec.lost_event.wait(2)
    with pytest.raises(LinkError, match="down"):
        link.send(Start())


def test_unsolicited_messages_go_to_on_message(port: FakePort, link: Link, rec: Recorder) -> None:
    port.push(Nak(ack_seq=999, ack_type=Start.TYPE, reason=NakReason.BAD_STATE))
    deadline = time.monotonic() + 2
    while not rec.messages and time.monotonic() < deadline:
        time.sleep(0.01)
    assert isinstance(rec.messages[0], Nak)


# --- against the simulator in its own process, over a pseudo-terminal ---------------------------

DEMO = Path(__file__).resolve().parent.parent / "profiles" / "short-demo.toml"


@pytest.fixture
def sim_port(tmp_path: Path):
    with SimulatorProcess() as sim:
        yield sim.port


def _until(cond: Callable[[], bool], timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while not cond():
        assert time.monotonic() < deadline, "condition not reached"
        time.sleep(0.01)


@pytest.mark.timeout(30)
def test_port_closed_under_a_running_session_is_link_lost_and_reconnect_stays_disarmed(
    sim_port: str,
) -> None:
    from stimctl.controller import Controller
    from stimctl.host.errors import InterlockError
    from stimctl.host.status import HostState, Outcome

    with Controller.connect(sim_port) as ctl:
        ctl.load(DEMO)
        ctl.check_impedance()
        ctl.arm(confirm=True)
        ctl.start()
        _until(lambda: ctl.status().device_state == "RUNNING")
        ctl.link.port.close()  # the port vanishes under the reader thread
        assert ctl.wait(timeout=5) is Outcome.FAULT
        assert (ctl.state, ctl.fault.code) == (HostState.FAULT, "LINK_LOST")
        time.sleep(0.3)  # the device's watchdog / FIFO runs out meanwhile
        ctl.reconnect()
        assert ctl.state is HostState.FAULT and ctl.fault.code == "LINK_LOST"
        assert ctl.status().device_state == "FAULT"
        ctl.acknowledge_fault()
        assert ctl.state is HostState.IDLE
        with pytest.raises(InterlockError, match="impedance"):
            ctl.arm(confirm=True)


# --- port discovery ------------------------------------------------------------------------------


def _ports() -> list:
    from stimctl.host.ports import PortInfo

    return [
        PortInfo("/dev/ttyUSB0", "stim", "STIM0001", 0x0403, 0x6001, "FTDI"),
        PortInfo("/dev/ttyUSB1", "stim", "STIM0002", 0x0403, 0x6001, "FTDI"),
        PortInfo("/dev/ttyUSB2", "copy", "STIM0002", 0x0403, 0x6001, "FTDI"),
    ]


def test_usb_serial_resolves_to_its_device_path() -> None:
    from stimctl.host.ports import resolve_port

    assert resolve_port("usb:STIM0001", _ports()) == "/dev/ttyUSB0"


def test_unknown_usb_serial_raises_link_error() -> None:
    from stimctl.host.ports import resolve_port

    with pytest.raises(LinkError, match="no serial port with USB serial number 'NOPE'"):
        resolve_port("usb:NOPE", _ports())


def test_ambiguous_usb_serial_raises_link_error_naming_the_ports() -> None:
    from stimctl.host.ports import resolve_port

    with pytest.raises(LinkError, match="/dev/ttyUSB1, /dev/ttyUSB2"):
        resolve_port("usb:STIM0002", _ports())


def test_urls_and_paths_pass_through_unchanged() -> None:
    from stimctl.host.ports import resolve_port

    assert resolve_port("socket://localhost:7777", []) == "socket://localhost:7777"


def test_one_control_command_is_outstanding_at_a_time(port: FakePort, link: Link) -> None:
    """The device remembers one answer, so a second command waits for the first's answer."""
    unanswered = iter([True, True])
    port.answer = lambda m: None if next(unanswered, False) else Ack(ack_seq=m.seq, ack_type=m.TYPE)
    second = threading.Timer(0.05, lambda: link.request(Adjust(channel=1, gain_permille=900)))
    second.start()
    link.request(Start(), timeout=2)
    second.join()
    names = [type(m).__name__ for m in port.received]
    assert names == ["Start", "Start", "Start", "Adjust"]
