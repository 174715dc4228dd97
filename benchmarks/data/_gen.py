"""Data for the data-versioning benchmark, generated on the fly (standard library only).

Nothing here is ever committed: the suite writes into fresh temporary folders and removes them.
"""

from __future__ import annotations

import os
import random
import time
from pathlib import Path

CHUNK = 8 << 20  # 8 MiB per write, so the big file is never held in memory
BACKDATE_SECONDS = 60.0


def write_random_file(path: Path, nbytes: int) -> None:
    """`nbytes` of os.urandom, written chunk by chunk."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "wb") as out:
        left = nbytes
        while left:
            n = min(CHUNK, left)
            out.write(os.urandom(n))
            left -= n


def tree_layout(n_files: int, per_dir: int) -> list[str]:
    """Relative paths of the small-files folder: g<i>/d<jj>/f<nnnnn>.bin, `per_dir` files per leaf folder."""
    paths = []
    for i in range(n_files):
        d = i // per_dir
        paths.append(f"g{d // 10}/d{d % 10:02d}/f{i:05d}.bin")
    return paths


def write_tree(root: Path, n_files: int, per_dir: int, min_bytes: int, max_bytes: int, seed: int = 7) -> dict[str, int]:
    """The small-files folder: random sizes in [min_bytes, max_bytes] and random bytes, from a fixed seed
    (so both tools get byte-for-byte the same folder). Returns relative path -> size."""
    rng = random.Random(seed)
    sizes: dict[str, int] = {}
    made: set[Path] = set()
    for rel in tree_layout(n_files, per_dir):
        path = root / rel
        if path.parent not in made:
            path.parent.mkdir(parents=True, exist_ok=True)
            made.add(path.parent)
        size = rng.randint(min_bytes, max_bytes)
        path.write_bytes(rng.randbytes(size))
        sizes[rel] = size
    return sizes


def rewrite_file(path: Path, seed: int = 99) -> None:
    """New random content of the same size, written in place (same inode, fresh mtime)."""
    size = path.stat().st_size
    data = random.Random(seed).randbytes(size)
    with open(path, "r+b") as out:
        out.write(data)
        out.truncate(size)


def backdate(root: Path, seconds: float = BACKDATE_SECONDS) -> int:
    """Set the mtime of every file below `root` (or of `root` itself) `seconds` in the past.

    Files modified within 2 s of being hashed are "racily clean" and are not trusted by a stat cache
    (git and Shipyard skip them), so freshly generated data would be re-read on every later command.
    """
    when = time.time() - seconds
    if root.is_file():
        os.utime(root, (when, when))
        return 1
    count = 0
    for folder, _dirs, files in os.walk(root):
        for name in files:
            os.utime(os.path.join(folder, name), (when, when))
            count += 1
    return count


def settle() -> None:
    """Write generated data back to disk before the clock starts, so no tool pays for the generator's
    dirty pages (Shipyard ends an add with a sync of the file system)."""
    os.sync()
