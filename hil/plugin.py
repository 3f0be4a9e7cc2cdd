"""pytest plugin for the HIL bench: --stim-port/--stim-env, fixtures, capability marker, records."""

from __future__ import annotations

import contextlib
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from hil.benchconfig import KNOWN_CAPABILITIES, BenchConfig, BenchError, resolve_bench
from hil.devicelink import DeviceLink
from hil.measure import (
    MeasurementLog,
    install_log,
    matrix_table,
    measurement_table,
    write_record,
)
from hil.simprocess import start_sim_process, stop_sim_process, with_sim_params
from stimctl.protocol import DeviceInfo

# --- pytest hooks --------------------------------------------------------------------------

BENCH_KEY = pytest.StashKey[BenchConfig]()
LOG_KEY = pytest.StashKey[MeasurementLog]()
MATRIX_KEY = pytest.StashKey[list[dict[str, Any]]]()


def pytest_addoption(parser: pytest.Parser) -> None:
    group = parser.getgroup("stim", "stimulator bench (hil)")
    group.addoption(
        "--stim-port",
        default=None,
        metavar="URL",
        help="device port: /dev/tty*, socket://, rfc2217://, stimsim://... "
        "(default: start the simulator on a pseudo-terminal in its own process)",
    )
    group.addoption(
        "--stim-env",
        default=None,
        metavar="FILE",
        help="TOML bench description: port, expected firmware, capabilities",
    )
    group.addoption(
        "--stim-json",
        default="hil-results.json",
        metavar="FILE",
        help="JSON record of every measurement and the fault matrix (default hil-results.json)",
    )


@pytest.hookimpl(tryfirst=True)
def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line(
        "markers",
        "needs(*capabilities): skip unless the bench has every capability "
        f"({', '.join(KNOWN_CAPABILITIES)})",
    )
    try:
        bench = resolve_bench(config.getoption("--stim-port"), config.getoption("--stim-env"))
    except BenchError as exc:
        raise pytest.UsageError(str(exc)) from exc
    config.stash[BENCH_KEY] = bench
    log = MeasurementLog()
    install_log(log)
    config.stash[LOG_KEY] = log
    config.stash[MATRIX_KEY] = []


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    bench = config.stash[BENCH_KEY]
    for item in items:
        for marker in item.iter_markers("needs"):
            for capability in marker.args:
                if capability not in KNOWN_CAPABILITIES:
                    raise pytest.UsageError(f"{item.nodeid}: unknown capability {capability!r}")
                if not bench.has(capability):
                    reason = f"bench lacks capability: {capability}"
                    item.add_marker(pytest.mark.skip(reason=reason))


def pytest_runtest_setup(item: pytest.Item) -> None:
    item.config.stash[LOG_KEY].current_test = item.nodeid


def pytest_terminal_summary(
    terminalreporter: pytest.TerminalReporter, exitstatus: int, config: pytest.Config
) -> None:
    rows = config.stash.get(MATRIX_KEY, [])
    if rows:
        terminalreporter.section("fault matrix")
        terminalreporter.write_line(matrix_table(rows))
    log = config.stash.get(LOG_KEY, None)
    if log is not None and log.items:
        terminalreporter.section("measurements")
        terminalreporter.write_line(measurement_table(log.items))
    path = config.getoption("--stim-json")
    if path:
        terminalreporter.write_line(f"HIL record: {path}")


def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    config = session.config
    path = config.getoption("--stim-json", None)
    if not path or BENCH_KEY not in config.stash:
        return
    bench = config.stash[BENCH_KEY]
    log = config.stash[LOG_KEY]
    document = {
        "bench": bench.properties(),
        "expected_firmware": bench.firmware,
        "env_file": str(bench.env_file) if bench.env_file else None,
        "measurements": log.as_dicts(),
        "fault_matrix": config.stash[MATRIX_KEY],
        "outcomes": _outcomes(config),
        "exitstatus": int(exitstatus),
        "finished_at": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
    }
    write_record(Path(path), document)


