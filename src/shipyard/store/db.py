"""The metadata database: one engine per URL, SQLite tuned for concurrent writers, migrations on open."""

from __future__ import annotations

import contextlib
import json
import time
from collections.abc import Callable, Iterator, Sequence
from typing import TYPE_CHECKING, Any

from sqlalchemy import Connection, create_engine, event
from sqlalchemy.exc import DatabaseError, DBAPIError, OperationalError

from shipyard.errors import BackendError
from shipyard.store import audit
from shipyard.store.migrate import ensure_migrated

if TYPE_CHECKING:
    from sqlalchemy import Engine, Table
    from sqlalchemy.sql.dml import Insert

_READONLY = "shipyard_readonly"


def now_ms() -> int:
    return time.time_ns() // 1_000_000


class MetadataStore:
    """Transactions over the metadata database. Every write transaction appends one audit event."""

    def __init__(self, url: str, *, busy_timeout_ms: int = 60_000) -> None:
        self.url = url
        self.engine = _create_engine(url, busy_timeout_ms)
        self.dialect = self.engine.dialect.name
        self._bulk_sql: dict[tuple[str, tuple[str, ...]], tuple[str, list[str] | None]] = {}
        try:
            ensure_migrated(self.engine)
        except OperationalError as exc:
            self.engine.dispose()
            raise _cannot_open(url, exc) from exc
        except DatabaseError as exc:
            self.engine.dispose()
            if self.dialect != "sqlite":
                raise
            raise _cannot_open(url, exc) from exc  # e.g. "file is not a database"
        except BaseException:
            self.engine.dispose()
            raise

    def dispose(self) -> None:
        self.engine.dispose()

    @contextlib.contextmanager
    def read(self, *, snapshot: bool = False) -> Iterator[Connection]:
        """A read transaction (on SQLite a deferred one, so readers never wait for writers).

        With `snapshot`, every statement sees the database as of the first one, whatever commits
        meanwhile: REPEATABLE READ on PostgreSQL, whose default READ COMMITTED gives each statement
        a fresh view. A deferred SQLite transaction in WAL mode already reads from one snapshot."""
        with self._translate(), self.engine.connect() as conn:
            options: dict[str, Any] = {_READONLY: True}
            if snapshot and self.dialect == "postgresql":
                options["isolation_level"] = "REPEATABLE READ"
            conn = conn.execution_options(**options)
            with conn.begin():
                yield conn

    @contextlib.contextmanager
    def mutation(
        self,
        actor: str,
        action: str,
        object_kind: str,
        object_id: str,
        payload: dict[str, Any] | None = None,
    ) -> Iterator[Connection]:
        """A write transaction whose change and audit event commit together or not at all.

        The chain head is locked first, so writers are serialised; the event is appended last, so the
        body may add to `payload` what it learns (a new version number, say)."""
        with self._translate(), self.engine.begin() as conn:
            audit.lock_head(conn)
            yield conn
            audit.append(conn, actor, action, object_kind, object_id, payload if payload is not None else {})

    @contextlib.contextmanager
    def unaudited(self) -> Iterator[Connection]:
        """A write transaction without an audit event, for liveness bookkeeping only (run heartbeats):
        a timestamp refreshed every few seconds changes no record, and auditing it would bury the trail.
        Every change of a record goes through mutation()."""
        with self._translate(), self.engine.begin() as conn:
            yield conn

    def insert_or_update(
        self, table: Table, index: list[str], update: list[str], where: Callable[[Any], Any] | None = None
    ) -> Insert:
        """An INSERT … ON CONFLICT DO UPDATE statement for this database's dialect (see insert_or_update)."""
        return _upsert(self.dialect, table, index, update, where)

    def insert_or_ignore(self, table: Table, index: list[str]) -> Insert:
        """An INSERT … ON CONFLICT DO NOTHING statement for this database's dialect."""
        return _insert_ignoring(self.dialect, table, index)

    def insert_many(self, conn: Connection, table: Table, columns: Sequence[str], rows: list[tuple[Any, ...]]) -> None:
        """Bulk insert of plain tuples: the statement is compiled by SQLAlchemy once and the rows go
        straight to the driver's executemany, skipping per-row parameter processing."""
        if not rows:
            return
        key = (table.name, tuple(columns))
        compiled = self._bulk_sql.get(key)
        if compiled is None:
            statement = table.insert().compile(dialect=self.engine.dialect, column_keys=list(columns))
            order = list(statement.positiontup or []) if statement.positional else None
            compiled = self._bulk_sql[key] = (str(statement), order)
        sql, order = compiled
        if order is not None:
            index = [list(columns).index(name) for name in order]
            params: Any = rows if index == list(range(len(columns))) else [tuple(r[i] for i in index) for r in rows]
        else:
            params = [dict(zip(columns, r, strict=True)) for r in rows]
        conn.exec_driver_sql(sql, params)

    @contextlib.contextmanager
    def _translate(self) -> Iterator[None]:
        try:
            yield
        except OperationalError as exc:
            raise BackendError(
                f"The metadata store at {_redact(self.url)} failed: {exc.orig}. "
                "Nothing from this operation was written; retry once the store is reachable."
            ) from exc
        except DBAPIError as exc:
            if exc.connection_invalidated:
                raise BackendError(
                    f"Lost the connection to {_redact(self.url)}: {exc.orig}. Nothing was written."
                ) from exc
            raise


def insert_or_update(
    conn: Connection, table: Table, index: list[str], update: list[str], where: Callable[[Any], Any] | None = None
) -> Insert:
    """An INSERT … ON CONFLICT DO UPDATE statement for the connection's dialect.

    `where(excluded)` may restrict which conflicting rows are updated."""
    return _upsert(conn.dialect.name, table, index, update, where)


