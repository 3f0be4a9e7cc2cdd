"""Fault matrix: every fault in IDLE, ARMED and RUNNING ends safe, latched, reported and recorded.

Each cell drives stimctl's Controller (the real host) into the state, applies the fault and then
checks, from the device trace, that output is zero and the fault latched within the cell's bound
(in device time: watchdog, tick, block length, read from DEVICE_INFO), and that the host reports
it. Where a fault cannot show before output starts (an electrode fault in IDLE), the cell checks
that the session is refused before any output instead. Rows go to the terminal summary and to the
JSON record (``fault_matrix``).
"""

from __future__ import annotations

import contextlib
import time
import traceback
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import pytest

from hil.benchconfig import BenchConfig
from hil.devicelink import DeviceLink
from hil.hostproc import HostProcess, controller_session
from stimctl.protocol import DeviceInfo

STATES = ("IDLE", "ARMED", "RUNNING")
FAULT_CHANNEL = 2  # short-demo.toml drives channels 1 and 2
LINK_WINDOW_S = 0.5  # how long the session runs on the impaired link before the e-stop
DRIFT_OHM_PER_S = 500_000  # impedance rise: past the pass threshold in ~40 ms, open in ~0.2 s
HOST_REPORT_TIMEOUT_S = 3.0

# fault -> (bench capabilities it needs, what a pass looks like)
FAULTS: dict[str, tuple[tuple[str, ...], str]] = {
    "host_killed": (("host_process", "trace"), "COMMS_LOSS (RUNNING: or UNDERRUN); IDLE: no latch"),
    "port_closed": (("host_process", "trace"), "COMMS_LOSS (RUNNING: or UNDERRUN); IDLE: no latch"),
    "byte_loss_1pct": (("fault_injection", "trace"), "session safe; e-stop latches ESTOP"),
    "bit_flips": (("fault_injection", "trace"), "corrupt frames dropped; e-stop latches ESTOP"),
    "delay_50ms": (("fault_injection", "trace"), "session keeps up; e-stop latches ESTOP"),
    "device_reset": (("fault_injection", "trace"), "DEVICE_RESET latched at the reset"),
    "electrode_open": (("fault_injection", "trace"), "ELECTRODE_OPEN with output; IDLE: refused"),
    "electrode_short": (("fault_injection", "trace"), "ELECTRODE_SHORT with output; IDLE: refused"),
    "impedance_rise": (("fault_injection", "trace"), "ELECTRODE_OPEN/COMPLIANCE; IDLE: refused"),
    "fifo_underrun": (("fault_injection", "trace"), "UNDERRUN when the block ends; else no effect"),
    "overcurrent": (("fault_injection", "trace"), "OVERCURRENT at first output"),
}  # fmt: skip
# overcurrent stays injected in the simulator (no control command clears it): keep it last.


@dataclass(slots=True)
class Cell:
    """One fault x state result (a row of the JSON record)."""

    fault: str
    state: str
    expected: str
    latched: str = ""  # device fault latched, "refused" or "none"
    host_report: str = ""  # what the host said (fault code, refusal)
    latch_ms: float | None = None  # device ms from the trigger to the latch (and output zero)
    bound_ms: float | None = None
    zero_ms: float | None = None  # device ms from the latch to all outputs zero (bound: 1 tick)
    wall_ms: float | None = None  # host wall clock from the trigger to output zero (recorded)
    passed: bool = False
    note: str = ""
    checks: list[str] = field(default_factory=list)

    def check(self, ok: bool, what: str) -> None:
        self.checks.append(("ok " if ok else "FAILED ") + what)


def _events(bench: BenchConfig, since: int, kind: str) -> list[dict[str, Any]]:
    return [e for e in bench.trace_events(since) if e["event"] == kind]


def _last_rx_before(bench: BenchConfig, since: int, device_ms: int) -> dict[str, Any] | None:
    rx = [e for e in _events(bench, since, "rx") if e["device_ms"] <= device_ms]
    return rx[-1] if rx else None


def _host_fault(ctl: Any, timeout: float = HOST_REPORT_TIMEOUT_S) -> str:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        status = ctl.status()
        if str(status.state) in ("FAULT", "ESTOP"):
            return status.fault.code if status.fault is not None else str(status.state)
        time.sleep(0.01)
    return f"none (host state {ctl.status().state})"