def _outcomes(config: pytest.Config) -> dict[str, int]:
    reporter = config.pluginmanager.get_plugin("terminalreporter")
    stats: dict[str, list[Any]] = getattr(reporter, "stats", {})
    return {key: len(stats.get(key, [])) for key in ("passed", "failed", "skipped", "error")}


# --- fixtures ------------------------------------------------------------------------------


@pytest.fixture(scope="session")
def bench(request: pytest.FixtureRequest) -> Iterator[BenchConfig]:
    """The bench under test; starts (and finally stops) the default simulator if needed."""
    config = request.config.stash[BENCH_KEY]
    with tempfile.TemporaryDirectory(prefix="stim-hil-") as tmp:
        workdir = Path(tmp)
        config.workdir = workdir
        if config.kind == "sim-process":
            proc, port, trace, control = start_sim_process(workdir)
            config.process, config.port = proc, port
            config.trace_path, config.control_path = trace, control
        elif config.kind == "stimsim":
            import firmware_sim  # noqa: F401  (registers the stimsim:// URL handler)

            config.port, config.trace_path, config.control_path = with_sim_params(
                config.port, workdir
            )
        try:
            yield config
        finally:
            if config.process is not None:
                stop_sim_process(config.process)


@pytest.fixture(scope="session")
def device_info(bench: BenchConfig) -> DeviceInfo:
    """DEVICE_INFO of the bench device (one handshake per session)."""
    if bench.info is None:
        with DeviceLink(bench.port) as link:
            bench.info = link.hello()
            link.reset_to_idle()
    return bench.info


@pytest.fixture(scope="session", autouse=True)
def bench_properties(
    bench: BenchConfig, device_info: DeviceInfo, record_testsuite_property: Any
) -> dict[str, str]:
    """Bench properties (port, firmware, limits hash, profile hashes, git SHA) into JUnit."""
    props = bench.properties()
    for name, value in props.items():
        record_testsuite_property(name, value)
    return props


@pytest.fixture
def device_link(bench: BenchConfig, device_info: DeviceInfo) -> Iterator[DeviceLink]:
    """A raw protocol client on the bench port: session open (HELLO), device in IDLE."""
    link = DeviceLink(bench.port)
    try:
        link.hello()
        link.reset_to_idle()
        yield link
    finally:
        link.close(goodbye=True)


@pytest.fixture
def faults(bench: BenchConfig, device_link: DeviceLink) -> Iterator[BenchConfig]:
    """The bench's fault-injection control (the device is open); afterwards link impairments
    are cleared and every electrode impedance is put back to what it was."""
    if not bench.has("fault_injection"):
        pytest.skip("bench lacks capability: fault_injection")
    bench.control("link clear")
    impedances = bench.status().get("impedance", [])
    try:
        yield bench
    finally:
        with contextlib.suppress(BenchError, OSError):
            bench.control("link clear")
            for channel, ohm in enumerate(impedances, start=1):
                bench.control(f"inject impedance {ohm} {channel}")


@pytest.fixture
def controller(bench: BenchConfig, device_info: DeviceInfo) -> Iterator[Any]:
    """A stimctl Controller connected to the bench port."""
    from stimctl.controller import Controller

    ctl = Controller.connect(bench.port)
    try:
        yield ctl
    finally:
        ctl.close()


@pytest.fixture
def measure(request: pytest.FixtureRequest) -> Any:
    """``measure(name, value, unit, low=None, high=None)``: record and check a measurement."""
    log = request.config.stash[LOG_KEY]

    def record(
        name: str,
        value: Any,
        unit: str,
        low: float | None = None,
        high: float | None = None,
        note: str = "",
    ) -> Any:
        item = log.record(name, value, unit, low, high, note)
        request.node.user_properties.append((f"measurement:{name}", f"{value} {unit}"))
        return item

    return record


@pytest.fixture(scope="session")
def matrix_rows(request: pytest.FixtureRequest) -> list[dict[str, Any]]:
    """The fault matrix rows of this session (printed at the end, stored in the JSON record)."""
    return request.config.stash[MATRIX_KEY]
