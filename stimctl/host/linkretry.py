"""Retransmission of unanswered frames: the answer a frame waits for, and the waits that write
again while it does not come (docs/PROTOCOL.md, "Link recovery", "Session and watchdog").

A command goes out again with the same seq (the device answers a repeat without acting on it
twice) after COMMAND_RETRY_S of host time or COMMAND_RETRY_DEVICE_MS of device time, whichever
comes first; a HELLO goes out again as a new frame every HELLO_RETRY_MS of host time (before a
session there is no device clock) or COMMAND_RETRY_DEVICE_MS of device time.
"""

from __future__ import annotations

import contextlib
import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Protocol

from stimctl.host.errors import LinkError, ProtocolMismatch
from stimctl.protocol import (
    CATALOGUE_HASH,
    HELLO_RETRY_MS,
    MIN_WATCHDOG_MS,
    PROTOCOL_VERSION,
    DeviceInfo,
    Message,
    Nak,
    NakReason,
    encode,
)

__all__ = [
    "COMMAND_RETRY_DEVICE_MS", "COMMAND_RETRY_S", "Answered", "OnAnswer", "OnReply", "Packed",
    "Pending", "await_answer", "check_device_info", "device_info_of", "handshake", "reason_name",
]  # fmt: skip

log = logging.getLogger(__name__)

#: An unanswered command is written again, with the same seq (the device answers a repeat
#: without acting on it twice), after this much host time ...
COMMAND_RETRY_S = 0.25
#: ... or after this much device time (its telemetry clock), whichever comes first: on the
#: lock-step simulator device time runs far faster than host time while the host waits.
COMMAND_RETRY_DEVICE_MS = 100

OnReply = Callable[[Message, Message | None], None]  # (command, Ack/Nak or None on link loss)
OnAnswer = Callable[[int, int, Message | None], None]  # (tag, seq, Ack/Nak or None on link loss)


class Link(Protocol):
    """What the waits use of ``stimctl.host.link.Link``."""

    device_ms: int | None
    lost: BaseException | None
    commands_resent: int

    def send(self, msg: Message, on_reply: OnReply | None = None, *, track: bool = True
             ) -> Message: ...  # fmt: skip

    def write_again(self, frame: bytes) -> None: ...


class Answered:
    """``threading.Event``'s set/is_set for an answer nobody waits for (``send``: the reply
    goes to ``on_reply`` or ``on_message``): a block's round trip makes no lock or condition."""

    __slots__ = ("_set",)

    def __init__(self) -> None:
        self._set = False

    def set(self) -> None:
        self._set = True

    def is_set(self) -> bool:
        return self._set


class Packed:
    """A frame its sender packed itself (``Link.send_packed``: a BLOCK, no message object)
    waiting for its ACK/NAK, which goes to ``on_answer(tag, seq, answer)``."""

    __slots__ = ("on_answer", "seq", "tag")

    def __init__(self, tag: int, seq: int, on_answer: OnAnswer) -> None:
        self.tag, self.seq, self.on_answer = tag, seq, on_answer


@dataclass(slots=True)
class Pending:
    """A frame waiting for its answer (ACK/NAK, or DEVICE_INFO for HELLO)."""

    msg: Message
    on_reply: OnReply | None = None
    done: threading.Event | Answered = field(default_factory=threading.Event)
    reply: Message | None = None
    error: BaseException | None = None
    attempts: int = 1


def _late(since_ms: int | None, now_ms: int | None) -> bool:
    """COMMAND_RETRY_DEVICE_MS of device time have passed (False before any TELEMETRY)."""
    if since_ms is None or now_ms is None:
        return False
    return now_ms - since_ms >= COMMAND_RETRY_DEVICE_MS


