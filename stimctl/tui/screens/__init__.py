"""Screens of the clinician UI: set-up, preflight, run, fault, summary and the modals."""

from __future__ import annotations

from stimctl.tui.screens.fault import FaultScreen
from stimctl.tui.screens.modals import ConfirmModal, NoteModal
from stimctl.tui.screens.preflight import PreflightScreen
from stimctl.tui.screens.run import RunScreen
from stimctl.tui.screens.setup import SetupScreen
from stimctl.tui.screens.summary import SummaryScreen

__all__ = [
    "ConfirmModal",
    "FaultScreen",
    "NoteModal",
    "PreflightScreen",
    "RunScreen",
    "SetupScreen",
    "SummaryScreen",
]
