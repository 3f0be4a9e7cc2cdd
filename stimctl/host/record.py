"""Session record (JSON lines): its line format, keyed hash chain and writer.

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

Reading a record (``parse_line``, ``summarise``) is ``stimctl.host.recordreader``; its names
are importable from here too.
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
from dataclasses import asdict, is_dataclass
from datetime import UTC, datetime
from enum import Enum
from pathlib import Path
from types import TracebackType
from typing import Any

from stimctl.host.recordkey import RecordKey
from stimctl.host.recordreader import ChannelTotals, Summary, parse_line, summarise

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


_JSON_OPTIONS: dict[str, Any] = {
    "sort_keys": True,
    "separators": (",", ":"),
    "default": _plain,
    "allow_nan": False,
}
#: What ``json.dumps(value, **_JSON_OPTIONS)`` builds on every call, built once.
_CANONICAL = json.JSONEncoder(**_JSON_OPTIONS)


def _dumps(value: Any) -> str:
    """Canonical JSON text: sorted keys, compact, ASCII, strict (NaN/inf become null)."""
    try:
        return _CANONICAL.encode(value)
    except ValueError:
        loose = json.dumps(value, **{**_JSON_OPTIONS, "allow_nan": True})
        return json.dumps(_finite(json.loads(loose)), **_JSON_OPTIONS)


def _utc_now() -> str:
    """UTC now as ``%Y-%m-%dT%H:%M:%S.%fZ`` (isoformat's microseconds, cheaper than strftime)."""
    return datetime.now(UTC).isoformat(timespec="microseconds")[:-6] + "Z"


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
            f'{{"n":{n},"t":"{_utc_now()}","mono_ns":{int(mono_ns)},'
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
    return hmac.digest(secret, prev_tag.encode("ascii") + core, "sha256").hex()


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
