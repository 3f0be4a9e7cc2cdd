"""Append-only, hash-chained session record (JSON lines), its verification and summary.

Each line is one JSON object, keys in this order, compact separators, ASCII only::

    {"n":1,"t":"2025-01-01T12:00:00.000000Z","mono_ns":123,"kind":"session","data":{...},
     "prev":"000...","hash":"3f2..."}                                   (one line in the file)

``n`` counts lines from 1; ``hash`` is the sha256 (hex) of the line's exact bytes up to ``prev``
(the line without ``,"hash":"..."``); ``prev`` is the previous line's ``hash`` (64 zeros on line
1). So any edited line fails its own hash, and a re-hashed one breaks the next line's ``prev``.
``data`` keys are sorted. Every line goes to the kernel in one write; durable lines are fsync'ed
before ``append`` returns, so a killed host leaves a valid chain.

Kinds the controller writes, and the ``data`` fields ``summarise`` reads (all optional):
  session   operator, versions, patient          device  firmware, serial, limits, limits_hash
  profile   profile (the profile as JSON, with name), sha256
  refused   profile, sha256 (or path), violations: the profile the controller refused
  command   name, seq, result, reason            state   from, to
  fault     code, channel, message, ...          telemetry  channels: [{id, pulses, charge_uc}]
  summary   channels: [{id, pulses, charge_uc}], delivered_s     end  outcome, exit_code
(``pulses``/``charge_uc`` may also be given as {channel id: value} mappings.)
"""

from __future__ import annotations

import hashlib
import json
import math
import os
import threading
import time
from collections.abc import Mapping
from dataclasses import asdict, dataclass, is_dataclass
from datetime import UTC, datetime
from enum import Enum
from pathlib import Path
from types import TracebackType
from typing import Any

__all__ = [
    "GENESIS",
    "TELEMETRY_INTERVAL_NS",
    "ChannelTotals",
    "SessionRecord",
    "Summary",
    "Verification",
    "summarise",
    "verify",
]

GENESIS = "0" * 64
TELEMETRY_INTERVAL_NS = 1_000_000_000
_KEYS = ("n", "t", "mono_ns", "kind", "data", "prev", "hash")
_HASH_SUFFIX_LEN = len(',"hash":"') + 64 + len('"}')


def _plain(value: Any) -> Any:
    """JSON fallback: numpy scalars/arrays, dataclasses, pydantic models, enums, paths, bytes."""
    if hasattr(value, "model_dump"):
        return value.model_dump(mode="json", by_alias=True)
    if is_dataclass(value) and not isinstance(value, type):
        return asdict(value)
    if isinstance(value, Enum):
        return value.name
    if hasattr(value, "tolist"):
        return value.tolist()
    if isinstance(value, bytes | bytearray):
        return value.hex()
    if isinstance(value, Path | set | frozenset):
        return str(value) if isinstance(value, Path) else sorted(value)
    raise TypeError(f"cannot record a {type(value).__name__}")


