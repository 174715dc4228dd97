"""Content-addressed blob store on fsspec: SHA-256 keys, atomic writes, digests verified on read."""

from __future__ import annotations

import contextlib
import hashlib
import io
import os
import re
import shutil
import tempfile
import threading
import time
import uuid
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any, BinaryIO

from shipyard.errors import BackendError, ConflictError, IntegrityError, NotFoundError, ValidationError

CHUNK = 1 << 20
# Files at least this large are copied by the kernel while a second thread hashes them.
PARALLEL_COPY_BYTES = 16 << 20
# Files at most this large are read whole, hashed, then written beside their final name.
SMALL_FILE_BYTES = 256 << 10
# S3 copies an object onto itself in one request only up to this size; larger ones are uploaded again.
COPY_IN_PLACE_BYTES = 5 << 30
# A blob garbage collection has moved aside while it looks at the blob's age one last time.
TRASH_SUFFIX = ".trash"
_DIGEST = re.compile(r"^[0-9a-f]{64}$")


@dataclass(frozen=True)
class BlobInfo:
    digest: str
    size: int


@dataclass
class GcReport:
    kept: int = 0
    removed: list[str] = field(default_factory=list)
    freed_bytes: int = 0
    temp_removed: int = 0


def check_digest(digest: str) -> str:
    if not isinstance(digest, str) or not _DIGEST.match(digest):
        raise ValidationError(
            f"Invalid blob digest {digest!r}: expected 64 lowercase hexadecimal characters (SHA-256)."
        )
    return digest


