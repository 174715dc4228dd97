"""The per-workspace stat cache: (path, size, mtime, inode) → digest, so unchanged files are never re-read.

A local SQLite file beside the workspace's state, separate from the metadata store: it describes this
machine's files, not shared history."""

from __future__ import annotations

import os
import sqlite3
import time
from collections.abc import Iterable
from pathlib import Path
from typing import NamedTuple

# A file modified within this many seconds of being hashed may change again within the same mtime
# tick; such "racily clean" entries are not cached (git does the same).
RACY_SECONDS = 2.0


class FileStat(NamedTuple):
    path: str  # absolute
    size: int
    mtime_ns: int
    inode: int


class StatCache:
    def __init__(self, db_path: Path) -> None:
        db_path.parent.mkdir(parents=True, exist_ok=True)
        self._conn = sqlite3.connect(str(db_path), timeout=60, isolation_level=None, check_same_thread=False)
        self._conn.execute("PRAGMA journal_mode=WAL")
        self._conn.execute("PRAGMA synchronous=NORMAL")
        self._conn.execute(
            "CREATE TABLE IF NOT EXISTS stat (path TEXT PRIMARY KEY, size INTEGER NOT NULL, "
            "mtime_ns INTEGER NOT NULL, inode INTEGER NOT NULL, digest TEXT NOT NULL) WITHOUT ROWID"
        )

    def close(self) -> None:
        self._conn.close()

    def lookup_under(self, folder: str) -> dict[str, tuple[int, int, int, str]]:
        """Every cached entry below `folder` (one range scan), keyed by absolute path."""
        prefix = folder.rstrip(os.sep) + os.sep
        rows = self._conn.execute(
            "SELECT path, size, mtime_ns, inode, digest FROM stat WHERE path >= ? AND path < ?",
            (prefix, prefix[:-1] + chr(ord(os.sep) + 1)),
        )
        return {path: (size, mtime, inode, digest) for path, size, mtime, inode, digest in rows}

    def lookup(self, path: str) -> tuple[int, int, int, str] | None:
        row = self._conn.execute("SELECT size, mtime_ns, inode, digest FROM stat WHERE path = ?", (path,)).fetchone()
        return (row[0], row[1], row[2], row[3]) if row else None

    def store(self, entries: Iterable[tuple[FileStat, str]]) -> None:
        horizon = (time.time() - RACY_SECONDS) * 1e9
        rows = [(s.path, s.size, s.mtime_ns, s.inode, d) for s, d in entries if s.mtime_ns < horizon]
        if not rows:
            return
        with self._conn:
            self._conn.execute("BEGIN IMMEDIATE")
            self._conn.executemany("INSERT OR REPLACE INTO stat VALUES (?, ?, ?, ?, ?)", rows)


def cached_digest(entry: tuple[int, int, int, str] | None, stat: FileStat) -> str | None:
    if entry is not None and entry[0] == stat.size and entry[1] == stat.mtime_ns and entry[2] == stat.inode:
        return entry[3]
    return None
