"""Serial link: a framed, sequenced connection to one device (request/ack, HELLO, keep-alive).

``linkport`` opens the port and runs the reader thread (``ReaderThread`` feeds a ``FrameProtocol``,
as in pyserial's ``threaded``); ``linkretry`` holds waiting answers and retransmission;
``keepalive`` the writer thread that feeds the device watchdog. ``Link`` routes answers to waiting
requests, every other message to ``on_message`` (reader thread). Writes are direct (no TX queue),
under one lock, so an ESTOP from any thread goes out ahead of whatever is computed next.
"""

from __future__ import annotations

import contextlib
import threading
import time
from collections import OrderedDict
from collections.abc import Callable, Iterator

import serial

from stimctl.host.errors import CommandRejected, LinkError, ProtocolMismatch
from stimctl.host.heapfreeze import HeapFreeze
from stimctl.host.keepalive import PROBE_SILENCE_S, KeepAlive, favour_link_threads, probe
from stimctl.host.linkport import (
    FrameProtocol,
    OnLost,
    ReaderThread,
    discard_pending_output,
    hand_over,
    open_serial,
    time_gate,
    time_hold,
)
from stimctl.host.linkretry import (
    COMMAND_RETRY_DEVICE_MS,
    COMMAND_RETRY_S,
    Answered,
    OnAnswer,
    OnReply,
    Packed,
    await_answer,
    device_info_of,
    handshake,
    reason_name,
)
from stimctl.host.linkretry import Pending as _Pending
from stimctl.host.threadpriority import NORMAL
from stimctl.protocol import (
    PROTOCOL_VERSION,
    SEQ_MODULO,
    Ack,
    DeviceInfo,
    Heartbeat,
    Hello,
    Invalid,
    Message,
    Nak,
    NakReason,
    Telemetry,
    encode,
    renumbered,
)
from stimctl.protocol.framing import encode_payload
from stimctl.protocol.messages import wire_name

__all__ = [
    "COMMAND_RETRY_DEVICE_MS", "COMMAND_RETRY_S", "FrameProtocol", "Link", "OnLost", "OnMessage",
    "OnReply", "ReaderThread", "hand_over", "open_serial",
]  # fmt: skip

_MAX_PENDING = 4096

OnMessage = Callable[[Message], None]


