"""Specification of the hash-chained session record, its verification, summary and CLI."""

from __future__ import annotations

import argparse
import hashlib
import itertools
import json
import math
import os
import signal
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest

from stimctl.cli import record as record_cli
from stimctl.host.record import GENESIS, SessionRecord, line_core, line_tag, summarise
from stimctl.host.recordkey import RecordKey
from stimctl.host.verification import VerifyExit
from stimctl.host.verification import verify as verify_with

KEY = RecordKey(bytes(range(32)), Path("test.key"))


def verify(path: Path, **options: object):  # the record's key is at hand unless said otherwise
    return verify_with(path, **{"keys": [KEY], **options})  # type: ignore[arg-type]


def key_file(folder: Path) -> Path:
    path = folder / "site.key"
    path.write_text(KEY.secret.hex() + "\n")
    path.chmod(0o600)
    return path


def write_session(path: Path, *, close: bool = True) -> Path:
    with SessionRecord(path, KEY) as rec:
        rec.append("session", {"operator": "dr. a", "versions": {"stimctl": "0.1.0"}})
        rec.append("device", {"firmware": "1.2.3", "serial": "SN42", "limits_hash": "ab"})
        rec.append("profile", {"profile": {"name": "seed 2 Hz"}, "sha256": "f" * 64})
        rec.append("command", {"name": "START", "seq": 7, "result": "ack"})
        rec.append(
            "summary",
            {"channels": [{"id": 1, "pulses": 3600, "charge_uc": 360.0}], "delivered_s": 1800.0},
        )
        if not close:
            return path
        rec.close({"outcome": "completed", "exit_code": 0})
    return path


def lines_of(path: Path) -> list[bytes]:
    return path.read_bytes().split(b"\n")[:-1]


def rewrite(path: Path, lines: list[bytes]) -> None:
    path.write_bytes(b"".join(line + b"\n" for line in lines))


# --- writing -----------------------------------------------------------------------------------


def test_a_closed_record_verifies_with_its_line_count(tmp_path):
    result = verify(write_session(tmp_path / "s.jsonl"))
    assert (result.ok, result.lines, result.first_bad, result.closed) == (True, 6, None, True)


def test_each_line_carries_its_own_hash_and_chains_to_the_previous_one(tmp_path):
    lines = lines_of(write_session(tmp_path / "s.jsonl"))
    entries = [json.loads(line) for line in lines]
    assert entries[0]["prev"] == GENESIS
    for line, entry in zip(lines, entries, strict=True):
        assert entry["hash"] == hashlib.sha256(line_core(line)).hexdigest()
    for before, entry in itertools.pairwise(entries):
        assert entry["prev"] == before["hash"]
    assert [e["n"] for e in entries] == list(range(1, 7))


def test_lines_have_a_stable_key_order_and_compact_separators(tmp_path):
    path = tmp_path / "s.jsonl"
    with SessionRecord(path) as rec:
        rec.append("state", {"to": "ARMED", "from": "IDLE"})
    first = lines_of(path)[0].decode()
    assert list(json.loads(first)) == ["n", "t", "mono_ns", "kind", "data", "prev", "hash"]
    with SessionRecord(tmp_path / "keyed.jsonl", KEY) as rec:
        rec.append("state", {"to": "ARMED"})
    keyed = json.loads(lines_of(tmp_path / "keyed.jsonl")[0])
    assert list(keyed) == ["n", "t", "mono_ns", "kind", "data", "prev", "hash", "tag"]
    assert '"data":{"from":"IDLE","to":"ARMED"}' in first
    assert ", " not in first and '": ' not in first
    assert json.loads(first)["t"].endswith("Z")


def test_the_last_line_is_a_durable_end_line_with_the_outcome(tmp_path):
    last = json.loads(lines_of(write_session(tmp_path / "s.jsonl"))[-1])
    assert last["kind"] == "end"
    assert last["data"] == {"exit_code": 0, "outcome": "completed"}


def test_an_existing_file_is_never_overwritten(tmp_path):
    path = tmp_path / "s.jsonl"
    path.write_text("precious\n")
    with pytest.raises(FileExistsError, match="never overwritten"):
        SessionRecord(path)
    assert path.read_text() == "precious\n"