class BlobStore:
    """Blobs live at ROOT/sha256/ab/abcdef…; partial writes live under ROOT/tmp/ until complete."""

    def __init__(self, url: str, *, endpoint_url: str | None = None, options: dict[str, Any] | None = None):
        self.url = url.rstrip("/")
        self.remote = "://" in self.url and not self.url.startswith("file://")
        options = dict(options or {})
        self.protocol = "file"
        if self.remote:
            protocol, _, path = self.url.partition("://")
            self.protocol = protocol
            if protocol == "s3":
                if endpoint_url:
                    options.setdefault("endpoint_url", endpoint_url)
                options.setdefault("use_listings_cache", False)
            self.root = path.rstrip("/")
            self.fs = _filesystem(protocol, options, self.url)
        else:
            self.root = str(Path(self.url.removeprefix("file://")).resolve())
            self.fs = _filesystem("file", options, self.url)
            os.makedirs(os.path.join(self.root, "tmp"), exist_ok=True)
        self.written = False  # blobs written with sync=False since the last sync()
        self._made_dirs: set[str] = set()

    # -- naming ---------------------------------------------------------------------------------
    def _path(self, digest: str) -> str:
        return f"{self.root}/sha256/{digest[:2]}/{digest}"

    def __repr__(self) -> str:
        return f"BlobStore({self.url!r})"

    # -- writing --------------------------------------------------------------------------------
    def put_bytes(self, data: bytes) -> BlobInfo:
        return self.put_stream(io.BytesIO(data))

    def put_file(self, path: str | os.PathLike[str], *, sync: bool = True) -> BlobInfo:
        """Store a file, reading it once: hashed while it is copied. With sync=False the caller
        promises to call sync() before relying on durability (bulk adds sync once at the end)."""
        source = Path(path)
        if not source.is_file():
            raise NotFoundError(f"Cannot store {source}: no such file. Check the path.")
        if self.remote:
            digest, size = hash_file(source)
            return self._upload(source, digest, size)
        size = source.stat().st_size
        if size >= PARALLEL_COPY_BYTES:
            return self._put_large(source, sync=sync)
        if size <= SMALL_FILE_BYTES:
            return self._put_small(source.read_bytes(), sync=sync)
        with open(source, "rb") as handle:
            return self.put_stream(handle, sync=sync)

    def _put_small(self, data: bytes, *, sync: bool) -> BlobInfo:
        """A small file is hashed in memory first, so it is written beside its final name and renamed
        within one folder: no shared temporary folder, and nothing written when it is already stored."""
        digest = hashlib.sha256(data).hexdigest()
        final = self._path(digest)
        if self._refresh(final):
            return BlobInfo(digest, len(data))
        folder = os.path.dirname(final)
        if folder not in self._made_dirs:
            os.makedirs(folder, exist_ok=True)
            self._made_dirs.add(folder)
        tmp = f"{final}.{uuid.uuid4().hex[:12]}.part"
        try:
            with open(tmp, "wb") as out:
                out.write(data)
                if sync:
                    out.flush()
                    os.fsync(out.fileno())
            os.replace(tmp, final)
        except BaseException:
            if os.path.exists(tmp):
                os.unlink(tmp)
            raise
        self.written = True
        if sync:
            _fsync_dir(folder)
        return BlobInfo(digest, len(data))

    def _put_large(self, source: Path, *, sync: bool) -> BlobInfo:
        """Copy a large file in the kernel (copy_file_range/sendfile) while hashing it in parallel.

        The source's size and mtime are compared before and after: a file that changed meanwhile is
        refused rather than stored under a digest that does not match its bytes."""
        from concurrent.futures import ThreadPoolExecutor

        before = source.stat()
        tmp = self._tmp_path()
        try:
            with ThreadPoolExecutor(max_workers=1) as pool:
                copying = pool.submit(shutil.copyfile, source, tmp)
                digest, size = hash_file(source)
                copying.result()
            after = source.stat()
            if (before.st_size, before.st_mtime_ns) != (after.st_size, after.st_mtime_ns) or size != after.st_size:
                raise ConflictError(f"{source} changed while it was being stored; nothing was kept. Try again.")
            if sync:
                with open(tmp, "rb+") as handle:
                    os.fsync(handle.fileno())
            self._commit_tmp(tmp, digest, sync=sync)
        except BaseException:
            if os.path.exists(tmp):
                os.unlink(tmp)
            raise
        return BlobInfo(digest, size)

    def _tmp_path(self) -> str:
        """A fresh partial-write path; each thread writes in a folder of its own, so parallel writers
        do not contend for one directory's lock."""
        folder = os.path.join(self.root, "tmp", f"t{threading.get_ident() % 64}")
        if folder not in self._made_dirs:
            os.makedirs(folder, exist_ok=True)
            self._made_dirs.add(folder)
        return os.path.join(folder, f"{uuid.uuid4().hex}.part")

    def _commit_tmp(self, tmp: str, digest: str, *, sync: bool) -> None:
        """Move a complete temporary file to its digest's place (or drop it when already stored)."""
        final = self._path(digest)
        if self._refresh(final):
            os.unlink(tmp)
            return
        folder = os.path.dirname(final)
        if folder not in self._made_dirs:
            os.makedirs(folder, exist_ok=True)
            self._made_dirs.add(folder)
        os.replace(tmp, final)  # atomic: the blob appears whole or not at all
        self.written = True
        if sync:
            _fsync_dir(folder)

    def _refresh(self, final: str) -> bool:
        """Mark an already stored blob as just written; False when there is none, so the caller writes it.

        The writer's row that will reference the blob is not committed yet; only a young mtime keeps
        garbage collection's hands off the blob until then (an old orphan written again, say). A blob
        gc has moved aside is not found here and is written anew, which gc then leaves alone."""
        try:
            os.utime(final)
        except FileNotFoundError:
            return False
        except PermissionError:  # another user's file: a fresh copy renamed over it renews it as well
            return False
        return True

    def sync(self) -> None:
        """Flush blobs written with sync=False to stable storage (nothing to do if none was written)."""
        if not self.remote and self.written:
            os.sync()
            self.written = False

    def renew(self, digests: Iterable[str]) -> set[str]:
        """Which of `digests` are stored, each renewed as if just written (see _refresh): for a writer
        about to reference blobs it did not write itself, e.g. files the stat cache already knew.

        On S3 renewing costs a request per object, so this only looks them up there: an orphan reached
        this way can still be collected if gc's grace period ends before the writer's row commits."""
        wanted = {check_digest(d) for d in digests}
        if self.remote:
            return self.existing(wanted)
        return {d for d in wanted if self._refresh(self._path(d))}

    def existing(self, digests: Iterable[str]) -> set[str]:
        """Which of `digests` are stored: one listing for many remote lookups, stat calls locally."""
        wanted = set(digests)
        if self.remote and len(wanted) > 50:
            return wanted & set(self.iter_digests())
        if not self.remote:
            return {d for d in wanted if os.path.exists(self._path(check_digest(d)))}
        return {d for d in wanted if self.exists(d)}

    def put_stream(self, stream: IO[bytes] | BinaryIO, *, sync: bool = True) -> BlobInfo:
        """Store a stream chunk by chunk, never holding it whole in memory."""
        if self.remote:
            with tempfile.NamedTemporaryFile(prefix="shipyard-blob-", delete=True) as spool:
                digest, size = _copy_hashing(stream, spool)
                spool.flush()
                return self._upload(Path(spool.name), digest, size)
        tmp = self._tmp_path()
        try:
            with open(tmp, "wb") as out:
                digest, size = _copy_hashing(stream, out)
                if sync:
                    out.flush()
                    os.fsync(out.fileno())
            self._commit_tmp(tmp, digest, sync=sync)
        except BaseException:
            if os.path.exists(tmp):
                os.unlink(tmp)
            raise
        return BlobInfo(digest, size)

    def _upload(self, source: Path, digest: str, size: int) -> BlobInfo:
        final = self._path(digest)
        try:
            if not self._refresh_remote(final, size):
                # One PUT (or a multipart upload completed at the end): the object is visible
                # only once it is complete.
                self.fs.put_file(str(source), final)
        except (OSError, ValueError) as exc:
            raise BackendError(f"Cannot write blob {digest} to {self.url}: {exc}") from exc
        return BlobInfo(digest, size)

    def _refresh_remote(self, final: str, size: int) -> bool:
        """Renew a stored object's LastModified (see _refresh); False when it is absent or too large.

        Copying the object onto itself with its metadata replaced is the one request that does it
        (s3fs's touch refuses existing objects, and a plain self-copy is rejected by S3). The copy
        happens inside S3; nothing is uploaded. Past COPY_IN_PLACE_BYTES S3 refuses single-request
        copies, so the caller uploads the bytes again instead."""
        if self.protocol != "s3" or size > COPY_IN_PLACE_BYTES:
            return False  # writing the bytes again renews the object on any filesystem
        bucket, key, _ = self.fs.split_path(final)
        try:
            self.fs.call_s3(
                "copy_object",
                Bucket=bucket,
                Key=key,
                CopySource={"Bucket": bucket, "Key": key},
                MetadataDirective="REPLACE",
            )
        except FileNotFoundError:
            return False
        return True

    # -- reading --------------------------------------------------------------------------------
    def exists(self, digest: str) -> bool:
        return bool(self.fs.exists(self._path(check_digest(digest))))

    def size(self, digest: str) -> int:
        try:
            return int(self.fs.size(self._path(check_digest(digest))))
        except FileNotFoundError:
            raise self._missing(digest) from None

    def open(self, digest: str) -> VerifyingReader:
        """A reader that checks the digest when it reaches the end of the blob."""
        path = self._path(check_digest(digest))
        try:
            handle = self.fs.open(path, "rb", block_size=CHUNK) if self.remote else open(path, "rb")
        except FileNotFoundError:
            raise self._missing(digest) from None
        return VerifyingReader(handle, digest, self.url)

    def get_bytes(self, digest: str) -> bytes:
        with self.open(digest) as reader:
            return reader.read()

    def get_file(self, digest: str, dest: str | os.PathLike[str]) -> Path:
        """Copy a blob to `dest`, verified, appearing atomically."""
        target = Path(dest)
        target.parent.mkdir(parents=True, exist_ok=True)
        tmp = target.with_name(f".{target.name}.{uuid.uuid4().hex}.part")
        try:
            with self.open(digest) as reader, open(tmp, "wb") as out:
                shutil.copyfileobj(reader, out, CHUNK)
            os.replace(tmp, target)
        finally:
            if tmp.exists():
                tmp.unlink()
        return target

    def local_path(self, digest: str) -> Path | None:
        """Where a blob lies on this machine, for readers that open files in place; None in a remote store."""
        if self.remote:
            return None
        path = Path(self._path(check_digest(digest)))
        if not path.is_file():
            raise self._missing(digest)
        return path

    def verify(self, digest: str) -> None:
        """Re-hash a stored blob; raise IntegrityError when its content no longer matches."""
        with self.open(digest) as reader:
            while reader.read(CHUNK):
                pass

    def _missing(self, digest: str) -> NotFoundError:
        return NotFoundError(
            f"Blob {digest} is not in the artifact store {self.url}. It may have been garbage "
            "collected or the store URL (artifacts.url) points elsewhere."
        )

    # -- listing and collection -----------------------------------------------------------------
    def iter_digests(self) -> Iterator[str]:
        for digest, _ in self._listing(detail=False):
            yield digest

    def _listing(self, *, detail: bool) -> list[tuple[str, dict[str, Any]]]:
        """Every stored blob's digest, with what the listing says about it when `detail` is set."""
        base = f"{self.root}/sha256"
        try:
            found = self.fs.find(base, detail=True) if detail else dict.fromkeys(self.fs.find(base), {})
        except FileNotFoundError:
            return []
        named = ((str(path).rsplit("/", 1)[-1], info) for path, info in found.items())
        return [(name, info) for name, info in named if _DIGEST.match(name)]

    def delete(self, digest: str) -> None:
        try:
            self.fs.rm(self._path(check_digest(digest)))
        except FileNotFoundError:
            pass

    def gc(self, referenced: Iterable[str], *, grace_seconds: float = 3600.0, dry_run: bool = False) -> GcReport:
        """Delete blobs nobody references and abandoned partial writes, older than the grace period.

        The grace period protects blobs written by a transaction that has not committed yet. A writer
        that finds its blob already stored renews the blob's age (_refresh), and every deletion looks
        at the age once more at the last moment, so a renewal during the sweep keeps the blob too."""
        keep = set(referenced)
        cutoff = time.time() - grace_seconds
        report = GcReport()
        if not self.remote and not dry_run:
            self._restore_trash()
        # Remote listings carry each object's age and size, which saves a request per young blob.
        for digest, listed in self._listing(detail=self.remote):
            if digest in keep:
                report.kept += 1
                continue
            if self.remote:
                freed = self._collect_remote(digest, listed, cutoff, dry_run=dry_run)
            else:
                freed = self._collect_local(digest, cutoff, dry_run=dry_run)
            if freed is None:
                report.kept += 1
            else:
                report.removed.append(digest)
                report.freed_bytes += freed
        if not self.remote:
            partials = [*Path(self.root, "tmp").rglob("*.part"), *Path(self.root, "sha256").glob("*/*.part")]
            for part in partials:
                try:
                    if part.stat().st_mtime <= cutoff:
                        report.temp_removed += 1
                        if not dry_run:
                            part.unlink()
                except FileNotFoundError:
                    continue
        return report

    def _collect_local(self, digest: str, cutoff: float, *, dry_run: bool) -> int | None:
        """Delete one unreferenced blob if it is old; the bytes freed, or None when it stays."""
        path = self._path(digest)
        try:
            info = self.fs.info(path)
        except FileNotFoundError:
            return None
        if _mtime(info) > cutoff:
            return None
        if dry_run:
            return int(info.get("size") or 0)
        # A writer may renew the blob between that look and the deletion. Moving the blob aside first
        # decides the race: a renewal before the rename is on the moved file (mtime belongs to the
        # inode), one after it finds no file and writes the blob anew (_refresh). While the blob is
        # aside, a reader of it (it is unreferenced) finds it missing.
        trash = self._set_aside(path)
        if trash is None:
            return None
        try:
            moved = os.stat(trash)
            if moved.st_mtime > cutoff:
                os.replace(trash, path)  # any copy a writer stored meanwhile holds the same bytes
                return None
            os.unlink(trash)
        except FileNotFoundError:
            return None  # another collection put it back (_restore_trash); that one judges it
        return moved.st_size

    def _set_aside(self, path: str) -> str | None:
        """Rename a blob to a name no reader or writer uses; None when it is already gone."""
        trash = f"{path}.{uuid.uuid4().hex[:12]}{TRASH_SUFFIX}"
        try:
            os.rename(path, trash)
        except FileNotFoundError:
            return None
        return trash

    def _restore_trash(self) -> None:
        """Put back blobs a collection set aside and never finished with (it was killed, say).

        They come back renewed, so a writer's fresh copy is never replaced by an older-looking one;
        an unreferenced one is collected a grace period later."""
        for trash in Path(self.root, "sha256").glob(f"*/*{TRASH_SUFFIX}"):
            digest = trash.name.split(".", 1)[0]
            if not _DIGEST.match(digest):
                continue
            try:
                with contextlib.suppress(PermissionError):  # another user's file: put back as it is
                    os.utime(trash)
                os.replace(trash, self._path(digest))
            except FileNotFoundError:
                continue  # a running collection finished with it meanwhile

    def _collect_remote(self, digest: str, listed: dict[str, Any], cutoff: float, *, dry_run: bool) -> int | None:
        """Delete one unreferenced object if it is old; the bytes freed, or None when it stays."""
        size = int(listed.get("size") or 0)
        if _mtime(listed) > cutoff:
            return None
        if dry_run:
            return size
        # A writer may have renewed the object since the listing, so its age is read again right
        # before the delete. A renewal that lands between this HEAD and the DELETE (one round trip)
        # is still lost: S3 has no delete conditional on an object's age, and no atomic rename.
        path = self._path(digest)
        self.fs.invalidate_cache(path)
        try:
            if _mtime(self.fs.info(path)) > cutoff:
                return None
            self.fs.rm_file(path)
        except FileNotFoundError:
            return None
        return size


