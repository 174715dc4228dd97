"""Walking a folder into (relative path, stat) pairs, and hashing what the stat cache does not know."""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from shipyard.data.statcache import FileStat, StatCache, cached_digest
from shipyard.errors import NotFoundError, ValidationError

SKIP_DIRS = {".git", ".shipyard", "__pycache__", ".dvc"}


def walk(root: Path) -> dict[str, FileStat]:
    """Relative POSIX path → stat of every regular file below `root` (symlinked folders not followed)."""
    if not root.exists():
        raise NotFoundError(f"Path {root} does not exist. Check the path.")
    if root.is_file():
        st = root.stat()
        return {root.name: FileStat(str(root.resolve()), st.st_size, st.st_mtime_ns, st.st_ino)}
    found: dict[str, FileStat] = {}
    base = str(root.resolve())
    cut = len(base) + 1
    stack = [base]
    while stack:
        folder = stack.pop()
        try:
            entries = list(os.scandir(folder))
        except PermissionError as exc:
            raise ValidationError(f"Cannot read folder {folder}: permission denied. Fix its permissions.") from exc
        for entry in entries:
            if entry.is_dir(follow_symlinks=False):
                if entry.name not in SKIP_DIRS:
                    stack.append(entry.path)
            elif entry.is_file():
                st = entry.stat()
                rel = entry.path[cut:]
                if os.sep != "/":
                    rel = rel.replace(os.sep, "/")
                found[rel] = FileStat(entry.path, st.st_size, st.st_mtime_ns, st.st_ino)
    return found


def digests(
    files: dict[str, FileStat],
    cache: StatCache,
    root: Path,
    hash_one: Callable[[FileStat], str],
    *,
    workers: int | None = None,
    progress: Callable[[int], None] | None = None,
) -> tuple[dict[str, str], int]:
    """Digest of every file: from the stat cache when its stat is unchanged, else by `hash_one`
    (in parallel threads). Returns the digests and how many files were read."""
    folder = str(root.resolve()) if root.is_dir() else str(root.resolve().parent)
    known = cache.lookup_under(folder)
    result: dict[str, str] = {}
    todo: list[tuple[str, FileStat]] = []
    for rel, stat in files.items():
        digest = cached_digest(known.get(stat.path), stat)
        if digest is None:
            todo.append((rel, stat))
        else:
            result[rel] = digest
            if progress:
                progress(stat.size)
    if todo:
        fresh: list[tuple[FileStat, str]] = []

        def work(item: tuple[str, FileStat]) -> tuple[str, FileStat, str]:
            digest = hash_one(item[1])
            if progress:
                progress(item[1].size)
            return item[0], item[1], digest

        threads = workers or min(8, (os.cpu_count() or 1) * 2)
        if len(todo) == 1:
            done: Iterator[tuple[str, FileStat, str]] = iter([work(todo[0])])
        else:
            pool = ThreadPoolExecutor(max_workers=threads, thread_name_prefix="shipyard-hash")
            done = pool.map(work, todo)
        for rel, stat, digest in done:
            result[rel] = digest
            fresh.append((stat, digest))
        if len(todo) > 1:
            pool.shutdown()
        cache.store(fresh)
    return result, len(todo)