def test_close_is_idempotent_and_appending_afterwards_is_an_error(tmp_path):
    rec = SessionRecord(tmp_path / "s.jsonl")
    rec.close({"outcome": "completed"})
    rec.close({"outcome": "again"})
    assert rec.lines_written == 1
    with pytest.raises(ValueError, match="closed"):
        rec.append("state", {})


def test_leaving_the_context_on_an_exception_records_the_error_as_outcome(tmp_path):
    path = tmp_path / "s.jsonl"
    with pytest.raises(RuntimeError), SessionRecord(path):
        raise RuntimeError("link lost")
    assert json.loads(lines_of(path)[-1])["data"] == {
        "error": "RuntimeError: link lost",
        "outcome": "error",
    }


def test_numpy_values_are_recorded_as_plain_json_and_non_finite_floats_as_null(tmp_path):
    path = tmp_path / "s.jsonl"
    with SessionRecord(path) as rec:
        rec.append("telemetry", {"pulses": np.arange(3), "z": np.float64(1.5), "bad": math.nan})
    assert json.loads(lines_of(path)[0])["data"] == {"bad": None, "pulses": [0, 1, 2], "z": 1.5}


def test_durable_lines_are_fsynced_and_telemetry_is_not(tmp_path, monkeypatch):
    synced: list[int] = []
    rec = SessionRecord(tmp_path / "s.jsonl")
    monkeypatch.setattr("stimctl.host.record._fsync", synced.append)
    rec.append("state", {"to": "RUNNING"})
    rec.append("command", {"name": "HEARTBEAT"}, durable=False)
    rec.telemetry({"fifo_ms": 100})
    assert len(synced) == 1


def test_telemetry_is_decimated_to_at_most_one_line_per_second(tmp_path):
    rec = SessionRecord(tmp_path / "s.jsonl")
    times_ms = range(0, 3000, 20)  # 50 Hz for 3 s
    written = [t for t in times_ms if rec.telemetry({"t": t}, now_ns=t * 1_000_000)]
    assert written == [0, 1000, 2000]
    assert rec.lines_written == 3


# --- verification ------------------------------------------------------------------------------


def test_a_modified_line_is_named_exactly(tmp_path):
    path = write_session(tmp_path / "s.jsonl")
    lines = lines_of(path)
    lines[1] = lines[1].replace(b"SN42", b"SN43")
    rewrite(path, lines)
    result = verify(path)
    assert (result.ok, result.first_bad) == (False, 2)
    assert "altered" in result.reason


def test_a_modified_last_line_is_detected(tmp_path):
    path = write_session(tmp_path / "s.jsonl")
    lines = lines_of(path)
    lines[-1] = lines[-1].replace(b'"exit_code":0', b'"exit_code":3')
    rewrite(path, lines)
    assert (verify(path).ok, verify(path).first_bad) == (False, 6)


def test_a_modified_and_re_hashed_line_breaks_the_next_lines_link(tmp_path):
    path = write_session(tmp_path / "s.jsonl")
    lines = lines_of(path)
    edited = lines[1].replace(b"SN42", b"SN43")
    core = line_core(edited)
    tag = json.loads(edited)["tag"].encode()
    lines[1] = core[:-1] + b',"hash":"' + hashlib.sha256(core).hexdigest().encode()
    lines[1] += b'","tag":"' + tag + b'"}'
    rewrite(path, lines)
    result = verify(path, keys=[])  # the plain chain alone shows it
    assert (result.ok, result.first_bad) == (False, 3)
    assert '"prev" does not match' in result.reason


def test_a_line_that_is_no_longer_json_is_the_first_bad_line(tmp_path):
    path = write_session(tmp_path / "s.jsonl")
    lines = lines_of(path)
    lines[1] = lines[1][:-1]
    rewrite(path, lines)
    assert verify(path).first_bad == 2


def test_a_torn_tail_is_an_open_record_naming_the_torn_line(tmp_path):
    path = write_session(tmp_path / "s.jsonl")
    path.write_bytes(path.read_bytes()[:-10])
    result = verify(path)
    assert result.exit is VerifyExit.OPEN
    assert (result.first_bad, result.lines, result.last_good) == (6, 6, 5)
    assert "line 6 is torn" in result.reason


