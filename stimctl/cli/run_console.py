"""The operator's console during `stimctl run`: what is shown and asked, and Ctrl-C/SIGTERM/SIGHUP.

Device and profile shown, confirmation, impedance, ARM and START, one progress line while the
session runs, the totals at the end. A terminating signal before streaming aborts at once
(``Aborted``); while streaming it only sets the flag, and the progress loop stops the output.
"""

from __future__ import annotations

import signal
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from types import FrameType
from typing import TYPE_CHECKING, TextIO

from stimctl.host.status import ExitCode

if TYPE_CHECKING:
    from stimctl.controller import Controller
    from stimctl.host.status import Outcome, Status
    from stimctl.rules.profile import Profile

PROG = "stimctl run"
#: Ctrl-C, a kill, the terminal closed: output to zero at once, record closed, exit 4.
TERMINATING_SIGNALS = (signal.SIGINT, signal.SIGTERM, signal.SIGHUP)


class Aborted(BaseException):
    """Raised by the signal handler outside the streaming loop."""


class AbortFlag:
    """Set by the signal handler: plain attributes, no lock (a second signal arriving while the
    first handler is inside ``threading.Event.set`` would wait for itself forever)."""

    __slots__ = ("_set", "streaming")

    def __init__(self) -> None:
        self._set = False
        self.streaming = False  # from START on, a signal only sets the flag

    def set(self) -> None:
        self._set = True

    def is_set(self) -> bool:
        return self._set


@contextmanager
def operator_abort() -> Iterator[AbortFlag]:
    """The terminating signals, while the block runs, set the flag (and raise ``Aborted`` unless
    the session is streaming); the previous handlers come back at the end."""
    abort = AbortFlag()  # not threading.Event: its set() takes a lock a second signal would wait on

    def on_signal(signum: int, frame: FrameType | None) -> None:
        abort.set()
        if not abort.streaming:
            raise Aborted()

    previous = {s: signal.signal(s, on_signal) for s in TERMINATING_SIGNALS}
    try:
        yield abort
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)


def say(message: str) -> None:
    print(f"{PROG}: {message}", file=sys.stderr)


def supervise(ctl: Controller, profile: Profile, yes: bool, abort: AbortFlag) -> int:
    """Show, confirm, check impedance, ARM, START, follow to the end; the exit code."""
    from stimctl.cli.validate import format_violation
    from stimctl.host.status import Outcome

    sim = ctl.is_simulator
    banner = "SIMULATOR (embedded, not a stimulator)" if sim else f"device {ctl.url}"
    dev = ctl.device
    print(f"{banner}: {dev.serial} firmware {dev.firmware}, {dev.channels} channels,"
          f" limits {dev.limits_hash[:12]}", file=sys.stderr)  # fmt: skip
    report = ctl.load(profile)
    p = ctl.profile
    assert p is not None
    print(f"profile: {p.name} ({p.duration_s:g} s, {len(p.phases)} phase(s))", file=sys.stderr)
    for c in p.channels:
        print(f"  ch{c.id} {c.anode} -> {c.cathode} {c.amplitude_ma:g} mA", file=sys.stderr)
    for v in report.warnings:
        print(format_violation(v), file=sys.stderr)
    if not yes and not _confirm(sys.stdin, sys.stderr):
        return ExitCode.REFUSED
    if not _impedance_ok(ctl):
        return ExitCode.REFUSED
    ctl.arm(confirm=True, acknowledge_warnings=True)
    abort.streaming = True
    if abort.is_set():
        raise Aborted()
    ctl.start()
    outcome = _progress_loop(ctl, abort, sys.stderr)
    _print_totals(ctl, outcome)
    if outcome in (Outcome.FAULT, Outcome.ESTOP) and ctl.fault is not None:
        say(f"FAULT {ctl.fault.code}: {ctl.fault.message}")
    return outcome.exit_code


def _confirm(stdin: TextIO, out: TextIO) -> bool:
    if not stdin.isatty():
        say("refused: no confirmation (stdin is not a terminal); pass --yes to confirm")
        return False
    out.write("Start stimulation? Type 'yes' to confirm: ")
    out.flush()
    answer = stdin.readline().strip().lower()
    if answer not in ("y", "yes"):
        say("refused: not confirmed by the operator")
        return False
    return True


def _impedance_ok(ctl: Controller) -> bool:
    """Check every channel's electrodes; each reading shown, the first bad one refuses."""
    readings = ctl.check_impedance()
    bad = {ch: r for ch, r in readings.items() if not r.ok}
    for ch, r in readings.items():
        print(f"  impedance ch{ch}: {r.ohm} ohm {r.status}", file=sys.stderr)
    if bad:
        ch, r = next(iter(bad.items()))
        say(f"refused: impedance check failed on channel {ch}: {r.status} ({r.ohm} ohm)")
        return False
    return True


def _print_totals(ctl: Controller, outcome: Outcome) -> None:
    summary = ctl.summary()
    for c in summary.channels:
        print(f"ch{c.id}: {c.pulses} pulses (expected {c.expected_pulses}),"
              f" {c.charge_uc:.3f} uC per phase total", file=sys.stderr)  # fmt: skip
    print(
        f"outcome: {outcome.value}; delivered {summary.delivered_s:.1f} s;"
        f" late blocks {summary.late_blocks}, underruns {summary.underruns},"
        f" retransmits {summary.retransmits}",
        file=sys.stderr,
    )


def _progress_loop(ctl: Controller, abort: AbortFlag, out: TextIO) -> Outcome:
    from stimctl.host.status import Outcome

    tty = out.isatty()
    shown = 0.0
    width = 0
    while True:
        outcome = ctl.wait(timeout=0.05)
        if abort.is_set() and outcome is None:
            ctl.abort()
            ctl.wait(timeout=2.0)
            outcome = Outcome.ABORTED
        now = time.monotonic()
        if outcome is not None or now - shown >= (0.2 if tty else 5.0):
            shown = now
            line = progress_line(ctl.status(), ctl.is_simulator)
            if tty:
                out.write("\r" + line.ljust(width))
                width = len(line)
            else:
                out.write(line + "\n")
            out.flush()
        if outcome is not None:
            if tty:
                out.write("\n")
            return outcome


def _clock(seconds: float) -> str:
    total = max(0, int(seconds))
    h, rest = divmod(total, 3600)
    m, s = divmod(rest, 60)
    return f"{h}:{m:02d}:{s:02d}" if h else f"{m:02d}:{s:02d}"


def progress_line(st: Status, simulator: bool) -> str:
    """One status line: phase i/n and mode, elapsed/remaining, per-channel current."""
    total = st.elapsed_s + st.remaining_s
    done = int(20 * st.elapsed_s / total) if total else 0
    bar = "#" * done + "-" * (20 - done)
    chans = " ".join(f"ch{c.id} {c.set_ma:.2f}mA" for c in st.channels if c.plateau_ma > 0)
    tag = "SIM " if simulator else ""
    return (
        f"{tag}{st.state.value:<9} [{bar}] phase {st.phase_index + 1}/{st.phase_count}"
        f" {st.phase_mode} {_clock(st.elapsed_s)}/{_clock(total)}"
        f" (-{_clock(st.remaining_s)}) {chans}"
    )
