"""Blob store contract: every backend (local folder, S3 through a moto server) passes the same tests."""

from __future__ import annotations

import hashlib
import io
import os
from collections.abc import Iterator
from pathlib import Path

import pytest

from shipyard.errors import IntegrityError, NotFoundError, ValidationError
from shipyard.store.blobs import BlobStore


@pytest.fixture(params=["local", "s3"])
def blobs(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[BlobStore]:
    if request.param == "local":
        yield BlobStore(str(tmp_path / "blobs"))
    else:
        moto = request.getfixturevalue("moto")
        bucket = moto.new_bucket()
        yield BlobStore(f"s3://{bucket}/prefix", endpoint_url=moto.endpoint)


def corrupt(store: BlobStore, digest: str) -> None:
    """Flip one byte of a stored blob behind the store's back."""
    path = store._path(digest)
    data = bytearray(store.fs.cat_file(path))
    data[len(data) // 2] ^= 0xFF
    store.fs.pipe_file(path, bytes(data))


class _Chunks(io.RawIOBase):
    """A non-seekable stream producing `total` bytes without holding them in memory."""

    def __init__(self, total: int) -> None:
        self.left = total
        self.hash = hashlib.sha256()

    def readable(self) -> bool:
        return True

    def readinto(self, buffer) -> int:  # type: ignore[no-untyped-def]
        n = min(len(buffer), self.left, 1 << 16)
        chunk = bytes([(self.left + i) % 251 for i in range(min(n, 251))]) * (n // 251 + 1)
        chunk = chunk[:n]
        buffer[:n] = chunk
        self.hash.update(chunk)
        self.left -= n
        return n


def test_round_trip_and_content_addressing(blobs: BlobStore, tmp_path: Path) -> None:
    info = blobs.put_bytes(b"hello blobs")
    assert info.digest == hashlib.sha256(b"hello blobs").hexdigest()
    assert info.size == 11
    assert blobs.exists(info.digest)
    assert blobs.get_bytes(info.digest) == b"hello blobs"
    again = blobs.put_bytes(b"hello blobs")
    assert again == info
    assert list(blobs.iter_digests()) == [info.digest]  # deduplicated: one object
    source = tmp_path / "f.bin"
    source.write_bytes(os.urandom(300_000))
    from_file = blobs.put_file(source)
    out = blobs.get_file(from_file.digest, tmp_path / "out" / "copy.bin")
    assert out.read_bytes() == source.read_bytes()
    assert blobs.size(from_file.digest) == 300_000


def test_streams_large_content_in_chunks(blobs: BlobStore, tmp_path: Path) -> None:
    stream = _Chunks(12 * 1024 * 1024 + 7)
    info = blobs.put_stream(stream)
    assert info.size == 12 * 1024 * 1024 + 7
    assert info.digest == stream.hash.hexdigest()
    copy = blobs.get_file(info.digest, tmp_path / "big.bin")
    assert copy.stat().st_size == info.size
    assert hashlib.sha256(copy.read_bytes()).hexdigest() == info.digest


def test_corrupted_blob_is_reported_not_returned(blobs: BlobStore, tmp_path: Path) -> None:
    info = blobs.put_bytes(b"model weights " * 1000)
    corrupt(blobs, info.digest)
    with pytest.raises(IntegrityError, match=info.digest):
        blobs.get_bytes(info.digest)
    with pytest.raises(IntegrityError, match="corrupted"):
        blobs.get_file(info.digest, tmp_path / "model.bin")
    assert not (tmp_path / "model.bin").exists()  # nothing partial left behind
    with pytest.raises(IntegrityError):
        blobs.verify(info.digest)


def test_missing_and_malformed_digests(blobs: BlobStore) -> None:
    absent = "ab" * 32
    with pytest.raises(NotFoundError, match="not in the artifact store"):
        blobs.get_bytes(absent)
    assert not blobs.exists(absent)
    for bad in ("xyz", "AB" * 32, "../" + "a" * 61):
        with pytest.raises(ValidationError, match="64 lowercase hexadecimal"):
            blobs.get_bytes(bad)


def test_gc_removes_only_unreferenced_blobs_past_the_grace_period(blobs: BlobStore) -> None:
    keep = blobs.put_bytes(b"keep me")
    drop = blobs.put_bytes(b"drop me")
    young = blobs.gc({keep.digest}, grace_seconds=3600)
    assert young.removed == [] and blobs.exists(drop.digest)
    dry = blobs.gc({keep.digest}, grace_seconds=0, dry_run=True)
    assert dry.removed == [drop.digest] and blobs.exists(drop.digest)
    report = blobs.gc({keep.digest}, grace_seconds=0)
    assert report.removed == [drop.digest]
    assert report.freed_bytes == len(b"drop me")
    assert not blobs.exists(drop.digest)
    assert blobs.get_bytes(keep.digest) == b"keep me"


def test_local_partial_write_is_invisible_and_collected(tmp_path: Path) -> None:
    store = BlobStore(str(tmp_path / "blobs"))

    class Exploding(io.RawIOBase):
        sent = 0

        def readable(self) -> bool:
            return True

        def readinto(self, buffer) -> int:  # type: ignore[no-untyped-def]
            if self.sent > 3 * 1024 * 1024:
                raise OSError("source went away")
            n = min(len(buffer), 1 << 20)
            buffer[:n] = b"x" * n
            self.sent += n
            return n

    with pytest.raises(OSError, match="source went away"):
        store.put_stream(Exploding())
    assert list(store.iter_digests()) == []
    assert list(Path(store.root, "tmp").rglob("*.part")) == []  # the temp file was removed too


def test_large_local_file_is_copied_and_hashed_in_parallel(tmp_path: Path) -> None:
    from shipyard.store.blobs import PARALLEL_COPY_BYTES

    store = BlobStore(str(tmp_path / "blobs"))
    source = tmp_path / "big.bin"
    with open(source, "wb") as out:
        for _ in range(PARALLEL_COPY_BYTES // (1 << 20) + 3):
            out.write(os.urandom(1 << 20))
    info = store.put_file(source, sync=False)
    assert info.size == source.stat().st_size
    assert info.digest == hashlib.sha256(source.read_bytes()).hexdigest()
    assert Path(store._path(info.digest)).read_bytes() == source.read_bytes()
    assert list(Path(store.root, "tmp").rglob("*.part")) == []
    assert store.put_file(source) == info  # stored once


def test_small_files_are_written_beside_their_name_and_leftovers_collected(tmp_path: Path) -> None:
    store = BlobStore(str(tmp_path / "blobs"))
    source = tmp_path / "small.txt"
    source.write_bytes(b"tiny")
    info = store.put_file(source)
    assert store.get_bytes(info.digest) == b"tiny"
    shard = Path(store._path(info.digest)).parent
    leftover = shard / f"{'ab' * 32}.deadbeef.part"  # as if a writer died between write and rename
    leftover.write_bytes(b"half")
    assert list(store.iter_digests()) == [info.digest]  # never listed as a blob
    report = store.gc({info.digest}, grace_seconds=0)
    assert report.temp_removed == 1 and not leftover.exists() and store.exists(info.digest)