def test_a_deleted_middle_line_is_detected_where_it_was(tmp_path):
    path = write_session(tmp_path / "s.jsonl")
    lines = lines_of(path)
    del lines[2]
    rewrite(path, lines)
    result = verify(path)
    assert (result.ok, result.first_bad) == (False, 3)
    assert '"n" is 4' in result.reason


def test_a_record_without_an_end_line_is_intact_but_not_closed(tmp_path):
    path = tmp_path / "s.jsonl"
    rec = SessionRecord(path, KEY)
    rec.append("session", {"operator": "x"})
    result = verify(path)
    assert (result.exit, result.lines, result.closed) == (VerifyExit.OPEN, 1, False)
    assert "last good line 1 (session)" in result.reason


def test_lines_after_the_end_line_are_rejected(tmp_path):
    path = write_session(tmp_path / "s.jsonl")
    end = json.loads(lines_of(path)[-1])
    extra = {k: v for k, v in end.items() if k != "hash"}
    extra.pop("tag")
    extra.update(n=7, kind="state", prev=end["hash"])
    core = json.dumps(extra, separators=(",", ":")).encode()
    extra["hash"] = hashlib.sha256(core).hexdigest()
    extra["tag"] = line_tag(KEY.secret, end["tag"], core)  # even with the key
    with path.open("ab") as f:
        f.write(json.dumps(extra, separators=(",", ":")).encode() + b"\n")
    assert verify(path).first_bad == 7


CHILD = textwrap.dedent("""
    import os, signal, sys
    from stimctl.host.record import SessionRecord
    path, count, self_kill = sys.argv[1], int(sys.argv[2]), sys.argv[3] == "1"
    rec = SessionRecord(path)
    n = 0
    while self_kill is False or n < count:
        n += 1
        rec.append("telemetry", {"i": n, "pad": "x" * (n % 300)})
        print(n, flush=True)
    os.kill(os.getpid(), signal.SIGKILL)
""")


def test_a_host_killed_after_durable_appends_leaves_a_valid_unclosed_record(tmp_path):
    path = tmp_path / "s.jsonl"
    child = subprocess.run(
        [sys.executable, "-c", CHILD, str(path), "25", "1"], capture_output=True, timeout=60
    )
    assert child.returncode == -signal.SIGKILL
    result = verify(path, plain=True)
    assert (result.exit, result.lines, result.last_good) == (VerifyExit.OPEN, 25, 25)


def test_a_host_killed_while_appending_keeps_every_reported_durable_line(tmp_path):
    path = tmp_path / "s.jsonl"
    child = subprocess.Popen(
        [sys.executable, "-c", CHILD, str(path), "0", "0"], stdout=subprocess.PIPE, text=True
    )
    try:
        assert child.stdout is not None
        for _ in range(40):
            reported = int(child.stdout.readline())
    finally:
        os.kill(child.pid, signal.SIGKILL)
        child.wait(timeout=30)
        child.stdout.close()
    result = verify(path, plain=True)
    assert result.exit is VerifyExit.OPEN and result.last_good >= reported == 40
    # The kill may land inside the write of the next line (write() is not atomic across
    # pages): then only that unreported tail line is torn, and verify says so.
    if result.first_bad is not None:
        assert result.first_bad == result.lines > reported
        assert "torn" in result.reason


# --- summary -----------------------------------------------------------------------------------


def test_summary_reports_profile_operator_device_delivery_and_outcome(tmp_path):
    summary = summarise(write_session(tmp_path / "s.jsonl"))
    assert (summary.operator, summary.firmware, summary.serial) == ("dr. a", "1.2.3", "SN42")
    assert (summary.profile_name, summary.profile_sha256) == ("seed 2 Hz", "f" * 64)
    assert [(c.id, c.pulses, c.charge_uc) for c in summary.channels] == [(1, 3600, 360.0)]
    assert (summary.delivered_s, summary.outcome, summary.exit_code) == (1800.0, "completed", 0)
    assert summary.closed and summary.duration_s is not None and summary.duration_s >= 0


def test_summary_falls_back_to_the_last_telemetry_for_delivery_totals(tmp_path):
    path = tmp_path / "s.jsonl"
    with SessionRecord(path) as rec:
        rec.telemetry({"pulses": {"1": 10, "2": 11}}, now_ns=0)
        rec.telemetry({"pulses": {"1": 20, "2": 21}, "charge_uc": {"1": 2.0}}, now_ns=2 * 10**9)
    summary = summarise(path)
    assert [(c.id, c.pulses, c.charge_uc) for c in summary.channels] == [
        (1, 20, 2.0),
        (2, 21, None),
    ]


