"""Device connection: the port URL, the open link, the HELLO handshake, the device and its envelope.

``Connection`` holds what the controller knows about the port and the device it found there: the
resolved URL (the embedded simulator's, a device path or ``usb:SERIAL``), the ``Link``, the
DeviceSummary from DEVICE_INFO, and the effective envelope (the site envelope narrowed by the
device's limits). The link is swapped under the controller's lock; everything else reads it once.
"""

from __future__ import annotations

import math
import threading
from collections.abc import Mapping
from typing import Any
from urllib.parse import urlencode

from stimctl.host.errors import InterlockError, StimctlError
from stimctl.host.link import Link, OnLost, OnMessage
from stimctl.host.ports import PortLock, resolve_port
from stimctl.host.simprocess import SimulatorProcess, check_speed, sim_args
from stimctl.host.status import DeviceSummary
from stimctl.protocol import DeviceInfo
from stimctl.rules.envelope import EnvelopeError, SafetyEnvelope

__all__ = ["SIM_URL", "Connection", "is_real_time", "simulator_url"]

SIM_URL = "stimsim://"


def is_real_time(speed: float | None) -> bool:
    """None or 1: the embedded simulator runs in real time, in its own process on a pty."""
    return speed is None or speed == 1


def simulator_url(speed: float | None, options: Mapping[str, str] | None = None) -> str:
    """The in-process simulator's URL for ``speed`` N (0 < N <= MAX_SPEED) or inf: the virtual
    lock-step clock (device time runs only while the host waits for it, so watchdog, impedance
    validity and lookahead hold in device time whatever the host does), at most N times wall
    time (inf: as fast as the host keeps up). ``options`` ``lockstep=0``: free-running (device
    time runs whenever the host reads, for a host that never waits, a UI). ValueError for a bad
    speed."""
    params: dict[str, str] = {}
    options = {str(k): str(v) for k, v in (options or {}).items()}
    if speed is None:
        raise ValueError("the real-time simulator has no URL: it runs in its own process")
    if not math.isinf(speed):
        params["speed"] = f"{check_speed(speed):g}"
    elif speed < 0:
        raise ValueError(f"speed must be > 0, got {speed:g}")
    params["virtual"] = "1"
    lockstep = options.pop("lockstep", "1")
    if lockstep.strip().lower() not in ("0", "false", "no", "off"):
        params["lockstep"] = lockstep  # the simulator refuses a value it does not know
    params.update(options)
    return SIM_URL + "?" + urlencode(params)


def device_summary(info: DeviceInfo) -> DeviceSummary:
    """DEVICE_INFO as the controller reports it (``Controller.device``)."""
    return DeviceSummary(
        firmware=info.firmware, serial=info.serial, channels=info.channels,
        tick_hz=info.tick_hz, telemetry_hz=info.telemetry_hz, watchdog_ms=info.watchdog_ms,
        fifo_depth=info.fifo_depth, max_lookahead_ms=info.max_lookahead_ms,
        impedance_valid_ms=info.impedance_valid_ms, protocol_version=info.protocol_version,
        catalogue_hash=info.catalogue_hash, limits=info.limits(),
        limits_hash=info.limits_hash(),
    )  # fmt: skip


def effective_envelope(site: SafetyEnvelope, info: DeviceInfo) -> SafetyEnvelope:
    """The site envelope narrowed by the device's limits; StimctlError if they do not fit."""
    try:
        return site.narrowed(
            max_amplitude_ma=info.max_amplitude_ua / 1000,
            pulse_width_us=(info.min_pulse_width_us, info.max_pulse_width_us),
            frequency_hz=(info.min_frequency_dhz / 10, info.max_frequency_dhz / 10),
            max_channels=info.channels,
            # the slew ceiling in uA/ms = mA/s (0: the device states none)
            max_ramp_rate_ma_per_s=info.max_slew_ua_per_ms or None,
        )
    except EnvelopeError as exc:
        raise StimctlError(f"device limits do not fit the site envelope: {exc}") from None


