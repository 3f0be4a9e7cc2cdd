"""pytest plugin for the HIL bench: --stim-port/--stim-env, fixtures, capability marker, records."""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import platform
import signal
import socket
import subprocess
import sys
import tempfile
import time
import tomllib
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl, urlencode, urlsplit

import pytest

from hil.devicelink import DeviceLink
from hil.measure import (
    MeasurementLog,
    install_log,
    matrix_table,
    measurement_table,
    write_record,
)
from stimctl.protocol import DeviceInfo

REPO = Path(__file__).resolve().parents[1]
KNOWN_CAPABILITIES = ("trace", "fault_injection", "host_process", "scope")
SIM_CAPABILITIES = frozenset({"trace", "fault_injection"})
SIM_START_TIMEOUT_S = 15.0


class BenchError(RuntimeError):
    """The bench cannot be set up as described (bad --stim-env, simulator did not start)."""


@dataclass(slots=True)
class BenchConfig:
    """What the suite runs against: port URL, capabilities, expectations, simulator handles."""

    port: str
    kind: str  # "sim-process" (default), "stimsim" (in-process simulator) or "port"
    capabilities: frozenset[str]
    firmware: str | None = None  # expected firmware version (from --stim-env), None: any
    name: str = ""
    env_file: Path | None = None
    trace_path: Path | None = None
    control_path: Path | None = None
    process: subprocess.Popen[str] | None = None
    workdir: Path | None = None
    info: DeviceInfo | None = None
    extra: dict[str, Any] = field(default_factory=dict)

    def has(self, capability: str) -> bool:
        return capability in self.capabilities

    def control(self, command: str, timeout: float = 2.0) -> str:
        """Send one line to the fault-injection control socket; return its one-line answer."""
        if self.control_path is None:
            raise BenchError("bench has no control socket (capability fault_injection)")
        with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as sock:
            sock.settimeout(timeout)
            sock.connect(str(self.control_path))
            sock.sendall(command.encode() + b"\n")
            answer = b""
            while not answer.endswith(b"\n"):
                chunk = sock.recv(4096)
                if not chunk:
                    break
                answer += chunk
        text = answer.decode().strip()
        if text.startswith("error"):
            raise BenchError(f"control {command!r}: {text}")
        return text

    def status(self) -> dict[str, Any]:
        """The simulator's ``status`` answer (JSON)."""
        return dict(json.loads(self.control("status")))

    def trace_offset(self) -> int:
        """Current end of the trace file: pass to ``trace_events`` to see only later events."""
        if self.trace_path is None or not self.trace_path.exists():
            return 0
        return self.trace_path.stat().st_size

    def trace_events(self, since: int = 0) -> list[dict[str, Any]]:
        """Trace events written after byte offset ``since`` (complete lines only)."""
        if self.trace_path is None or not self.trace_path.exists():
            return []
        with self.trace_path.open("rb") as fh:
            fh.seek(since)
            data = fh.read()
        lines = data.split(b"\n")[:-1]  # the last piece is empty or an unfinished line
        return [json.loads(line) for line in lines if line.strip()]

    def output_zero(self, since: int, trigger_ns: int) -> dict[str, Any] | None:
        """The first trace event at or after ``trigger_ns`` when every output is zero.

        ``since`` is a trace offset taken while all outputs were zero (e.g. in IDLE): levels are
        followed from there. Returns the event (``t_ns``, ``device_ms``), or None if output is
        still nonzero at the end of the trace. Output already zero at the trigger counts as the
        trigger time itself.
        """
        levels: dict[int, int] = {}
        result: dict[str, Any] | None = None
        for event in self.trace_events(since):
            if event["t_ns"] >= trigger_ns and result is None and not any(levels.values()):
                result = {"t_ns": trigger_ns, "device_ms": event["device_ms"], "already": True}
                break
            if event["event"] == "output":
                levels[int(event["channel"])] = int(event["amplitude_ua"])
                if event["t_ns"] >= trigger_ns and not any(levels.values()):
                    return event
        if result is None and not any(levels.values()):
            return {"t_ns": trigger_ns, "device_ms": None, "already": True}
        return result

    def wait_output_zero(
        self, since: int, trigger_ns: int, timeout: float = 2.0
    ) -> dict[str, Any] | None:
        """``output_zero``, polling the trace until it is there or ``timeout`` passes."""
        deadline = time.monotonic() + timeout
        while True:
            found = self.output_zero(since, trigger_ns)
            if found is not None or time.monotonic() > deadline:
                return found
            time.sleep(0.01)

    def wait_event(
        self, since: int, event: str, timeout: float = 2.0, **match: Any
    ) -> dict[str, Any] | None:
        """``first_event``, polling the trace until it is there or ``timeout`` passes."""
        deadline = time.monotonic() + timeout
        while True:
            found = self.first_event(since, event, **match)
            if found is not None or time.monotonic() > deadline:
                return found
            time.sleep(0.01)

    def first_event(self, since: int, event: str, **match: Any) -> dict[str, Any] | None:
        """The first trace event of kind ``event`` whose fields equal ``match``."""
        for item in self.trace_events(since):
            if item["event"] == event and all(item.get(k) == v for k, v in match.items()):
                return item
        return None

    def properties(self) -> dict[str, str]:
        """Bench properties for the JUnit report and the JSON record."""
        props = {
            "port": self.port,
            "bench_kind": self.kind,
            "bench_name": self.name,
            "capabilities": ",".join(sorted(self.capabilities)),
            "git_sha": git_sha(),
            "host": platform.node(),
            "python": platform.python_version(),
        }
        if self.info is not None:
            props.update(
                firmware=self.info.firmware,
                device_serial=self.info.serial,
                channels=str(self.info.channels),
                limits_hash=self.info.limits_hash(),
                catalogue_hash=f"{self.info.catalogue_hash:#010x}",
            )
        for name, digest in profile_hashes().items():
            props[f"profile:{name}"] = digest
        return props


