"""Trace writer: JSON lines of output changes, state changes, faults and received frames."""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import IO, Any


class TraceWriter:
    """Writes one JSON object per line, flushed per line so other processes can follow it live.

    Every line has ``t_ns`` (time.monotonic_ns() under the real and scaled clocks, virtual time in
    ns under the virtual clock), ``device_ms`` (device time since power-up) and ``event``.
    """

    def __init__(self, path: str | None, now_ns: Callable[[], int], device_ms: Callable[[], int]):
        self.path = path
        self._now_ns = now_ns
        self._device_ms = device_ms
        self._file: IO[str] | None = open(path, "a", buffering=1) if path else None  # noqa: SIM115
        self.enabled = self._file is not None  # written with _file (a plain field: read per frame)

    def write(self, event: str, **fields: Any) -> None:
        if self._file is None:
            return
        record = {"t_ns": self._now_ns(), "device_ms": self._device_ms(), "event": event, **fields}
        self._file.write(json.dumps(record, separators=(",", ":")) + "\n")

    def close(self) -> None:
        if self._file is not None:
            self._file.close()
            self._file = None
            self.enabled = False
