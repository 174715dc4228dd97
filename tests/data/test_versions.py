"""Dataset versions on each metadata backend: add, re-add, modify, diff, checkout, load, status."""

from __future__ import annotations

import codecs
import filecmp
import os
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from sklearn.datasets import load_breast_cancer, load_wine

import shipyard
from shipyard.errors import ConflictError, NotFoundError, ValidationError


def age(folder: Path, seconds: float = 120) -> None:
    """Make files look written a while ago, as data on disk usually is (fresh files are not cached)."""
    past = time.time() - seconds
    for path in [folder, *folder.rglob("*")] if folder.is_dir() else [folder]:
        os.utime(path, (past, past))


@pytest.fixture
def folder(tmp_path: Path) -> Path:
    root = tmp_path / "images"
    for i in range(40):
        sub = root / f"class_{i % 4}"
        sub.mkdir(parents=True, exist_ok=True)
        (sub / f"img_{i}.bin").write_bytes(os.urandom(100 + i))
    age(root)
    return root


def test_folder_versions_status_diff_and_checkout(backend_workspace: Path, folder: Path, tmp_path: Path) -> None:
    first = shipyard.data.add("images", folder, message="first crop")
    assert first.created and first.version.version_id == "images@1"
    assert (first.version.kind, first.version.file_count) == ("files", 40)
    assert first.files_read == 40
    again = shipyard.data.add("images", folder)
    assert not again.created and again.version.version_id == "images@1"
    assert again.files_read == 0  # every digest came from the stat cache

    clean = shipyard.data.status("images", folder)
    assert clean.clean and clean.unchanged == 40 and clean.files_read == 0
    (folder / "class_0" / "img_0.bin").write_bytes(b"retouched")
    (folder / "class_1" / "img_1.bin").unlink()
    (folder / "class_9").mkdir()
    (folder / "class_9" / "new.bin").write_bytes(b"new")
    dirty = shipyard.data.status("images", folder)
    assert (dirty.modified, dirty.removed, dirty.added) == (["class_0/img_0.bin"], ["class_1/img_1.bin"], ["class_9/new.bin"])
    assert dirty.files_read == 2  # only the files whose stat changed were read

    second = shipyard.data.add("images", folder, message="retouched")
    assert second.version.version_id == "images@2" and second.version.file_count == 40
    change = shipyard.data.diff("images@1", "images@2")
    assert (change.files_added, change.files_removed, change.files_changed) == (
        ["class_9/new.bin"], ["class_1/img_1.bin"], ["class_0/img_0.bin"])

    out = tmp_path / "restored"
    shipyard.data.checkout("images@2", out)
    match, mismatch, errors = filecmp.cmpfiles(folder, out, [p.relative_to(folder).as_posix() for p in folder.rglob("*") if p.is_file()], shallow=False)
    assert len(match) == 40 and mismatch == [] and errors == []
    with pytest.raises(ConflictError, match="--force"):
        shipyard.data.checkout("images@1", out)
    shipyard.data.checkout("images@1", out, force=True)
    assert (out / "class_1" / "img_1.bin").exists()
    assert [v.version for v in shipyard.data.log("images")] == [2, 1]
    assert shipyard.verify_audit().ok


