"""The store's own id: made once with the store, read where stores must be told apart (the OpenLineage
namespace). It lives in the database, so it stays the same when the workspace folder moves or is renamed,
and two workspaces sharing one store share it."""

from __future__ import annotations

from sqlalchemy import Connection, select

from shipyard.errors import IntegrityError
from shipyard.store.tables import store_identity


def store_id(conn: Connection) -> str:
    """The id of the store `conn` reads (32 hex digits)."""
    found = conn.execute(select(store_identity.c.id).order_by(store_identity.c.created).limit(1)).scalar()
    if found is None:
        raise IntegrityError(
            "The metadata store has no id: its store_identity table is empty. The row is written once when "
            "the store is created and nothing deletes it; restore it from a backup of the database."
        )
    return str(found)
