"""Alembic environment: runs on the connection handed over by shipyard.store.migrate."""

from __future__ import annotations

from alembic import context

from shipyard.store.tables import metadata

connection = context.config.attributes.get("connection")
if connection is None:
    raise RuntimeError("Shipyard migrations run through shipyard.store.migrate.upgrade().")

context.configure(
    connection=connection,
    target_metadata=metadata,
    render_as_batch=connection.dialect.name == "sqlite",
    transaction_per_migration=True,
)
with context.begin_transaction():
    context.run_migrations()
