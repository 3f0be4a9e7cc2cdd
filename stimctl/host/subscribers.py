"""Telemetry and event subscribers: controller callbacks, always called outside its lock."""

from __future__ import annotations

import contextlib
import logging
import threading
from collections.abc import Callable
from typing import Any

from stimctl.host.status import Event

__all__ = ["Subscribers"]

log = logging.getLogger(__name__)


class Subscribers:
    """The ``telemetry`` and ``event`` callback lists; a failing callback is logged and skipped."""

    def __init__(self, lock: threading.RLock) -> None:
        self._lock = lock
        self._callbacks: dict[str, list[Callable[[Any], None]]] = {"telemetry": [], "event": []}

    def subscribe(self, kind: str, callback: Callable[[Any], None]) -> Callable[[], None]:
        """Add ``callback`` for ``kind``; returns the function that removes it again."""
        with self._lock:
            self._callbacks[kind].append(callback)

        def unsubscribe() -> None:
            with self._lock, contextlib.suppress(ValueError):
                self._callbacks[kind].remove(callback)

        return unsubscribe

    def wanted(self, kind: str) -> bool:
        """Whether anyone listens for ``kind`` (call under the lock)."""
        return bool(self._callbacks[kind])

    def call(self, kind: str, value: Any) -> None:
        """Call every ``kind`` callback with ``value``, on this thread, outside the lock."""
        with self._lock:
            callbacks = list(self._callbacks[kind])
        for callback in callbacks:
            try:
                callback(value)
            except Exception:
                log.exception("%s callback failed", kind)

    def emit(self, kind: str, message: str, data: dict[str, Any] | None = None) -> None:
        """An ``on_event`` Event to every event callback."""
        self.call("event", Event(kind, message, data or {}))
