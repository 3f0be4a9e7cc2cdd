"""The clinic store: patients, their flag history and sessions in SQL (docs/DATABASE.md).

``models`` holds the declarative ``Base`` and the tables, ``db`` the engine and sessions built
from a URL, ``schema`` the Alembic migrations shipped in ``migrations/``. This package may import
``stimctl.rules``/host modules, never the CLI or the TUI.
"""
