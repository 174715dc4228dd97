"""Apply Alembic migrations on open, safely when several processes open a fresh store at once."""

from __future__ import annotations

import contextlib
import fcntl
import zlib
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING

from sqlalchemy import Connection, text
from sqlalchemy.exc import OperationalError, ProgrammingError

from shipyard.errors import ConfigError

if TYPE_CHECKING:
    from alembic.config import Config
    from sqlalchemy import Engine

# The newest revision in migrations/versions; a test checks it matches Alembic's head.
HEAD_REVISION = "0011"
MIGRATIONS = Path(__file__).with_name("migrations")
_PG_LOCK_KEY = zlib.crc32(b"shipyard-migrations")


def current_revision(conn: Connection) -> str | None:
    try:
        with conn.begin_nested() if conn.in_transaction() else contextlib.nullcontext():
            row = conn.execute(text("SELECT version_num FROM alembic_version")).first()
    except (OperationalError, ProgrammingError):
        return None
    return row[0] if row else None


def ensure_migrated(engine: Engine) -> None:
    """Bring the schema to HEAD_REVISION. The fast path is one query; Alembic loads only when needed.

    A revision this code does not know (a newer Shipyard's) is refused with a ConfigError and left
    as it is; Alembic's own error for it says nothing about versions or what to do."""
    with engine.connect() as conn:
        revision = current_revision(conn)
        conn.rollback()
    if revision == HEAD_REVISION:
        return
    with _migration_lock(engine) as conn:
        revision = current_revision(conn)
        conn.rollback()
        if revision == HEAD_REVISION:  # another process got there first
            return
        if revision is not None and revision not in known_revisions():
            from shipyard._version import __version__

            raise ConfigError(
                f"The metadata store at {engine.url.render_as_string(hide_password=True)} is at schema revision "
                f"{revision!r}, which Shipyard {__version__} does not know (the newest it knows is "
                f"{HEAD_REVISION!r}): a newer Shipyard has migrated it, or the database belongs to another "
                "application. Nothing was changed. Upgrade Shipyard (`pip install -U shipyard-mlops`), "
                "or point store.url at a store of this version."
            )
        upgrade(conn)


def known_revisions() -> set[str]:
    """The revisions of the migration scripts shipped with this code."""
    from alembic.script import ScriptDirectory

    return {script.revision for script in ScriptDirectory.from_config(_config()).walk_revisions()}


def upgrade(conn: Connection, revision: str = "head") -> None:
    from alembic import command

    config = _config()
    config.attributes["connection"] = conn
    command.upgrade(config, revision)
    if conn.in_transaction():
        conn.commit()


def _config() -> Config:
    from alembic.config import Config

    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS))
    return config


@contextlib.contextmanager
def _migration_lock(engine: Engine) -> Iterator[Connection]:
    if engine.dialect.name == "postgresql":
        with engine.connect() as conn:
            conn.execute(text("SELECT pg_advisory_lock(:k)"), {"k": _PG_LOCK_KEY})
            conn.commit()
            try:
                yield conn
            finally:
                conn.rollback()
                conn.execute(text("SELECT pg_advisory_unlock(:k)"), {"k": _PG_LOCK_KEY})
                conn.commit()
        return
    database = engine.url.database
    if not database or database == ":memory:":
        with engine.connect() as conn:
            yield conn
        return
    lock_path = Path(database).with_name(Path(database).name + ".migrate.lock")
    lock_path.parent.mkdir(parents=True, exist_ok=True)
    with open(lock_path, "a") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            with engine.connect() as conn:
                yield conn
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)