def test_tables_from_files_and_frames(backend_workspace: Path, tmp_path: Path) -> None:
    frame = load_breast_cancer(as_frame=True).frame
    frame.insert(0, "patient_id", np.arange(len(frame)))
    csv = tmp_path / "cancer.csv"
    frame.to_csv(csv, index=False)
    age(csv)
    v1 = shipyard.data.add("cancer", csv, key=["patient_id"]).version
    assert (v1.kind, v1.row_count, v1.key_columns) == ("table", 569, ["patient_id"])
    assert [c["name"] for c in v1.table_schema or []][:2] == ["patient_id", "mean radius"]
    assert v1.profile is not None and v1.profile["columns"]["mean radius"]["null_count"] == 0
    pd.testing.assert_frame_equal(shipyard.data.load("cancer@1"), frame, check_dtype=False)

    changed = frame.iloc[20:].copy()  # 20 rows gone
    extra = frame.iloc[:5].copy()
    extra["patient_id"] += 10_000  # 5 rows added
    changed = pd.concat([changed, extra])
    changed["mean radius"] = changed["mean radius"] * 1.1
    changed.to_csv(csv, index=False)
    v2 = shipyard.data.add("cancer", csv, message="march extract").version
    assert v2.version == 2
    d = shipyard.data.diff("cancer@1", "cancer@2")
    assert d.row_count == (569, 554) and (d.rows_added, d.rows_removed) == (5, 20) and d.key == ["patient_id"]
    assert "mean radius" in d.stat_shifts and "mean" in d.stat_shifts["mean radius"]

    out = tmp_path / "out"
    shipyard.data.checkout("cancer@1", out)
    assert (out / "cancer.csv").read_bytes().count(b"\n") == 570  # the original bytes, header included
    wine = load_wine(as_frame=True).frame
    w = shipyard.data.add("wine", wine).version
    assert w.row_count == 178 and w.file_count == 1
    assert not shipyard.data.add("wine", wine.copy()).created  # the same content is not a new version
    pd.testing.assert_frame_equal(shipyard.data.load("wine"), wine)


def test_parquet_and_json_lines(workspace: Path, tmp_path: Path) -> None:
    frame = pd.DataFrame({"id": [1, 2, 3], "city": ["Oslo", "Lima", None], "score": [0.5, 1.5, 2.5]})
    frame.to_parquet(tmp_path / "t.parquet")
    frame.to_json(tmp_path / "t.jsonl", orient="records", lines=True)
    assert shipyard.data.add("pq", tmp_path / "t.parquet").version.row_count == 3
    v = shipyard.data.add("jl", tmp_path / "t.jsonl").version
    assert v.row_count == 3 and v.profile["columns"]["city"]["null_count"] == 1  # type: ignore[index]


def test_a_generated_larger_table(workspace: Path) -> None:
    rng = np.random.default_rng(7)
    n = 200_000
    frame = pd.DataFrame({
        "amount": rng.lognormal(3, 1, n),
        "age": rng.integers(18, 90, n),
        "region": rng.choice(["north", "south", "east", "west"], n),
        "ts": pd.Timestamp("2026-01-01") + pd.to_timedelta(rng.integers(0, 86400 * 300, n), unit="s"),
    })
    version = shipyard.data.add("big", frame).version
    columns = version.profile["columns"]  # type: ignore[index]
    assert version.row_count == n
    assert columns["region"]["kind"] == "categorical" and {t["value"] for t in columns["region"]["top"]} == {"north", "south", "east", "west"}
    assert columns["age"]["min"] >= 18 and columns["age"]["max"] <= 89
    assert shipyard.data.load("big@1").shape == (n, 4)


