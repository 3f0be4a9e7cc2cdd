"""A serial port served on TCP at 127.0.0.1: raw bytes (``socket://``) or RFC 2217
(``rfc2217://``, through pyserial's ``serial.rfc2217.PortManager``): a remote bench, locally.

``python -m hil.netbridge PORT [--rfc2217]`` prints ``URL <url>`` and serves until SIGINT/SIGTERM;
``SerialBridge`` does the same in a thread (tests). One client at a time.
"""

from __future__ import annotations

import argparse
import contextlib
import signal
import socket
import threading
from collections.abc import Callable
from types import FrameType

import serial
from serial.rfc2217 import PortManager

_READ_TIMEOUT_S = 0.05
_ACCEPT_TIMEOUT_S = 0.2


class _Port(serial.Serial):
    """A local port whose modem lines may not exist (a pseudo-terminal has none: the ioctls
    fail); then it answers like a port with a cable attached (CTS, DSR and CD on, RI off) and
    takes RTS, DTR and break settings without effect."""

    def _update_rts_state(self) -> None:
        with contextlib.suppress(OSError):
            super()._update_rts_state()

    def _update_dtr_state(self) -> None:
        with contextlib.suppress(OSError):
            super()._update_dtr_state()

    def _update_break_state(self) -> None:
        with contextlib.suppress(OSError):
            super()._update_break_state()

    def _line(self, read: Callable[[], bool], default: bool) -> bool:
        try:
            return read()
        except (OSError, serial.SerialException):
            return default

    @property
    def cts(self) -> bool:
        return self._line(lambda: bool(serial.Serial.cts.fget(self)), True)  # type: ignore[attr-defined]

    @property
    def dsr(self) -> bool:
        return self._line(lambda: bool(serial.Serial.dsr.fget(self)), True)  # type: ignore[attr-defined]

    @property
    def ri(self) -> bool:
        return self._line(lambda: bool(serial.Serial.ri.fget(self)), False)  # type: ignore[attr-defined]

    @property
    def cd(self) -> bool:
        return self._line(lambda: bool(serial.Serial.cd.fget(self)), True)  # type: ignore[attr-defined]


class _Connection:
    """What PortManager writes its Telnet answers to: the client socket, under the send lock."""

    def __init__(self, send: Callable[[bytes], None]) -> None:
        self.write = send


class SerialBridge:
    """Serves ``device`` (a local port) to one TCP client at a time on 127.0.0.1; ``url`` is
    what a host opens (``socket://127.0.0.1:N`` or ``rfc2217://127.0.0.1:N``)."""

    def __init__(self, device: str, *, rfc2217: bool = False, tcp_port: int = 0) -> None:
        self.port = _Port(device, timeout=_READ_TIMEOUT_S, exclusive=True)
        self.rfc2217 = rfc2217
        self._listener = socket.create_server(("127.0.0.1", tcp_port))
        self._listener.settimeout(_ACCEPT_TIMEOUT_S)
        host, number = self._listener.getsockname()[:2]
        self.url = f"{'rfc2217' if rfc2217 else 'socket'}://{host}:{number}"
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._serve, name="netbridge", daemon=True)
        self._thread.start()

    def _serve(self) -> None:
        while not self._stop.is_set():
            try:
                conn, _ = self._listener.accept()
            except TimeoutError:
                continue
            except OSError:
                return
            with conn:
                self._session(conn)

    def _session(self, conn: socket.socket) -> None:
        conn.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        conn.settimeout(_ACCEPT_TIMEOUT_S)
        lock = threading.Lock()
        done = threading.Event()

        def send(data: bytes) -> None:
            with lock:
                conn.sendall(data)

        manager = PortManager(self.port, _Connection(send)) if self.rfc2217 else None

        def uplink() -> None:  # serial -> network
            try:
                while not done.is_set() and not self._stop.is_set():
                    data = self.port.read(self.port.in_waiting or 1)
                    if data:
                        send(b"".join(manager.escape(data)) if manager else data)
            except (OSError, serial.SerialException):
                pass
            done.set()

        reader = threading.Thread(target=uplink, name="netbridge-uplink", daemon=True)
        reader.start()
        try:
            while not done.is_set() and not self._stop.is_set():
                try:
                    data = conn.recv(4096)
                except TimeoutError:
                    continue
                if not data:
                    break
                payload = b"".join(manager.filter(data)) if manager else data
                if payload:
                    self.port.write(payload)
        except (OSError, serial.SerialException):
            pass
        finally:
            done.set()
            reader.join(timeout=2)

    def close(self) -> None:
        self._stop.set()
        with contextlib.suppress(OSError):
            self._listener.close()
        self._thread.join(timeout=2)
        with contextlib.suppress(OSError, serial.SerialException):
            self.port.close()

    def __enter__(self) -> SerialBridge:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m hil.netbridge", description=__doc__)
    parser.add_argument("port", help="local serial port or pseudo-terminal to serve")
    parser.add_argument("--rfc2217", action="store_true", help="RFC 2217 (default: raw TCP)")
    parser.add_argument("--tcp-port", type=int, default=0, help="TCP port (default: any free)")
    args = parser.parse_args(argv)
    stop = threading.Event()

    def on_signal(signum: int, frame: FrameType | None) -> None:
        stop.set()

    signal.signal(signal.SIGINT, on_signal)
    signal.signal(signal.SIGTERM, on_signal)
    with SerialBridge(args.port, rfc2217=args.rfc2217, tcp_port=args.tcp_port) as bridge:
        print(f"URL {bridge.url}", flush=True)
        while not stop.wait(0.5):
            pass
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
