"""Record verification: the plain chain, the keyed tags, a rescue file, outside anchors; exit codes.

``verify`` walks a record line by line (format: ``stimctl.host.record``) and says what it found
as one ``VerifyExit``, the code ``stimctl record verify`` exits with (the table is
``VERIFY_EXITS``, written once here). Outside anchors (the short tag on the paper chart given
with ``--expect``; the clinic database) are ``Anchor`` callables that ``verify`` calls with the
record's session id and tags once the chain is intact.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, replace
from enum import IntEnum
from pathlib import Path

from stimctl.host.record import GENESIS, line_core, line_tag, parse_line
from stimctl.host.recordkey import RecordKey, verifying_keys

__all__ = [
    "ANCHOR_DIGITS",
    "VERIFY_EXITS",
    "Anchor",
    "AnchorResult",
    "Anchored",
    "Verification",
    "VerifyExit",
    "expect_anchor",
    "short_anchor",
    "verify",
]

#: The short form of an anchor: the first 12 hex digits of the record's final tag (48 bits).
ANCHOR_DIGITS = 12


class VerifyExit(IntEnum):
    """What ``verify`` found; the value is the exit code of ``stimctl record verify``."""

    INTACT = 0
    BAD = 1
    USAGE = 2
    OPEN = 3
    NO_KEY = 4


VERIFY_EXITS: Mapping[VerifyExit, str] = {
    VerifyExit.INTACT: "intact, closed, tags verified (or `--plain` for a record without tags)"
    " and every anchor agrees",
    VerifyExit.BAD: "damaged, forged, empty, not a record, a possible downgrade (tags"
    " stripped), or an anchor (`--expect`, the database) disagrees",
    VerifyExit.USAGE: "usage: no such file, a bad option or key file",
    VerifyExit.OPEN: "intact but OPEN: no end line (the host died, or the file was cut);"
    " names the last good line and what is missing",
    VerifyExit.NO_KEY: "chain intact but the tags are not checkable: the record's key is not"
    " available (plain chain only)",
}


@dataclass(frozen=True, slots=True)
class Anchored:
    """What an outside anchor is checked against: the record's session id and its tags
    (each line's tag, or its hash in a record without tags), line 1 first."""

    session_id: str | None
    tags: tuple[str, ...]

    @property
    def final(self) -> str:
        return self.tags[-1]


AnchorResult = tuple[bool, str]
"""(agrees, one line saying what was compared)."""
Anchor = Callable[[Anchored], AnchorResult]
"""An outside anchor: the ``--expect`` tag, the clinic database's stored anchor."""


def short_anchor(tag: str) -> str:
    """The anchor as it goes on the paper chart."""
    return tag[:ANCHOR_DIGITS]


def expect_anchor(expected: str) -> Anchor:
    """The anchor from ``--expect TAG`` (at least 12 hex digits; ValueError otherwise). It
    agrees with the record's final tag; a match with an earlier line is said and agrees for the
    lines up to it (a terminal UI session that was followed by more in the same record)."""
    tag = expected.strip().lower()
    if len(tag) < ANCHOR_DIGITS or len(tag) > 64 or any(c not in "0123456789abcdef" for c in tag):
        raise ValueError(f"--expect wants {ANCHOR_DIGITS} to 64 hex digits, got {expected!r}")

    def check(record: Anchored) -> AnchorResult:
        if record.final.startswith(tag):
            return True, f"anchor {tag} agrees with the final tag"
        for n, line_tag_ in enumerate(record.tags, start=1):
            if line_tag_.startswith(tag):
                return True, (
                    f"anchor {tag} is the tag of line {n} of {len(record.tags)}: it pins lines"
                    f" 1-{n}, not the {len(record.tags) - n} after it"
                )
        return False, (
            f"anchor {tag} disagrees: the record's final tag is {short_anchor(record.final)}"
            " (another record, or this one rewritten)"
        )

    return check


@dataclass(frozen=True, slots=True)
class Verification:
    """Result of ``verify``: the exit code, one line saying why, and what was learnt."""

    exit: VerifyExit
    reason: str
    lines: int  # lines in the record file (a torn last line counts)
    first_bad: int | None = None  # 1-based; the first line that fails (or is torn)
    closed: bool = False
    last_good: int = 0  # the last line that verifies
    key_id: str | None = None  # the key the record names
    tags: str = "none"  # "verified", "unchecked" (no key) or "none" (record without tags)
    session_id: str | None = None
    anchor: str | None = None  # the final tag (hash without tags), full length
    rescued: int = 0  # lines taken from the rescue file
    notes: tuple[str, ...] = ()  # what each outside anchor said

    @property
    def ok(self) -> bool:
        return self.exit is VerifyExit.INTACT


def _split(raw: bytes) -> tuple[list[bytes], bytes | None]:
    """Whole lines, and the torn fragment after the last newline (None if there is none)."""
    lines = raw.split(b"\n")
    torn = lines.pop() or None
    return lines, torn


class _Walk:
    """The chain as read so far; ``step`` checks the next line."""

    def __init__(self, keys: Sequence[RecordKey]) -> None:
        self.keys = keys
        self.n = 0
        self.prev = GENESIS
        self.tag = GENESIS
        self.tagged = False
        self.key: RecordKey | None = None
        self.key_id: str | None = None
        self.session_id: str | None = None
        self.closed = False
        self.last_kind = ""
        self.kinds: set[str] = set()
        self.tags: list[str] = []

    def step(self, line: bytes) -> str | None:
        """Why the next line does not continue the chain (None: it does)."""
        n = self.n + 1
        entry = parse_line(line)
        if entry is None:
            return "not a record line (invalid JSON or fields)"
        if entry["n"] != n:
            return f'"n" is {entry["n"]}, expected {n} (a line was removed or inserted)'
        core = line_core(line)
        if hashlib.sha256(core).hexdigest() != entry["hash"]:
            return "altered: its content does not match its own hash"
        if entry["prev"] != self.prev:
            what = "the chain start" if n == 1 else f"the hash of line {n - 1}"
            return f'"prev" does not match {what} (a line was replaced or re-hashed)'
        if self.closed:
            return 'line after the "end" line'
        if n == 1:
            self._opening(entry)
        elif ("tag" in entry) != self.tagged:
            return (
                "has no tag while line 1 has one (tags stripped?)"
                if self.tagged
                else "has a tag while line 1 has none"
            )
        if self.tagged:
            if self.key is not None and line_tag(self.key.secret, self.tag, core) != entry["tag"]:
                return (
                    f"forged: its tag does not verify under key {self.key.id} (written or"
                    " re-chained without the key)"
                )
            self.tag = entry["tag"]
        self.prev, self.n = entry["hash"], n
        self.closed = entry["kind"] == "end"
        self.last_kind = entry["kind"]
        self.kinds.add(entry["kind"])
        self.tags.append(entry["tag"] if self.tagged else entry["hash"])
        return None

    def _opening(self, entry: dict[str, object]) -> None:
        data = entry["data"]
        assert isinstance(data, dict)
        if entry["kind"] == "session":
            self.key_id = str(data["key_id"]) if data.get("key_id") else None
            self.session_id = str(data["session_id"]) if data.get("session_id") else None
        self.tagged = "tag" in entry
        if self.tagged:
            self.key = next(
                (k for k in self.keys if self.key_id is None or k.id == self.key_id), None
            )


def verify(
    path: str | Path,
    *,
    keys: Sequence[RecordKey] | None = None,
    plain: bool = False,
    rescue: str | Path | None = None,
    anchors: Sequence[Anchor] = (),
) -> Verification:
    """Check ``path`` (and the ``rescue`` file that continues it, if given): the chain, the tags
    under ``keys`` (None: the user's keys, ``recordkey.verifying_keys``), the anchors.
    ``plain``: a record without tags (written before keyed chains) may pass. OSError if a file
    cannot be read."""
    if keys is None:
        keys = verifying_keys(None)
    lines, torn = _split(Path(path).read_bytes())
    count = len(lines) + (torn is not None)
    walk = _Walk(keys)

    def bad(n: int, why: str, where: str = "line") -> Verification:
        return Verification(
            VerifyExit.BAD, f"{where} {n}: {why}", count, n, False, walk.n, walk.key_id,
            session_id=walk.session_id,
        )  # fmt: skip

    if not lines and torn is None and rescue is None:
        return Verification(VerifyExit.BAD, "empty file: not a record (0 bytes)", 0, 1)
    for n, line in enumerate(lines, start=1):
        if (why := walk.step(line)) is not None:
            return bad(n, why)
    rescued = 0
    if rescue is not None:
        extra, extra_torn = _split(Path(rescue).read_bytes())
        if extra_torn is not None:
            return bad(len(extra) + 1, "torn (no newline at its end)", "rescue line")
        for i, line in enumerate(extra, start=1):
            entry = parse_line(line)
            if entry is None:
                return bad(i, "not a record line (invalid JSON or fields)", "rescue line")
            if entry["n"] <= len(lines):  # also in the record (its fsync failed): the same bytes
                if line != lines[entry["n"] - 1]:
                    return bad(entry["n"], "differs from the rescue file's copy of it")
                continue
            if torn is not None and entry["n"] == len(lines) + 1 and not line.startswith(torn):
                return bad(entry["n"], "torn, and not the start of the rescue file's copy")
            if (why := walk.step(line)) is not None:
                return bad(i, f"(line {entry['n']}) {why}", "rescue line")
            rescued += 1
        torn = None if rescued else torn
    if walk.n == 0:
        return bad(1, "torn: not even one whole line (not a record)")
    return _verdict(walk, count, torn, rescued, keys, plain, anchors)


def _verdict(
    walk: _Walk,
    count: int,
    torn: bytes | None,
    rescued: int,
    keys: Sequence[RecordKey],
    plain: bool,
    anchors: Sequence[Anchor],
) -> Verification:
    """The exit code for a chain that is intact as far as it goes, and the line saying why."""
    found = f"{walk.n} lines" + (f" ({rescued} from the rescue file)" if rescued else "")
    result = Verification(
        VerifyExit.INTACT, "", count, None, walk.closed, walk.n, walk.key_id,
        session_id=walk.session_id, anchor=walk.tags[-1], rescued=rescued,
    )  # fmt: skip
    if walk.tagged and walk.key is not None:
        tags, how = "verified", f"keyed chain verified (key {walk.key.id})"
    elif walk.tagged:
        tags, how = "unchecked", f"plain chain only: key {walk.key_id or '?'} not available"
    elif plain:
        tags, how = "none", "plain chain verified (no tags; accepted with --plain)"
    elif keys:
        reason = (
            "no tags: a possible downgrade (tags stripped and the chain re-hashed); a record"
            " written before keyed chains verifies with --plain"
        )
        return replace(result, exit=VerifyExit.BAD, reason=reason, first_bad=1)
    else:
        tags, how = "none", "plain chain only: no tags, and no key here to check for a downgrade"
    result = replace(result, tags=tags)
    notes: list[str] = []
    for anchor in anchors:
        agrees, text = anchor(Anchored(walk.session_id, tuple(walk.tags)))
        notes.append(text)
        if not agrees:
            return replace(result, exit=VerifyExit.BAD, reason=f"{how}, {found}; but {text}",
                           notes=tuple(notes))  # fmt: skip
    result = replace(result, notes=tuple(notes))
    if not walk.closed:
        missing = "the end line" if "summary" in walk.kinds else "the summary and end lines"
        cut = f"; line {walk.n + 1} is torn (writing stopped mid-line)" if torn else ""
        reason = (
            f"{how}, but OPEN: last good line {walk.n} ({walk.last_kind}); missing: {missing}"
            f" (the host died, the disk failed, or the file was cut){cut}"
        )
        first_bad = walk.n + 1 if torn else None
        return replace(result, exit=VerifyExit.OPEN, reason=reason, first_bad=first_bad)
    checked = tags == "verified" or (tags == "none" and plain)
    return replace(
        result,
        exit=VerifyExit.INTACT if checked else VerifyExit.NO_KEY,
        reason=f"{how}, {found}, closed; anchor {short_anchor(walk.tags[-1])}",
    )
