"""The schema's migrations (Alembic, shipped in ``migrations/``), run from Python, never by hand.

``upgrade`` brings a database to the newest revision (``stimctl db upgrade``); ``ensure_current``
is what every command that needs the database calls first: a new empty database is upgraded on
the spot, one at an older (or unknown) revision is refused with the command to run.
"""

from __future__ import annotations

import importlib
from pathlib import Path

from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import MetaData, inspect
from sqlalchemy.exc import SQLAlchemyError

from stimctl.clinic.db import Database, DatabaseError, db_reason

__all__ = ["MODEL_MODULES", "current_revision", "ensure_current", "head_revision", "upgrade"]

MIGRATIONS = Path(__file__).with_name("migrations")
#: Modules whose models share ``models.Base``; migrations compare against all of them.
MODEL_MODULES = ("stimctl.clinic.models", "stimctl.clinic.coursemodels")


def target_metadata() -> MetaData:
    """``Base.metadata`` with every clinic model module imported."""
    for name in MODEL_MODULES:
        importlib.import_module(name)
    from stimctl.clinic.models import Base

    return Base.metadata


def alembic_config() -> Config:
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS))
    return config


def head_revision() -> str:
    """The newest revision this stimctl knows."""
    head = ScriptDirectory.from_config(alembic_config()).get_current_head()
    assert head is not None
    return head


def current_revision(db: Database) -> str | None:
    """The database's revision (None: never migrated)."""
    try:
        with db.engine.connect() as connection:
            return MigrationContext.configure(connection).get_current_revision()
    except SQLAlchemyError as error:
        raise DatabaseError(f"cannot read the schema revision: {db_reason(error)}") from None


def upgrade(db: Database, revision: str = "head") -> None:
    """Run the migrations up to ``revision`` in one transaction."""
    from alembic import command
    from alembic.util import CommandError

    config = alembic_config()
    try:
        with db.engine.begin() as connection:
            config.attributes["connection"] = connection
            command.upgrade(config, revision)
    except CommandError as error:  # e.g. a revision this stimctl does not know (a newer one)
        raise DatabaseError(f"cannot upgrade {db.display_url}: {error}") from None
    except SQLAlchemyError as error:
        raise DatabaseError(f"migration failed: {db_reason(error)}") from None


def ensure_current(db: Database) -> None:
    """Upgrade a new empty database; DatabaseError (with the command to run) for an old one."""
    head = head_revision()
    current = current_revision(db)
    if current == head:
        return
    if current is None:
        with db.engine.connect() as connection:
            tables = set(inspect(connection).get_table_names())
        if not tables:
            try:
                upgrade(db)
            except DatabaseError:
                if current_revision(db) != head:  # else: another station created it meanwhile
                    raise
            return
        raise DatabaseError(
            f"{db.display_url} has tables but no stimctl schema revision; not a clinic database"
        )
    known = {s.revision for s in ScriptDirectory.from_config(alembic_config()).walk_revisions()}
    if current not in known:
        raise DatabaseError(
            f"{db.display_url} is at revision {current}, newer than this stimctl knows"
            f" ({head}); upgrade stimctl"
        )
    raise DatabaseError(
        f"{db.display_url} is at schema revision {current}, this stimctl needs {head}:"
        f" run `stimctl db upgrade --db {db.display_url}` (back the database up first)"
    )
