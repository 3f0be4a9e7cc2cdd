"""The clinic store: patients, their flag history and sessions in SQL (docs/DATABASE.md).

``models`` holds the declarative ``Base`` and the tables, ``db`` the engine and sessions built
from a URL, ``schema`` the Alembic migrations shipped in ``migrations/``. Treatment courses
(docs/COURSE.md): ``plan`` (the stimctl.course/1 format), ``instruments`` and ``diary`` (outcomes),
``courserules`` (pure rules), ``coursemodels`` (tables), ``courses`` (operations), ``report``
(charts). This package may import
``stimctl.rules``/host modules, never the CLI or the TUI.
"""
