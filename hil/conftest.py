"""Loads the HIL bench plugin for `pytest hil` (options, fixtures, capability marker, records)."""

from __future__ import annotations

from hil.plugin import (
    bench,
    bench_properties,
    controller,
    device_info,
    device_link,
    faults,
    matrix_rows,
    measure,
    pytest_addoption,
    pytest_collection_modifyitems,
    pytest_configure,
    pytest_runtest_setup,
    pytest_sessionfinish,
    pytest_terminal_summary,
)

__all__ = [
    "bench",
    "bench_properties",
    "controller",
    "device_info",
    "device_link",
    "faults",
    "matrix_rows",
    "measure",
    "pytest_addoption",
    "pytest_collection_modifyitems",
    "pytest_configure",
    "pytest_runtest_setup",
    "pytest_sessionfinish",
    "pytest_terminal_summary",
]
