"""Raw protocol host for conformance tests: DeviceLink writes exact frames, sees every reply."""

from __future__ import annotations

import contextlib
import dataclasses
import struct
import threading
import time
import zlib
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import TypeVar

import serial
from cobs import cobs

from hil.blockstreamer import Streamer
from stimctl.protocol import (
    PROTOCOL_VERSION,
    SEQ_MODULO,
    Ack,
    Arm,
    Block,
    ChannelSetting,
    ClearFault,
    DeviceInfo,
    Disarm,
    EStop,
    FrameDecoder,
    Goodbye,
    Heartbeat,
    Hello,
    ImpedanceCheck,
    ImpedanceResult,
    Invalid,
    Message,
    Nak,
    Pause,
    Shape,
    Start,
    State,
    Telemetry,
    encode,
)

M = TypeVar("M", bound=Message)

BAUDRATE = 115200


class LinkTimeout(AssertionError):
    """The device did not send what was expected in time."""


@dataclass(frozen=True, slots=True)
class Received:
    """One decoded frame (or Invalid record) with the host's monotonic arrival time."""

    t_ns: int
    msg: Message | Invalid


def raw_frame(
    type_code: int,
    seq: int,
    payload: bytes = b"",
    *,
    version: int = PROTOCOL_VERSION,
    corrupt_crc: bool = False,
) -> bytes:
    """A hand-built frame (for malformed-frame tests): any type, version and payload."""
    body = struct.pack("<BBH", version, type_code, seq) + payload
    crc = zlib.crc32(body) ^ (0xFFFFFFFF if corrupt_crc else 0)
    return cobs.encode(body + struct.pack("<I", crc)) + b"\x00"


def setting(
    amplitude_ua: int,
    frequency_dhz: int = 20,
    pulse_width_us: int = 200,
) -> ChannelSetting:
    return ChannelSetting(amplitude_ua, frequency_dhz, pulse_width_us)


