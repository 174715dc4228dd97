"""The embedded online store: one SQLite file in WAL mode (readers never wait for a load), a row per
(view, version, entity key), and each read answered by one query."""

from __future__ import annotations

import json
import os
import sqlite3
import threading
from collections.abc import Iterable, Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path

from shipyard.errors import BackendError
from shipyard.features.online import EncodedRow, InfoCheck, OnlineStore, ViewInfo

_SCHEMA = """
CREATE TABLE IF NOT EXISTS online_views (
    view TEXT NOT NULL, version TEXT NOT NULL, info TEXT NOT NULL,
    PRIMARY KEY (view, version)
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS online_rows (
    view TEXT NOT NULL, version TEXT NOT NULL, entity_key TEXT NOT NULL,
    event_ns INTEGER NOT NULL, created_ns INTEGER NOT NULL, payload TEXT NOT NULL,
    PRIMARY KEY (view, version, entity_key)
) WITHOUT ROWID;
"""

# A row is replaced only by one at least as recent: (event, created) compared as a pair.
_UPSERT = """
INSERT INTO online_rows (view, version, entity_key, event_ns, created_ns, payload) VALUES (?, ?, ?, ?, ?, ?)
ON CONFLICT (view, version, entity_key) DO UPDATE
SET event_ns = excluded.event_ns, created_ns = excluded.created_ns, payload = excluded.payload
WHERE (excluded.event_ns, excluded.created_ns) >= (online_rows.event_ns, online_rows.created_ns)
"""

# Every wanted row and every wanted view's info in one statement: the requests travel as one JSON
# parameter, so a read of any size is one query.
_FETCH = """
WITH wanted_rows AS (
    SELECT json_extract(value, '$[0]') AS view, json_extract(value, '$[1]') AS version,
           json_extract(value, '$[2]') AS entity_key FROM json_each(?1)
), wanted_views AS (
    SELECT json_extract(value, '$[0]') AS view, json_extract(value, '$[1]') AS version FROM json_each(?2)
)
SELECT r.view, r.version, r.entity_key, r.event_ns, r.created_ns, r.payload
FROM wanted_rows AS w CROSS JOIN online_rows AS r
ON r.view = w.view AND r.version = w.version AND r.entity_key = w.entity_key
UNION ALL
SELECT v.view, v.version, NULL, NULL, NULL, v.info
FROM wanted_views AS w CROSS JOIN online_views AS v ON v.view = w.view AND v.version = w.version
"""


class SQLiteOnlineStore(OnlineStore):
    """Online values in a SQLite file; one connection per thread (and per process after a fork)."""

    def __init__(self, path: str | os.PathLike[str], *, busy_timeout_ms: int = 60_000) -> None:
        self.path = Path(path)
        self.url = f"sqlite:///{self.path}"
        self.busy_timeout_ms = busy_timeout_ms
        self._local = threading.local()
        self._lock = threading.Lock()
        self._connections: list[sqlite3.Connection] = []
        self._pid = os.getpid()
        self._conn()  # create the file and tables now, so a wrong path fails here

    def _conn(self) -> sqlite3.Connection:
        if self._pid != os.getpid():  # a forked child opens its own connections
            self._local = threading.local()
            self._connections = []
            self._pid = os.getpid()
        conn: sqlite3.Connection | None = getattr(self._local, "conn", None)
        if conn is None:
            from shipyard.store.db import use_wal

            try:
                self.path.parent.mkdir(parents=True, exist_ok=True)
                conn = sqlite3.connect(self.path, timeout=self.busy_timeout_ms / 1000, isolation_level=None,
                                       check_same_thread=False)
                conn.execute(f"PRAGMA busy_timeout={int(self.busy_timeout_ms)}")
                use_wal(conn.cursor(), self.busy_timeout_ms)
                conn.execute("PRAGMA synchronous=NORMAL")
                conn.executescript(_SCHEMA)
            except (sqlite3.Error, OSError) as exc:
                raise BackendError(f"Cannot open the online store {self.url}: {exc}. Check online.url and that the "
                                   "folder is writable.") from exc
            self._local.conn = conn
            with self._lock:
                self._connections.append(conn)
        return conn

    @contextmanager
    def _transaction(self) -> Iterator[sqlite3.Connection]:
        conn = self._conn()
        conn.execute("BEGIN IMMEDIATE")
        try:
            yield conn
        except BaseException:
            conn.execute("ROLLBACK")
            raise
        conn.execute("COMMIT")

    def _commit(self, view: str, version: str, check: InfoCheck, rows: Iterable[EncodedRow]) -> int:
        with self._transaction() as conn:
            found = conn.execute("SELECT info FROM online_views WHERE view = ? AND version = ?",
                                 (view, version)).fetchone()
            info = check(None if found is None else ViewInfo.from_json(view, version, json.loads(found[0])))
            cursor = conn.executemany(_UPSERT, ((view, version, r.key, r.event_ns, r.created_ns, r.payload)
                                                for r in rows))
            written = max(cursor.rowcount, 0)
            conn.execute("INSERT OR REPLACE INTO online_views (view, version, info) VALUES (?, ?, ?)",
                         (view, version, json.dumps(info.to_json())))
        return written

    def _fetch(self, views: Sequence[tuple[str, str]], keys: Sequence[tuple[str, str, str]]
               ) -> tuple[dict[tuple[str, str], ViewInfo], dict[tuple[str, str, str], tuple[int, int, str]]]:
        result = self._conn().execute(_FETCH, (json.dumps(keys), json.dumps(views))).fetchall()
        infos: dict[tuple[str, str], ViewInfo] = {}
        found: dict[tuple[str, str, str], tuple[int, int, str]] = {}
        for view, version, key, event_ns, created_ns, payload in result:
            if key is None:
                infos[(view, version)] = ViewInfo.from_json(view, version, json.loads(payload))
            else:
                found[(view, version, key)] = (event_ns, created_ns, payload)
        return infos, found

    def views(self) -> list[ViewInfo]:
        rows = self._conn().execute("SELECT view, version, info FROM online_views ORDER BY view, version").fetchall()
        return [ViewInfo.from_json(view, version, json.loads(info)) for view, version, info in rows]

    def _drop(self, view: str, version: str | None) -> int:
        where, args = ("view = ?", (view,)) if version is None else ("view = ? AND version = ?", (view, version))
        with self._transaction() as conn:
            deleted = conn.execute(f"DELETE FROM online_rows WHERE {where}", args).rowcount  # noqa: S608 (fixed text)
            conn.execute(f"DELETE FROM online_views WHERE {where}", args)  # noqa: S608 (fixed text)
        return max(deleted, 0)

    def clear(self) -> None:
        with self._transaction() as conn:
            conn.execute("DELETE FROM online_rows")
            conn.execute("DELETE FROM online_views")

    def close(self) -> None:
        with self._lock:
            for conn in self._connections:
                conn.close()
            self._connections.clear()
        self._local = threading.local()
