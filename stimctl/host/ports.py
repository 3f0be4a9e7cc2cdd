"""Serial port discovery: list ports with their USB serial numbers, resolve ``usb:SERIAL``."""

from __future__ import annotations

from dataclasses import dataclass

from serial.tools import list_ports

from stimctl.host.errors import LinkError

__all__ = ["USB_PREFIX", "PortInfo", "list_serial_ports", "resolve_port"]

USB_PREFIX = "usb:"


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
