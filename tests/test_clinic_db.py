"""The clinic store: schema and migrations, patients and their flag history, session rows,
concurrent writers. Runs on SQLite always, and on PostgreSQL too when STIMCTL_TEST_DATABASE_URL
names a server where the user may create databases (`.ci/run` starts one)."""

from __future__ import annotations

import os
import subprocess
import sys
import threading
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import pytest
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from clinic_writer import record_sessions
from sqlalchemy import create_engine, inspect, select, text
from sqlalchemy.engine import make_url
from sqlalchemy.exc import IntegrityError

from stimctl.clinic import schema
from stimctl.clinic.db import Database, DatabaseError, database_url, open_database
from stimctl.clinic.models import ClinicSession, FlagChange
from stimctl.clinic.patients import (
    PatientError,
    add_patient,
    change_flags,
    flag_state,
    get_patient,
)
from stimctl.clinic.sessions import (
    SessionEnd,
    close_session,
    import_record,
    list_sessions,
    open_session,
    session_json,
)
from stimctl.host.record import SessionRecord
from stimctl.host.recordkey import writing_key

pytestmark = pytest.mark.timeout(300)

PG_ENV = "STIMCTL_TEST_DATABASE_URL"
BACKENDS = ["sqlite", pytest.param("postgresql", marks=pytest.mark.postgresql)]


def _postgres_database() -> Iterator[str]:
    """A fresh database on the test server, dropped afterwards."""
    admin_url = os.environ.get(PG_ENV)
    if not admin_url:
        pytest.skip(f"{PG_ENV} is not set (no PostgreSQL server to test against)")
    name = f"stimctl_test_{uuid.uuid4().hex[:12]}"
    admin = create_engine(admin_url, isolation_level="AUTOCOMMIT")
    with admin.connect() as connection:
        connection.execute(text(f'CREATE DATABASE "{name}"'))
    try:
        yield make_url(admin_url).set(database=name).render_as_string(hide_password=False)
    finally:
        with admin.connect() as connection:
            connection.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()


@pytest.fixture(params=BACKENDS)
def url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path / 'clinic.db'}"
    else:
        yield from _postgres_database()


@pytest.fixture
def db(url: str) -> Iterator[Database]:
    database = open_database(url)
    schema.ensure_current(database)
    yield database
    database.dispose()


# --- schema and migrations --------------------------------------------------------------------


def test_a_new_empty_database_is_upgraded_to_the_newest_revision(url: str) -> None:
    database = open_database(url)
    try:
        assert schema.current_revision(database) is None
        schema.ensure_current(database)
        assert schema.current_revision(database) == schema.head_revision()
        with database.engine.connect() as connection:
            tables = set(inspect(connection).get_table_names())
        assert {"patients", "flag_changes", "sessions", "session_channels"} <= tables
    finally:
        database.dispose()


def test_the_migrations_and_the_models_agree(db: Database) -> None:
    with db.engine.connect() as connection:
        context = MigrationContext.configure(connection, opts={"compare_type": True})
        assert compare_metadata(context, schema.target_metadata()) == []


