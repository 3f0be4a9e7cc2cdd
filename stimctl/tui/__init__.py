"""Clinician terminal UI (`stimctl tui`): a Textual app that drives stimctl.controller."""

from __future__ import annotations

__all__ = ["StimApp"]


def __getattr__(name: str) -> object:
    if name == "StimApp":
        from stimctl.tui.app import StimApp

        return StimApp
    raise AttributeError(f"module 'stimctl.tui' has no attribute {name!r}")
