"""Migrations: the code's HEAD_REVISION is Alembic's head, many processes opening a fresh store at
once end with one correctly migrated schema, and a store migrated by a newer Shipyard is left alone."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
from sqlalchemy import create_engine, inspect, text
from sqlalchemy.engine import make_url

from shipyard.errors import ConfigError
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


def test_a_store_from_a_newer_shipyard_is_refused_and_left_alone(store_url: str) -> None:
    from shipyard.store.db import MetadataStore

    store = MetadataStore(store_url)
    with store.mutation("p", "open", "store", "s"):
        pass
    store.dispose()
    engine = create_engine(store_url)
    with engine.begin() as conn:
        conn.execute(text("UPDATE alembic_version SET version_num = '0999'"))
    before = set(inspect(engine).get_table_names())

    url = make_url(store_url)
    if url.drivername.startswith("postgresql"):
        url = url.set(password="s3cret")  # the test server trusts every connection; the message must hide it
    with pytest.raises(ConfigError) as caught:
        MetadataStore(url.render_as_string(hide_password=False))
    message = str(caught.value)
    assert "'0999'" in message and f"'{HEAD_REVISION}'" in message
    assert "Upgrade Shipyard" in message and "point store.url at a store of this version" in message
    assert url.render_as_string(hide_password=True) in message and "s3cret" not in message

    with engine.connect() as conn:
        assert conn.execute(text("SELECT version_num FROM alembic_version")).scalars().all() == ["0999"]
        assert conn.execute(text("SELECT count(*) FROM audit_events")).scalar_one() == 1
    assert set(inspect(engine).get_table_names()) == before
    engine.dispose()
