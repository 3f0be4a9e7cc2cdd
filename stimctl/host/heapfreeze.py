"""Keep the cyclic garbage collector's pauses short while output can be live (``gc.freeze``).

Why (docs/PROTOCOL.md, "Keep-alive under load"): a full collection (generation 2) walks every
tracked object with the interpreter lock held; no other thread runs meanwhile, however high its
scheduling priority. In the TUI (Textual builds and drops many reference cycles) full collections
came about once a second, each over ~90,000 objects; under two CPU-bound processes they took
486-588 ms of wall time, and the device latched COMMS_LOSS. ``gc.freeze()`` moves every object
alive at that moment into a permanent generation that collections skip: afterwards a full pass
walks only what was allocated since.

So the link freezes the heap each time the device reports a state in which output can be live
(ARMED, RUNNING, PAUSED, STOPPING: the screens and the profile are built by then), and thaws it
(``gc.unfreeze``) when the device is at rest again (IDLE, FAULT, ESTOP), where a long pause costs
no more than a new HELLO. The price: garbage not yet collected when the heap froze is kept until
the thaw (a few thousand objects per session, not a leak).
"""

from __future__ import annotations

import gc

from stimctl.protocol import State

__all__ = ["HeapFreeze"]

_LIVE = frozenset({State.ARMED, State.RUNNING, State.PAUSED, State.STOPPING})
"""Device states in which output can be live: there the watchdog latches COMMS_LOSS."""


class HeapFreeze:
    """Freezes the heap on entering each live state, thaws it at rest; ``freezes`` counts."""

    __slots__ = ("_frozen", "_last", "freezes")

    def __init__(self) -> None:
        self._last: int | None = None
        self._frozen = False
        self.freezes = 0

    def device_state(self, state: int) -> None:
        """The device's state from a TELEMETRY frame (reader thread); O(1)."""
        if state == self._last:
            return
        self._last = state
        if state in _LIVE:
            gc.freeze()  # what the new state built (a run screen, the stream) is frozen too
            self._frozen = True
            self.freezes += 1
        elif self._frozen:
            self.thaw()

    @property
    def live(self) -> bool:
        """The device last reported a state in which output can be live."""
        return self._last in _LIVE

    def thaw(self) -> None:
        """Let the collector see everything again (at rest, and when the link closes)."""
        if self._frozen:
            self._frozen = False
            gc.unfreeze()
