"""Records that cannot lose or hide what happened (issue 12): real records from `stimctl run`,
cut, forged, swapped and written to disks that fail (injected errors, and a real tmpfs)."""

from __future__ import annotations

import errno
import hashlib
import json
import os
import re
import shutil
import stat
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from stimctl.cli import main
from stimctl.host.recorder import rescue_lines
from stimctl.host.recordkey import KEY_ENV, RecordKey, site_key_path
from stimctl.host.verification import VERIFY_EXITS, Anchored, VerifyExit, short_anchor, verify

pytestmark = pytest.mark.timeout(120)

ROOT = Path(__file__).resolve().parent.parent
DEMO = ROOT / "profiles" / "short-demo.toml"


def at_plateau(line: bytes) -> bool:
    """A telemetry line 20 s into the demo (the ramp up is 5 s): output is at its plateau."""
    entry = json.loads(line)
    return entry["kind"] == "telemetry" and entry["data"]["elapsed_s"] >= 20


def run(record: Path, *extra: str) -> int:
    return main(["run", str(DEMO), "--yes", "--speed", "max", "--record", str(record), *extra])


def entries(raw: bytes) -> list[dict[str, Any]]:
    return [json.loads(line) for line in raw.splitlines()]


def lines_of(path: Path) -> list[bytes]:
    return path.read_bytes().splitlines(keepends=True)


