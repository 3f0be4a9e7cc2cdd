"""Where the clinic database is (``--db``, ``STIMCTL_DB``, the default file) and its engine.

No module-level engine: ``open_database(url)`` builds one from the URL the user gave. SQLite gets
WAL, ``foreign_keys=ON`` and a busy timeout on every connection, and every transaction starts with
``BEGIN IMMEDIATE`` (a writer takes the write lock at the start, so two writers wait for each other
instead of failing on a lock upgrade). ``Database.session()`` is one unit of work.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from sqlalchemy import Engine, create_engine, event
from sqlalchemy.engine import URL, make_url
from sqlalchemy.exc import ArgumentError, SQLAlchemyError
from sqlalchemy.orm import Session, sessionmaker
from sqlalchemy.pool import NullPool

__all__ = [
    "DB_ENV",
    "Database",
    "DatabaseError",
    "database_url",
    "db_reason",
    "default_path",
    "open_database",
    "sqlite_file",
]

DB_ENV = "STIMCTL_DB"
SQLITE_BUSY_TIMEOUT_MS = 30_000  # a writer waits this long for another one before failing
CONNECT_TIMEOUT_S = 5  # a server that does not answer fails the command, it does not hang it


class DatabaseError(Exception):
    """The database cannot be used (unreachable, not a database, wrong schema): exit 3."""


def default_path() -> Path:
    """The default SQLite file in the user's data folder (``~/.local/share/stimctl`` on Linux)."""
    from platformdirs import user_data_path

    return user_data_path("stimctl", appauthor=False) / "clinic.db"


def database_url(given: str | None = None) -> tuple[str, bool]:
    """The URL to use (``--db``, else ``STIMCTL_DB``, else the default file), and whether it is
    the default file."""
    if given:
        return given, False
    env = os.environ.get(DB_ENV, "").strip()
    if env:
        return env, False
    return f"sqlite:///{default_path()}", True


def _parse(url: str) -> URL:
    try:
        parsed = make_url(url)
    except ArgumentError:
        raise DatabaseError(f"not a database URL: {url!r}") from None
    if parsed.get_backend_name() not in ("sqlite", "postgresql"):
        raise DatabaseError(
            f"{parsed.get_backend_name()}: only sqlite and postgresql are supported"
        )
    return parsed


def sqlite_file(url: str) -> Path | None:
    """The file of a SQLite URL (None for other backends and in-memory databases)."""
    parsed = _parse(url)
    if parsed.get_backend_name() != "sqlite" or parsed.database in (None, "", ":memory:"):
        return None
    return Path(parsed.database)  # type: ignore[arg-type]


@dataclass(frozen=True, slots=True)
class Database:
    """An engine and its session factory for one URL."""

    url: str
    engine: Engine
    factory: sessionmaker[Session]

    @property
    def display_url(self) -> str:
        """The URL without its password."""
        return self.engine.url.render_as_string(hide_password=True)

    @contextmanager
    def session(self) -> Iterator[Session]:
        """One unit of work: committed when the block ends, rolled back on an exception."""
        with self.factory() as session, session.begin():
            yield session

    def dispose(self) -> None:
        self.engine.dispose()


def _sqlite_engine(parsed: URL, **options: Any) -> Engine:
    engine = create_engine(parsed, poolclass=NullPool, **options)

    @event.listens_for(engine, "connect")
    def _on_connect(dbapi_connection: Any, record: Any) -> None:
        dbapi_connection.isolation_level = None  # we issue BEGIN ourselves (below)
        cursor = dbapi_connection.cursor()
        cursor.execute(f"PRAGMA busy_timeout={SQLITE_BUSY_TIMEOUT_MS}")
        cursor.execute("PRAGMA foreign_keys=ON")
        cursor.execute("PRAGMA journal_mode=WAL")
        cursor.close()

    @event.listens_for(engine, "begin")
    def _on_begin(connection: Any) -> None:
        connection.exec_driver_sql("BEGIN IMMEDIATE")

    return engine


def open_database(url: str, *, create: bool = True, make_folder: bool = False) -> Database:
    """An engine for ``url``; DatabaseError when it cannot be reached.

    A SQLite file is created only with ``create`` (its folder too with ``make_folder``: the
    default file's); without it a missing file is a DatabaseError (``record verify`` never
    creates a database).
    """
    parsed = _parse(url)
    path = sqlite_file(url)
    try:
        if parsed.get_backend_name() == "sqlite":
            if path is not None:
                if not create and not path.is_file():
                    raise DatabaseError(f"no database at {path}")
                if create and make_folder:
                    path.parent.mkdir(parents=True, exist_ok=True)
            engine = _sqlite_engine(parsed)
        else:
            if parsed.drivername == "postgresql":
                parsed = parsed.set(drivername="postgresql+psycopg")
            engine = create_engine(
                parsed, pool_pre_ping=True, connect_args={"connect_timeout": CONNECT_TIMEOUT_S}
            )
        with engine.connect():
            pass
    except ModuleNotFoundError as error:
        raise DatabaseError(
            f"{error.name} is not installed (pip install 'stimctl[postgresql]')"
        ) from None
    except (SQLAlchemyError, OSError) as error:
        raise DatabaseError(f"cannot open {_safe(parsed)}: {db_reason(error)}") from None
    return Database(url, engine, sessionmaker(engine, expire_on_commit=False))


def _safe(parsed: URL) -> str:
    return parsed.render_as_string(hide_password=True)


def db_reason(error: BaseException) -> str:
    """The first line of the driver's message, without SQLAlchemy's background link."""
    orig = getattr(error, "orig", None)
    text = str(orig if orig is not None else error).strip()
    return text.splitlines()[0] if text else type(error).__name__
