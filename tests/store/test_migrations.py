"""Migrations: the code's HEAD_REVISION is Alembic's head, and many processes opening a fresh store
at once end with one correctly migrated schema."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from sqlalchemy import create_engine, inspect, text

from shipyard.store.migrate import HEAD_REVISION, MIGRATIONS
from shipyard.store.tables import metadata

OPEN_STORE = """
import sys
from shipyard.store.db import MetadataStore
store = MetadataStore(sys.argv[1])
with store.mutation("p", "open", "store", sys.argv[2]):
    pass
"""


def test_head_revision_matches_the_migration_scripts() -> None:
    from alembic.config import Config
    from alembic.script import ScriptDirectory

    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS))
    assert ScriptDirectory.from_config(config).get_heads() == [HEAD_REVISION]


def test_migrations_create_exactly_the_declared_schema(store_url: str) -> None:
    from shipyard.store.db import MetadataStore

    MetadataStore(store_url).dispose()
    engine = create_engine(store_url)
    found = inspect(engine)
    assert set(found.get_table_names()) == set(metadata.tables) | {"alembic_version"}
    for table in metadata.tables.values():
        assert {c["name"] for c in found.get_columns(table.name)} == set(table.columns.keys())
    engine.dispose()


def test_concurrent_first_opens_migrate_once(store_url: str, tmp_path: Path) -> None:
    procs = [
        subprocess.Popen([sys.executable, "-c", OPEN_STORE, store_url, str(i)], stderr=subprocess.PIPE, text=True)
        for i in range(6)
    ]
    failures = [p.stderr.read() for p in procs if p.wait(120) != 0]  # type: ignore[union-attr]
    assert failures == []
    engine = create_engine(store_url)
    with engine.connect() as conn:
        assert conn.execute(text("SELECT version_num FROM alembic_version")).scalars().all() == [HEAD_REVISION]
        assert conn.execute(text("SELECT count(*) FROM audit_events")).scalar_one() == 6
    engine.dispose()
