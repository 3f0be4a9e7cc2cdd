"""Serial ports: list them with their USB serial numbers, resolve ``usb:SERIAL``, and lock one
for one host at a time (``PortLock``)."""

from __future__ import annotations

import contextlib
import fcntl
import os
import tempfile
from dataclasses import dataclass
from pathlib import Path

from serial.tools import list_ports

from stimctl.host.errors import LinkError, PortInUse

__all__ = ["USB_PREFIX", "PortInfo", "PortLock", "list_serial_ports", "resolve_port"]

USB_PREFIX = "usb:"
LOCK_DIR_ENV = "STIMCTL_LOCK_DIR"


@dataclass(frozen=True, slots=True)
class PortInfo:
    """One serial port as the OS reports it."""

    device: str
    description: str
    serial_number: str | None
    vid: int | None
    pid: int | None
    manufacturer: str | None

    @property
    def usb_id(self) -> str:
        return "" if self.vid is None or self.pid is None else f"{self.vid:04x}:{self.pid:04x}"


def list_serial_ports() -> list[PortInfo]:
    """Every serial port the OS lists, sorted by device path."""
    return sorted(
        (
            PortInfo(
                device=p.device,
                description=p.description or "",
                serial_number=p.serial_number,
                vid=p.vid,
                pid=p.pid,
                manufacturer=p.manufacturer,
            )
            for p in list_ports.comports()
        ),
        key=lambda p: p.device,
    )


def resolve_port(url: str, ports: list[PortInfo] | None = None) -> str:
    """``usb:SERIAL`` -> the device path of the one port with that USB serial number.

    Anything else is returned unchanged (device paths and pyserial URLs). LinkError when no port,
    or more than one, has the serial number."""
    if not url.lower().startswith(USB_PREFIX):
        return url
    wanted = url[len(USB_PREFIX) :]
    if not wanted:
        raise LinkError("usb: needs a serial number, e.g. usb:STIM0001 (see `stimctl ports`)")
    found = [p for p in (list_serial_ports() if ports is None else ports)
             if p.serial_number == wanted]  # fmt: skip
    if not found:
        raise LinkError(f"no serial port with USB serial number {wanted!r} (see `stimctl ports`)")
    if len(found) > 1:
        paths = ", ".join(p.device for p in found)
        raise LinkError(f"USB serial number {wanted!r} matches several ports: {paths}")
    return found[0].device


def lock_dir() -> Path:
    """Where port locks live: $STIMCTL_LOCK_DIR, else <tmp>/stimctl-port-locks (shared by every
    user of the machine: world-writable with the sticky bit, like /var/lock)."""
    env = os.environ.get(LOCK_DIR_ENV)
    if env:
        return Path(env)
    path = Path(tempfile.gettempdir()) / "stimctl-port-locks"
    if not path.is_dir():
        with contextlib.suppress(OSError):
            path.mkdir(exist_ok=True)
            path.chmod(0o1777)
    return path


class PortLock:
    """One host per port: an exclusive ``flock`` on a lock file named after the port's real
    path, holding the owner's PID. The kernel drops it when its owner exits however it exits
    (no stale locks). Taken before the port is opened: a second host touches nothing.

    Only device paths are locked (serial ports, pseudo-terminals); for URLs (socket://,
    rfc2217://) the server owns the port. Opened ports are also asked for ``exclusive=True``
    (pyserial's flock on the port itself) where the platform has it."""

    def __init__(self, port: str, path: Path, fd: int) -> None:
        self.port, self.path, self._fd = port, path, fd

    @classmethod
    def acquire(cls, port: str) -> PortLock | None:
        """The lock on ``port`` (None for a URL); PortInUse naming the holder's PID when another
        host has it, LinkError when the lock file cannot be made."""
        if "://" in port:
            return None
        real = os.path.realpath(port)
        path = lock_dir() / (real.strip("/").replace("/", "_") + ".lock")
        try:
            fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o666)
        except OSError as exc:
            raise LinkError(f"cannot lock {port}: {path}: {exc.strerror or exc}") from None
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            holder = _read_pid(fd)
            os.close(fd)
            raise PortInUse(port, holder) from None
        os.ftruncate(fd, 0)
        os.pwrite(fd, f"{os.getpid()}\n".encode(), 0)
        return cls(port, path, fd)

    def release(self) -> None:
        """Let the port go (idempotent). The file stays: removing it would race a newcomer."""
        if self._fd < 0:
            return
        with contextlib.suppress(OSError):
            os.ftruncate(self._fd, 0)
        with contextlib.suppress(OSError):
            os.close(self._fd)  # closing drops the flock
        self._fd = -1


def _read_pid(fd: int) -> int | None:
    try:
        return int(os.pread(fd, 32, 0).split()[0])
    except (OSError, ValueError, IndexError):
        return None
