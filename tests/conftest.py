"""Shared test configuration: slow tests run only when asked for."""

from __future__ import annotations

import os

import pytest


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Skip `@pytest.mark.slow` tests unless STIMCTL_SLOW=1 or a `-m` expression names them."""
    if os.environ.get("STIMCTL_SLOW") == "1" or "slow" in (config.getoption("-m") or ""):
        return
    skip = pytest.mark.skip(reason="slow: run with STIMCTL_SLOW=1 or -m slow")
    for item in items:
        if "slow" in item.keywords:
            item.add_marker(skip)


@pytest.fixture(autouse=True, scope="session")
def _private_clinic_database(tmp_path_factory: pytest.TempPathFactory) -> None:
    """No test writes the user's clinic database: STIMCTL_DB points into a temporary folder
    (inherited by subprocesses). Tests of the default location set their own environment."""
    folder = tmp_path_factory.mktemp("clinic")
    os.environ["STIMCTL_DB"] = f"sqlite:///{folder / 'clinic.db'}"


@pytest.fixture(autouse=True, scope="session")
def _user_folders(tmp_path_factory: pytest.TempPathFactory) -> None:
    """The user's config and state folders (site record key, rescue files) live in the test
    session's own temporary folder, never in the real home (subprocesses inherit them)."""
    for name in ("XDG_CONFIG_HOME", "XDG_STATE_HOME"):
        os.environ[name] = str(tmp_path_factory.mktemp(name.lower()))
    os.environ.pop("STIMCTL_RECORD_KEY", None)
