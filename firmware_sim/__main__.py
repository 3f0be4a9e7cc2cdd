"""`python -m firmware_sim`: serve a simulated stimulator on a pseudo-terminal until SIGINT/SIGTERM.

The first line of stdout is ``PORT <path>`` (flushed); open that path with pyserial.
"""

from __future__ import annotations

import argparse
import contextlib
import ctypes
import os
import signal
import sys
from types import FrameType

from firmware_sim.clock import RealClock, StopFlag
from firmware_sim.control import ControlServer
from firmware_sim.device import Device
from firmware_sim.faults import FaultSpecError
from firmware_sim.options import add_arguments, options_from_namespace
from firmware_sim.pty_server import PtyServer


def build_parser(prog: str = "python -m firmware_sim") -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog=prog,
        description="Serve a simulated EA stimulator (stimctl wire protocol) on a pseudo-terminal.",
    )
    add_arguments(p)
    p.add_argument(
        "--parent", metavar="PID", type=int, default=None,
        help="die with process PID (the host that started this one): exit when stdin (a pipe "
        "only PID holds) reaches EOF or PID is no longer the parent",
    )  # fmt: skip
    p.add_argument(
        "--pdeathsig", action="store_true",
        help="with --parent, also ask Linux for SIGTERM when the spawning thread ends (give it "
        "only when that thread lives as long as the parent process)",
    )  # fmt: skip
    return p


def main(argv: list[str] | None = None, prog: str = "python -m firmware_sim") -> int:
    parser = build_parser(prog)
    args = parser.parse_args(argv)
    try:
        opts = options_from_namespace(args)
    except (ValueError, FaultSpecError) as exc:
        parser.error(str(exc))
    if args.parent is not None:
        die_with_parent(args.parent, args.pdeathsig)
    clock = opts.make_clock()
    assert isinstance(clock, RealClock)
    device = Device(opts.config, clock)
    server = PtyServer(
        device, clock, parent_fd=sys.stdin.fileno() if args.parent is not None else None,
        parent_pid=args.parent,
    )  # fmt: skip
    control = (
        ControlServer(opts.control, device, server.lock, on_change=server.kick)
        if opts.control
        else None
    )
    stop = StopFlag()  # not threading.Event: set from a signal handler

    def on_signal(signum: int, frame: FrameType | None) -> None:
        stop.set()
        server.kick()

    signal.signal(signal.SIGINT, on_signal)
    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGHUP, on_signal)
    print(f"PORT {server.path}", flush=True)
    try:
        server.serve(stop)
    finally:
        # Stopping already: a late SIGTERM (the host's, after its parent pipe's EOF) must not kill
        # the interpreter's shutdown, which puts Python-level handlers back to SIG_DFL.
        for signum in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP):
            signal.signal(signum, signal.SIG_IGN)
        if control is not None:
            control.close()
        server.close()
        device.close()
    return 0


def die_with_parent(parent: int, pdeathsig: bool) -> None:
    """Linux: SIGTERM to this process when its parent exits (PR_SET_PDEATHSIG). The kernel ties
    it to the parent *thread* that forked (a UI's worker thread ends long before the UI), so it
    is only a first line: the server also watches its stdin pipe for EOF and ``getppid()``."""
    if pdeathsig and sys.platform.startswith("linux"):
        with contextlib.suppress(OSError, AttributeError):
            libc = ctypes.CDLL(None, use_errno=True)
            libc.prctl(1, signal.SIGTERM, 0, 0, 0)  # PR_SET_PDEATHSIG = 1
    if os.getppid() != parent:  # it died before the prctl
        sys.exit(0)


if __name__ == "__main__":
    sys.exit(main())