def _finish_latch(
    cell: Cell,
    bench: BenchConfig,
    since: int,
    fault: dict[str, Any],
    trigger_ns: int,
    tick_ms: float,
) -> None:
    """Fill latched / zero_ms / wall_ms from the first fault event and the output trace."""
    cell.latched = str(fault["fault"])
    zero = bench.wait_output_zero(since, min(trigger_ns, int(fault["t_ns"])))
    cell.check(zero is not None, "output reaches zero")
    if zero is not None:
        cell.zero_ms = (
            0.0 if zero.get("already") else max(0.0, zero["device_ms"] - fault["device_ms"])
        )
        cell.wall_ms = max(0.0, (zero["t_ns"] - trigger_ns) / 1e6)
        cell.check(
            cell.zero_ms <= tick_ms, f"output zero within one tick of the latch ({tick_ms} ms)"
        )


def _cleanup(bench: BenchConfig, ctl: Any | None, nominal_ohm: int | None) -> None:
    if ctl is not None:
        with contextlib.suppress(Exception):
            ctl.close()
    if bench.has("fault_injection") and bench.kind != "stimsim":
        with contextlib.suppress(Exception):
            bench.control("link clear")
            if nominal_ohm is not None:
                bench.control(f"inject impedance {nominal_ohm} {FAULT_CHANNEL}")
        time.sleep(0.2)  # bytes held back by a link delay are delivered before the reset
    if bench.kind != "stimsim":  # an in-process simulator goes away with its port
        with contextlib.suppress(Exception), DeviceLink(bench.port) as link:
            link.hello()
            link.reset_to_idle()


# --- the scenarios --------------------------------------------------------------------------


def _host_gone(cell: Cell, bench: BenchConfig, info: DeviceInfo, since: int) -> None:
    tick_ms = 1000 / info.tick_hz
    host = HostProcess(
        bench.port, cell.state, then="close" if cell.fault == "port_closed" else "wait"
    )
    try:
        trigger_ns = host.closed_ns if host.closed_ns is not None else host.kill()
        kind = "session" if cell.state == "IDLE" else "fault"
        fault = bench.wait_event(since, kind, timeout=3 * info.watchdog_ms / 1000 + 1)
    finally:
        if host.proc.poll() is None:
            host.kill()  # (it holds the port: the next host could not open it)
    if cell.state == "IDLE":
        _session_ends(cell, bench, info, since)
        return
    cell.check(fault is not None, "a fault latches on the device")
    if fault is None:
        return
    _finish_latch(cell, bench, since, fault, trigger_ns, tick_ms)
    allowed = {"COMMS_LOSS"} | ({"UNDERRUN"} if cell.state == "RUNNING" else set())
    cell.check(cell.latched in allowed, f"latched fault in {sorted(allowed)}")
    last = _last_rx_before(bench, since, fault["device_ms"])
    if last is not None:
        cell.latch_ms = fault["device_ms"] - last["device_ms"]
        cell.bound_ms = (
            info.watchdog_ms if cell.latched == "COMMS_LOSS" else info.max_lookahead_ms
        ) + tick_ms
        cell.check(cell.latch_ms <= cell.bound_ms, "latched within its bound after the last frame")
    from stimctl.controller import Controller

    ctl = Controller.connect(bench.port)
    try:
        cell.host_report = _host_fault(ctl, 1.0)
        cell.check(cell.host_report in allowed, "the next host reports the latched fault")
    finally:
        ctl.close()


def _session_ends(cell: Cell, bench: BenchConfig, info: DeviceInfo, since: int) -> None:
    """IDLE: nothing is armed, so silence ends the device session and latches nothing."""
    tick_ms = 1000 / info.tick_hz
    ended = bench.wait_event(since, "session", timeout=3 * info.watchdog_ms / 1000 + 1)
    cell.check(ended is not None and ended.get("open") is False, "the device session ends")
    cell.check(bench.first_event(since, "fault") is None, "no fault latches")
    cell.latched = "none"
    if ended is not None:
        last = _last_rx_before(bench, since, ended["device_ms"])
        if last is not None:
            cell.latch_ms = ended["device_ms"] - last["device_ms"]
            cell.bound_ms = info.watchdog_ms + tick_ms
            cell.check(cell.latch_ms <= cell.bound_ms, "ended within the watchdog")
    from stimctl.controller import Controller

    ctl = Controller.connect(bench.port)
    try:
        cell.host_report = str(ctl.status().state)
        cell.check(cell.host_report == "IDLE", "the next host finds the device IDLE, no fault")
    finally:
        ctl.close()