def await_answer(link: Link, sent: Message, pending: Pending, deadline: float) -> bool:
    """Wait for the answer to ``sent``, writing the same frame again while none comes; False
    at ``deadline`` or when the link is lost."""
    frame = encode(sent)
    done = pending.done
    assert isinstance(done, threading.Event)  # Link._send(waited=True)
    since_s, since_ms = time.monotonic(), link.device_ms
    while True:
        now = time.monotonic()
        if done.wait(max(0.0, min(0.02, deadline - now))):
            return True
        now = time.monotonic()
        if now >= deadline or link.lost is not None:
            return False
        if now - since_s >= COMMAND_RETRY_S or _late(since_ms, link.device_ms):
            since_s, since_ms = now, link.device_ms
            pending.attempts += 1
            link.commands_resent += 1
            log.info("%s seq %d: no answer yet, sent again", type(sent).__name__, sent.seq)
            link.write_again(frame)


def handshake(link: Link, pending: Pending, deadline: float) -> None:
    """HELLO until DEVICE_INFO (or a refusal) comes: again, each time with a new seq, every
    HELLO_RETRY_MS of host time (before a session there is no device clock; this is shorter
    than any watchdog a device may have, so a session opened by a HELLO whose DEVICE_INFO
    was lost does not end before the next HELLO), or COMMAND_RETRY_DEVICE_MS of device time
    while TELEMETRY flows (a re-handshake). HELLO changes no device state."""
    link.send(pending.msg, track=False)
    since_s, since_ms = time.monotonic(), link.device_ms
    while not pending.done.wait(max(0.0, min(0.02, deadline - time.monotonic()))):
        now = time.monotonic()
        if now >= deadline or link.lost is not None:
            return
        if now - since_s >= HELLO_RETRY_MS / 1000 or _late(since_ms, link.device_ms):
            since_s, since_ms = now, link.device_ms
            pending.attempts += 1
            with contextlib.suppress(LinkError):
                link.send(pending.msg, track=False)


def device_info_of(pending: Pending, url: str, budget: float) -> DeviceInfo:
    """The DEVICE_INFO that answered a HELLO (``pending``, given ``budget`` seconds); LinkError
    when none came or the link was lost, ProtocolMismatch when it was refused or speaks another
    protocol."""
    if pending.error is not None:
        if isinstance(pending.error, ProtocolMismatch):
            raise pending.error
        raise LinkError(f"link to {url} lost during HELLO: {pending.error}")
    info = pending.reply
    if info is None:
        raise LinkError(
            f"no answer to HELLO from {url} within {budget:g} s"
            f" ({pending.attempts} attempt{'s' * (pending.attempts > 1)})"
        )
    if isinstance(info, Nak):
        raise ProtocolMismatch(
            f"device refused HELLO ({reason_name(info.reason)}): host speaks protocol version"
            f" {PROTOCOL_VERSION}"
        )
    assert isinstance(info, DeviceInfo)
    check_device_info(info)
    return info


def check_device_info(info: DeviceInfo) -> None:
    """ProtocolMismatch unless the DEVICE_INFO that answered HELLO speaks this host's protocol:
    version, message catalogue, and a watchdog no shorter than the protocol's minimum."""
    if info.watchdog_ms < MIN_WATCHDOG_MS:
        raise ProtocolMismatch(
            f"device watchdog {info.watchdog_ms} ms is below the protocol's minimum"
            f" {MIN_WATCHDOG_MS} ms (the host's HELLO pacing relies on it)"
        )
    if info.protocol_version != PROTOCOL_VERSION:
        raise ProtocolMismatch(
            f"protocol version mismatch: device speaks {info.protocol_version},"
            f" host speaks {PROTOCOL_VERSION}"
        )
    if info.catalogue_hash != CATALOGUE_HASH:
        raise ProtocolMismatch(
            f"message catalogue mismatch: device hash {info.catalogue_hash:#010x},"
            f" host hash {CATALOGUE_HASH:#010x} (host and firmware built from different"
            " protocol definitions)"
        )


def reason_name(code: int) -> str:
    """A NAK reason's name ("reason N" for a code this host does not know)."""
    try:
        return NakReason(code).name
    except ValueError:
        return f"reason {code}"