def test_summary_lists_faults_and_counts_naks(tmp_path):
    path = tmp_path / "s.jsonl"
    with SessionRecord(path) as rec:
        rec.append("command", {"name": "ARM", "result": "nak", "reason": "IMPEDANCE_FAILED"})
        rec.append("fault", {"code": "ELECTRODE_OPEN", "channel": 2})
    summary = summarise(path)
    assert summary.faults == ({"channel": 2, "code": "ELECTRODE_OPEN"},)
    assert summary.naks == 1


def test_summary_of_a_record_with_only_an_end_line_has_empty_fields(tmp_path):
    path = tmp_path / "s.jsonl"
    SessionRecord(path).close()
    summary = summarise(path)
    assert summary.closed and summary.channels == () and summary.operator is None
    assert summary.outcome is None and summary.faults == ()


# --- CLI ---------------------------------------------------------------------------------------


def cli(*argv: str) -> int:
    parser = argparse.ArgumentParser(prog="stimctl")
    record_cli.register(parser.add_subparsers(dest="command"))
    args = parser.parse_args(["record", *argv])
    return args.func(args)


def test_cli_verify_exits_0_for_an_intact_chain(tmp_path, capsys):
    path = write_session(tmp_path / "s.jsonl")
    assert cli("verify", str(path), "--key", str(key_file(tmp_path))) == 0
    assert f"keyed chain verified (key {KEY.id}), 6 lines, closed" in capsys.readouterr().out


def test_cli_verify_exits_1_naming_the_first_bad_line(tmp_path, capsys):
    path = write_session(tmp_path / "s.jsonl")
    lines = lines_of(path)
    lines[3] = lines[3].replace(b"START", b"STOP!")
    rewrite(path, lines)
    assert cli("verify", str(path), "--key", str(key_file(tmp_path))) == 1
    assert "BROKEN: line 4" in capsys.readouterr().out


def test_cli_verify_exits_3_for_a_cut_record_naming_the_last_good_line(tmp_path, capsys):
    path = write_session(tmp_path / "s.jsonl")
    path.write_bytes(path.read_bytes()[:-1])  # the end line loses its newline
    assert cli("verify", str(path), "--key", str(key_file(tmp_path))) == 3
    assert "OPEN: last good line 5 (summary); missing: the end line" in capsys.readouterr().out


def test_cli_exits_2_for_a_missing_file_or_no_action(tmp_path):
    assert cli("verify", str(tmp_path / "absent.jsonl")) == 2
    assert cli("show", str(tmp_path / "absent.jsonl")) == 2
    assert cli() == 2


def test_cli_show_prints_delivery_faults_outcome_and_chain_state(tmp_path, capsys):
    path = write_session(tmp_path / "s.jsonl")
    assert cli("show", str(path), "--key", str(key_file(tmp_path))) == 0
    out = capsys.readouterr().out
    for expected in ("keyed chain verified", "3600", "360.0", "completed", "none", "SN42"):
        assert expected in out


def test_cli_show_exits_1_when_the_chain_is_broken(tmp_path):
    path = write_session(tmp_path / "s.jsonl")
    lines = lines_of(path)
    lines[0] = lines[0].replace(b"dr. a", b"dr. b")
    rewrite(path, lines)
    assert cli("show", str(path), "--key", str(key_file(tmp_path))) == 1


def test_cli_show_json_prints_a_machine_readable_summary(tmp_path, capsys):
    path = write_session(tmp_path / "s.jsonl")
    assert cli("show", "--json", "--key", str(key_file(tmp_path)), str(path)) == 0
    data = json.loads(capsys.readouterr().out)
    assert data["verified"] is True and data["channels"][0]["pulses"] == 3600


def test_new_record_paths_are_made_in_their_folder_and_never_repeat(tmp_path: Path) -> None:
    from stimctl.host.record import new_record_path

    first = new_record_path("tui", tmp_path / "records")
    first.write_text("")
    second = new_record_path("tui", tmp_path / "records")
    assert first.parent == second.parent == tmp_path / "records"
    assert first != second and not second.exists()