def _link(cell: Cell, bench: BenchConfig, info: DeviceInfo, since: int) -> Any:
    tick_ms = 1000 / info.tick_hz
    command = {"byte_loss_1pct": "link drop 0.01", "bit_flips": "link flip 0.01",
               "delay_50ms": "link delay 50"}[cell.fault]  # fmt: skip
    ctl = controller_session(bench.port, cell.state, cell_profile(bench, cell))
    bench.control(command)
    time.sleep(LINK_WINDOW_S)
    early = bench.first_event(since, "fault")
    trigger_ns = time.monotonic_ns()
    ctl.estop()
    fault = bench.wait_event(since, "fault", timeout=2.0)
    cell.check(fault is not None, "a fault latches on the device")
    if fault is None:
        return ctl
    cell.note = "fault before the e-stop" if early is not None else "e-stop"
    _finish_latch(cell, bench, since, fault, trigger_ns, tick_ms)
    cell.check(cell.latched != "LIMIT_VIOLATION", "no corrupted command was acted on")
    if cell.latched == "ESTOP":
        rx = [
            e
            for e in _events(bench, since, "rx")
            if e["type"] == "EStop" and e["device_ms"] <= fault["device_ms"]
        ]
        cell.check(bool(rx), "the ESTOP frame reached the device")
        if rx:
            cell.latch_ms = fault["device_ms"] - rx[-1]["device_ms"]
            cell.bound_ms = tick_ms
    else:
        last = _last_rx_before(bench, since, fault["device_ms"])
        if last is not None:
            cell.latch_ms = fault["device_ms"] - last["device_ms"]
            cell.bound_ms = max(info.watchdog_ms, info.max_lookahead_ms) + tick_ms
    if cell.latch_ms is not None and cell.bound_ms is not None:
        cell.check(cell.latch_ms <= cell.bound_ms, "latched within its bound")
    bench.control("link clear")
    cell.host_report = _host_fault(ctl)
    cell.check(not cell.host_report.startswith("none"), "the host reports the fault")
    return ctl


def _reset(cell: Cell, bench: BenchConfig, info: DeviceInfo, since: int) -> Any:
    tick_ms = 1000 / info.tick_hz
    ctl = controller_session(bench.port, cell.state, cell_profile(bench, cell))
    trigger_ns = time.monotonic_ns()
    bench.control("inject reset")
    fault = bench.wait_event(since, "fault", timeout=2.0)
    cell.check(fault is not None and fault["fault"] == "DEVICE_RESET", "DEVICE_RESET latches")
    if fault is None:
        return ctl
    _finish_latch(cell, bench, since, fault, trigger_ns, tick_ms)
    cell.latch_ms, cell.bound_ms = 0.0, tick_ms  # the reset tick is the latch tick
    cell.host_report = _host_fault(ctl)
    cell.check(cell.host_report == "DEVICE_RESET", "the host reports DEVICE_RESET")
    return ctl


ELECTRODE = {
    "electrode_open": ("inject electrode_open {ch}", {"ELECTRODE_OPEN"}),
    "electrode_short": ("inject electrode_short {ch}", {"ELECTRODE_SHORT"}),
    "impedance_rise": (f"inject drift {DRIFT_OHM_PER_S} {{ch}}", {"ELECTRODE_OPEN", "COMPLIANCE"}),
    "overcurrent": ("inject overcurrent {ch}", {"OVERCURRENT"}),
}


def fault_channel(fault: str, state: str) -> int:
    """The channel a cell faults. The simulator cannot clear an injected overcurrent, so the
    last cell (overcurrent while RUNNING) uses the other channel, which is still healthy."""
    return 1 if (fault, state) == ("overcurrent", "RUNNING") else FAULT_CHANNEL


def _output_on_after(
    bench: BenchConfig, since: int, channel: int, device_ms: int
) -> dict[str, Any] | None:
    """The output event that had ``channel`` delivering current at ``device_ms`` (or the first
    one after it, if the channel was at zero then)."""
    current: dict[str, Any] | None = None
    for event in _events(bench, since, "output"):
        if event["channel"] != channel:
            continue
        if event["device_ms"] > device_ms and (current is None or not current["amplitude_ua"]):
            return event if event["amplitude_ua"] else None
        if event["device_ms"] > device_ms:
            break
        current = event
    if current is not None and current["amplitude_ua"]:
        return {**current, "device_ms": device_ms}
    return None