class Link:
    """A framed, sequenced connection to one device.

    ``send`` writes a frame (answer optional, via ``on_reply`` on the reader thread); ``request``
    waits for the answer with a timeout and retries idempotent commands; ``hello`` does the
    handshake and checks protocol version and catalogue hash.
    """

    def __init__(self, port: serial.SerialBase, url: str, on_message: OnMessage,
                 on_lost: OnLost) -> None:  # fmt: skip
        self.url = url
        self.port = port
        self._on_message = on_message
        self._on_lost = on_lost
        self._wlock = threading.Lock()
        self._plock = threading.Lock()
        self._pending: OrderedDict[int, _Pending | Packed] = OrderedDict()
        self._hello: _Pending | None = None
        self._seq = 0
        self.tx_frames = 0
        self.last_tx = time.monotonic()
        self.last_rx = time.monotonic()
        self.lost: BaseException | None = None
        self._lost_reported = False
        self._closing = False
        self.mute = False  # test hook: drop every outgoing frame (simulates a silent host)
        self.device_ms: int | None = None  # device time of its latest TELEMETRY
        self.last_telemetry = time.monotonic()  # host time it arrived
        self.commands_resent = 0  # command frames written again (same seq): answer not in yet
        self.sessions_reopened = 0  # HELLO after NAK(NO_SESSION)
        self.probes = 0  # HELLO after a silence
        self.probed_at: float | None = None  # host time of the last HELLO probe
        self.unanswered_probes = 0  # HELLO probes sent since the device last said anything
        self._keepalive: KeepAlive | None = None
        self.priority = NORMAL  # what the keep-alive and reader threads got (threadpriority)
        self.tx_gap_max_s = 0.0  # longest host-time silence between writes, output live
        self.heap = HeapFreeze()  # short GC pauses while output can be live (keep-alive on)
        self._request_lock = threading.RLock()
        self._time_gate = time_gate(port)
        self._time_hold = time_hold(port)
        self._waiters = 0
        self.protocol = FrameProtocol(self._on_item, self._connection_lost)
        self.reader = ReaderThread(port, self.protocol)
        self.reader.start()

    @classmethod
    def open(cls, url: str, on_message: OnMessage, on_lost: OnLost) -> Link:
        return cls(open_serial(url), url, on_message, on_lost)

    # --- status ----------------------------------------------------------------------------
    @property
    def is_open(self) -> bool:
        return self.lost is None and not self._closing

    def waiting(self) -> contextlib.AbstractContextManager[object]:
        """Wrap every wait for the device in this: a lock-step simulator
        (``stimsim://?lockstep=1``) lets device time run only while some host thread is inside.
        On any other port it does nothing."""
        if self._time_gate is None:
            return contextlib.nullcontext()
        return self._lockstep_wait(self._time_gate)

    def hold_device_time(self) -> Callable[[], None]:
        """A frame was handed to a host thread that must react at its device time: a lock-step
        simulator holds device time (also while others wait) until the returned release is
        called. On any other port both do nothing."""
        return self._time_hold()

    @contextlib.contextmanager
    def _lockstep_wait(self, gate: Callable[[], contextlib.AbstractContextManager[object]]
                       ) -> Iterator[None]:  # fmt: skip
        with self._plock:
            if self._waiters == 0:  # the device could not speak while its time was held
                self.last_rx = self.last_telemetry = time.monotonic()
            self._waiters += 1
        try:
            with gate():
                yield
        finally:
            with self._plock:
                self._waiters -= 1

    @property
    def device_can_speak(self) -> bool:
        """False while a lock-step simulator's time is held (no host thread waits for it): its
        silence then means nothing."""
        return self._time_gate is None or self._waiters > 0

    @property
    def frame_errors(self) -> int:
        return self.protocol.decoder.stats.errors + self.protocol.decoder.stats.invalid

    # --- writing ---------------------------------------------------------------------------
    def _next_seq(self) -> int:
        self._seq = (self._seq + 1) % SEQ_MODULO
        return self._seq

    def send(self, msg: Message, on_reply: OnReply | None = None, *, track: bool = True) -> Message:
        """Write ``msg`` with the next sequence number; returns the message as sent.

        ``on_reply(msg, answer)`` runs on the reader thread when the ACK/NAK arrives (answer None
        if the link is lost first). LinkError when the port is gone.
        """
        return self._send(msg, on_reply, track, waited=False)[0]

    def send_packed(self, type_code: int, payload: bytes, on_answer: OnAnswer, tag: int) -> int:
        """Write a frame whose payload the caller packed (``payload.record_structs``: a BLOCK
        without message objects); returns its seq. ``on_answer(tag, seq, answer)`` runs on the
        reader thread when the ACK/NAK arrives (None if the link is lost first)."""
        with self._wlock:
            self._check_up()
            seq = self._next_seq()
            frame = encode_payload(type_code, seq, payload)
            self._track(seq, Packed(tag, seq, on_answer))
            if not self.mute:
                self._port_write(frame)
        return seq

    def _send(
        self, msg: Message, on_reply: OnReply | None, track: bool, *, waited: bool
    ) -> tuple[Message, _Pending | None]:
        """``waited``: a thread will wait for the answer (``pending.done`` is an Event)."""
        pending = None
        with self._wlock:
            self._check_up()
            sent = renumbered(msg, self._next_seq())
            frame = encode(sent)
            if track and not isinstance(sent, Heartbeat):
                pending = _Pending(sent, on_reply, threading.Event() if waited else Answered())
                self._track(sent.seq, pending)
            if not self.mute:
                self._port_write(frame)
        return sent, pending

    def _check_up(self) -> None:
        """LinkError when the link is lost or closing (called with the write lock held)."""
        if self.lost is not None or self._closing:
            raise LinkError(f"link to {self.url} is down: {self._lost_text()}")

    def _track(self, seq: int, pending: _Pending | Packed) -> None:
        """Await the answer to frame ``seq``; the oldest beyond _MAX_PENDING are forgotten."""
        with self._plock:
            self._pending[seq] = pending
            while len(self._pending) > _MAX_PENDING:
                self._pending.popitem(last=False)

    def write_urgent(self, msg: Message) -> Message:
        """Write a frame now, ahead of everything queued: output not yet on the wire (the OS's
        serial buffer) is discarded first, and a delimiter ends any half-written frame.

        Used for ESTOP; never waits for an answer (ACK/NAK are matched if they come)."""
        with self._wlock:
            self._check_up()
            sent = renumbered(msg, self._next_seq())
            self._track(sent.seq, _Pending(sent))
            if not self.mute:
                discard_pending_output(self.port)  # queued BLOCKs: not ahead of an ESTOP
                self._port_write(b"\x00" + encode(sent))
        return sent

    def request(self, msg: Message, timeout: float = 1.0) -> Message:
        """Send and wait for the ACK; CommandRejected on NAK, LinkError when no answer comes
        within ``timeout`` or the link is lost.

        Link recovery (docs/PROTOCOL.md): while unanswered, the same frame (same seq) is written
        again every COMMAND_RETRY_S of host time or COMMAND_RETRY_DEVICE_MS of device time; the
        device answers a repeat again without acting on it twice. NAK(NO_SESSION) (the device
        ended an idle session the host had left silent): HELLO, then the command once more."""
        with self._request_lock:  # one control command outstanding (the device remembers one)
            return self._request(msg, timeout)

    def _request(self, msg: Message, timeout: float) -> Message:
        deadline = time.monotonic() + timeout
        reopened = False
        while True:
            sent, pending = self._send(msg, None, True, waited=True)
            assert pending is not None
            with self.waiting():
                answered = await_answer(self, sent, pending, deadline)
            if not answered:
                with self._plock:
                    self._pending.pop(sent.seq, None)
                if self.lost is not None:
                    raise LinkError(f"link to {self.url} lost: {self._lost_text()}")
                raise LinkError(
                    f"{wire_name(type(msg))}: no answer from the device within {timeout:g} s"
                    f" ({pending.attempts} attempt{'s' * (pending.attempts > 1)})"
                )
            if pending.error is not None:
                raise LinkError(f"link to {self.url} lost: {pending.error}")
            reply = pending.reply
            if (
                isinstance(reply, Nak)
                and reply.reason == NakReason.NO_SESSION
                and not isinstance(msg, Hello)
                and not reopened
            ):
                reopened = True
                self.sessions_reopened += 1
                self.hello(timeout=max(0.05, deadline - time.monotonic()), retries=0)
                continue
            if isinstance(reply, Nak):
                raise CommandRejected(wire_name(type(msg)), reason_name(reply.reason), reply.detail)
            assert reply is not None
            return reply

    def write_again(self, frame: bytes) -> None:
        """Write a frame already encoded (a retransmission); LinkError when the port is gone."""
        with self._wlock:
            self._check_up()
            if not self.mute:
                self._port_write(frame)

    def _port_write(self, frame: bytes) -> None:
        """Put ``frame`` on the port (the caller holds the write lock); LinkError when the port
        is gone. Counts frames and the longest silence while output could be live (real time)."""
        try:
            self.port.write(frame)
        except (serial.SerialException, OSError, TypeError, AttributeError) as exc:
            self._connection_lost(exc)
            raise LinkError(f"link to {self.url} lost: {exc}") from None
        now = time.monotonic()
        if self._keepalive is not None and self.heap.live:
            self.tx_gap_max_s = max(self.tx_gap_max_s, now - self.last_tx)
        self.tx_frames += 1
        self.last_tx = now

    # --- keep-alive (its own thread) ---------------------------------------------------------
    def start_keepalive(self, interval_s: float, *, realtime: bool = True) -> None:
        """HEARTBEAT whenever nothing was written for ``interval_s`` of host time, from a thread
        of its own: the device watchdog never depends on the reader thread, the telemetry
        handling or a UI keeping up. Not on a virtual-clock simulator (host time means nothing
        to it; the telemetry-paced heartbeat of the DeviceMirror feeds it).

        ``realtime``: the keep-alive and reader threads ask for SCHED_RR (threadpriority), so
        that a busy PC's scheduler does not hold the whole host silent past the watchdog; where
        that is not allowed they run as before and ``priority`` says why."""
        if self._keepalive is not None or getattr(self.port, "virtual", False) is True:
            return
        if realtime:
            self.priority = favour_link_threads(self.reader.native_id)
        self.last_tx = time.monotonic()
        granted = realtime and not self.priority.startswith(NORMAL)
        self._keepalive = KeepAlive(self, interval_s, realtime=granted)
        self._keepalive.start()

    @property
    def keepalive_running(self) -> bool:
        return self._keepalive is not None and self._keepalive.is_alive()

    def probe_if_silent(self, after_s: float = PROBE_SILENCE_S) -> bool:
        """HELLO while the device sends no TELEMETRY (keepalive.probe); True if one was sent."""
        return probe(self, after_s)

    def hello(self, timeout: float = 2.0, retries: int = 2) -> DeviceInfo:
        """Handshake: HELLO, answered by DEVICE_INFO; ProtocolMismatch on version/hash drift."""
        budget = timeout * (1 + retries)
        pending = _Pending(Hello(protocol_version=PROTOCOL_VERSION))
        with self._plock:
            self._hello = pending
        try:
            with self.waiting():
                handshake(self, pending, time.monotonic() + budget)
        finally:
            with self._plock:
                self._hello = None
        return device_info_of(pending, self.url, budget)

    # --- reading (reader thread) -------------------------------------------------------------
    def _on_item(self, item: Message | Invalid) -> None:
        self.last_rx = time.monotonic()
        if isinstance(item, Telemetry):  # half of what comes: straight on
            self.device_ms = item.time_ms
            self.last_telemetry = self.last_rx
            self.unanswered_probes = 0
            if self._keepalive is not None:  # real time: see heapfreeze
                self.heap.device_state(item.state)
            self._on_message(item)
            return
        if isinstance(item, (Ack, Nak)):  # (a tuple: ``Ack | Nak`` builds a Union per call)
            with self._plock:
                pending = self._pending.pop(item.ack_seq, None)
                hello = self._hello
            if type(pending) is Packed:
                pending.on_answer(pending.tag, pending.seq, item)
                return
            if (
                pending is None
                and isinstance(item, Nak)
                and hello is not None
                and (item.ack_type == Hello.TYPE or item.reason == NakReason.VERSION)
            ):
                hello.reply = item
                hello.done.set()
                return
            if pending is not None:
                pending.reply = item
                pending.done.set()
                if pending.on_reply is not None:
                    pending.on_reply(pending.msg, item)
                    return
                hand_over()  # a request() may be waiting for this answer
            self._on_message(item)
            return
        if isinstance(item, Invalid):
            if item.version != PROTOCOL_VERSION:
                with self._plock:
                    hello = self._hello
                if hello is not None and not hello.done.is_set():
                    hello.error = ProtocolMismatch(
                        f"protocol version mismatch: device frames carry version {item.version},"
                        f" host speaks {PROTOCOL_VERSION}"
                    )
                    hello.done.set()
            return
        if isinstance(item, DeviceInfo):
            with self._plock:
                hello = self._hello
            if hello is not None:
                hello.reply = item
                hello.done.set()
                hand_over()
            self._on_message(item)
            return
        self._on_message(item)

    def _lost_text(self) -> str:
        if self.lost is None:
            return "closed"
        return str(self.lost) or type(self.lost).__name__

    def _connection_lost(self, exc: BaseException | None) -> None:
        if exc is not None and self.lost is None and not self._closing:
            self.lost = exc
        with self._plock:
            pending = list(self._pending.values())
            self._pending.clear()
            hello = self._hello
        for p in [*pending, *([hello] if hello else [])]:
            if isinstance(p, Packed):
                with contextlib.suppress(Exception):
                    p.on_answer(p.tag, p.seq, None)
            elif not p.done.is_set():
                p.error = exc or LinkError("link closed")
                p.done.set()
                if p.on_reply is not None:
                    with contextlib.suppress(Exception):
                        p.on_reply(p.msg, None)
        if self._closing or self._lost_reported:
            return
        self._lost_reported = True
        self.reader.stop()
        self._on_lost(exc)

    def close(self) -> None:
        """Stop the reader and close the port (idempotent; never raises)."""
        self._closing = True
        if self._keepalive is not None:
            self._keepalive.stop()
        self.heap.thaw()
        self.reader.stop()
        if threading.current_thread() is not self.reader:
            self.reader.join(timeout=1.0)
        with contextlib.suppress(Exception):
            self.port.close()