def test_a_database_at_an_older_revision_is_refused_with_the_command_to_run(
    db: Database, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(schema, "head_revision", lambda: "9999_future")
    with pytest.raises(DatabaseError, match=r"run `stimctl db upgrade --db "):
        schema.ensure_current(db)


def test_a_database_at_an_unknown_revision_is_refused_as_newer(db: Database) -> None:
    with db.engine.begin() as connection:
        connection.execute(text("UPDATE alembic_version SET version_num = 'ffff'"))
    with pytest.raises(DatabaseError, match="newer than this stimctl knows"):
        schema.ensure_current(db)


def test_a_database_with_foreign_tables_is_not_taken_for_a_clinic_database(url: str) -> None:
    database = open_database(url)
    try:
        with database.engine.begin() as connection:
            connection.execute(text("CREATE TABLE other (id INTEGER PRIMARY KEY)"))
        with pytest.raises(DatabaseError, match="not a clinic database"):
            schema.ensure_current(database)
    finally:
        database.dispose()


def test_foreign_keys_are_enforced(db: Database) -> None:
    with pytest.raises(IntegrityError), db.session() as session:
        session.add(
            FlagChange(patient_id=12345, flag="pregnant", value=True, changed_at=datetime.now(UTC))
        )


def test_sqlite_connections_run_in_wal_mode_with_foreign_keys_on(tmp_path: Path) -> None:
    database = open_database(f"sqlite:///{tmp_path / 'c.db'}")
    try:
        with database.engine.connect() as connection:
            assert connection.exec_driver_sql("PRAGMA journal_mode").scalar() == "wal"
            assert connection.exec_driver_sql("PRAGMA foreign_keys").scalar() == 1
    finally:
        database.dispose()


def test_a_missing_sqlite_file_is_not_created_when_creation_is_off(tmp_path: Path) -> None:
    path = tmp_path / "absent.db"
    with pytest.raises(DatabaseError, match="no database at"):
        open_database(f"sqlite:///{path}", create=False)
    assert not path.exists()


def test_an_unreachable_server_is_a_database_error_not_a_hang() -> None:
    with pytest.raises(DatabaseError, match="cannot open"):
        open_database("postgresql+psycopg://nobody@127.0.0.1:1/none")


def test_the_url_comes_from_the_option_then_the_environment_then_the_default(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setenv("STIMCTL_DB", "sqlite:///env.db")
    assert database_url("sqlite:///given.db") == ("sqlite:///given.db", False)
    assert database_url(None) == ("sqlite:///env.db", False)
    monkeypatch.delenv("STIMCTL_DB")
    monkeypatch.setenv("XDG_DATA_HOME", str(tmp_path))
    if sys.platform.startswith("linux"):
        assert database_url(None) == (f"sqlite:///{tmp_path / 'stimctl' / 'clinic.db'}", True)


# --- patients and flags -----------------------------------------------------------------------


def test_a_patient_is_added_with_its_flags_and_a_duplicate_id_is_refused(db: Database) -> None:
    with db.session() as session:
        add_patient(session, "P-001", born=1990, flags=["pregnant"], note="n", operator="ana")
    with db.session() as session:
        patient = get_patient(session, "P-001")
        assert (patient.born, patient.note, patient.created_by) == (1990, "n", "ana")
        assert flag_state(session, patient).flags == {"pregnant"}
    with pytest.raises(PatientError, match="already exists"), db.session() as session:
        add_patient(session, "P-001")


@pytest.mark.parametrize(
    ("code", "born", "flags"),
    [("has space", None, ()), ("Émile", None, ()), ("P1", 1850, ()), ("P1", None, ["dizzy"])],
)
def test_a_bad_id_year_or_flag_is_refused(
    db: Database, code: str, born: int | None, flags: list[str]
) -> None:
    with pytest.raises(PatientError), db.session() as session:
        add_patient(session, code, born=born, flags=flags)


def test_every_flag_change_is_kept_with_its_time_and_operator(db: Database) -> None:
    with db.session() as session:
        add_patient(session, "P1", flags=["epilepsy"], operator="ana")
    with db.session() as session:
        change_flags(
            session, "P1", set_flags=["anticoagulant"], unset_flags=["epilepsy"], operator="ben"
        )
    with db.session() as session:
        change_flags(session, "P1", set_flags=["epilepsy"], operator="cy")
    with db.session() as session:
        patient = get_patient(session, "P1")
        history = [(c.flag, c.value, c.operator) for c in patient.flag_changes]
        assert history == [
            ("epilepsy", True, "ana"),
            ("anticoagulant", True, "ben"),
            ("epilepsy", False, "ben"),
            ("epilepsy", True, "cy"),
        ]
        assert all(c.changed_at.tzinfo is not None for c in patient.flag_changes)
        state = flag_state(session, patient)
        assert state.flags == {"anticoagulant", "epilepsy"}
        assert state.set_by["epilepsy"].operator == "cy"


def test_setting_a_flag_that_is_already_set_records_no_change(db: Database) -> None:
    with db.session() as session:
        add_patient(session, "P1", flags=["pregnant"])
    with db.session() as session:
        assert change_flags(session, "P1", set_flags=["pregnant"], unset_flags=["epilepsy"]) == []


def test_changing_the_flags_of_an_unknown_patient_is_refused(db: Database) -> None:
    with pytest.raises(PatientError, match="no patient"), db.session() as session:
        change_flags(session, "nobody", set_flags=["pregnant"])


# --- sessions ---------------------------------------------------------------------------------


def test_sessions_are_numbered_per_patient_and_keep_the_flags_they_used(db: Database) -> None:
    with db.session() as session:
        add_patient(session, "A", flags=["pregnant"])
        add_patient(session, "B")
    with db.session() as session:
        first = open_session(session, patient_code="A", operator="o", record_path=None)
        other = open_session(
            session, patient_code="B", operator="o", record_path=None, flags=["epilepsy"]
        )
        second = open_session(session, patient_code="A", operator="o", record_path=None)
        alone = open_session(
            session, patient_code=None, operator="o", record_path=None, flags=["epilepsy"]
        )
    assert (first.number, second.number, other.number, alone.number) == (1, 2, 1, None)
    assert first.flags == {"pregnant"} and other.flags == frozenset()  # B's own flags, not given
    assert alone.flags == {"epilepsy"}  # without a patient: the --patient flags


def test_an_open_row_is_closed_with_its_outcome_delivery_and_tag(db: Database) -> None:
    from stimctl.clinic.sessions import ChannelTotals

    with db.session() as session:
        add_patient(session, "A")
        opened = open_session(session, patient_code="A", operator="o", record_path="r.jsonl")
    with db.session() as session:
        (row,) = list_sessions(session, "A")
        assert row.outcome is None and row.ended_at is None  # open: a killed host leaves this
    end = SessionEnd(
        outcome="COMPLETED",
        exit_code=0,
        device_serial="SIM1",
        delivered_s=60.0,
        channels=[ChannelTotals(1, 598, 598, 54.9)],
        violations=["a", "a", "b"],
        record_tag="ab" * 32,
    )
    with db.session() as session:
        close_session(session, opened.uid, end)
    with db.session() as session:
        data = session_json(list_sessions(session, "A")[0])
    assert data["outcome"] == "COMPLETED" and data["exit_code"] == 0
    assert data["channels"] == [
        {"channel": 1, "pulses": 598, "expected_pulses": 598, "charge_uc": 54.9}
    ]
    assert data["violations"] == ["a", "b"] and data["record_tag"] == "ab" * 32
    assert data["record"] == str(Path("r.jsonl").absolute())


def _record(path: Path, session_id: str, patient_id: str | None) -> str:
    """A closed record as the controller writes it (keyed with the site key); its final tag."""
    with SessionRecord(path, writing_key(None, path.parent)) as rec:
        rec.append(
            "session",
            {
                "session_id": session_id,
                "patient_id": patient_id,
                "operator": "ana",
                "patient": ["epilepsy"],
            },
        )
        rec.append("device", {"serial": "SIM9", "firmware": "1.0.0"})
        rec.append(
            "profile",
            {
                "profile": {"name": "demo"},
                "sha256": "5" * 64,
                "warnings": [{"code": "patient-epilepsy"}],
            },
        )
        rec.append(
            "summary", {"channels": [{"id": 1, "pulses": 10, "charge_uc": 1.0}], "delivered_s": 5.0}
        )
    import json

    return json.loads(path.read_text().splitlines()[-1])["tag"]


def test_a_record_is_imported_as_a_row_and_again_changes_nothing(
    db: Database, tmp_path: Path
) -> None:
    with db.session() as session:
        add_patient(session, "A")
    sid = str(uuid.uuid4())
    tag = _record(tmp_path / "r.jsonl", sid, "A")
    with db.session() as session:
        row, created = import_record(session, tmp_path / "r.jsonl")
        assert created and row.uid == sid
    with db.session() as session:
        _, created = import_record(session, tmp_path / "r.jsonl")
        assert not created
        data = session_json(list_sessions(session, "A")[0])
    assert (data["record_tag"], data["device_serial"], data["profile_sha256"]) == (
        tag,
        "SIM9",
        "5" * 64,
    )
    assert data["flags"] == ["epilepsy"] and data["violations"] == ["patient-epilepsy"]
    assert data["channels"][0]["pulses"] == 10 and data["number"] == 1


def test_a_damaged_record_is_not_imported(db: Database, tmp_path: Path) -> None:
    path = tmp_path / "r.jsonl"
    _record(path, str(uuid.uuid4()), None)
    path.write_text(path.read_text().replace("SIM9", "SIM8"))
    with pytest.raises(PatientError, match="damaged"), db.session() as session:
        import_record(session, path)


# --- concurrency ------------------------------------------------------------------------------

PER_WRITER = 200
FLIPS = 60


def _flip_flags(database: Database, stop: threading.Event) -> int:
    """Set and unset 'pregnant' until told to stop (at least FLIPS times); the changes made."""
    made = 0
    while made < FLIPS or not stop.is_set():
        with database.session() as session:
            value = "pregnant" not in flag_state(session, get_patient(session, "C")).flags
            change_flags(
                session,
                "C",
                set_flags=["pregnant"] if value else [],
                unset_flags=[] if value else ["pregnant"],
                operator="flipper",
            )
        made += 1
        stop.wait(0.005)  # a clinician's pace, not a lock hog: SQLite's busy wait is not fair
    return made


def test_two_writers_and_a_flag_flipper_lose_nothing(db: Database, url: str) -> None:
    """2 x 200 sessions for one patient while a third writer flips a flag: 400 rows, numbers
    1..400, every flag change in the history, each session validated with the flags of the
    change it recorded."""
    with db.session() as session:
        add_patient(session, "C")
    stop = threading.Event()
    flips: list[int] = []
    flipper = threading.Thread(target=lambda: flips.append(_flip_flags(db, stop)))
    flipper.start()
    try:
        if db.engine.dialect.name == "sqlite":  # threads on one file
            writers = [
                threading.Thread(target=record_sessions, args=(url, "C", PER_WRITER, s))
                for s in ("station-1", "station-2")
            ]
            for w in writers:
                w.start()
            for w in writers:
                w.join()
        else:  # two processes on one server
            script = str(Path(__file__).with_name("clinic_writer.py"))
            procs = [
                subprocess.Popen([sys.executable, script, url, "C", str(PER_WRITER), s])
                for s in ("station-1", "station-2")
            ]
            assert [p.wait(timeout=280) for p in procs] == [0, 0]
    finally:
        stop.set()
        flipper.join()
    with db.session() as session:
        patient = get_patient(session, "C")
        rows = session.scalars(
            select(ClinicSession).where(ClinicSession.patient_id == patient.id)
        ).all()
        history = list(patient.flag_changes)
    assert len(rows) == 2 * PER_WRITER
    assert sorted(r.number for r in rows) == list(range(1, 2 * PER_WRITER + 1))
    assert {r.operator for r in rows} == {"station-1", "station-2"}
    assert len(history) == flips[0] >= FLIPS
    assert [c.value for c in history] == [i % 2 == 0 for i in range(len(history))]
    in_force = {None: frozenset()}
    flags: set[str] = set()
    for change in history:
        (flags.add if change.value else flags.discard)(change.flag)
        in_force[change.id] = frozenset(flags)
    refused = 0
    for row in rows:
        assert frozenset(row.flags) == in_force[row.flag_change_id]
        pregnant = "pregnant" in row.flags
        assert (row.outcome == "REFUSED") == pregnant
        assert ("patient-pregnancy-point" in row.violations) == pregnant
        refused += pregnant
    assert 0 < refused < len(rows)  # the flips really interleaved with the sessions