def _electrode(cell: Cell, bench: BenchConfig, info: DeviceInfo, since: int) -> Any:
    from stimctl.host.errors import StimctlError

    tick_ms = 1000 / info.tick_hz
    template, allowed = ELECTRODE[cell.fault]
    channel = fault_channel(cell.fault, cell.state)
    command = template.format(ch=channel)
    ctl = controller_session(bench.port, cell.state, cell_profile(bench, cell))
    inject_ns = time.monotonic_ns()
    bench.control(command)
    if cell.state == "IDLE":
        readings = ctl.check_impedance()
        reading = readings.get(channel)
        if reading is not None and not reading.ok:
            report = ctl.load(cell_profile(bench, cell))
            try:
                ctl.arm(confirm=True, acknowledge_warnings=bool(report.warnings))
            except StimctlError as exc:
                cell.latched, cell.host_report = "refused", f"impedance {reading.status}: {exc}"
            cell.check(cell.latched == "refused", "the host refuses to arm")
            outputs = [e for e in _events(bench, since, "output") if e["amplitude_ua"]]
            cell.check(not outputs, "no output was ever delivered")
            cell.note = "refused before any output"
            return ctl
        report = ctl.load(cell_profile(bench, cell))
        ctl.arm(confirm=True, acknowledge_warnings=bool(report.warnings))
    if cell.state in ("IDLE", "ARMED"):
        ctl.start()
    fault = bench.wait_event(since, "fault", timeout=3.0)
    cell.check(fault is not None, "a fault latches on the device")
    if fault is None:
        return ctl
    _finish_latch(cell, bench, since, fault, inject_ns, tick_ms)
    cell.check(cell.latched in allowed, f"latched fault in {sorted(allowed)}")
    inject = next((e for e in _events(bench, since, "inject")), None)
    trigger = _output_on_after(bench, since, channel, inject["device_ms"] if inject else 0)
    if trigger is not None and cell.fault != "impedance_rise":
        # the electrode fault can only show while the channel delivers current: from the later
        # of the injection and the first output on that channel
        cell.latch_ms, cell.bound_ms = fault["device_ms"] - trigger["device_ms"], tick_ms
        cell.note = f"{trigger['amplitude_ua']} uA on ch{channel} when it tripped"
    if cell.fault == "impedance_rise" and inject is not None:
        cell.note = f"tripped {fault['device_ms'] - inject['device_ms']} ms after the rise began"
    if cell.latch_ms is not None and cell.bound_ms is not None:
        cell.check(cell.latch_ms <= cell.bound_ms, "latched within its bound")
    cell.host_report = _host_fault(ctl)
    cell.check(cell.host_report in allowed, "the host reports the device's fault")
    return ctl


def _underrun(cell: Cell, bench: BenchConfig, info: DeviceInfo, since: int) -> Any:
    tick_ms = 1000 / info.tick_hz
    ctl = controller_session(bench.port, cell.state, cell_profile(bench, cell))
    if cell.state != "RUNNING":
        bench.control("inject underrun")
        if cell.state == "IDLE":
            report = ctl.load(cell_profile(bench, cell))
            ctl.check_impedance()
            ctl.arm(confirm=True, acknowledge_warnings=bool(report.warnings))
        ctl.start()
        time.sleep(0.3)
        fault = bench.first_event(since, "fault")
        cell.latched = "none" if fault is None else str(fault["fault"])
        cell.check(fault is None, "no fault: nothing was queued to lose")
        cell.host_report = str(ctl.status().state)
        cell.check(cell.host_report == "RUNNING", "the session starts normally")
        cell.note = "FIFO empty before START: nothing to lose"
        return ctl
    fault = None
    attempt = 0
    while attempt < 3:
        attempt += 1  # a block the host sends within the same tick refills the FIFO
        trigger_ns = time.monotonic_ns()
        mark = bench.trace_offset()
        bench.control("inject underrun")
        fault = bench.wait_event(since, "fault", timeout=0.2)
        if fault is not None:
            break
    cell.check(fault is not None, "UNDERRUN latches")
    if fault is None:
        return ctl
    cell.note = f"attempt {attempt}"
    _finish_latch(cell, bench, since, fault, trigger_ns, tick_ms)
    cell.check(cell.latched == "UNDERRUN", "latched fault is UNDERRUN")
    inject = bench.first_event(mark, "inject", kind="underrun")
    if inject is not None:
        cell.latch_ms, cell.bound_ms = fault["device_ms"] - inject["device_ms"], 2 * tick_ms
        cell.check(cell.latch_ms <= cell.bound_ms, "latched when the playing block ends")
    cell.host_report = _host_fault(ctl)
    cell.check(cell.host_report == "UNDERRUN", "the host reports UNDERRUN")
    return ctl


