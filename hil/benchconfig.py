"""The bench under test: BenchConfig (port, capabilities, control socket, trace) and --stim-env."""

from __future__ import annotations

import hashlib
import json
import platform
import socket
import subprocess
import time
import tomllib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from stimctl.host.simprocess import SimulatorProcess
from stimctl.protocol import DeviceInfo

REPO = Path(__file__).resolve().parents[1]
KNOWN_CAPABILITIES = ("trace", "fault_injection", "host_process", "scope")
SIM_CAPABILITIES = frozenset({"trace", "fault_injection"})


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
    process: SimulatorProcess | None = None
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