def test_diff_shows_instants_as_dates_and_no_shifts_of_key_columns(
    workspace: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from shipyard.cli.main import main

    frame = pd.DataFrame({"id": range(100), "amount": np.linspace(0.0, 99.0, 100),
                          "at": pd.date_range("2026-01-01", periods=100, freq="h")})
    shipyard.data.add("events", frame, key=["id"])
    later = frame.assign(id=frame["id"] + 100, at=frame["at"] + pd.Timedelta(days=30), amount=frame["amount"] * 2)
    shipyard.data.add("events", later, key=["id"])
    d = shipyard.data.diff("events@1", "events@2")
    assert (d.key, d.rows_added, d.rows_removed) == (["id"], 100, 100)
    assert set(d.stat_shifts) == {"amount", "at"}  # the key's statistics move with every new id: not a shift
    assert d.stat_shifts["at"]["min"] == ("2026-01-01T00:00:00Z", "2026-01-31T00:00:00Z")
    assert d.stat_shifts["at"]["max"] == ("2026-01-05T03:00:00Z", "2026-02-04T03:00:00Z")
    assert "std" not in d.stat_shifts["at"]  # the same spread
    capsys.readouterr()
    assert main(["data", "diff", "events@1", "events@2"]) == 0
    out = capsys.readouterr().out
    assert "2026-01-31T00:00:00Z" in out and "e+09" not in out  # not epoch seconds
    assert "│ id " not in out


@pytest.mark.parametrize(
    "call, error, message",
    [
        (lambda p: shipyard.data.add("bad name!", p / "ok.csv"), ValidationError, "Invalid dataset name"),
        (lambda p: shipyard.data.add("x", p / "missing.csv"), NotFoundError, "does not exist"),
        (lambda p: shipyard.data.add("x", p / "broken.csv"), ValidationError, "at line 3"),
        (lambda p: shipyard.data.add("x", p / "latin1.csv"), ValidationError, "line 2: it is not UTF-8"),
        (lambda p: shipyard.data.add("x", p / "latin1-header.csv"), ValidationError, "line 1: it is not UTF-8.*iconv"),
        (lambda p: shipyard.data.add("x", p / "utf16-no-bom.csv"), ValidationError, "UTF-16LE .*without a byte-order mark"),
        (lambda p: shipyard.data.add("x", p / "dupes.csv"), ValidationError, "duplicate column names: 'v' \\(2 times\\), 'w'"),
        (lambda p: shipyard.data.add("x", pd.DataFrame([[1, 2]], columns=["v", "v"])), ValidationError, "duplicate column names: 'v'"),
        (lambda p: shipyard.data.add("x", ""), ValidationError, "path to add is empty"),
        (lambda p: shipyard.data.add("x", p / "bad.jsonl"), ValidationError, "at line 2"),
        (lambda p: shipyard.data.add("x", p / "sheet.xlsx", kind="table"), ValidationError, "Unsupported table file type '.xlsx'"),
        (lambda p: shipyard.data.add("x", p / "ok.csv", kind="tabel"), ValidationError, "Unknown kind"),
        (lambda p: shipyard.data.add("x", p / "ok.csv", key=["idd"]), ValidationError, "Did you mean 'id'"),
        (lambda p: shipyard.data.add("x", p / "empty"), ValidationError, "holds no files"),
        (lambda p: shipyard.data.add("x", p / "ok.csv", parents=["nope@1"]), NotFoundError, "No dataset named 'nope'"),
        (lambda p: shipyard.data.add("x", "not a frame", kind="table"), NotFoundError, "does not exist"),
    ],
)
def test_bad_input_writes_nothing(workspace: Path, tmp_path: Path, call, error, message: str) -> None:  # type: ignore[no-untyped-def]
    (tmp_path / "ok.csv").write_text("id,v\n1,2\n")
    (tmp_path / "broken.csv").write_text("a,b,c\n1,2,3\n4,5\n")
    (tmp_path / "latin1.csv").write_bytes("name,city\nJosé,Zürich\n".encode("latin-1"))
    (tmp_path / "latin1-header.csv").write_bytes("café,city\n1,2\n".encode("latin-1"))
    (tmp_path / "utf16-no-bom.csv").write_bytes("id,v\n1,2\n".encode("utf-16-le"))
    (tmp_path / "dupes.csv").write_text("id,v,w,v,w\n1,2,3,4,5\n")
    (tmp_path / "bad.jsonl").write_text('{"a": 1}\n{"a": \n')
    (tmp_path / "sheet.xlsx").write_bytes(b"PK\x03\x04")
    (tmp_path / "empty").mkdir()
    events_before = len(shipyard.audit_log(limit=1000))
    with pytest.raises(error, match=message):
        call(tmp_path)
    assert len(shipyard.audit_log(limit=1000)) == events_before
    assert _datasets() == []
    from shipyard.context import open_context

    assert list(open_context().blobs.iter_digests()) == []  # no orphaned blob either
    assert shipyard.verify_audit().ok


@pytest.mark.parametrize("encoding", ["utf-16", "utf-16-be", "utf-32", "utf-8-sig"])
def test_a_csv_with_a_byte_order_mark_is_read_as_its_encoding(workspace: Path, tmp_path: Path, encoding: str) -> None:
    text = "name,city,score\nJosé,Zürich,1.5\nÅsa,Tromsø,2.5\n"
    data = text.encode(encoding)
    if encoding == "utf-16-be":  # Python writes no mark for an explicit byte order
        data = codecs.BOM_UTF16_BE + data
    (tmp_path / "t.csv").write_bytes(data)
    version = shipyard.data.add("t", tmp_path / "t.csv").version
    assert [c["name"] for c in version.table_schema or []] == ["name", "city", "score"]
    expected = pd.DataFrame({"name": ["José", "Åsa"], "city": ["Zürich", "Tromsø"], "score": [1.5, 2.5]})
    pd.testing.assert_frame_equal(shipyard.data.load("t@1"), expected)


def _datasets() -> list[object]:
    from shipyard.context import open_context
    from shipyard.data.versions import list_datasets

    return list_datasets(open_context())


def test_unknown_versions_list_what_exists(workspace: Path) -> None:
    shipyard.data.add("iris", pd.DataFrame({"a": [1, 2]}))
    shipyard.data.add("iris", pd.DataFrame({"a": [1, 2, 3]}))
    with pytest.raises(NotFoundError, match="has no version 7. Versions: iris@1, iris@2"):
        shipyard.data.get("iris@7")
    with pytest.raises(NotFoundError, match="Did you mean 'iris'"):
        shipyard.data.get("irsi@1")
    with pytest.raises(ValidationError, match="expected a positive number or 'latest'"):
        shipyard.data.get("iris@two")
    with pytest.raises(NotFoundError, match="Datasets: iris"):
        shipyard.data.load("nope@1")


def test_load_refuses_file_sets(workspace: Path, folder: Path) -> None:
    shipyard.data.add("images", folder)
    with pytest.raises(ValidationError, match="is a set of files, not a table"):
        shipyard.data.load("images@1")


ADD_SCRIPT = """
import sys, pandas as pd, shipyard
frame = pd.DataFrame({"writer": [int(sys.argv[1])] * 1000, "x": range(1000)})
result = shipyard.data.add("shared", frame)
print(result.version.version_id)
"""


def test_two_processes_adding_at_once_get_two_versions(backend_workspace: Path) -> None:
    procs = [subprocess.Popen([sys.executable, "-c", ADD_SCRIPT, str(i)], stdout=subprocess.PIPE,
                              stderr=subprocess.PIPE, text=True) for i in range(2)]
    outputs = [p.communicate(timeout=120) for p in procs]
    assert [p.returncode for p in procs] == [0, 0], [o[1] for o in outputs]
    assert sorted(o[0].strip() for o in outputs) == ["shared@1", "shared@2"]
    assert sorted(shipyard.data.load(f"shared@{v}")["writer"][0] for v in (1, 2)) == [0, 1]
    assert shipyard.verify_audit().ok


def test_versions_on_an_s3_artifact_store(workspace: Path, folder: Path, tmp_path: Path, moto,  # type: ignore[no-untyped-def]
                                          monkeypatch: pytest.MonkeyPatch) -> None:
    bucket = moto.new_bucket()
    monkeypatch.setenv("SHIPYARD_ARTIFACTS_URL", f"s3://{bucket}/shipyard")
    monkeypatch.setenv("SHIPYARD_ARTIFACTS_ENDPOINT_URL", moto.endpoint)
    first = shipyard.data.add("images", folder)
    assert first.created and first.version.file_count == 40
    assert not shipyard.data.add("images", folder).created
    frame = load_wine(as_frame=True).frame
    shipyard.data.add("wine", frame)
    pd.testing.assert_frame_equal(shipyard.data.load("wine@1"), frame)
    out = tmp_path / "from-s3"
    shipyard.data.checkout("images@1", out)
    assert sorted(p.relative_to(out) for p in out.rglob("*.bin")) == sorted(p.relative_to(folder) for p in folder.rglob("*.bin"))
    assert all((out / p.relative_to(folder)).read_bytes() == p.read_bytes() for p in folder.rglob("*.bin"))
    import boto3

    listed = boto3.client("s3", endpoint_url=moto.endpoint).list_objects_v2(Bucket=bucket, Prefix="shipyard/sha256/")
    assert listed["KeyCount"] == 40 + 1  # 40 images + the wine table's Parquet form


def test_adding_unchanged_content_writes_nothing_not_even_an_audit_event(workspace: Path) -> None:
    import pandas as pd

    import shipyard

    frame = pd.DataFrame({"a": [1, 2, 3]})
    shipyard.data.add("same", frame)
    before = shipyard.audit_head()
    shipyard.data.add("same", frame)
    assert shipyard.audit_head() == before
    assert [v.version for v in shipyard.data.log("same")] == [1]