def insert_or_ignore(conn: Connection, table: Table, index: list[str]) -> Insert:
    """An INSERT … ON CONFLICT DO NOTHING statement for the connection's dialect."""
    return _insert_ignoring(conn.dialect.name, table, index)


def _upsert(dialect: str, table: Table, index: list[str], update: list[str], where: Callable[[Any], Any] | None) -> Insert:
    if dialect == "postgresql":
        from sqlalchemy.dialects.postgresql import insert as pg_insert

        stmt: Any = pg_insert(table)
    else:
        from sqlalchemy.dialects.sqlite import insert as sqlite_insert

        stmt = sqlite_insert(table)
    return stmt.on_conflict_do_update(
        index_elements=index,
        set_={c: stmt.excluded[c] for c in update},
        where=where(stmt.excluded) if where else None,
    )


def _insert_ignoring(dialect: str, table: Table, index: list[str]) -> Insert:
    if dialect == "postgresql":
        from sqlalchemy.dialects.postgresql import insert as pg_insert

        return pg_insert(table).on_conflict_do_nothing(index_elements=index)
    from sqlalchemy.dialects.sqlite import insert as sqlite_insert

    return sqlite_insert(table).on_conflict_do_nothing(index_elements=index)


def _cannot_open(url: str, exc: DatabaseError) -> BackendError:
    """Why the store could not be opened: for SQLite the file and its folder, for a server the server."""
    import os
    from pathlib import Path

    from sqlalchemy.engine import make_url

    database = make_url(url).database if url.startswith("sqlite") else None
    if not database or database == ":memory:":
        return BackendError(
            f"Cannot open the metadata store at {_redact(url)}: {exc.orig}. "
            "Check that the server is running and the URL (store.url) is right."
        )
    path = Path(database)
    folder = path.parent
    if not folder.is_dir():
        why = (f"its folder {folder} does not exist. `shipyard init` creates a workspace's .shipyard/ folder, "
               "which is not kept in git: in a fresh checkout (a CI job, say) point store.url "
               "(SHIPYARD_STORE_URL) and artifacts.url (SHIPYARD_ARTIFACTS_URL) at the shared stores, or create "
               "the folder")
    elif path.exists() and not os.access(path, os.R_OK | os.W_OK):
        why = f"this user may not read and write {path}; fix its permissions"
    elif not os.access(folder, os.W_OK | os.X_OK):
        why = (f"this user may not write in its folder {folder}; fix the folder's permissions or choose another "
               "store.url")
    else:
        why = f"check that {path} is an SQLite database and that store.url names the file you mean"
    return BackendError(f"Cannot open the SQLite metadata store {path}: {exc.orig}; {why}.", path=str(path))


def _redact(url: str) -> str:
    from sqlalchemy.engine import make_url

    return make_url(url).render_as_string(hide_password=True)


def _create_engine(url: str, busy_timeout_ms: int) -> Engine:
    if url.startswith("sqlite"):
        engine = create_engine(
            url,
            connect_args={"timeout": busy_timeout_ms / 1000, "check_same_thread": False},
        )
        _tune_sqlite(engine, busy_timeout_ms)
        return engine
    if url.startswith("postgresql://"):
        url = "postgresql+psycopg://" + url[len("postgresql://") :]
    try:
        return create_engine(url, pool_pre_ping=True, json_serializer=json.dumps)
    except ModuleNotFoundError as exc:
        raise BackendError(
            f"Using store.url={_redact(url)} needs the PostgreSQL driver, which is not installed. "
            "Install it with `pip install 'shipyard-mlops[postgres]'`."
        ) from exc


def use_wal(cur: Any, busy_timeout_ms: int) -> None:
    """Switch a database to WAL (a persistent setting of the file). While several processes open a
    brand-new file at once, the switch can fail with 'database is locked' without SQLite waiting on
    its busy handler, so it is retried here until the busy timeout."""
    import sqlite3

    deadline = time.monotonic() + busy_timeout_ms / 1000
    delay = 0.005
    while True:
        try:
            if str(cur.execute("PRAGMA journal_mode").fetchone()[0]).lower() != "wal":
                cur.execute("PRAGMA journal_mode=WAL")
            return
        except sqlite3.OperationalError as exc:
            if "locked" not in str(exc) and "busy" not in str(exc):
                raise
            if time.monotonic() >= deadline:
                raise
            time.sleep(delay)
            delay = min(delay * 2, 0.1)


def _tune_sqlite(engine: Engine, busy_timeout_ms: int) -> None:
    """WAL for concurrent readers, and BEGIN IMMEDIATE for writers so that two writers never
    deadlock upgrading a read lock (the source of 'database is locked' under contention)."""

    @event.listens_for(engine, "connect")
    def _on_connect(dbapi_conn: Any, _record: Any) -> None:
        dbapi_conn.isolation_level = None  # we issue BEGIN ourselves
        cur = dbapi_conn.cursor()
        cur.execute(f"PRAGMA busy_timeout={int(busy_timeout_ms)}")
        use_wal(cur, busy_timeout_ms)
        cur.execute("PRAGMA synchronous=NORMAL")
        cur.execute("PRAGMA foreign_keys=ON")
        cur.close()

    @event.listens_for(engine, "begin")
    def _on_begin(conn: Connection) -> None:
        if conn.get_execution_options().get(_READONLY):
            conn.exec_driver_sql("BEGIN")
        else:
            conn.exec_driver_sql("BEGIN IMMEDIATE")
