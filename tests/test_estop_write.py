"""Host e-stop: written on the caller's thread at once, never behind output still queued."""

from __future__ import annotations

import time

import serial

from firmware_sim.scripted import uniform_block
from stimctl.host.link import Link
from stimctl.protocol import EStop, FrameDecoder


class QueuedUart(serial.Serial):
    """A local serial port whose driver still holds what was written (a UART at 115200 baud
    sends a 66-byte BLOCK in 5.7 ms; a kernel buffer of them is hundreds of ms ahead)."""

    def __init__(self) -> None:
        super().__init__()  # no device: nothing is opened
        self.queued = bytearray()
        self.flushes = 0

    @property
    def in_waiting(self) -> int:
        return 0

    def read(self, size: int = 1) -> bytes:
        time.sleep(0.01)
        return b""

    def write(self, data: bytes) -> int:  # type: ignore[override]
        self.queued += data
        return len(data)

    def reset_output_buffer(self) -> None:
        self.flushes += 1
        self.queued.clear()


def test_estop_discards_output_the_driver_still_holds_and_goes_first() -> None:
    port = QueuedUart()
    link = Link(port, "/dev/ttyFAKE", lambda m: None, lambda e: None)
    try:
        for i in range(3):
            link.send(uniform_block(i, 4), track=False)
        link.write_urgent(EStop())
    finally:
        link.close()
    assert port.flushes == 1
    assert [type(m) for m in FrameDecoder().feed(bytes(port.queued))] == [EStop]