PROFILE_TEMPLATE = """schema = "stimctl.profile/1"
name = "HIL fault matrix"
description = "Continuous 10 Hz at 1 mA, 1 s ramps: output on every channel within 100 ms."
source = "hil/test_fault_matrix.py"

[waveform]
shape = "biphasic_symmetric"
{channels}
[[phases]]
duration_s = 60
mode = "continuous"
frequency_hz = 10
pulse_width_us = 200
ramp_up_s = 1
ramp_down_s = 1
"""
CHANNEL_TEMPLATE = """
[[channels]]
id = {id}
anode = "ST36-{side}"
cathode = "ST37-{side}"
amplitude_ma = 1.0
"""


def matrix_profile(bench: BenchConfig, channels: tuple[int, ...]) -> Path:
    """A profile on ``channels`` written to the bench's working directory."""
    assert bench.workdir is not None
    path = bench.workdir / f"matrix-{'-'.join(map(str, channels))}.toml"
    if not path.exists():
        body = "".join(CHANNEL_TEMPLATE.format(id=c, side="LR"[c % 2]) for c in channels)
        path.write_text(PROFILE_TEMPLATE.format(channels=body))
    return path


def cell_profile(bench: BenchConfig, cell: Cell) -> Path:
    """Channels 1 and 2, except the last overcurrent cell: channel 1 only (see fault_channel)."""
    if (cell.fault, cell.state) == ("overcurrent", "RUNNING"):
        return matrix_profile(bench, (1,))
    return matrix_profile(bench, (1, FAULT_CHANNEL))


SCENARIOS: dict[str, Callable[[Cell, BenchConfig, DeviceInfo, int], Any]] = {
    "host_killed": _host_gone,
    "port_closed": _host_gone,
    "byte_loss_1pct": _link,
    "bit_flips": _link,
    "delay_50ms": _link,
    "device_reset": _reset,
    "electrode_open": _electrode,
    "electrode_short": _electrode,
    "impedance_rise": _electrode,
    "fifo_underrun": _underrun,
    "overcurrent": _electrode,
}

CELLS = [
    pytest.param(fault, state, marks=pytest.mark.needs(*FAULTS[fault][0]), id=f"{fault}-{state}")
    for fault in FAULTS
    for state in STATES
]


@pytest.mark.parametrize(("fault", "state"), CELLS)
def test_fault_ends_safe_latched_and_reported(
    bench: BenchConfig,
    device_info: DeviceInfo,
    matrix_rows: list[dict[str, Any]],
    measure: Any,
    fault: str,
    state: str,
) -> None:
    cell = Cell(fault=fault, state=state, expected=FAULTS[fault][1])
    nominal: int | None = None
    if bench.kind != "stimsim" and bench.has("fault_injection"):
        nominal = int(bench.status()["impedance"][FAULT_CHANNEL - 1])
    since = bench.trace_offset()
    ctl = None
    try:
        ctl = SCENARIOS[fault](cell, bench, device_info, since)
    except Exception as exc:
        where = traceback.extract_tb(exc.__traceback__)[-1]
        cell.check(
            False,
            f"scenario raised {type(exc).__name__}: {exc} ({where.filename}:"
            f"{where.lineno} {where.line})",
        )
    finally:
        _cleanup(bench, ctl, nominal)
        cell.passed = bool(cell.checks) and all(c.startswith("ok") for c in cell.checks)
        matrix_rows.append(asdict(cell))
    if cell.latch_ms is not None:
        measure(f"fault_matrix[{fault}/{state}].latch_ms", cell.latch_ms, "ms", high=cell.bound_ms)
    assert cell.passed, "\n".join(cell.checks)
