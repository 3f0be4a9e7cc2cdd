"""Widgets of the clinician UI: bars, device panel, validation report, channel rows, event log,
course panel."""

from __future__ import annotations

from stimctl.tui.widgets.bars import EStopBar, TopBar
from stimctl.tui.widgets.channel_row import ChannelRow
from stimctl.tui.widgets.course_panel import CoursePanel
from stimctl.tui.widgets.device_panel import DevicePanel
from stimctl.tui.widgets.event_log import EventLog
from stimctl.tui.widgets.validation_report import ValidationReport

__all__ = [
    "ChannelRow",
    "CoursePanel",
    "DevicePanel",
    "EStopBar",
    "EventLog",
    "TopBar",
    "ValidationReport",
]
