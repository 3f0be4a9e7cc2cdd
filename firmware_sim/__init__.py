"""firmware_sim: a software model of the stimulator firmware, speaking the stimctl wire protocol.

Importing the package registers the ``stimsim://`` pyserial URL handler (see protocol_stimsim.py).
"""

from __future__ import annotations

import serial

from firmware_sim.clock import RealClock, ScaledClock, VirtualClock
from firmware_sim.config import DeviceConfig
from firmware_sim.device import Device
from firmware_sim.faults import FaultSpec, LinkFaults
from firmware_sim.limits import HardwareLimits

if "firmware_sim" not in serial.protocol_handler_packages:
    serial.protocol_handler_packages.append("firmware_sim")

__all__ = [
    "Device",
    "DeviceConfig",
    "FaultSpec",
    "HardwareLimits",
    "LinkFaults",
    "RealClock",
    "ScaledClock",
    "VirtualClock",
]