@pytest.fixture(scope="module")
def records(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """Two real records of the demo profile (virtual clock), tagged with the site key."""
    folder = tmp_path_factory.mktemp("records")
    first, second = folder / "a.jsonl", folder / "b.jsonl"
    assert run(first) == 0 and run(second) == 0
    return first, second


@pytest.fixture
def no_key_here(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A user without the site key (another machine, or an auditor)."""
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path / "empty-config"))


def children() -> list[int]:
    """This process's child processes (an embedded simulator left running would be one)."""
    pids: list[int] = []
    for task in Path(f"/proc/{os.getpid()}/task").iterdir():
        text = (task / "children").read_text().split()
        pids += [int(p) for p in text]
    return pids


# --- the keyed chain -----------------------------------------------------------------------


def test_a_real_record_verifies_with_its_key_and_names_it_by_id(records, capsys) -> None:
    record, _ = records
    key = RecordKey(bytes.fromhex(site_key_path().read_text()), site_key_path())
    assert main(["record", "verify", str(record)]) == 0
    assert f"keyed chain verified (key {key.id})" in capsys.readouterr().out
    opening = entries(record.read_bytes())[0]
    assert opening["kind"] == "session" and opening["data"]["key_id"] == key.id
    assert len(opening["data"]["session_id"]) == 36  # a UUID
    assert key.secret.hex().encode() not in record.read_bytes()  # the id, never the key


def test_the_site_key_is_made_on_first_use_with_mode_0600_outside_the_records(records) -> None:
    record, _ = records
    mode = stat.S_IMODE(site_key_path().stat().st_mode)
    assert mode == 0o600 and not site_key_path().is_relative_to(record.parent)


def test_a_key_inside_the_records_folder_is_refused_and_nothing_runs(tmp_path, capsys) -> None:
    key = tmp_path / "site.key"
    key.write_text(os.urandom(32).hex())
    key.chmod(0o600)
    assert run(tmp_path / "r.jsonl", "--key", str(key)) == 1
    err = capsys.readouterr().err
    assert "inside the records folder" in err and "Traceback" not in err
    assert not (tmp_path / "r.jsonl").exists()


def test_a_shared_key_from_the_environment_tags_the_record(tmp_path, monkeypatch) -> None:
    shared = tmp_path / "keys" / "clinic.key"
    shared.parent.mkdir()
    shared.write_text(os.urandom(32).hex() + "\n")
    shared.chmod(0o600)
    monkeypatch.setenv(KEY_ENV, str(shared))
    record = tmp_path / "records" / "r.jsonl"
    assert run(record) == 0
    key_id = entries(record.read_bytes())[0]["data"]["key_id"]
    assert key_id == RecordKey(bytes.fromhex(shared.read_text()), shared).id
    assert verify(record).tags == "verified"
    monkeypatch.delenv(KEY_ENV)
    site_only = verify(record)  # the site key is not the clinic's key
    assert site_only.exit is VerifyExit.NO_KEY and f"key {key_id} not available" in site_only.reason


def forge(record: Path, out: Path, *, strip_tags: bool = False) -> int:
    """What someone with something to hide does without the key: drop the fault lines, set
    the pulse counts to the expected ones and the outcome to COMPLETED, re-number and re-hash
    every line (tags kept as they were, or stripped). Returns the first line it changed."""
    kept = [e for e in entries(record.read_bytes()) if e["kind"] != "fault"]
    first_changed = None
    prev = "0" * 64
    out_lines = []
    for n, entry in enumerate(kept, start=1):
        before = json.dumps(entry, separators=(",", ":"))
        data = entry["data"]
        if entry["kind"] == "summary":
            for channel in data["channels"]:
                channel["pulses"] = channel["expected_pulses"]
        if entry["kind"] == "end":
            data.update(outcome="COMPLETED", exit_code=0)
        entry.update(n=n, prev=prev)
        tag = entry.pop("tag")
        entry.pop("hash")
        core = json.dumps(entry, separators=(",", ":"), sort_keys=False).encode()
        entry["hash"] = prev = hashlib.sha256(core).hexdigest()
        if not strip_tags:
            entry["tag"] = tag
        line = json.dumps(entry, separators=(",", ":"))
        if first_changed is None and line != before:
            first_changed = n
        out_lines.append(line + "\n")
    out.write_text("".join(out_lines))
    assert first_changed is not None
    return first_changed


@pytest.fixture(scope="module")
def faulted(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A real record of a session stopped by an electrode fault."""
    record = tmp_path_factory.mktemp("faulted") / "f.jsonl"
    assert run(record, "--sim", "fault=electrode_open:1@20000") == 3
    assert any(e["kind"] == "fault" for e in entries(record.read_bytes()))
    return record


def test_a_re_chained_forgery_fails_with_the_key_naming_the_first_forged_line(
    faulted, tmp_path, capsys
) -> None:
    forged = tmp_path / "forged.jsonl"
    first = forge(faulted, forged)
    result = verify(forged)
    assert result.exit is VerifyExit.BAD and result.first_bad == first
    assert "forged" in result.reason
    assert main(["record", "verify", str(forged)]) == 1
    assert f"line {first}: forged" in capsys.readouterr().out


def test_without_the_key_a_forgery_is_only_a_plain_chain_and_never_exit_0(
    faulted, tmp_path, capsys, no_key_here
) -> None:
    forged = tmp_path / "forged.jsonl"
    forge(faulted, forged)
    # without a clinic database too: the one holding this session's row knows its final tag and
    # catches the forgery without the key (exit 1; test_clinic_cli)
    no_clinic = f"sqlite:///{tmp_path / 'no-clinic.db'}"
    assert main(["record", "verify", str(forged), "--db", no_clinic]) == 4
    assert "plain chain only" in capsys.readouterr().out


def test_stripped_tags_fail_as_a_possible_downgrade_unless_plain(faulted, tmp_path, capsys):
    stripped = tmp_path / "stripped.jsonl"
    forge(faulted, stripped, strip_tags=True)
    assert main(["record", "verify", str(stripped)]) == 1
    assert "possible downgrade" in capsys.readouterr().out
    # an old record's way; without a clinic database (the one holding this session's row knows
    # its final tag, and a forged record disagrees with it: test_clinic_cli)
    no_clinic = f"sqlite:///{tmp_path / 'no-clinic.db'}"
    assert main(["record", "verify", "--plain", str(stripped), "--db", no_clinic]) == 0


# --- truncation, emptiness --------------------------------------------------------------------


def test_truncation_at_every_line_of_a_real_record_is_never_intact_and_closed(records) -> None:
    record, _ = records
    lines = lines_of(record)
    cut = record.parent / "cut.jsonl"
    for k in range(len(lines)):
        for tail in (b"", lines[k][: len(lines[k]) // 2]):  # at a line end, and mid-line
            cut.write_bytes(b"".join(lines[:k]) + tail)
            result = verify(cut)
            assert not result.ok and not result.closed, (k, tail[:20])
            if k == 0 and not tail:
                assert result.exit is VerifyExit.BAD and "empty" in result.reason
            elif k == 0:
                assert result.exit is VerifyExit.BAD
            else:
                assert result.exit is VerifyExit.OPEN and result.last_good == k
                assert f"last good line {k}" in result.reason
    cut.write_bytes(b"".join(lines))
    assert verify(cut).ok


def test_show_says_open_in_its_headline_and_claims_no_outcome(records, tmp_path, capsys):
    record, _ = records
    cut = tmp_path / "cut.jsonl"
    cut.write_bytes(b"".join(lines_of(record)[:18]))
    assert main(["record", "show", str(cut)]) == 3
    out = capsys.readouterr().out
    headline = out.splitlines()[0]
    assert "OPEN" in headline and "lines after 18 are missing" in headline
    assert "outcome    unknown: the record is OPEN" in out


def test_an_empty_file_and_a_non_record_are_bad(tmp_path) -> None:
    empty, other = tmp_path / "empty.jsonl", tmp_path / "other.jsonl"
    empty.write_bytes(b"")
    other.write_text('{"hello": "world"}\n')
    assert (verify(empty).exit, verify(other).exit) == (VerifyExit.BAD, VerifyExit.BAD)
    assert main(["record", "verify", str(empty)]) == 1


# --- the anchor outside the file ------------------------------------------------------------


def test_the_run_prints_the_final_tag_as_the_anchor(tmp_path, capsys) -> None:
    record = tmp_path / "r.jsonl"
    assert run(record) == 0
    anchor = entries(record.read_bytes())[-1]["tag"][:12]
    assert f"anchor: {anchor}" in capsys.readouterr().err
    assert main(["record", "verify", str(record), "--expect", anchor]) == 0


def test_expect_catches_a_swapped_record(records, capsys) -> None:
    first, second = records
    anchor = short_anchor(verify(first).anchor or "")
    assert main(["record", "verify", str(first), "--expect", anchor]) == 0
    assert main(["record", "verify", str(second), "--expect", anchor]) == 1
    assert f"anchor {anchor} disagrees" in capsys.readouterr().out


def test_a_malformed_expect_is_a_usage_error(records) -> None:
    assert main(["record", "verify", str(records[0]), "--expect", "xyz"]) == 2


def test_the_exit_code_table_is_the_one_the_help_and_the_docs_show(capsys) -> None:
    assert main(["record", "verify", "--help"]) == 0
    help_text = " ".join(capsys.readouterr().out.split())
    docs = {
        name: " ".join((ROOT / name).read_text().split()) for name in ("README.md", "docs/API.md")
    }
    for code, meaning in VERIFY_EXITS.items():
        assert f"{int(code)} {meaning}" in help_text
        for name, text in docs.items():
            assert meaning in text, (name, int(code))


# --- the disk fails -------------------------------------------------------------------------


class FailingDisk:
    """Stands in for the record writer's write (or fsync): fails with ``code`` from the write
    after the line ``after`` picks (None: from the first), the first failing write torn
    half-way through, as a disk that fills mid-line does."""

    def __init__(self, code: int, after: Callable[[bytes], bool] | None = None) -> None:
        self.code, self.after = code, after
        self.failing = after is None
        self.torn = False

    def write(self, fd: int, data: Any) -> int:
        chunk = bytes(data)
        if self.failing:
            if not self.torn and len(chunk) > 1:
                self.torn = True
                return os.write(fd, chunk[: len(chunk) // 2])
            raise OSError(self.code, os.strerror(self.code))
        if self.after is not None and self.after(chunk):
            self.failing = True
        return os.write(fd, chunk)

    def fsync(self, fd: int) -> None:
        if self.failing:
            raise OSError(self.code, os.strerror(self.code))
        os.fsync(fd)

    def arm_fsync(self, after: Callable[[bytes], bool]) -> Callable[[int, Any], int]:
        """A write that arms ``fsync`` failures after the line ``after`` picks."""

        def write(fd: int, data: Any) -> int:
            if after(bytes(data)):
                self.failing = True
            return os.write(fd, data)

        return write


def rescue_of(record: Path) -> Path:
    (rescue,) = record.parent.glob(f"{record.stem}.rescue*.jsonl")
    return rescue


def test_a_full_disk_from_the_start_refuses_with_exit_1_and_nothing_armed(
    tmp_path, monkeypatch, capsys
) -> None:
    monkeypatch.setattr("stimctl.host.record._write", FailingDisk(errno.ENOSPC).write)
    record = tmp_path / "r.jsonl"
    assert run(record) == 1
    err = capsys.readouterr().err
    assert "refused: cannot write the session record" in err and "No space left" in err
    assert "nothing was armed" in err and "Traceback" not in err
    rescued = entries(rescue_of(record).read_bytes())
    assert [e["kind"] for e in rescued] == ["session", "end"]
    assert f"2 unwritten record line(s) rescued to {rescue_of(record)}" in err
    assert verify(record, rescue=rescue_of(record)).ok  # the record and its rescue: all lines


@pytest.mark.parametrize("code", [errno.ENOSPC, errno.EIO])
def test_a_write_failing_mid_session_ramps_down_and_the_rescue_holds_every_line(
    code, tmp_path, monkeypatch, capsys
) -> None:
    monkeypatch.setattr("stimctl.host.record._write", FailingDisk(code, after=at_plateau).write)
    record = tmp_path / "r.jsonl"
    assert run(record) == 3
    err = capsys.readouterr().err
    assert "RECORD FAILED" in err and os.strerror(code) in err and "Traceback" not in err
    assert verify(record).exit is VerifyExit.OPEN  # the file alone: cut after the failure
    joined = verify(record, rescue=rescue_of(record))
    assert joined.ok and joined.rescued > 0
    lines = entries(record.read_bytes()) + entries(rescue_of(record).read_bytes())
    assert [e["n"] for e in lines] == list(range(1, len(lines) + 1))  # every line, once
    stop = next(e["data"] for e in lines if e["data"].get("cause") == "RECORD_FAILED"
                and e["kind"] == "command")  # fmt: skip
    assert stop["name"] == "STOP" and stop["ramp_ms"] >= 5000  # the profile's ramp-down
    currents = [e["data"]["channels"][0]["set_ua"] for e in lines
                if e["kind"] == "telemetry" and e["data"]["state"] == "STOPPING"]  # fmt: skip
    assert currents == sorted(currents, reverse=True) and len(set(currents)) > 2  # a ramp
    assert currents[0] > 0  # from the plateau down, until the device is back at rest:
    assert [e["data"].get("device_to") for e in lines if e["kind"] == "state"][-2:] == [
        "STOPPING",
        "IDLE",
    ]
    assert lines[-1]["data"] == {"exit_code": 3, "outcome": "FAULT"}


def test_an_fsync_failing_mid_session_rescues_the_lines_it_could_not_make_sure_of(
    tmp_path, monkeypatch, capsys
) -> None:
    disk = FailingDisk(errno.EIO, after=None)
    disk.failing = False
    monkeypatch.setattr("stimctl.host.record._write", disk.arm_fsync(at_plateau))
    monkeypatch.setattr("stimctl.host.record._fsync", disk.fsync)
    record = tmp_path / "r.jsonl"
    assert run(record) == 3
    assert "Input/output error" in capsys.readouterr().err
    joined = verify(record, rescue=rescue_of(record))  # lines in both must be the same bytes
    assert joined.ok and joined.rescued > 0


def test_an_unwritable_folder_is_one_line_and_leaves_no_simulator(
    tmp_path, monkeypatch, capsys
) -> None:
    def denied(path: Any, flags: int, mode: int = 0o777) -> int:
        raise PermissionError(errno.EACCES, os.strerror(errno.EACCES), str(path))

    monkeypatch.setattr("stimctl.host.record._open", denied)
    before = set(children())
    code = main(["run", str(DEMO), "--yes", "--speed", "20", "--record", str(tmp_path / "r.jsonl")])
    err = capsys.readouterr().err
    assert code == 1 and err.count("\n") == 1 and "Permission denied" in err
    assert set(children()) <= before  # the simulator process it started is gone


def test_a_record_whose_parent_is_a_file_is_one_line_and_leaves_no_simulator(
    tmp_path, capsys
) -> None:
    (tmp_path / "afile").write_text("")
    before = set(children())
    record = tmp_path / "afile" / "r.jsonl"
    code = main(["run", str(DEMO), "--yes", "--speed", "20", "--record", str(record)])
    err = capsys.readouterr().err
    assert code == 1 and err.count("\n") == 1
    assert f"cannot create the records folder {tmp_path / 'afile'}: it is a file" in err
    assert set(children()) <= before


def test_a_default_records_folder_that_is_a_file_is_one_line(tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "records").write_text("")
    assert main(["run", str(DEMO), "--yes", "--speed", "max"]) == 1
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "records: it is a file" in err


def test_a_rescue_goes_to_the_state_folder_then_to_standard_error(tmp_path, monkeypatch):
    lines = [b'{"n":1}\n', b'{"n":2}\n']
    (tmp_path / "afile").write_text("")
    record = tmp_path / "afile" / "r.jsonl"  # beside it is impossible
    rescue = rescue_lines(record, lines)
    assert rescue.path is not None and rescue.path.read_bytes() == b"".join(lines)
    assert rescue.path.parent == Path(os.environ["XDG_STATE_HOME"]) / "stimctl" / "rescue"
    monkeypatch.setenv("XDG_STATE_HOME", str(tmp_path / "afile"))  # no state folder either
    out = _Stderr()
    rescue = rescue_lines(record, lines, out)
    assert rescue.path is None and out.text.endswith(b"".join(lines).decode())
    assert "standard error" in rescue.text() and len(rescue.tried) == 2


class _Stderr:
    def __init__(self) -> None:
        self.text = ""

    def write(self, text: str) -> int:
        self.text += text
        return len(text)

    def flush(self) -> None:
        pass


# --- a real small disk (tmpfs in a private mount namespace), where the machine allows it ------

UNSHARE = shutil.which("unshare")


def _private_tmpfs_works() -> bool:
    if UNSHARE is None:
        return False
    probe = subprocess.run(
        [UNSHARE, "-rm", "sh", "-c", "mount -t tmpfs -o size=64k tmpfs /mnt 2>/dev/null"
         " || mount -t tmpfs -o size=64k tmpfs /tmp"],
        capture_output=True, timeout=30,
    )  # fmt: skip
    return probe.returncode == 0


@pytest.mark.skipif(not _private_tmpfs_works(), reason="no private mount namespace (unshare -rm)")
@pytest.mark.parametrize("fills", [None, "RUNNING", "ARMED"], ids=["full", "fills", "armed"])
def test_a_real_tmpfs_full_from_the_start_or_filling_mid_session(fills, tmp_path) -> None:
    """Full before the session (exit 1, nothing armed), or filled once the record shows the device
    ARMED or RUNNING (exit 3, stopped): the fill point is a record line, not a guess at its size.
    (CI: filled between the RUNNING line and START's own line, the CLI said "nothing was armed".)"""
    disk = tmp_path / "disk"
    disk.mkdir()
    run = f'"{sys.executable}" -m stimctl run {DEMO} --yes --speed max --record {disk}/r.jsonl'
    fill = f"dd if=/dev/zero of={disk}/filler bs=1k count=64 2>/dev/null"
    if fills:
        started = f'grep -q \'"device_to":"{fills}"\' {disk}/r.jsonl 2>/dev/null'
        body = (
            f"{run} & pid=$!; n=0; until {started} || [ $n -ge 3000 ]; do sleep 0.01; n=$((n+1)); "
            f"done; {fill}; wait $pid"
        )
    else:
        body = f"{fill}; {run}"
    expected = 3 if fills else 1
    script = (
        f"mount -t tmpfs -o size=64k tmpfs {disk} && {body}; "
        f"echo EXIT $?; cp {disk}/r.jsonl {tmp_path}/r.jsonl"
    )
    done = subprocess.run(
        [UNSHARE, "-rm", "sh", "-c", script], capture_output=True, text=True, timeout=110
    )
    assert f"EXIT {expected}" in done.stdout, done.stderr
    assert "Traceback" not in done.stderr and "No space left on device" in done.stderr
    rescue = Path(re.search(r"rescued to (\S+)", done.stderr)[1])  # the operator is told where
    assert rescue.parent == Path(os.environ["XDG_STATE_HOME"]) / "stimctl" / "rescue"
    assert verify(tmp_path / "r.jsonl", rescue=rescue).ok
    kinds = [e["kind"] for e in entries(rescue.read_bytes())]
    assert kinds[-1] == "end" and ("fault" in kinds) == (expected == 3)


def test_an_outside_anchor_gets_the_session_id_and_final_tag_and_can_refuse(records) -> None:
    record, _ = records
    seen: list[Anchored] = []

    def database(found: Anchored) -> tuple[bool, str]:  # what the clinic database will plug in
        seen.append(found)
        return False, "database anchor for this session is 000000000000"

    result = verify(record, anchors=[database])
    opening, end = entries(record.read_bytes())[0], entries(record.read_bytes())[-1]
    assert seen[0].session_id == opening["data"]["session_id"] and seen[0].final == end["tag"]
    assert result.exit is VerifyExit.BAD and "database anchor" in result.reason


def test_a_key_file_that_others_may_read_is_refused(tmp_path, capsys) -> None:
    key = tmp_path / "keys" / "open.key"
    key.parent.mkdir()
    key.write_text(os.urandom(32).hex())
    key.chmod(0o644)
    assert run(tmp_path / "records" / "r.jsonl", "--key", str(key)) == 1
    assert "mode 0644" in capsys.readouterr().err


def test_verify_with_a_missing_key_file_is_a_usage_error(records, tmp_path, capsys) -> None:
    assert main(["record", "verify", str(records[0]), "--key", str(tmp_path / "no.key")]) == 2
    assert "no.key" in capsys.readouterr().err


@pytest.mark.skipif(not _private_tmpfs_works(), reason="no private mount namespace (unshare -rm)")
def test_a_real_read_only_folder_is_one_line_even_for_root(tmp_path) -> None:
    disk = tmp_path / "ro"
    disk.mkdir()
    script = (
        f"mount -t tmpfs -o ro,size=64k tmpfs {disk} && "
        f'"{sys.executable}" -m stimctl run {DEMO} --yes --speed 20 --record {disk}/r.jsonl; '
        "echo EXIT $?"
    )
    done = subprocess.run(
        [UNSHARE, "-rm", "sh", "-c", script], capture_output=True, text=True, timeout=110
    )
    assert "EXIT 1" in done.stdout, done.stderr
    assert done.stderr.count("\n") == 1 and "Read-only file system" in done.stderr
