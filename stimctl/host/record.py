"""Session record (JSON lines): its line format, keyed hash chain, writer and summary.

Each line is one JSON object, keys in this order, compact separators, ASCII only::

    {"n":1,"t":"2025-01-01T12:00:00.000000Z","mono_ns":123,"kind":"session","data":{...},
     "prev":"000...","hash":"3f2...","tag":"9ab..."}                    (one line in the file)

``n`` counts lines from 1; ``hash`` is the sha256 (hex) of the line's exact bytes up to ``prev``
(the line without ``,"hash":...``, closed with ``}``): its *core*; ``prev`` is the previous
line's ``hash`` (64 zeros on line 1). ``tag`` is HMAC-SHA256 under the site key
(``stimctl.host.recordkey``) over the previous line's tag (64 zeros on line 1, as ASCII hex)
followed by the core. The plain chain (hash, prev) shows damage to anyone; the tags show a
forgery to whoever holds the key: a record edited and re-hashed without the key keeps a
plain chain that verifies but fails its tags from the first edited line on. Records written
before keyed chains have no ``tag``. ``data`` keys are sorted. Every line goes to the kernel in
one write; durable lines are fsync'ed before ``append`` returns, so a killed host leaves a valid
chain. A line that cannot be written is never lost: the record becomes *failed* and keeps that
line and every later one in ``unwritten`` (the caller rescues them; ``stimctl.host.recorder``).

Kinds the controller writes, and the ``data`` fields ``summarise`` reads (all optional):
  session   operator, versions, patient, session_id, key_id   device  firmware, serial, limits
  profile   profile (the profile as JSON, with name), sha256
  refused   profile, sha256 (or path), violations: the profile the controller refused
  command   name, seq, result, reason            state   from, to
  fault     code, channel, message, ...          telemetry  channels: [{id, pulses, charge_uc}]
  summary   channels: [{id, pulses, charge_uc}], delivered_s     end  outcome, exit_code
(``pulses``/``charge_uc`` may also be given as {channel id: value} mappings.)
"""

from __future__ import annotations

import contextlib
import hashlib
import hmac
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

from stimctl.host.recordkey import RecordKey

__all__ = [
    "GENESIS",
    "TELEMETRY_INTERVAL_NS",
    "ChannelTotals",
    "SessionRecord",
    "Summary",
    "line_core",
    "line_tag",
    "new_record_path",
    "parse_line",
    "summarise",
]

