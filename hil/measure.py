"""Named bench measurements: value, unit and limits, checked when recorded, kept for the record."""

from __future__ import annotations

import json
import math
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

Value = float | int | dict[str, Any]


class MeasurementOutOfLimits(AssertionError):
    """A recorded measurement fell outside its limits (the figure is stored all the same)."""


@dataclass(slots=True)
class Measurement:
    """One named figure with its unit and the limits it was checked against."""

    name: str
    value: Value
    unit: str
    low: float | None = None
    high: float | None = None
    passed: bool = True
    test: str = ""
    note: str = ""

    def checked_value(self) -> float | None:
        """The scalar compared with the limits: the value, or ``max`` / ``p99`` of a summary."""
        if isinstance(self.value, dict):
            for key in ("max", "p99", "value"):
                if isinstance(self.value.get(key), int | float):
                    return float(self.value[key])
            return None
        return float(self.value)

    def limits_text(self) -> str:
        low = "" if self.low is None else f"{self.low:g} <= "
        high = "" if self.high is None else f" <= {self.high:g}"
        return f"{low}x{high}" if low or high else "-"


@dataclass(slots=True)
class MeasurementLog:
    """Every measurement of a bench session, in the order recorded."""

    items: list[Measurement] = field(default_factory=list)
    current_test: str = ""

    def record(
        self,
        name: str,
        value: Value,
        unit: str,
        low: float | None = None,
        high: float | None = None,
        note: str = "",
    ) -> Measurement:
        """Store a measurement, then raise MeasurementOutOfLimits if it is outside its limits."""
        item = Measurement(name, value, unit, low, high, test=self.current_test, note=note)
        scalar = item.checked_value()
        if scalar is not None and (low is not None or high is not None):
            item.passed = not math.isnan(scalar) and (
                (low is None or scalar >= low) and (high is None or scalar <= high)
            )
        self.items.append(item)
        if not item.passed:
            raise MeasurementOutOfLimits(f"{name} = {scalar:g} {unit} outside {item.limits_text()}")
        return item

    def as_dicts(self) -> list[dict[str, Any]]:
        return [asdict(item) for item in self.items]


_ACTIVE = MeasurementLog()


def active_log() -> MeasurementLog:
    """The log ``record_measurement`` writes to (the plugin installs one per session)."""
    return _ACTIVE


def install_log(log: MeasurementLog) -> None:
    """Make ``log`` the target of ``record_measurement``."""
    global _ACTIVE
    _ACTIVE = log


def record_measurement(
    name: str,
    value: Value,
    unit: str,
    low: float | None = None,
    high: float | None = None,
    note: str = "",
) -> Measurement:
    """Record a named measurement in the session log; raises if it is outside ``low``/``high``."""
    return _ACTIVE.record(name, value, unit, low, high, note)


def summarize(samples: list[float]) -> dict[str, float | int]:
    """p50, p99, max and n of a sample list (nearest-rank percentiles)."""
    if not samples:
        return {"p50": math.nan, "p99": math.nan, "max": math.nan, "n": 0}
    ordered = sorted(samples)

    def rank(p: float) -> float:
        return ordered[min(len(ordered) - 1, max(0, math.ceil(p * len(ordered)) - 1))]

    return {"p50": rank(0.50), "p99": rank(0.99), "max": ordered[-1], "n": len(ordered)}


def write_record(path: Path, document: dict[str, Any]) -> None:
    """Write the JSON record (sorted keys, NaN as null)."""
    path.write_text(json.dumps(_nan_to_none(document), indent=2, sort_keys=True) + "\n")


def _nan_to_none(obj: Any) -> Any:
    if isinstance(obj, float) and math.isnan(obj):
        return None
    if isinstance(obj, dict):
        return {k: _nan_to_none(v) for k, v in obj.items()}
    if isinstance(obj, list | tuple):
        return [_nan_to_none(v) for v in obj]
    return obj


def format_value(value: Value) -> str:
    """A compact human rendering of a scalar or a summary dict."""
    if isinstance(value, dict):
        return " ".join(f"{k}={format_value(v)}" for k, v in value.items())
    if isinstance(value, float):
        return "nan" if math.isnan(value) else f"{value:.4g}"
    return str(value)


def text_table(headers: list[str], rows: list[list[str]]) -> str:
    """A plain fixed-width table (first row the headers)."""
    widths = [max(len(h), *(len(r[i]) for r in rows)) for i, h in enumerate(headers)]
    line = "  ".join(h.ljust(w) for h, w in zip(headers, widths, strict=True))
    rule = "  ".join("-" * w for w in widths)
    body = ["  ".join(c.ljust(w) for c, w in zip(r, widths, strict=True)) for r in rows]
    return "\n".join([line, rule, *body])


def measurement_table(items: list[Measurement]) -> str:
    rows = [
        [m.name, format_value(m.value), m.unit, m.limits_text(), "ok" if m.passed else "FAIL"]
        for m in items
    ]
    return text_table(["measurement", "value", "unit", "limits", "verdict"], rows)


def matrix_table(rows: list[dict[str, Any]]) -> str:
    """The fault matrix: one line per fault, one column per state (verdict and figure)."""
    states = ["IDLE", "ARMED", "RUNNING"]
    faults: list[str] = []
    for row in rows:
        if row["fault"] not in faults:
            faults.append(row["fault"])
    cells = {(r["fault"], r["state"]): r for r in rows}
    table: list[list[str]] = []
    for fault in faults:
        line = [fault]
        for state in states:
            cell = cells.get((fault, state))
            line.append("-" if cell is None else _cell_text(cell))
        table.append(line)
    return text_table(["fault \\ state", *states], table)


def _cell_text(cell: dict[str, Any]) -> str:
    verdict = "PASS" if cell.get("passed") else "FAIL"
    latched = cell.get("latched") or "-"
    latch, bound = cell.get("latch_ms"), cell.get("bound_ms")
    figure = "" if latch is None or bound is None else f" {latch:g}/{bound:g}ms"
    return f"{verdict} {latched}{figure}"
