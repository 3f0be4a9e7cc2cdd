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
from firmware_sim.options import SimOptions, apply_option
from firmware_sim.pty_server import PtyServer


def build_parser(prog: str = "python -m firmware_sim") -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog=prog,
        description="Serve a simulated EA stimulator (stimctl wire protocol) on a pseudo-terminal.",
    )
    p.add_argument("--channels", type=str, default="4", help="output channels, 1..8 (default 4)")
    p.add_argument("--trace", metavar="FILE", help="write the JSON-lines trace to FILE")
    p.add_argument(
        "--impedance", metavar="OHM[,OHM...]", help="electrode impedance per channel (1500)"
    )
    p.add_argument(
        "--fault", metavar="SPEC", action="append", default=[],
        help="inject a fault, KIND[:CH][@T_MS] (repeatable); kinds: electrode_open, "
        "electrode_short, drift, overcurrent, reset, underrun",
    )  # fmt: skip
    p.add_argument("--speed", type=str, default="1", help="device time / wall time (default 1)")
    p.add_argument("--watchdog-ms", type=str, default=None, help="host watchdog (default 200)")
    p.add_argument(
        "--impedance-valid-ms", type=str, default=None,
        help="how long a passed impedance check stays valid (default 300000)",
    )  # fmt: skip
    p.add_argument("--serial", default=None, help="serial number in DEVICE_INFO")
    p.add_argument("--control", metavar="PATH", help="serve the control socket at PATH")
    p.add_argument("--seed", type=str, default=None, help="seed of the link-fault generator")
    p.add_argument("--drop", type=str, default=None, help="link byte-drop probability")
    p.add_argument("--flip", type=str, default=None, help="link bit-flip probability per byte")
    p.add_argument("--delay-ms", type=str, default=None, help="link one-way delay (ms)")
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


def options_from_args(args: argparse.Namespace) -> SimOptions:
    opts = SimOptions()
    pairs: list[tuple[str, str | None]] = [
        ("channels", args.channels), ("speed", args.speed), ("impedance", args.impedance),
        ("trace", args.trace), ("watchdog_ms", args.watchdog_ms),
        ("impedance_valid_ms", args.impedance_valid_ms), ("serial", args.serial),
        ("control", args.control), ("seed", args.seed), ("drop", args.drop),
        ("flip", args.flip), ("delay_ms", args.delay_ms),
    ]  # fmt: skip
    pairs += [("fault", spec) for spec in args.fault]
    for name, value in pairs:
        if value is not None:
            apply_option(opts, name, value)
    return opts


def main(argv: list[str] | None = None, prog: str = "python -m firmware_sim") -> int:
    parser = build_parser(prog)
    args = parser.parse_args(argv)
    try:
        opts = options_from_args(args)
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