def _finite(value: Any) -> Any:
    """Replace non-finite floats (not valid JSON) by None, recursively."""
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, Mapping):
        return {k: _finite(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_finite(v) for v in value]
    return value


def _dumps(value: Any) -> str:
    """Canonical JSON text: sorted keys, compact, ASCII, strict (NaN/inf become null)."""
    options: dict[str, Any] = {
        "sort_keys": True,
        "separators": (",", ":"),
        "default": _plain,
        "allow_nan": False,
    }
    try:
        return json.dumps(value, **options)
    except ValueError:
        return json.dumps(
            _finite(json.loads(json.dumps(value, **{**options, "allow_nan": True}))), **options
        )


def _utc_now() -> str:
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def new_record_path(label: str, folder: str | Path = "records") -> Path:
    """A new record file ``<folder>/<UTC timestamp>-<label>.jsonl`` (folder created; -2, -3...
    appended when the name is taken: a record is never overwritten)."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ")
    path = folder / f"{stamp}-{label}.jsonl"
    n = 2
    while path.exists():
        path = folder / f"{stamp}-{label}-{n}.jsonl"
        n += 1
    return path


class SessionRecord:
    """A new record file; lines are appended and chained until ``close`` writes "end"."""

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        try:
            self._fd = os.open(self.path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_APPEND, 0o644)
        except FileExistsError:
            raise FileExistsError(
                f"session record {self.path} already exists; records are never overwritten"
            ) from None
        _fsync_dir(self.path.parent)
        self._lock = threading.Lock()
        self._prev = GENESIS
        self._n = 0
        self._next_telemetry_ns: int | None = None
        self._closed = False

    @property
    def lines_written(self) -> int:
        """Lines written so far."""
        return self._n

    @property
    def closed(self) -> bool:
        """True once ``close`` has run."""
        return self._closed

    def append(self, kind: str, data: Mapping[str, Any], *, durable: bool = True) -> None:
        """Write one line; durable: fsync before returning (otherwise in the kernel only)."""
        self._write(kind, data, durable, time.monotonic_ns())

    def telemetry(self, sample: Mapping[str, Any], *, now_ns: int | None = None) -> bool:
        """Write a telemetry line (not durable) at most once per second; True when written."""
        now = time.monotonic_ns() if now_ns is None else now_ns
        with self._lock:
            due = self._next_telemetry_ns
            if due is not None and now < due:
                return False
            self._next_telemetry_ns = now + TELEMETRY_INTERVAL_NS
        self._write("telemetry", sample, False, now)
        return True

    def close(self, outcome: Mapping[str, Any] | None = None) -> None:
        """Write the final durable "end" line and close the file; later calls do nothing."""
        with self._lock:
            if self._closed:
                return
            try:
                self._write_locked("end", outcome or {}, True, time.monotonic_ns())
            finally:
                self._closed = True
                os.close(self._fd)

    def __enter__(self) -> SessionRecord:
        return self

    def __exit__(
        self,
        kind: type[BaseException] | None,
        error: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        if error is None:
            self.close()
        else:
            self.close({"outcome": "error", "error": f"{type(error).__name__}: {error}"})

    def _write(self, kind: str, data: Mapping[str, Any], durable: bool, mono_ns: int) -> None:
        with self._lock:
            if self._closed:
                raise ValueError(f"session record {self.path} is closed")
            self._write_locked(kind, data, durable, mono_ns)

    def _write_locked(
        self, kind: str, data: Mapping[str, Any], durable: bool, mono_ns: int
    ) -> None:
        if not isinstance(kind, str) or not kind:
            raise ValueError("kind must be a non-empty string")
        body = _dumps(dict(data))
        n = self._n + 1
        core = (
            f'{{"n":{n},"t":{json.dumps(_utc_now())},"mono_ns":{int(mono_ns)},'
            f'"kind":{json.dumps(kind)},"data":{body},"prev":"{self._prev}"}}'
        ).encode("ascii")
        digest = hashlib.sha256(core).hexdigest()  # the line's own hash, over all before it
        buffer = memoryview(core[:-1] + f',"hash":"{digest}"}}\n'.encode("ascii"))
        while buffer:
            buffer = buffer[os.write(self._fd, buffer) :]
        if durable:
            os.fsync(self._fd)
        self._prev = digest
        self._n = n


def _fsync_dir(directory: Path) -> None:
    """Make a new directory entry durable (best effort: not every platform allows it)."""
    try:
        fd = os.open(directory, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


# --- reading ----------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Verification:
    """Result of ``verify``: ok, lines in the file, first bad line (1-based) and why."""

    ok: bool
    lines: int
    first_bad: int | None
    reason: str
    closed: bool


def _parse(raw: bytes) -> dict[str, Any] | None:
    """One line as a record entry, or None when it is not one."""
    try:
        entry = json.loads(raw.decode("utf-8"))
    except (UnicodeDecodeError, ValueError, RecursionError):
        return None
    if not isinstance(entry, dict) or tuple(entry) != _KEYS:
        return None
    types = (int, str, int, str, dict, str, str)
    if any(
        isinstance(entry[k], bool) or not isinstance(entry[k], t)
        for k, t in zip(_KEYS, types, strict=True)
    ):
        return None
    return entry


def verify(path: str | Path) -> Verification:
    """Check the chain line by line; OSError if the file cannot be read."""
    raw = Path(path).read_bytes()
    lines = raw.split(b"\n")
    complete = raw.endswith(b"\n") or not raw
    if complete:
        lines.pop()
    count = len(lines)
    prev = GENESIS
    closed = False

    def bad(n: int, reason: str) -> Verification:
        return Verification(False, count, n, f"line {n}: {reason}", closed)

    for n, line in enumerate(lines, start=1):
        if n == count and not complete:
            return bad(
                n,
                "truncated: no newline at the end of the file (writing stopped"
                f" mid-line; the {n - 1} lines before it verify)",
            )
        entry = _parse(line)
        if entry is None:
            return bad(n, "not a record line (invalid JSON or fields)")
        if entry["n"] != n:
            return bad(n, f'"n" is {entry["n"]}, expected {n} (a line was removed or inserted)')
        core = line[:-_HASH_SUFFIX_LEN] + b"}"
        if hashlib.sha256(core).hexdigest() != entry["hash"]:
            return bad(n, "altered: its content does not match its own hash")
        if entry["prev"] != prev:
            what = "the chain start" if n == 1 else f"the hash of line {n - 1}"
            return bad(n, f'"prev" does not match {what} (a line was replaced or re-hashed)')
        if closed:
            return bad(n, 'line after the "end" line')
        closed = entry["kind"] == "end"
        prev = entry["hash"]
    state = "closed" if closed else "not closed (no end line)"
    return Verification(True, count, None, f"chain intact, {count} lines, {state}", closed)


@dataclass(frozen=True, slots=True)
class ChannelTotals:
    """Delivered pulses and charge of one channel."""

    id: int
    pulses: int | None = None
    charge_uc: float | None = None


@dataclass(frozen=True, slots=True)
class Summary:
    """What a record says about its session; fields are None when the record lacks them."""

    path: str
    lines: int
    started: str | None = None
    duration_s: float | None = None
    delivered_s: float | None = None
    operator: str | None = None
    profile_name: str | None = None
    profile_sha256: str | None = None
    firmware: str | None = None
    serial: str | None = None
    channels: tuple[ChannelTotals, ...] = ()
    faults: tuple[dict[str, Any], ...] = ()
    refused: tuple[str, ...] = ()  # errors of a profile the controller refused ("code at loc")
    naks: int = 0
    outcome: str | None = None
    exit_code: int | None = None
    closed: bool = False
    unreadable_lines: int = 0

    def as_dict(self) -> dict[str, Any]:
        """Plain JSON-ready dict."""
        return asdict(self)


def _text(value: Any) -> str | None:
    return None if value is None or isinstance(value, dict | list) else str(value)


def _pick(data: Mapping[str, Any], *names: str) -> Any:
    """First present value among ``names``, looking also one level into "info"/"device"."""
    for scope in (data, data.get("info"), data.get("device")):
        if isinstance(scope, Mapping):
            for name in names:
                if scope.get(name) is not None:
                    return scope[name]
    return None


def _channel_totals(data: Mapping[str, Any]) -> tuple[ChannelTotals, ...] | None:
    """Per-channel totals from a summary/telemetry payload (list of dicts or id mappings)."""
    found: dict[int, dict[str, Any]] = {}
    channels = data.get("channels")
    if isinstance(channels, list):
        for i, item in enumerate(channels, start=1):
            if isinstance(item, Mapping):
                cid = item.get("id", item.get("channel", i))
                found.setdefault(int(cid), {}).update(
                    {k: item[k] for k in ("pulses", "charge_uc") if item.get(k) is not None}
                )
    for key in ("pulses", "charge_uc"):
        values = data.get(key)
        pairs = (
            values.items()
            if isinstance(values, Mapping)
            else enumerate(values, start=1)
            if isinstance(values, list)
            else ()
        )
        for cid, value in pairs:
            if value is not None:
                found.setdefault(int(cid), {})[key] = value
    if not found:
        return None
    return tuple(
        ChannelTotals(
            cid,
            None if v.get("pulses") is None else int(v["pulses"]),
            None if v.get("charge_uc") is None else float(v["charge_uc"]),
        )
        for cid, v in sorted(found.items())
    )


def summarise(path: str | Path) -> Summary:
    """Summarise a record, tolerating absent kinds and unreadable lines; OSError if unreadable."""
    raw = Path(path).read_bytes()
    entries: list[dict[str, Any]] = []
    unreadable = 0
    for line in raw.splitlines():
        entry = _parse(line)
        if entry is None:
            unreadable += 1
        else:
            entries.append(entry)
    info: dict[str, Any] = {"faults": [], "naks": 0, "refused": []}
    totals_from_summary = totals_from_telemetry = None
    for entry in entries:
        kind, data = entry["kind"], entry["data"]
        if kind == "session":
            info["operator"] = _text(_pick(data, "operator"))
        elif kind == "device":
            info["firmware"] = _text(_pick(data, "firmware", "firmware_version"))
            info["serial"] = _text(_pick(data, "serial", "serial_number"))
        elif kind in ("profile", "refused"):
            if kind == "refused":
                info["refused"].extend(
                    f"{v.get('code')} at {v.get('loc')}"
                    for v in data.get("violations", [])
                    if isinstance(v, Mapping) and v.get("severity") == "error"
                )
            profile = data.get("profile")
            name = profile.get("name") if isinstance(profile, Mapping) else data.get("name")
            info["profile_name"] = _text(name)
            info["profile_sha256"] = _text(data.get("sha256"))
        elif kind == "command" and str(data.get("result", "")).lower() == "nak":
            info["naks"] += 1
        elif kind == "fault":
            info["faults"].append(dict(data))
        elif kind == "telemetry":
            totals_from_telemetry = _channel_totals(data) or totals_from_telemetry
        elif kind == "summary":
            totals_from_summary = _channel_totals(data) or totals_from_summary
            if isinstance(data.get("delivered_s"), int | float):
                info["delivered_s"] = float(data["delivered_s"])
        elif kind == "end":
            info["closed"] = True
            info["outcome"] = _text(data.get("outcome"))
            code = data.get("exit_code")
            info["exit_code"] = code if isinstance(code, int) else None
    if entries:
        info["started"] = entries[0]["t"]
        info["duration_s"] = (entries[-1]["mono_ns"] - entries[0]["mono_ns"]) / 1e9
    channels = totals_from_summary or totals_from_telemetry or ()
    return Summary(
        path=str(path),
        lines=len(entries) + unreadable,
        channels=channels,
        unreadable_lines=unreadable,
        faults=tuple(info.pop("faults")),
        refused=tuple(info.pop("refused")),
        **info,
    )
