"""Garbage collection against concurrent writers: a blob written again is kept until its row commits.

A writer that finds its blob already stored (a dedupe hit) commits the row that references it later;
until then only the blob's age protects it. Each race is forced with hooks and events, on every backend."""

from __future__ import annotations

import os
import threading
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest

from shipyard.store import blobs as blobs_module
from shipyard.store.blobs import BlobStore

GRACE = 3600.0  # gc's default grace period
TWO_HOURS = 7200.0
WAIT = 10.0  # seconds an event may take before the test fails; only reached when something is broken


@dataclass
class Aged:
    """A store, and a way to make its blobs older than gc's grace period while later writes are young."""

    store: BlobStore
    make_old: Callable[..., None]


@pytest.fixture(params=["local", "s3"])
def aged(request: pytest.FixtureRequest, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Aged]:
    if request.param == "local":
        store = BlobStore(str(tmp_path / "blobs"))

        def backdate(*digests: str) -> None:
            past = time.time() - TWO_HOURS
            for digest in digests:
                os.utime(store._path(digest), (past, past))

        yield Aged(store, backdate)
        return
    moto = request.getfixturevalue("moto")
    store = BlobStore(f"s3://{moto.new_bucket()}/prefix", endpoint_url=moto.endpoint)

    def move_clock(*digests: str) -> None:
        # S3 cannot backdate an object, so gc's clock moves forward instead: it sees the objects as
        # older than the grace period and anything written after this call as younger. LastModified
        # has whole-second resolution, so wait for the second after the newest one's stamp first.
        stamp = max(blobs_module._mtime(store.fs.info(store._path(d))) for d in digests)
        while time.time() < stamp + 1:
            time.sleep(0.05)
        now = stamp + 0.5 + GRACE
        monkeypatch.setattr(blobs_module, "time", SimpleNamespace(time=lambda: now))

    yield Aged(store, move_clock)


def _write_small_file(store: BlobStore, data: bytes, folder: Path) -> str:
    source = folder / "small.bin"
    source.write_bytes(data)
    return store.put_file(source).digest


