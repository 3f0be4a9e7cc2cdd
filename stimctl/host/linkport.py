"""The link's port: any pyserial URL opened, a reader thread that owns its reads, port quirks.

I/O and frame handling are apart, as in pyserial's ``threaded`` module: ``ReaderThread`` reads
bytes and hands them to a ``FrameProtocol`` (``data_received`` / ``connection_lost``), which
decodes frames with the shared codec. ``discard_pending_output`` and ``time_gate`` hold what the
link must know about particular ports (a local serial port's kernel buffer, the lock-step
simulator's clock); ``hand_over`` what it must know about the interpreter's thread switching.
"""

from __future__ import annotations

import contextlib
import logging
import threading
import time
from collections.abc import Callable

import serial

from stimctl.host.errors import LinkError
from stimctl.host.simprocess import register_stimsim_urls
from stimctl.protocol import FrameDecoder, Invalid, Message

__all__ = [
    "FrameProtocol", "OnLost", "ReaderThread", "discard_pending_output", "hand_over",
    "open_serial", "time_gate", "time_hold",
]  # fmt: skip

log = logging.getLogger(__name__)

READ_TIMEOUT_S = 0.05
"""A read returns after this long without bytes, so the reader sees ``stop()`` soon."""

OnLost = Callable[[BaseException | None], None]


def open_serial(url: str, baudrate: int = 115200) -> serial.SerialBase:
    """Open a device path or any pyserial URL (stimsim://, socket://, rfc2217://, loop://)."""
    if url.startswith("stimsim://"):
        register_stimsim_urls()
    exclusive = {} if "://" in url else {"exclusive": True}  # device paths: flock the port
    try:
        return serial.serial_for_url(url, baudrate=baudrate, timeout=READ_TIMEOUT_S, **exclusive)
    except (serial.SerialException, OSError, ValueError) as exc:
        raise LinkError(f"cannot open {url}: {exc}") from None


class FrameProtocol:
    """Frame handling, no I/O: bytes in, decoded messages out (pyserial threaded ``Protocol``)."""

    def __init__(self, on_item: Callable[[Message | Invalid], None], on_lost: OnLost) -> None:
        self.decoder = FrameDecoder()
        self._on_item = on_item
        self._on_lost = on_lost

    def data_received(self, data: bytes) -> None:
        on_item = self._on_item
        for item in self.decoder.feed(data):
            on_item(item)

    def connection_lost(self, exc: BaseException | None) -> None:
        self._on_lost(exc)


class ReaderThread(threading.Thread):
    """Owns the port's reads; stops on ``close()`` or when the port fails (EIO, unplug)."""

    def __init__(self, port: serial.SerialBase, protocol: FrameProtocol) -> None:
        super().__init__(name="stimctl-link-reader", daemon=True)
        self.port = port
        self.protocol = protocol
        self._alive = True

    def run(self) -> None:
        error: BaseException | None = None
        port, received = self.port, self.protocol.data_received
        while self._alive:
            try:
                data = port.read(1)  # the first byte, or nothing within the read timeout
                waiting = port.in_waiting if data else 0
                if waiting:  # and what came with it: frames reach the decoder whole
                    data += port.read(waiting)
            except (serial.SerialException, OSError, TypeError, AttributeError) as exc:
                # TypeError/AttributeError: pyserial's posix port after close() from another thread
                error = exc if self._alive else None
                break
            if data:
                try:
                    received(data)
                except Exception as exc:  # a bug in a handler must not kill the link silently
                    log.exception("frame handler failed")
                    error = exc
                    break
        self.protocol.connection_lost(error)

    def stop(self) -> None:
        self._alive = False


def time_gate(
    port: serial.SerialBase,
) -> Callable[[], contextlib.AbstractContextManager[object]] | None:
    """A lock-step simulator's ``host_waiting`` (looked up on the class: mocks invent
    attributes); None for every other port."""
    hook = getattr(type(port), "host_waiting", None)
    if not callable(hook) or getattr(port, "lockstep", False) is not True:
        return None
    return lambda: hook(port)


def time_hold(port: serial.SerialBase) -> Callable[[], Callable[[], None]]:
    """A lock-step simulator's ``hold_time``: calling the result holds device time and returns
    its ``release_time``; on every other port both do nothing."""
    hold = getattr(type(port), "hold_time", None)
    release = getattr(type(port), "release_time", None)
    if not callable(hold) or not callable(release) or time_gate(port) is None:
        return lambda: _nothing

    def held() -> Callable[[], None]:
        hold(port)
        return lambda: release(port)

    return held


def _nothing() -> None:
    pass


def discard_pending_output(port: serial.SerialBase) -> None:
    """Drop what the OS still holds for a local serial port (tcflush TCOFLUSH): at 115200 baud a
    kernel buffer of BLOCKs is hundreds of ms of wire time. Network ports (rfc2217:// would wait
    for the server's purge acknowledgement) and simulated ones are left alone."""
    if isinstance(port, serial.Serial):
        with contextlib.suppress(serial.SerialException, OSError):
            port.reset_output_buffer()


def hand_over() -> None:
    """After waking a thread that waits for the device: let it run now, not after the
    interpreter's switch interval (5 ms). It answers sooner, and on the lock-step simulator it
    stops device time sooner (about 1 ms of device time after an answer, not about 1 s)."""
    time.sleep(0)