class DeviceLink:
    """A minimal host: writes encoded frames, decodes what the device sends, waits with timeouts.

    A reader thread owns the receive side; every frame is kept (with arrival time) so a test can
    look for exactly the ACK/NAK its command produced. Nothing is sent unless a test asks for it,
    except the optional keep-alive heartbeat.
    """

    def __init__(self, url: str, *, timeout: float = 1.0) -> None:
        self.url = url
        self.timeout = timeout
        self.port = serial.serial_for_url(url, baudrate=BAUDRATE, timeout=0.01)
        self.decoder = FrameDecoder()
        self.received: list[Received] = []
        self.info: DeviceInfo | None = None
        self._seq = 0
        self._cond = threading.Condition()
        self._write_lock = threading.Lock()
        self._closing = threading.Event()
        self._keepalive: threading.Thread | None = None
        self.streamers: list[Streamer] = []
        self._keepalive_stop = threading.Event()
        self._reader = threading.Thread(target=self._read_loop, name="devicelink-rx", daemon=True)
        self._reader.start()

    # --- I/O -----------------------------------------------------------------------------------

    def _read_loop(self) -> None:
        while not self._closing.is_set():
            try:
                data = self.port.read(max(1, self.port.in_waiting))
            except (serial.SerialException, OSError, TypeError, AttributeError):
                if self._closing.is_set():
                    return
                time.sleep(0.01)
                continue
            if not data:
                continue
            now = time.monotonic_ns()
            items = self.decoder.feed(data)
            if items:
                with self._cond:
                    self.received.extend(Received(now, item) for item in items)
                    self._cond.notify_all()

    def next_seq(self) -> int:
        self._seq = (self._seq + 1) % SEQ_MODULO
        return self._seq

    def write_raw(self, data: bytes) -> int:
        """Write bytes as they are; returns the monotonic time (ns) after the write."""
        with self._write_lock:
            self.port.write(data)
            self.port.flush()
        return time.monotonic_ns()

    def send(self, msg: Message) -> int:
        """Send ``msg`` with the next sequence number; returns that number."""
        seq = self.next_seq()
        self.write_raw(encode(dataclasses.replace(msg, seq=seq)))
        return seq

    # --- waiting -------------------------------------------------------------------------------

    def mark(self) -> int:
        """An index into ``received``: pass it as ``since`` to look only at later frames."""
        with self._cond:
            return len(self.received)

    def wait_for(
        self,
        predicate: Callable[[Message | Invalid], bool],
        timeout: float | None = None,
        since: int = 0,
    ) -> Received | None:
        """The first frame at or after ``since`` matching ``predicate``; None on timeout."""
        deadline = time.monotonic() + (self.timeout if timeout is None else timeout)
        index = since
        with self._cond:
            while True:
                while index < len(self.received):
                    item = self.received[index]
                    index += 1
                    if predicate(item.msg):
                        return item
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    return None
                self._cond.wait(remaining)

    def expect(
        self,
        kind: type[M],
        timeout: float | None = None,
        since: int = 0,
        where: Callable[[M], bool] | None = None,
    ) -> M:
        """The first message of ``kind`` (optionally matching ``where``); LinkTimeout if none."""
        found = self.wait_for(
            lambda m: isinstance(m, kind) and (where is None or where(m)), timeout, since
        )
        if found is None:
            raise LinkTimeout(f"no {kind.__name__} from the device within the timeout")
        assert isinstance(found.msg, kind)
        return found.msg

    def messages(self, kind: type[M], since: int = 0) -> list[M]:
        with self._cond:
            return [r.msg for r in self.received[since:] if isinstance(r.msg, kind)]

    def answer_to(self, seq: int, timeout: float | None = None, since: int = 0) -> Ack | Nak:
        """The ACK or NAK carrying ``ack_seq == seq``."""
        found = self.wait_for(
            lambda m: isinstance(m, Ack | Nak) and m.ack_seq == seq, timeout, since
        )
        if found is None:
            raise LinkTimeout(f"no ACK/NAK for seq {seq} within the timeout")
        assert isinstance(found.msg, Ack | Nak)
        return found.msg

    def request(self, msg: Message, timeout: float | None = None) -> Ack | Nak:
        """Send a command and return its answer (ACK or NAK)."""
        since = self.mark()
        return self.answer_to(self.send(msg), timeout, since)

    def command(self, msg: Message, timeout: float | None = None) -> Ack:
        """Send a command that must be ACKed."""
        answer = self.request(msg, timeout)
        if not isinstance(answer, Ack):
            raise AssertionError(f"{type(msg).__name__} refused: {answer}")
        return answer

    def hello(self, timeout: float | None = None) -> DeviceInfo:
        since = self.mark()
        self.send(Hello(protocol_version=PROTOCOL_VERSION))
        self.info = self.expect(DeviceInfo, timeout, since)
        return self.info

    def telemetry(self, timeout: float | None = None, since: int | None = None) -> Telemetry:
        """The next TELEMETRY frame after now (or after ``since``)."""
        return self.expect(Telemetry, timeout, self.mark() if since is None else since)

    def wait_state(self, state: State, timeout: float | None = None) -> Telemetry:
        """The first telemetry from now on that reports ``state``."""
        return self.expect(Telemetry, timeout, self.mark(), where=lambda t: t.state == state)

    # --- procedures ----------------------------------------------------------------------------

    @property
    def all_channels(self) -> int:
        assert self.info is not None
        return (1 << self.info.channels) - 1

    def check_impedance(self, mask: int, timeout: float | None = None) -> ImpedanceResult:
        since = self.mark()
        self.command(ImpedanceCheck(channel_mask=mask), timeout)
        return self.expect(ImpedanceResult, timeout, since)

    def arm(self, mask: int = 1, shape: Shape = Shape.BIPHASIC_SYMMETRIC) -> None:
        """Impedance check then ARM: IDLE -> ARMED on the channels in ``mask``."""
        self.check_impedance(mask)
        self.command(Arm(channel_mask=mask, shape=int(shape)))

    def block(
        self,
        index: int,
        amplitude_ua: int = 500,
        *,
        duration_ms: int = 20,
        mask: int = 1,
        flags: int = 0,
        frequency_dhz: int = 20,
        pulse_width_us: int = 200,
    ) -> Block:
        """A block with ``amplitude_ua`` on the channels in ``mask`` and zero elsewhere."""
        assert self.info is not None
        chans = tuple(
            setting(amplitude_ua if mask & (1 << c) else 0, frequency_dhz, pulse_width_us)
            for c in range(self.info.channels)
        )
        return Block(index=index, duration_ms=duration_ms, flags=flags, channels=chans)

    def reset_to_idle(self) -> State:
        """Bring the device to IDLE whatever it is doing (ESTOP + CLEAR_FAULT if needed)."""
        self.stop_streams()
        state = State(self.telemetry().state)
        if state in (State.RUNNING, State.PAUSED, State.STOPPING, State.BOOT):
            self.request(EStop())
            state = State(self.wait_state(State.ESTOP).state)
        if state == State.ARMED:
            self.request(Disarm())
        if state in (State.FAULT, State.ESTOP):
            self.command(ClearFault())
        return State(self.wait_state(State.IDLE).state)

    def enter(self, state: State, mask: int = 1, amplitude_ua: int = 500) -> Streamer | None:
        """From IDLE, drive the device into ``state`` (keep-alive on); RUNNING returns the streamer.

        FAULT is reached with an out-of-limits BLOCK (LIMIT_VIOLATION), ESTOP with ESTOP.
        """
        assert self.info is not None
        self.start_keepalive()
        if state == State.IDLE:
            return None
        if state == State.ESTOP:
            self.command(EStop())
            self.wait_state(State.ESTOP)
            return None
        self.arm(mask)
        if state == State.ARMED:
            return None
        if state == State.FAULT:
            self.request(
                self.block(0, self.info.max_amplitude_ua + self.info.amplitude_step_ua, mask=mask)
            )
            self.wait_state(State.FAULT)
            return None
        streamer = Streamer(self, amplitude_ua=amplitude_ua, mask=mask)
        self.streamers.append(streamer)
        streamer.prefill()
        self.command(Start())
        streamer.start()
        self.wait_state(State.RUNNING)
        if state == State.PAUSED:
            streamer.stop()
            self.command(Pause())
            self.wait_state(State.PAUSED)
        elif state != State.RUNNING:
            raise ValueError(f"cannot enter {state.name}")
        return streamer

    def stop_streams(self) -> None:
        for streamer in self.streamers:
            streamer.stop()

    def start_keepalive(self, period_s: float | None = None) -> None:
        """Send HEARTBEAT every ``period_s`` (default watchdog/5) from a background thread."""
        if self._keepalive is not None:
            return
        assert self.info is not None
        period = period_s if period_s is not None else self.info.watchdog_ms / 5000
        self._keepalive_stop.clear()

        def beat() -> None:
            while not self._keepalive_stop.wait(period):
                with contextlib.suppress(serial.SerialException, OSError):
                    self.send(Heartbeat())

        self._keepalive = threading.Thread(target=beat, name="devicelink-hb", daemon=True)
        self._keepalive.start()

    def stop_keepalive(self) -> None:
        if self._keepalive is not None:
            self._keepalive_stop.set()
            self._keepalive.join()
            self._keepalive = None

    @contextlib.contextmanager
    def keepalive(self, period_s: float | None = None) -> Iterator[None]:
        self.start_keepalive(period_s)
        try:
            yield
        finally:
            self.stop_keepalive()

    def close(self, *, goodbye: bool = True) -> None:
        """Close the port; with ``goodbye`` first bring the device to IDLE and close the session."""
        self.stop_streams()
        self.stop_keepalive()
        if goodbye:
            with contextlib.suppress(AssertionError, serial.SerialException, OSError, ValueError):
                self.hello()  # re-handshake: harmless, and reopens a session a test closed
                self.reset_to_idle()
                self.request(Goodbye(), timeout=0.5)
        self._closing.set()
        with contextlib.suppress(serial.SerialException, OSError):
            self.port.close()
        self._reader.join(timeout=1.0)

    def __enter__(self) -> DeviceLink:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