def _write_medium_file(store: BlobStore, data: bytes, folder: Path) -> str:
    source = folder / "medium.bin"
    source.write_bytes(data * (blobs_module.SMALL_FILE_BYTES // len(data) + 2))
    return store.put_file(source).digest


def _write_stream(store: BlobStore, data: bytes, folder: Path) -> str:
    return store.put_bytes(data).digest


@pytest.mark.parametrize("write", [_write_small_file, _write_medium_file, _write_stream])
def test_an_old_orphan_written_again_survives_gc_until_its_row_commits(
    aged: Aged, write: Callable[[BlobStore, bytes, Path], str], tmp_path: Path
) -> None:
    store = aged.store
    digest = write(store, b"model artifact registered again " * 8, tmp_path)
    orphan = store.put_bytes(b"an orphan nobody writes again").digest
    aged.make_old(digest, orphan)
    assert write(store, b"model artifact registered again " * 8, tmp_path) == digest  # a dedupe hit
    report = store.gc(set(), grace_seconds=GRACE)  # the writer's row has not committed: nothing references the blob yet
    assert store.exists(digest), "the blob written again was collected before its row could commit"
    assert report.removed == [orphan]  # a genuinely old orphan still goes
    assert not store.exists(orphan)


def test_an_old_orphan_written_again_by_the_large_file_path_survives_gc(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(blobs_module, "PARALLEL_COPY_BYTES", 1024)  # any file past 1 KiB takes that path
    store = BlobStore(str(tmp_path / "blobs"))
    source = tmp_path / "weights.bin"
    source.write_bytes(os.urandom(64 << 10))
    digest = store.put_file(source).digest
    past = time.time() - TWO_HOURS
    os.utime(store._path(digest), (past, past))
    assert store.put_file(source).digest == digest
    assert store.gc(set(), grace_seconds=GRACE).removed == []
    assert store.exists(digest)


def test_s3_renews_objects_too_large_to_copy_in_place_by_uploading_them(
    moto: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    store = BlobStore(f"s3://{moto.new_bucket()}/prefix", endpoint_url=moto.endpoint)
    digest = store.put_bytes(b"as if it were 6 GiB").digest
    stamp = blobs_module._mtime(store.fs.info(store._path(digest)))
    while time.time() < stamp + 1:  # LastModified has whole-second resolution
        time.sleep(0.05)
    monkeypatch.setattr(blobs_module, "COPY_IN_PLACE_BYTES", 4)
    store.put_bytes(b"as if it were 6 GiB")
    store.fs.invalidate_cache()
    assert blobs_module._mtime(store.fs.info(store._path(digest))) > stamp
    assert store.get_bytes(digest) == b"as if it were 6 GiB"


def test_a_blob_that_vanished_is_stored_again_on_a_dedupe_hit(aged: Aged) -> None:
    digest = aged.store.put_bytes(b"collected, then wanted again").digest
    aged.store.delete(digest)
    assert aged.store.put_bytes(b"collected, then wanted again").digest == digest
    assert aged.store.get_bytes(digest) == b"collected, then wanted again"


def test_a_renewal_between_gcs_decision_and_its_delete_keeps_the_blob(
    aged: Aged, monkeypatch: pytest.MonkeyPatch
) -> None:
    store = aged.store
    data = b"renewed while gc was deciding"
    digest = store.put_bytes(data).digest
    aged.make_old(digest)
    decided, renewed = threading.Event(), threading.Event()
    read_age = blobs_module._mtime

    def deciding(info: dict[str, Any]) -> float:
        """gc's first look at the blob's age says "old"; hold gc there until the writer has renewed it."""
        age = read_age(info)
        if str(info.get("name", "")).endswith(digest) and not decided.is_set():
            decided.set()
            assert renewed.wait(WAIT), "the writer never renewed the blob"
        return age

    monkeypatch.setattr(blobs_module, "_mtime", deciding)
    with ThreadPoolExecutor(max_workers=1) as pool:
        sweep = pool.submit(store.gc, set(), grace_seconds=GRACE)
        assert decided.wait(WAIT), "gc never looked at the blob's age"
        assert store.put_bytes(data).digest == digest  # the writer's dedupe hit, inside gc's gap
        renewed.set()
        report = sweep.result(WAIT)
    assert report.removed == []
    assert store.get_bytes(digest) == data


def test_a_writer_that_finds_the_blob_set_aside_stores_it_anew(tmp_path: Path) -> None:
    store = BlobStore(str(tmp_path / "blobs"))
    data = b"set aside by gc when the writer came"
    digest = store.put_bytes(data).digest
    past = time.time() - TWO_HOURS
    os.utime(store._path(digest), (past, past))
    set_aside = store._set_aside

    def then_write(path: str) -> str | None:
        trash = set_aside(path)
        assert not os.path.exists(path)
        assert store.put_bytes(data).digest == digest  # finds no file to renew, so writes one
        return trash

    store._set_aside = then_write  # type: ignore[method-assign]
    report = store.gc(set(), grace_seconds=GRACE)
    assert report.removed == [digest]  # the old copy went; the writer's fresh copy is in its place
    assert store.get_bytes(digest) == data
    assert list(Path(store._path(digest)).parent.iterdir()) == [Path(store._path(digest))]


def test_a_blob_left_set_aside_by_a_killed_gc_is_put_back(tmp_path: Path) -> None:
    store = BlobStore(str(tmp_path / "blobs"))
    kept = store.put_bytes(b"referenced").digest
    orphan = store.put_bytes(b"unreferenced").digest
    past = time.time() - TWO_HOURS
    for digest in (kept, orphan):  # as a gc killed between its rename and its last look leaves them
        os.utime(store._path(digest), (past, past))
        os.rename(store._path(digest), f"{store._path(digest)}.0123456789ab{blobs_module.TRASH_SUFFIX}")
    assert sorted(store.iter_digests()) == []
    report = store.gc({kept}, grace_seconds=GRACE)
    assert report.removed == [] and store.get_bytes(kept) == b"referenced"
    assert store.get_bytes(orphan) == b"unreferenced"  # back, and renewed: a writer may be about to use it
    assert list(Path(store.root, "sha256").glob(f"*/*{blobs_module.TRASH_SUFFIX}")) == []
    assert store.gc({kept}, grace_seconds=0).removed == [orphan]


def test_renewing_blobs_a_writer_reuses_keeps_old_orphans_until_its_row_commits(tmp_path: Path) -> None:
    store = BlobStore(str(tmp_path / "blobs"))
    reused, orphan = store.put_bytes(b"known to the stat cache").digest, store.put_bytes(b"nobody's").digest
    past = time.time() - TWO_HOURS
    for digest in (reused, orphan):
        os.utime(store._path(digest), (past, past))
    missing = "0" * 64
    assert store.renew([reused, missing]) == {reused}  # the writer must store what is missing
    report = store.gc(set(), grace_seconds=GRACE)
    assert report.removed == [orphan] and store.exists(reused)


def test_a_data_add_renews_the_blobs_its_stat_cache_already_knew(workspace: Path) -> None:
    import shipyard
    from shipyard.context import open_context

    folder = workspace / "files"
    folder.mkdir()
    (folder / "a.txt").write_text("alpha")
    shipyard.data.add("docs", folder)
    ctx = open_context()
    digest = ctx.blobs.put_bytes(b"alpha").digest
    past = time.time() - TWO_HOURS
    os.utime(ctx.blobs._path(digest), (past, past))
    (folder / "b.txt").write_text("beta")  # a new version that reuses a.txt's blob through the stat cache
    shipyard.data.add("docs", folder)
    assert os.path.getmtime(ctx.blobs._path(digest)) > past + 60