GENESIS = "0" * 64
TELEMETRY_INTERVAL_NS = 1_000_000_000
_KEYS = ("n", "t", "mono_ns", "kind", "data", "prev", "hash")
_TAGGED_KEYS = (*_KEYS, "tag")
# The writer's system calls, by name here so that tests can inject disk errors (ENOSPC, EIO).
_open, _write, _fsync = os.open, os.write, os.fsync


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
    """A new record file; lines are appended and chained until ``close`` writes "end".

    ``key``: tag every line (HMAC-SHA256). A write or fsync that fails makes the record
    *failed* (``failure``): that line, any line not yet known to be on disk, and every later
    line go to ``unwritten`` instead of the file, in order, chained as usual."""

    def __init__(self, path: str | Path, key: RecordKey | None = None) -> None:
        self.path = Path(path)
        try:
            self._fd = _open(self.path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_APPEND, 0o644)
        except FileExistsError:
            raise FileExistsError(
                f"session record {self.path} already exists; records are never overwritten"
            ) from None
        _fsync_dir(self.path.parent)
        self.key = key
        self._lock = threading.Lock()
        self._prev = GENESIS
        self._tag = GENESIS
        self._n = 0
        self._size = 0  # bytes of whole lines in the file
        self._unsynced: list[bytes] = []  # written since the last fsync
        self._next_telemetry_ns: int | None = None
        self._closed = False
        self.failure: OSError | None = None
        self.unwritten: list[bytes] = []

    @property
    def lines_written(self) -> int:
        """Lines made so far (in the file, or in ``unwritten`` after a failure)."""
        return self._n

    @property
    def closed(self) -> bool:
        """True once ``close`` has run."""
        return self._closed

    @property
    def anchor(self) -> str | None:
        """The last line's tag (its hash in an untagged record); None before the first line."""
        if self._n == 0:
            return None
        return self._tag if self.key is not None else self._prev

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
                with contextlib.suppress(OSError):  # the end line is fsync'ed (or unwritten)
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

    def _line(self, kind: str, data: Mapping[str, Any], mono_ns: int) -> bytes:
        """The next line of the chain (the chain moves on whether or not it is written)."""
        if not isinstance(kind, str) or not kind:
            raise ValueError("kind must be a non-empty string")
        body = _dumps(dict(data))
        n = self._n + 1
        core = (
            f'{{"n":{n},"t":{json.dumps(_utc_now())},"mono_ns":{int(mono_ns)},'
            f'"kind":{json.dumps(kind)},"data":{body},"prev":"{self._prev}"}}'
        ).encode("ascii")
        digest = hashlib.sha256(core).hexdigest()  # the line's own hash, over all before it
        tail = f',"hash":"{digest}"'
        if self.key is not None:
            self._tag = line_tag(self.key.secret, self._tag, core)
            tail += f',"tag":"{self._tag}"'
        self._prev, self._n = digest, n
        return core[:-1] + f"{tail}}}\n".encode("ascii")

    def _write_locked(
        self, kind: str, data: Mapping[str, Any], durable: bool, mono_ns: int
    ) -> None:
        line = self._line(kind, data, mono_ns)
        if self.failure is not None:
            self.unwritten.append(line)
            return
        try:
            buffer = memoryview(line)
            while buffer:
                buffer = buffer[_write(self._fd, buffer) :]
        except OSError as exc:
            self._failed(exc, line, torn=True)
            return
        self._size += len(line)
        if not durable:
            self._unsynced.append(line)
            return
        try:
            _fsync(self._fd)
        except OSError as exc:  # after a failed fsync nothing since the last one is sure
            self._failed(exc, line, torn=False)
            return
        self._unsynced.clear()

    def _failed(self, error: OSError, line: bytes, *, torn: bool) -> None:
        """The record failed at ``line``: keep it and every line not known to be on disk."""
        self.failure = error
        self.unwritten = [*self._unsynced, line]
        self._unsynced = []
        if torn:  # cut the part of the line that got out, so the file ends at a whole line
            try:
                os.ftruncate(self._fd, self._size)
                _fsync(self._fd)
            except OSError:
                return
            self.unwritten = [line]


def line_tag(secret: bytes, prev_tag: str, core: bytes) -> str:
    """A line's tag: HMAC-SHA256 over the previous line's tag (ASCII hex) and the line's core."""
    return hmac.new(secret, prev_tag.encode("ascii") + core, hashlib.sha256).hexdigest()


def line_core(line: bytes) -> bytes:
    """The bytes a line's hash covers: the line up to and including ``prev``, closed."""
    return line[: line.rindex(b',"hash":"')] + b"}"


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


def parse_line(raw: bytes) -> dict[str, Any] | None:
    """One line as a record entry (with or without its tag), or None when it is not one."""
    try:
        entry = json.loads(raw.decode("utf-8"))
    except (UnicodeDecodeError, ValueError, RecursionError):
        return None
    if not isinstance(entry, dict) or tuple(entry) not in (_KEYS, _TAGGED_KEYS):
        return None
    types = (int, str, int, str, dict, str, str, str)
    if any(
        isinstance(entry[k], bool) or not isinstance(entry[k], t)
        for k, t in zip(entry, types, strict=False)
    ):
        return None
    return entry


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
    session_id: str | None = None
    key_id: str | None = None
    profile_name: str | None = None
    profile_sha256: str | None = None
    firmware: str | None = None
    serial: str | None = None
    channels: tuple[ChannelTotals, ...] = ()
    faults: tuple[dict[str, Any], ...] = ()
    refused: tuple[str, ...] = ()  # errors of a profile the controller refused ("code at loc")
    naks: int = 0
    retransmits: int | None = None  # blocks and commands written again (link recovery)
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
        entry = parse_line(line)
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
            info["session_id"] = _text(data.get("session_id"))
            info["key_id"] = _text(data.get("key_id"))
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
            if isinstance(data.get("retransmits"), int):
                info["retransmits"] = data["retransmits"]
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
