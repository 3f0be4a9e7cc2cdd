"""Alembic environment: runs on the connection that ``stimctl.clinic.schema`` hands over."""

from __future__ import annotations

from alembic import context

from stimctl.clinic.schema import target_metadata

connection = context.config.attributes["connection"]
context.configure(
    connection=connection,
    target_metadata=target_metadata(),
    render_as_batch=connection.dialect.name == "sqlite",  # SQLite alters tables by copying them
    compare_type=True,
)
with context.begin_transaction():
    context.run_migrations()
