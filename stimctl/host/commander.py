"""Commands on the caller's thread: request and ACK, each recorded with its answer and announced."""

from __future__ import annotations

from stimctl.host.errors import CommandRejected, LinkError
from stimctl.host.journal import Journal
from stimctl.host.link import Link
from stimctl.protocol import Message
from stimctl.protocol.messages import field_names, wire_name

__all__ = ["Commander"]


class Commander:
    """Sends one command and waits for its answer (NAK frames are counted where every frame
    from the device is seen: the DeviceMirror)."""

    def __init__(self, journal: Journal) -> None:
        self._journal = journal

    def command(self, link: Link, msg: Message, timeout: float = 1.0) -> Message:
        """Request + ACK, recorded with its answer; CommandRejected on NAK."""
        name = wire_name(type(msg))
        fields = {n: getattr(msg, n) for n in field_names(type(msg))}
        try:
            reply = link.request(msg, timeout=timeout)
        except CommandRejected as exc:
            line = {"name": name, **fields, "result": "nak", "reason": exc.reason,
                    "detail": exc.detail}  # fmt: skip
            self._journal.happened("command", line, f"{name} refused: {exc.reason}", {"name": name})
            raise
        except LinkError as exc:
            line = {"name": name, **fields, "result": "error", "reason": str(exc)}
            self._journal.write("command", line)
            raise
        line = {"name": name, **fields, "result": "ack", "seq": getattr(reply, "ack_seq", None)}
        self._journal.happened("command", line, f"{name} acknowledged", {"name": name})
        return reply