# --- bench description ---------------------------------------------------------------------


def git_sha() -> str:
    try:
        sha = subprocess.run(
            ["git", "rev-parse", "HEAD"], cwd=REPO, capture_output=True, text=True, check=True
        ).stdout.strip()
        dirty = subprocess.run(
            ["git", "status", "--porcelain", "--untracked-files=no"],
            cwd=REPO,
            capture_output=True,
            text=True,
            check=True,
        ).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return "unknown"
    return sha + ("-dirty" if dirty else "")


def profile_hashes() -> dict[str, str]:
    """SHA-256 of every profile in the library (file name -> hex digest)."""
    return {
        path.stem: hashlib.sha256(path.read_bytes()).hexdigest()
        for path in sorted((REPO / "profiles").glob("*.toml"))
    }


def load_env(path: Path) -> dict[str, Any]:
    """Read a --stim-env TOML file: the ``[bench]`` table (port, firmware, capabilities, ...)."""
    try:
        doc = tomllib.loads(path.read_text())
    except (OSError, tomllib.TOMLDecodeError) as exc:
        raise BenchError(f"--stim-env {path}: {exc}") from exc
    bench = doc.get("bench", doc)
    unknown = set(bench.get("capabilities", [])) - set(KNOWN_CAPABILITIES)
    if unknown:
        raise BenchError(
            f"--stim-env {path}: unknown capabilities {sorted(unknown)}"
            f" (known: {', '.join(KNOWN_CAPABILITIES)})"
        )
    return dict(bench)


def port_kind(port: str | None) -> str:
    if not port:
        return "sim-process"
    if port.startswith("stimsim://"):
        return "stimsim"
    return "port"


def with_sim_params(url: str, workdir: Path) -> tuple[str, Path, Path]:
    """A stimsim:// URL with trace= and control= set (kept if the URL already has them)."""
    parts = urlsplit(url)
    query = dict(parse_qsl(parts.query))
    query.setdefault("trace", str(workdir / "trace.jsonl"))
    query.setdefault("control", str(workdir / "control.sock"))
    new = f"{parts.scheme}://{parts.netloc}{parts.path}?{urlencode(query, safe='/')}"
    return new, Path(query["trace"]), Path(query["control"])


def resolve_bench(port: str | None, env_file: str | None) -> BenchConfig:
    """The bench as the options describe it (no process started yet)."""
    env: dict[str, Any] = {}
    env_path = Path(env_file) if env_file else None
    if env_path is not None:
        env = load_env(env_path)
    port = port or env.get("port")
    kind = port_kind(port)
    if "capabilities" in env:  # the bench file says exactly what the bench offers
        caps = set(env["capabilities"])
    else:
        caps = set(SIM_CAPABILITIES) if kind in ("sim-process", "stimsim") else set()
    if kind != "stimsim":
        caps.add("host_process")  # another process can open the port
    trace = env.get("trace")
    control = env.get("control")
    return BenchConfig(
        port=port or "",
        kind=kind,
        capabilities=frozenset(caps),
        firmware=env.get("firmware"),
        name=str(env.get("name", "default simulator" if kind == "sim-process" else kind)),
        env_file=env_path,
        trace_path=Path(trace) if trace else None,
        control_path=Path(control) if control else None,
        extra={k: v for k, v in env.items() if k not in {"port", "capabilities", "firmware"}},
    )


def start_sim_process(
    workdir: Path, args: list[str] | None = None
) -> tuple[subprocess.Popen[str], str, Path, Path]:
    """Start ``stimctl sim`` (firmware_sim) on a pseudo-terminal in its own process."""
    trace, control = workdir / "trace.jsonl", workdir / "control.sock"
    cmd = [sys.executable, "-m", "stimctl", "sim", "--trace", str(trace), "--control", str(control)]
    cmd += args or []
    stderr = (workdir / "sim.stderr").open("w")
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=stderr, text=True, cwd=REPO)
    stderr.close()
    assert proc.stdout is not None
    deadline = time.monotonic() + SIM_START_TIMEOUT_S
    line = ""
    os.set_blocking(proc.stdout.fileno(), True)
    while time.monotonic() < deadline and proc.poll() is None:
        line = proc.stdout.readline().strip()
        if line.startswith("PORT "):
            break
    if not line.startswith("PORT "):
        proc.kill()
        log = (workdir / "sim.stderr").read_text()[-2000:]
        raise BenchError(f"stimctl sim did not announce its port: {line!r}\n{log}")
    for _ in range(100):  # the control socket appears right after the port
        if control.exists():
            break
        time.sleep(0.02)
    return proc, line.split(" ", 1)[1], trace, control


def stop_sim_process(proc: subprocess.Popen[str]) -> int:
    if proc.poll() is None:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout=5)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
    return int(proc.returncode)


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
