"""Streamer: keeps the device's block FIFO topped up over a DeviceLink from a background thread."""

from __future__ import annotations

import contextlib
import threading
import time
from typing import TYPE_CHECKING

import serial

from stimctl.protocol import BLOCK_FLAG_LAST, Nak

if TYPE_CHECKING:
    from hil.devicelink import DeviceLink


class Streamer:
    """Keeps the device FIFO topped up with constant blocks from a background thread."""

    def __init__(
        self,
        link: DeviceLink,
        *,
        amplitude_ua: int = 500,
        mask: int = 1,
        block_ms: int = 20,
        lead_ms: int = 100,
        first_index: int = 0,
    ) -> None:
        self.link = link
        self.amplitude_ua = amplitude_ua
        self.mask = mask
        self.block_ms = block_ms
        self.lead_ms = lead_ms
        self.index = first_index
        self.naks: list[Nak] = []
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._t0 = 0.0

    def prefill(self) -> None:
        """Queue ``lead_ms`` worth of blocks (before START)."""
        for _ in range(max(1, self.lead_ms // self.block_ms)):
            self._push()

    def _push(self) -> None:
        blk = self.link.block(
            self.index, self.amplitude_ua, duration_ms=self.block_ms, mask=self.mask
        )
        self.link.send(blk)
        self.index += 1

    def start(self) -> None:
        """Start topping up: one block per block period, ``lead_ms`` ahead of playback."""
        self._t0 = time.monotonic() - self.index * self.block_ms / 1000 + self.lead_ms / 1000

        def run() -> None:
            while not self._stop.is_set():
                due = self._t0 + (self.index * self.block_ms - self.lead_ms) / 1000
                delay = due - time.monotonic()
                if delay > 0:
                    self._stop.wait(min(delay, 0.05))
                    continue
                with contextlib.suppress(serial.SerialException, OSError):
                    self._push()

        self._thread = threading.Thread(target=run, name="devicelink-stream", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join()

    def last(self) -> None:
        """Stop streaming and send one final block with BLOCK_FLAG_LAST."""
        self.stop()
        blk = self.link.block(
            self.index,
            self.amplitude_ua,
            duration_ms=self.block_ms,
            mask=self.mask,
            flags=BLOCK_FLAG_LAST,
        )
        self.link.send(blk)
        self.index += 1
