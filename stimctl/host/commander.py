"""Commands on the caller's thread: request and ACK, each recorded with its answer and announced."""

from __future__ import annotations

from stimctl.host.errors import CommandRejected, LinkError
from stimctl.host.link import Link
from stimctl.host.recorder import Recorder
from stimctl.host.subscribers import Subscribers
from stimctl.protocol import Message
from stimctl.protocol.messages import field_names, wire_name

__all__ = ["Commander"]


class Commander:
    """Sends one command and waits for its answer (NAK frames are counted where every frame
    from the device is seen: the DeviceMirror)."""

    def __init__(self, recorder: Recorder, subscribers: Subscribers) -> None:
        self._recorder = recorder
        self._subscribers = subscribers

    def command(self, link: Link, msg: Message, timeout: float = 1.0) -> Message:
        """Request + ACK, recorded with its answer; CommandRejected on NAK."""
        name = wire_name(type(msg))
        fields = {n: getattr(msg, n) for n in field_names(type(msg))}
        try:
            reply = link.request(msg, timeout=timeout)
        except CommandRejected as exc:
            self._recorder.write(
                "command",
                {
                    "name": name,
                    **fields,
                    "result": "nak",
                    "reason": exc.reason,
                    "detail": exc.detail,
                },
            )
            self._subscribers.emit("command", f"{name} refused: {exc.reason}", {"name": name})
            raise
        except LinkError as exc:
            self._recorder.write(
                "command", {"name": name, **fields, "result": "error", "reason": str(exc)}
            )
            raise
        self._recorder.write(
            "command",
            {"name": name, **fields, "result": "ack", "seq": getattr(reply, "ack_seq", None)},
        )
        self._subscribers.emit("command", f"{name} acknowledged", {"name": name})
        return reply
