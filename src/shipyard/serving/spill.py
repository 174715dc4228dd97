"""Spill files of the prediction log: requests that did not fit in memory, appended to a local file of the
process, and written to the store by its writer, or by the next process to start when this one died.

A file is locked (flock) by the process that owns it for as long as it holds it, so a starting process
takes over only the files of processes that are gone. Each record is length- and CRC-prefixed: a record
torn by a kill mid-append ends the file. A `.progress` file beside it says which records are written and
which chunk was being written, so a takeover re-writes that chunk exactly (the same bytes, kept once)."""

from __future__ import annotations

import contextlib
import fcntl
import json
import logging
import os
import pickle
import socket
import struct
import time
import uuid
import zlib
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from shipyard.serving.predlog import Prediction

SUFFIX = ".spill"
_HEADER = struct.Struct(">II")  # payload length, CRC-32 of the payload
log = logging.getLogger("shipyard.serving.predlog")


class SpillFile:
    """One locked spill file: appended to by record(), drained chunk by chunk by the writer."""

    def __init__(self, path: Path, fd: int, *, done: int = 0, intent: int | None = None) -> None:
        self.path = path
        self.fd = fd
        self.done = done  # offset up to which every record is written to the store
        self.intent = intent  # end of the chunk being written when the last owner stopped
        self.size = os.fstat(fd).st_size
        self.entries = 0  # records after `done`
        self.oldest: float | None = None  # arrival time of the oldest record after `done`

    @property
    def progress_path(self) -> Path:
        return self.path.with_name(self.path.name + ".progress")

    @classmethod
    def create(cls, folder: Path) -> SpillFile:
        """A new file named for this host and process, locked before it gets its name (nobody else can take
        it over in between)."""
        folder.mkdir(parents=True, exist_ok=True)
        name = f"{socket.gethostname()}-{os.getpid()}-{uuid.uuid4().hex[:8]}"
        partial = folder / f".{name}.new"
        fd = os.open(partial, os.O_RDWR | os.O_CREAT | os.O_EXCL | os.O_APPEND, 0o600)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            path = folder / f"{name}{SUFFIX}"
            os.rename(partial, path)
        except BaseException:
            os.close(fd)
            with contextlib.suppress(FileNotFoundError):
                os.unlink(partial)
            raise
        return cls(path, fd)

    @classmethod
    def adopt(cls, path: Path) -> SpillFile | None:
        """Take over a file whose owner is gone; None when a live process holds it (or it is gone)."""
        try:
            fd = os.open(path, os.O_RDWR | os.O_APPEND)
        except FileNotFoundError:
            return None
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            if os.stat(path).st_ino != os.fstat(fd).st_ino:  # drained and removed while we waited
                raise FileNotFoundError(path)
        except (BlockingIOError, FileNotFoundError):
            os.close(fd)
            return None
        done, intent = 0, None
        progress = path.with_name(path.name + ".progress")
        with contextlib.suppress(FileNotFoundError, ValueError, TypeError, KeyError):
            state = json.loads(progress.read_text())
            done, intent = int(state["done"]), state.get("next")
        spill = cls(path, fd, done=done, intent=int(intent) if intent is not None else None)
        for _, entry in spill.records(done, peek=True):
            spill.entries += 1
            if spill.oldest is None and entry is not None:
                spill.oldest = entry.timestamp
        return spill

    def append(self, entry: Prediction) -> None:
        payload = pickle.dumps(entry, protocol=pickle.HIGHEST_PROTOCOL)
        data = memoryview(_HEADER.pack(len(payload), zlib.crc32(payload)) + payload)
        while data:
            written = os.write(self.fd, data)
            data = data[written:]
        self.size += len(payload) + _HEADER.size
        self.entries += 1
        if self.oldest is None:
            self.oldest = entry.timestamp

    def records(self, start: int, *, end: int | None = None, peek: bool = False) -> Iterator[tuple[int, Prediction | None]]:
        """(offset after the record, the record) from `start`, up to `end` or the first torn record. With
        `peek`, only the first record is unpickled (the others are counted)."""
        with open(self.path, "rb") as handle:
            handle.seek(start)
            first = True
            while end is None or handle.tell() < end:
                header = handle.read(_HEADER.size)
                if len(header) < _HEADER.size:
                    return
                length, crc = _HEADER.unpack(header)
                if peek and not first:
                    here = handle.tell()
                    if here + length > self.size:
                        return
                    handle.seek(here + length)
                    yield here + length, None
                    continue
                payload = handle.read(length)
                if len(payload) < length or zlib.crc32(payload) != crc:
                    return  # torn by a kill mid-append: nothing after it was ever acknowledged
                first = False
                try:
                    entry: Prediction | None = pickle.loads(payload)  # noqa: S301 - this process family's own file
                except Exception:  # noqa: BLE001 - one unreadable record must not stop the others
                    log.exception("Skipped an unreadable record of the spill file %s", self.path)
                    entry = None
                yield handle.tell(), entry

    def chunk(self, max_rows: int) -> tuple[list[Prediction], int, int]:
        """The next records after `done` to write together: the chunk a previous owner was writing, exactly,
        else records up to `max_rows` rows. Returns (entries, records read, end offset)."""
        entries: list[Prediction] = []
        count, end, rows = 0, self.done, 0
        for end, entry in self.records(self.done, end=self.intent):
            count += 1
            if entry is not None:
                entries.append(entry)
                rows += len(entry.inputs)
            if self.intent is None and rows >= max_rows:
                break
        return entries, count, end

    def mark(self, *, done: int, intent: int | None) -> None:
        """Record progress atomically: what is written, and which chunk is being written."""
        tmp = self.progress_path.with_name(self.progress_path.name + ".tmp")
        tmp.write_text(json.dumps({"done": done, "next": intent}))
        os.replace(tmp, self.progress_path)
        self.done, self.intent = done, intent

    def remove(self) -> None:
        """Delete the drained file (still locked, so nobody takes it over meanwhile), then release it."""
        for path in (self.path, self.progress_path):
            with contextlib.suppress(FileNotFoundError):
                os.unlink(path)
        self.release()

    def release(self) -> None:
        with contextlib.suppress(OSError):
            os.close(self.fd)
        self.fd = -1


def orphans(folder: Path) -> list[SpillFile]:
    """The spill files in `folder` whose processes are gone, now owned by this one, oldest first."""
    if not folder.is_dir():
        return []
    found = []
    for path in sorted(folder.glob(f"*{SUFFIX}"), key=lambda p: p.stat().st_mtime if p.exists() else 0):
        spill = SpillFile.adopt(path)
        if spill is not None:
            found.append(spill)
    for partial in folder.glob(".*.new"):  # empty: its process was killed between creating and naming it
        with contextlib.suppress(FileNotFoundError):
            if time.time() - partial.stat().st_mtime < 60:
                continue  # it may be another process's file in the making (created, not yet locked)
            unused = SpillFile.adopt(partial)
            if unused is not None:
                unused.remove()
    for progress in folder.glob(f"*{SUFFIX}.progress"):  # left by a process killed while removing its file
        if not progress.with_name(progress.name.removesuffix(".progress")).exists():
            with contextlib.suppress(FileNotFoundError):
                progress.unlink()
    return found
