"""Snapshots of a session: the Status and SessionSummary it shows, the record lines of its totals.

Read-only views of a ``stimctl.host.session.Session``, taken under the controller's lock: the
``Status`` of ``Controller.status()`` and of every telemetry callback, the ``SessionSummary``,
and the record's 1 Hz ``telemetry``, closing ``summary`` and ``end`` lines.
"""

from __future__ import annotations

import time
from typing import TYPE_CHECKING, Any

from stimctl.host.status import ChannelStatus, ChannelSummary, SessionSummary, Status
from stimctl.protocol import State, Telemetry

if TYPE_CHECKING:
    from stimctl.host.session import Session

__all__ = ["end_line", "status_of", "summary_line", "summary_of", "telemetry_line"]


def telemetry_line(session: Session, tel: Telemetry) -> dict[str, Any]:
    """The record's 1 Hz ``telemetry`` line."""
    return {
        "device_ms": tel.time_ms, "state": State(tel.state).name, "fifo_ms": tel.fifo_ms,
        "block_index": tel.block_index, "elapsed_s": session.elapsed_ms / 1000,
        "channels": [{"id": ch, "set_ua": c.set_ua, "measured_ua": c.measured_ua,
                      "impedance_ohm": c.impedance_ohm, "pulses": c.pulses,
                      "charge_uc": round(session.charge_uc.get(ch, 0.0), 6)}
                     for ch, c in enumerate(tel.channels, start=1)],
    }  # fmt: skip


def status_of(session: Session) -> Status:
    """The ``Status`` snapshot, with the host interlock's state and latched fault."""
    tel, s, profile, streamer = session.tel, session.schedule, session.profile, session.streamer
    link = session.ctx.connection.link
    channels = ()
    if tel is not None:
        channels = tuple(
            ChannelStatus(ch, c.set_ua / 1000, c.measured_ua / 1000, c.impedance_ohm,
                          c.pulses, session.plateau_ma.get(ch, 0.0))
            for ch, c in enumerate(tel.channels, start=1)
        )  # fmt: skip
    elapsed_s = session.elapsed_ms / 1000
    phase = s.phase_at(session.elapsed_ms) if s is not None and s.n_blocks else 0
    total_s = s.total_ms / 1000 if s is not None else 0.0
    stats = streamer.stats if streamer is not None else None
    return Status(
        state=session.ctx.interlock.state, fault=session.ctx.interlock.fault, channels=channels,
        fifo_ms=tel.fifo_ms if tel else 0,
        heartbeat_age_ms=(time.monotonic() - link.last_tx) * 1000 if link else 0.0,
        frame_errors=link.frame_errors if link else 0, naks=session.naks,
        phase_index=phase, phase_count=len(profile.phases) if profile else 0,
        phase_mode=profile.phases[phase].mode if profile else "",
        elapsed_s=elapsed_s, remaining_s=max(0.0, total_s - elapsed_s),
        late_blocks=stats.late if stats else 0, underruns=stats.underruns if stats else 0,
        device_time_ms=tel.time_ms if tel else 0,
        device_state=session.device_state.name if session.device_state else "",
        blocks_sent=streamer.next_index if streamer else 0,
        blocks_total=s.n_blocks if s is not None else 0,
        retransmits=sum(session.retransmits()),
    )  # fmt: skip


def summary_of(session: Session) -> SessionSummary:
    """What the session delivered: outcome, time, per-channel totals, faults, link counts."""
    s = session.schedule
    expected = s.expected_pulses().tolist() if s is not None else []
    ids = s.channel_ids if s is not None else ()
    stats = session.streamer.stats if session.streamer is not None else None
    path = session.ctx.journal.recorder.path
    return SessionSummary(
        outcome=session.outcome, delivered_s=session.elapsed_ms / 1000,
        channels=tuple(ChannelSummary(ch, session.pulses.get(ch, 0), int(expected[i]),
                                      round(session.charge_uc.get(ch, 0.0), 6))
                       for i, ch in enumerate(ids)),
        faults=tuple(session.faults), late_blocks=stats.late if stats else 0,
        underruns=stats.underruns if stats else 0,
        naks=session.naks,
        record_path=str(path) if path is not None else None,
        retransmits=sum(session.retransmits()),
    )  # fmt: skip


def summary_line(session: Session) -> dict[str, Any] | None:
    """The record's ``summary`` line (None before a profile was loaded)."""
    if session.schedule is None:
        return None
    blocks_resent, commands_resent = session.retransmits()
    link = session.ctx.connection.link
    return {
        **summary_of(session).to_dict(),
        "blocks_total": session.schedule.n_blocks,
        "blocks_sent": session.streamer.next_index if session.streamer else 0,
        "link": {
            "blocks_resent": blocks_resent, "commands_resent": commands_resent,
            "estop_repeats": session.estop_repeats,
            "frame_errors": link.frame_errors if link is not None else 0,
            "sessions_reopened": link.sessions_reopened if link is not None else 0,
            "hello_probes": link.probes if link is not None else 0,
            "tx_gap_max_ms": round(link.tx_gap_max_s * 1000, 1) if link is not None else 0.0,
            "priority": link.priority if link is not None else "",
        },
    }  # fmt: skip


def end_line(session: Session, exit_code: int | None) -> dict[str, Any]:
    """The record's ``end`` line: the outcome and the exit code (the outcome's by default)."""
    outcome = session.outcome
    code = exit_code if exit_code is not None else (outcome.exit_code if outcome else 0)
    return {"outcome": outcome.value if outcome else "not started", "exit_code": code}
