"""Reading a session record: one line as an entry, and what a record says about its session.

The line format is ``stimctl.host.record``'s; checking the chain and tags is
``stimctl.host.verification``'s. ``summarise`` tolerates what a record may lack or hold badly.
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

import json
from collections.abc import Mapping
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

__all__ = ["LINE_KEYS", "ChannelTotals", "Summary", "parse_line", "summarise"]

#: A line's keys, in this order (``tag`` last, in keyed records only).
LINE_KEYS = ("n", "t", "mono_ns", "kind", "data", "prev", "hash")
_TAGGED_KEYS = (*LINE_KEYS, "tag")


def parse_line(raw: bytes) -> dict[str, Any] | None:
    """One line as a record entry (with or without its tag), or None when it is not one."""
    try:
        entry = json.loads(raw.decode("utf-8"))
    except (UnicodeDecodeError, ValueError, RecursionError):
        return None
    if not isinstance(entry, dict) or tuple(entry) not in (LINE_KEYS, _TAGGED_KEYS):
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
    entries: list[dict[str, Any]] = []
    unreadable = 0
    for line in Path(path).read_bytes().splitlines():
        entry = parse_line(line)
        if entry is None:
            unreadable += 1
        else:
            entries.append(entry)
    info: dict[str, Any] = {"faults": [], "naks": 0, "refused": []}
    totals: dict[str, tuple[ChannelTotals, ...] | None] = {"summary": None, "telemetry": None}
    for entry in entries:
        _take(info, totals, entry["kind"], entry["data"])
    if entries:
        info["started"] = entries[0]["t"]
        info["duration_s"] = (entries[-1]["mono_ns"] - entries[0]["mono_ns"]) / 1e9
    return Summary(
        path=str(path),
        lines=len(entries) + unreadable,
        channels=totals["summary"] or totals["telemetry"] or (),
        unreadable_lines=unreadable,
        faults=tuple(info.pop("faults")),
        refused=tuple(info.pop("refused")),
        **info,
    )


def _take(
    info: dict[str, Any],
    totals: dict[str, tuple[ChannelTotals, ...] | None],
    kind: str,
    data: Mapping[str, Any],
) -> None:
    """What one line of ``kind`` adds to the summary's fields (``info``) and ``totals`` (the
    last per-channel totals of the summary line, and of the telemetry lines)."""
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
    elif kind in ("telemetry", "summary"):
        totals[kind] = _channel_totals(data) or totals[kind]
        if kind == "summary" and isinstance(data.get("delivered_s"), int | float):
            info["delivered_s"] = float(data["delivered_s"])
        if kind == "summary" and isinstance(data.get("retransmits"), int):
            info["retransmits"] = data["retransmits"]
    elif kind == "end":
        info["closed"] = True
        info["outcome"] = _text(data.get("outcome"))
        code = data.get("exit_code")
        info["exit_code"] = code if isinstance(code, int) else None
