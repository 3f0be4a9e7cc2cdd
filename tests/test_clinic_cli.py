"""The clinic database from the command line: patients, run --patient-id, session rows,
session import, record verify against the stored anchor (docs/DATABASE.md)."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest

from stimctl.cli import main

pytestmark = pytest.mark.timeout(120)

ROOT = Path(__file__).resolve().parent.parent
HAN = ROOT / "profiles" / "han-dense-disperse.toml"  # uses SP6
DEMO = ROOT / "profiles" / "short-demo.toml"
SEED = ROOT / "profiles" / "seed-st36-lr3.toml"


@pytest.fixture
def db(tmp_path: Path) -> str:
    return f"sqlite:///{tmp_path / 'clinic.db'}"


def _json(capsys: pytest.CaptureFixture[str], *argv: str) -> Any:
    capsys.readouterr()
    assert main(list(argv)) == 0
    return json.loads(capsys.readouterr().out)


def _last_tag(record: Path) -> str:
    return json.loads(record.read_text().splitlines()[-1])["tag"]


def test_a_pregnant_patients_sp6_profile_is_refused_and_the_refusal_is_a_row(
    db: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["patient", "add", "P1", "--flag", "pregnant", "--db", db]) == 0
    record = tmp_path / "r.jsonl"
    code = main(
        [
            "run",
            str(HAN),
            "--patient-id",
            "P1",
            "--yes",
            "--speed",
            "max",
            "--record",
            str(record),
            "--db",
            db,
        ]
    )
    assert code == 1
    assert "patient-pregnancy-point" in capsys.readouterr().err
    (row,) = _json(capsys, "session", "list", "--patient", "P1", "--json", "--db", db)
    assert (row["patient"], row["outcome"], row["exit_code"], row["number"]) == (
        "P1",
        "REFUSED",
        1,
        1,
    )
    assert "patient-pregnancy-point" in row["violations"] and row["flags"] == ["pregnant"]
    assert row["record"] == str(record.absolute()) and row["record_tag"] == _last_tag(record)
    assert len(row["profile_sha256"]) == 64 and row["started"].endswith("Z")


def test_a_completed_session_row_holds_delivery_device_and_the_final_tag(
    db: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    main(["patient", "add", "P2", "--flag", "anticoagulant", "--db", db])
    record = tmp_path / "r.jsonl"
    assert (
        main(
            [
                "run",
                str(DEMO),
                "--patient-id",
                "P2",
                "--yes",
                "--speed",
                "max",
                "--record",
                str(record),
                "--db",
                db,
            ]
        )
        == 0
    )
    head = json.loads(record.read_text().splitlines()[0])["data"]
    (row,) = _json(capsys, "session", "list", "--json", "--db", db)
    assert head["session_id"] == row["id"] and head["patient_id"] == "P2"
    assert head["patient"] == ["anticoagulant"]  # the patient's flags reached the controller
    assert (row["outcome"], row["exit_code"], row["delivered_s"]) == ("COMPLETED", 0, 60.0)
    assert row["violations"] == ["patient-anticoagulant"]
    assert [c["pulses"] for c in row["channels"]] == [c["expected_pulses"] for c in row["channels"]]
    assert row["device_serial"] and row["simulator"] is True
    assert row["record_tag"] == _last_tag(record)
    assert main(["record", "verify", str(record), "--db", db]) == 0
    assert "anchor agrees" in capsys.readouterr().out


def test_an_unreachable_database_refuses_the_session_with_exit_3_and_nothing_armed(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    record = tmp_path / "r.jsonl"
    code = main(
        [
            "run",
            str(DEMO),
            "--yes",
            "--speed",
            "max",
            "--record",
            str(record),
            "--db",
            "postgresql+psycopg://nobody@127.0.0.1:1/none",
        ]
    )
    assert code == 3
    assert "nothing armed" in capsys.readouterr().err
    assert not record.exists()  # the device was never connected


def test_a_database_at_an_old_schema_is_refused_with_the_upgrade_command(
    db: str, tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    from stimctl.clinic import schema

    assert main(["patient", "list", "--db", db]) == 0  # creates it at today's revision
    monkeypatch.setattr(schema, "head_revision", lambda: "9999_future")
    capsys.readouterr()
    assert main(["run", str(DEMO), "--yes", "--record", str(tmp_path / "r.jsonl"), "--db", db]) == 3
    assert "stimctl db upgrade --db" in capsys.readouterr().err


def test_an_unknown_patient_is_refused_before_the_device(
    db: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    record = tmp_path / "r.jsonl"
    assert (
        main(["run", str(DEMO), "--patient-id", "X", "--yes", "--record", str(record), "--db", db])
        == 1
    )
    assert "no patient 'X'" in capsys.readouterr().err and not record.exists()


def test_patient_flags_and_patient_id_together_are_a_usage_error(db: str) -> None:
    assert main(["run", str(DEMO), "--patient-id", "X", "--patient", "epilepsy", "--db", db]) == 2


def test_patient_commands_keep_the_flag_history_and_export_it(
    db: str, capsys: pytest.CaptureFixture[str]
) -> None:
    assert (
        main(
            [
                "patient",
                "add",
                "P3",
                "--born",
                "1980",
                "--flag",
                "epilepsy",
                "--note",
                "knee",
                "--operator",
                "ana",
                "--db",
                db,
            ]
        )
        == 0
    )
    assert (
        main(
            [
                "patient",
                "set",
                "P3",
                "--flag",
                "pregnant",
                "--unflag",
                "epilepsy",
                "--operator",
                "ben",
                "--db",
                db,
            ]
        )
        == 0
    )
    shown = _json(capsys, "patient", "show", "P3", "--json", "--db", db)
    assert list(shown["flags"]) == ["pregnant"] and shown["flags"]["pregnant"]["operator"] == "ben"
    assert [(c["flag"], c["change"], c["operator"]) for c in shown["flag_history"]] == [
        ("epilepsy", "set", "ana"),
        ("pregnant", "set", "ben"),
        ("epilepsy", "unset", "ben"),
    ]
    exported = _json(capsys, "patient", "export", "P3", "--json", "--db", db)
    assert list(exported) == [
        "schema",
        "id",
        "born",
        "note",
        "created",
        "created_by",
        "flags",
        "flag_history",
        "sessions",
    ]
    assert exported["schema"] == "stimctl.patient-export/1" and exported["born"] == 1980
    listed = _json(capsys, "patient", "list", "--json", "--db", db)
    assert listed == [{"id": "P3", "born": 1980, "flags": ["pregnant"], "sessions": 0}]


@pytest.mark.parametrize(
    ("argv", "code"),
    [
        (["patient", "add", "P4", "--flag", "dizzy"], 1),
        (["patient", "show", "nobody"], 1),
        (["patient", "set", "P4"], 2),
        (["patient", "export", "P4"], 2),
        (["patient", "list", "--db", "mysql://x/y"], 3),
        (["session", "list", "--patient", "nobody"], 1),
    ],
)
def test_patient_and_session_errors_are_one_line_with_their_exit_code(
    argv: list[str], code: int, db: str, capsys: pytest.CaptureFixture[str]
) -> None:
    extra = [] if "--db" in argv else ["--db", db]
    assert main(argv + extra) == code
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "Traceback" not in err


def test_verify_says_when_the_stored_anchor_disagrees_with_a_truncated_record(
    db: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    record = tmp_path / "r.jsonl"
    main(["run", str(HAN), "--yes", "--speed", "max", "--record", str(record), "--db", db])
    lines = record.read_text().splitlines(keepends=True)
    record.write_text("".join(lines[:-1]))  # the end line cut off: the chain itself is intact
    capsys.readouterr()
    assert main(["record", "verify", str(record), "--db", db]) == 1
    assert "anchor DISAGREES" in capsys.readouterr().out


def test_verify_reports_a_record_without_a_row_and_keeps_its_exit_code(
    db: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    record = tmp_path / "r.jsonl"
    other = f"sqlite:///{tmp_path / 'other.db'}"
    main(["run", str(HAN), "--yes", "--speed", "max", "--record", str(record), "--db", other])
    main(["patient", "list", "--db", db])
    capsys.readouterr()
    assert main(["record", "verify", str(record), "--db", db]) == 0
    assert "no session row for this record" in capsys.readouterr().out


def test_verify_never_creates_a_database(tmp_path: Path) -> None:
    record = tmp_path / "r.jsonl"
    main(["run", str(HAN), "--yes", "--speed", "max", "--record", str(record)])
    absent = tmp_path / "absent.db"
    assert main(["record", "verify", str(record), "--db", f"sqlite:///{absent}"]) == 0
    assert not absent.exists()


def test_session_import_rebuilds_the_row_in_another_database(
    db: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    first = f"sqlite:///{tmp_path / 'first.db'}"
    main(["patient", "add", "P5", "--db", first])
    main(["patient", "add", "P5", "--db", db])
    record = tmp_path / "r.jsonl"
    assert (
        main(
            [
                "run",
                str(DEMO),
                "--patient-id",
                "P5",
                "--yes",
                "--speed",
                "max",
                "--record",
                str(record),
                "--db",
                first,
            ]
        )
        == 0
    )
    assert main(["session", "import", str(record), "--db", db]) == 0
    (mine,) = _json(capsys, "session", "list", "--json", "--db", db)
    (theirs,) = _json(capsys, "session", "list", "--json", "--db", first)
    for key in ("id", "patient", "outcome", "exit_code", "profile_sha256", "record_tag"):
        assert mine[key] == theirs[key], key
    assert main(["record", "verify", str(record), "--db", db]) == 0


def test_the_readme_first_command_creates_the_default_database(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("STIMCTL_DB")
    monkeypatch.setenv("XDG_DATA_HOME", str(tmp_path / "data"))
    monkeypatch.chdir(tmp_path)
    assert main(["run", str(DEMO), "--yes", "--speed", "max"]) == 0
    assert (tmp_path / "data" / "stimctl" / "clinic.db").is_file()


def test_db_upgrade_brings_a_new_database_to_the_current_revision(
    db: str, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["db", "upgrade", "--db", db]) == 0
    assert "upgraded from empty to schema revision" in capsys.readouterr().out
    assert main(["db", "upgrade", "--db", db]) == 0
    assert "already at" in capsys.readouterr().out


@pytest.mark.skipif(sys.platform == "win32", reason="SIGKILL")
def test_a_killed_host_leaves_an_open_row(db: str, tmp_path: Path) -> None:
    assert main(["patient", "add", "K", "--db", db]) == 0
    record = tmp_path / "r.jsonl"
    env = {**os.environ, "STIMCTL_DB": db}
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "stimctl",
            "run",
            str(SEED),
            "--yes",
            "--patient-id",
            "K",
            "--record",
            str(record),
        ],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        deadline = time.monotonic() + 60
        while '"name":"START"' not in _text(record):
            assert proc.poll() is None and time.monotonic() < deadline
            time.sleep(0.05)
    finally:
        proc.send_signal(signal.SIGKILL)
        proc.wait()
    from stimctl.clinic.db import open_database
    from stimctl.clinic.sessions import list_sessions

    database = open_database(db)
    with database.session() as session:
        (row,) = list_sessions(session, "K")
        assert row.outcome is None and row.ended_at is None
    database.dispose()


def _text(path: Path) -> str:
    return path.read_text() if path.exists() else ""


def test_a_forged_record_without_tags_passes_plain_but_not_the_database(
    db: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """--plain accepts a record without tags (written before keyed chains); the database still
    holds the keyed final tag of this session, so a stripped, re-hashed copy disagrees."""
    import hashlib

    record = tmp_path / "r.jsonl"
    main(["run", str(DEMO), "--yes", "--speed", "max", "--record", str(record), "--db", db])
    prev, out = "0" * 64, []
    for raw in record.read_text().splitlines():
        entry = json.loads(raw)
        for key in ("tag", "hash"):
            entry.pop(key)
        entry["prev"] = prev
        core = json.dumps(entry, separators=(",", ":")).encode()
        entry["hash"] = prev = hashlib.sha256(core).hexdigest()
        out.append(json.dumps(entry, separators=(",", ":")) + "\n")
    forged = tmp_path / "forged.jsonl"
    forged.write_text("".join(out))
    no_clinic = f"sqlite:///{tmp_path / 'none.db'}"
    assert main(["record", "verify", "--plain", str(forged), "--db", no_clinic]) == 0
    capsys.readouterr()
    assert main(["record", "verify", "--plain", str(forged), "--db", db]) == 1
    assert "anchor DISAGREES" in capsys.readouterr().out


def test_a_database_lost_at_the_end_is_said_and_session_import_closes_the_row(
    db: str, tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    from sqlalchemy.exc import OperationalError

    import stimctl.clinic.sessions as sessions

    def gone(*args: object, **kwargs: object) -> None:
        raise OperationalError("UPDATE sessions", {}, Exception("server closed the connection"))

    main(["patient", "add", "P6", "--db", db])
    record = tmp_path / "r.jsonl"
    with monkeypatch.context() as patch:
        patch.setattr(sessions, "close_session", gone)
        code = main(
            [
                "run",
                str(DEMO),
                "--patient-id",
                "P6",
                "--yes",
                "--speed",
                "max",
                "--record",
                str(record),
                "--db",
                db,
            ]
        )
    assert code == 0  # the session was given and completed: its exit code stands
    assert f"run `stimctl session import {record}`" in capsys.readouterr().err
    (row,) = _json(capsys, "session", "list", "--json", "--db", db)
    assert row["outcome"] is None and row["record_tag"] is None  # left open
    assert main(["session", "import", str(record), "--db", db]) == 0
    (row,) = _json(capsys, "session", "list", "--json", "--db", db)
    assert (row["outcome"], row["exit_code"], row["record_tag"]) == (
        "COMPLETED",
        0,
        _last_tag(record),
    )
    assert row["patient"] == "P6" and row["number"] == 1
