"""Control socket: a Unix stream socket taking text commands to inject faults into a running device.

One command per line, one answer line each (``ok``, ``error <why>``, or JSON for ``status``):
``inject KIND ARGS`` for every kind of ``faults.FAULT_KINDS`` (``control_commands()`` lists them),
``link drop <rate>``, ``link flip <rate>``, ``link delay <ms>``, ``link clear`` and ``status``.
"""

from __future__ import annotations

import contextlib
import json
import os
import socketserver
import threading
from collections.abc import Callable

from firmware_sim.core import DeviceCore
from firmware_sim.faults import FAULT_KINDS, fault_kind

LINK_COMMANDS = ("link drop <rate>", "link flip <rate>", "link delay <ms>", "link clear")


def control_commands() -> list[str]:
    """Every command the socket takes, from the fault registry (help text, docs/PROTOCOL.md)."""
    injects = [f"inject {k.name} {k.args}".rstrip() for k in FAULT_KINDS.values()]
    return [*injects, *LINK_COMMANDS, "status"]


def execute(device: DeviceCore, line: str) -> str:
    """Run one control command against the device (the caller holds the device lock)."""
    words = line.split()
    if not words:
        return "error empty command"
    try:
        if words[0] == "status" and len(words) == 1:
            return json.dumps(device.status(), separators=(",", ":"))
        if words[0] == "inject" and len(words) >= 2:
            return _inject(device, words[1], words[2:], line)
        if words[0] == "link" and len(words) >= 2:
            return _link(device, words[1:])
    except ValueError as exc:
        return f"error {exc}"
    return f"error unknown command {line.strip()!r}"


def _inject(device: DeviceCore, name: str, args: list[str], line: str) -> str:
    kind = fault_kind(name)
    wanted = int(kind.per_channel) + int(kind.takes_value)
    if len(args) != wanted:
        usage = f"inject {name} {kind.args}".rstrip()
        return f"error bad inject command {line.strip()!r} (expected: {usage})"
    if not kind.per_channel:
        device.inject(name)
    elif kind.takes_value:
        device.inject(name, int(args[1]), float(args[0]))
    else:
        device.inject(name, int(args[0]))
    return "ok"


def _link(device: DeviceCore, args: list[str]) -> str:
    link = device.link
    if args == ["clear"]:
        link.clear()
        return "ok"
    if len(args) != 2 or args[0] not in ("drop", "flip", "delay"):
        return f"error bad link command {' '.join(args)!r}"
    old = (link.drop, link.flip, link.delay_ms)
    if args[0] == "delay":
        link.delay_ms = int(args[1])
    else:
        setattr(link, args[0], float(args[1]))
    try:
        link.validate()
    except ValueError as exc:
        link.drop, link.flip, link.delay_ms = old
        return f"error {exc}"
    return "ok"


class ControlServer:
    """Serves the control socket from a daemon thread; every command runs under ``lock``, then
    ``on_change()`` (a real-time loop asleep through a quiet stretch looks again at what is due)."""

    def __init__(
        self,
        path: str,
        device: DeviceCore,
        lock: threading.RLock | threading.Lock,
        on_change: Callable[[], None] | None = None,
    ) -> None:
        self.path = path
        self._on_change = on_change
        with contextlib.suppress(FileNotFoundError):
            os.unlink(path)
        run: Callable[[str], str] = self._run
        self._device, self._lock = device, lock

        class Handler(socketserver.StreamRequestHandler):
            def handle(self) -> None:
                for raw in self.rfile:
                    answer = run(raw.decode("utf-8", "replace"))
                    self.wfile.write(answer.encode() + b"\n")
                    self.wfile.flush()

        self._server = socketserver.ThreadingUnixStreamServer(path, Handler)
        self._server.daemon_threads = True
        self._thread = threading.Thread(
            target=self._server.serve_forever, name="stimsim-control", daemon=True
        )
        self._thread.start()

    def _run(self, line: str) -> str:
        with self._lock:
            answer = execute(self._device, line)
        if self._on_change is not None:
            self._on_change()
        return answer

    def close(self) -> None:
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(timeout=2)
        with contextlib.suppress(FileNotFoundError):
            os.unlink(self.path)