class VerifyingReader(io.RawIOBase):
    """Reads a blob and raises IntegrityError at the end if its SHA-256 differs from the key."""

    def __init__(self, handle: Any, digest: str, where: str) -> None:
        self._handle = handle
        self._digest = digest
        self._where = where
        self._hash = hashlib.sha256()
        self._done = False

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: Any) -> int:
        data = self._handle.read(len(buffer))
        n = len(data)
        buffer[:n] = data
        if n:
            self._hash.update(data)
        else:
            self._check()
        return n

    def read(self, size: int = -1) -> bytes:
        if size is None or size < 0:
            chunks = []
            while chunk := self._handle.read(CHUNK):
                self._hash.update(chunk)
                chunks.append(chunk)
            self._check()
            return b"".join(chunks)
        data = self._handle.read(size)
        if data:
            self._hash.update(data)
        else:
            self._check()
        return bytes(data)

    def _check(self) -> None:
        if self._done:
            return
        self._done = True
        actual = self._hash.hexdigest()
        if actual != self._digest:
            raise IntegrityError(
                f"Blob {self._digest} in {self._where} is corrupted: its content hashes to {actual}. "
                "It was not used. Restore it from a backup or re-log the artifact."
            )

    def close(self) -> None:
        try:
            self._handle.close()
        finally:
            super().close()