class Connection:
    """The port and the device on it; ``link`` is None until opened and after ``detach``."""

    def __init__(self, lock: threading.RLock, site_envelope: SafetyEnvelope) -> None:
        self._lock = lock
        self.site_envelope = site_envelope
        self.url = ""
        self.is_simulator = False
        self.speed = 1.0  # the embedded simulator's speed (N, math.inf: virtual lock-step clock)
        self.link: Link | None = None
        self.device: DeviceSummary | None = None
        self.envelope = site_envelope  # effective once the device has said HELLO
        self.sim_process: SimulatorProcess | None = None  # the embedded simulator's process
        self.port_lock: PortLock | None = None  # one host per port: held from choice to close

    def stop_simulator(self) -> None:
        """End the embedded simulator's process, if this connection started one."""
        if self.sim_process is not None:
            self.sim_process.stop()

    def release_port(self) -> None:
        """Let the port go for another host (after the link is closed)."""
        if self.port_lock is not None:
            self.port_lock.release()
            self.port_lock = None

    def _take_port(self, url: str) -> None:
        """Take the port before anything touches it; PortInUse (naming the holder) if another
        host has it. The lock held for the same port is kept (reconnect)."""
        if self.port_lock is not None and self.port_lock.port == url:
            return
        lock = PortLock.acquire(url)
        self.release_port()
        self.port_lock = lock

    def choose_port(
        self, url: str | None, speed: float | None, sim_options: Mapping[str, str] | None
    ) -> None:
        """None: the embedded simulator at ``speed`` (None/1 real time: in its own process on a
        pseudo-terminal; N or inf: the virtual lock-step clock paced at N x wall time, in this
        process); otherwise a port, resolved. ValueError for a bad speed."""
        if url is None:
            self.is_simulator = True
            if is_real_time(speed):
                self.speed = 1.0
                self.sim_process = SimulatorProcess(sim_args(None, sim_options))
                self.url = self.sim_process.port
                self._take_port(self.url)
            else:
                assert speed is not None
                self.url = simulator_url(speed, sim_options)
                self.speed = float(speed)
        else:
            self.is_simulator = url.startswith(SIM_URL)
            self.url = resolve_port(url)
            self._take_port(self.url)

    def change_port(self, url: str) -> None:
        """Another port for the next ``open`` (reconnect)."""
        resolved = resolve_port(url)
        self._take_port(resolved)
        self.url = resolved

    def open(self, on_message: OnMessage, on_lost: OnLost, timeout: float) -> None:
        """Open the link, say HELLO, adopt the device and narrow the envelope to its limits."""
        link = Link.open(self.url, on_message, on_lost)
        with self._lock:
            self.link = link
        info = link.hello(timeout=timeout)
        if math.isfinite(self.speed):  # the device's watchdog_ms / 4, in host time
            link.start_keepalive(info.watchdog_ms / 4000 / self.speed)
        device, envelope = device_summary(info), effective_envelope(self.site_envelope, info)
        with self._lock:
            self.device, self.envelope = device, envelope

    def device_record(self) -> dict[str, Any]:
        """The record's ``device`` line: identity, limits and their hash, effective envelope."""
        assert self.device is not None
        return {
            **self.device.to_dict(), "url": self.url,
            "effective_envelope": self.envelope.model_dump(),
        }  # fmt: skip

    def detach(self) -> Link | None:
        """Forget the link (the caller closes it); the device stays known."""
        with self._lock:
            old, self.link = self.link, None
        return old

    def require_link(self) -> Link:
        """The open link; InterlockError (nothing is sent) when it is down."""
        link = self.link
        if link is None or not link.is_open:
            raise InterlockError("not connected (link down): reconnect first")
        return link

    def open_link(self) -> Link | None:
        """The link if it is open, else None (for writes that must never raise)."""
        link = self.link
        return link if link is not None and link.is_open else None