def hash_file(path: str | os.PathLike[str]) -> tuple[str, int]:
    digest = hashlib.sha256()
    size = 0
    with open(path, "rb") as handle:
        while chunk := handle.read(CHUNK):
            digest.update(chunk)
            size += len(chunk)
    return digest.hexdigest(), size


def _copy_hashing(source: IO[bytes] | BinaryIO, out: IO[bytes] | Any) -> tuple[str, int]:
    digest = hashlib.sha256()
    size = 0
    while chunk := source.read(CHUNK):
        digest.update(chunk)
        out.write(chunk)
        size += len(chunk)
    return digest.hexdigest(), size


def _fsync_dir(path: str) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _mtime(info: dict[str, Any]) -> float:
    for key in ("mtime", "LastModified", "last_modified", "created"):
        value = info.get(key)
        if value is None:
            continue
        if hasattr(value, "timestamp"):
            return float(value.timestamp())
        return float(value)
    return 0.0


def _filesystem(protocol: str, options: dict[str, Any], url: str) -> Any:
    import fsspec

    try:
        return fsspec.filesystem(protocol, **options)
    except ImportError as exc:
        raise BackendError(
            f"Using artifacts.url={url} needs the {protocol} filesystem, which is not installed. "
            "Install it with `pip install 'shipyard-mlops[s3]'`."
        ) from exc
    except (TypeError, ValueError) as exc:
        raise BackendError(f"Cannot open the artifact store {url}: {exc}. Check artifacts.options.") from exc
