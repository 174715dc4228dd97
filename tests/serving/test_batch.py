"""Batch scoring: chunks of bounded size, identifiers and order kept, the scores versioned once with their
lineage, every kind of bad input refused with nothing written, and the same bytes from a Dask cluster."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

import shipyard
from shipyard.errors import BackendError, NotFoundError, ValidationError
from shipyard.models.loading import LoadedModel
from shipyard.serving.batch import predict_batch
from tests.pipelines.test_dask import cluster  # noqa: F401 - the module's Dask cluster fixture
from tests.serving.conftest import training_frame

ROOT = Path(__file__).resolve().parents[2]


def ctx() -> Any:
    from shipyard.context import open_context

    return open_context()


def applicants(rows: int, seed: int = 1) -> pd.DataFrame:
    """Rows to score: shuffled ids (so input order is not id order), the model's columns and an extra one."""
    rng = np.random.default_rng(seed)
    return pd.DataFrame({
        "application_id": rng.permutation(rows) + 1000, "age": rng.integers(18, 80, rows),
        "income": rng.normal(50_000, 10_000, rows), "branch": rng.choice(["north", "south", "east"], rows),
    })


@pytest.fixture
def scored(model_workspace: Path) -> pd.DataFrame:
    """applicants@1 (key application_id, 2,500 rows) beside the registered classifier credit/1 and 2."""
    frame = applicants(2500)
    shipyard.data.add("applicants", frame, key=["application_id"])
    return frame


@pytest.fixture
def predict_calls(monkeypatch: pytest.MonkeyPatch) -> list[int]:
    """The number of rows each predict call of a loaded model received."""
    calls: list[int] = []
    original = LoadedModel.predict

    def recording(self: LoadedModel, frame: pd.DataFrame) -> np.ndarray:
        calls.append(len(frame))
        return original(self, frame)

    monkeypatch.setattr(LoadedModel, "predict", recording)
    return calls


def edges_into(node_id: str) -> set[tuple[str, str, str]]:
    from shipyard.store import lineage
    from shipyard.store.lineage import Node

    with ctx().store.read() as conn:
        return {(n.kind, n.id, relation) for n, relation in
                lineage.neighbours(conn, Node("dataset_version", node_id), upstream=True)}


def leftovers(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.iterdir() if p.name.endswith(".tmp") or p.suffix == ".parquet")


def test_scores_a_dataset_version_in_chunks_keeping_its_key_and_order(
    scored: pd.DataFrame, model_workspace: Path, predict_calls: list[int]
) -> None:
    result = predict_batch(ctx(), "credit@staging", "applicants@1", "scores.parquet", chunk_rows=300,
                           keep=["branch"], probabilities=True)
    assert predict_calls and max(predict_calls) == 300 and sum(predict_calls) == 2500
    assert (result.rows, result.chunks, result.max_chunk_rows, result.model) == (2500, 9, 300, "credit/2")
    out = pq.read_table(model_workspace / "scores.parquet")
    assert out.column_names == ["application_id", "branch", "prediction", "proba_no", "proba_yes"]
    assert out.schema.field("application_id").type == pa.int64()
    frame = out.to_pandas()
    assert frame["application_id"].tolist() == scored["application_id"].tolist()  # input order, not id order
    assert frame["branch"].tolist() == scored["branch"].tolist()
    model = shipyard.models.load("credit/2")
    whole = scored[["age", "income"]]
    assert frame["prediction"].tolist() == model.predict(whole).tolist()
    np.testing.assert_allclose(frame[["proba_no", "proba_yes"]].to_numpy(), model.predict_proba(whole))
    # Versioned as a dataset, derived from the model version and the input version.
    assert result.created and result.version.version_id == "credit-predictions@1"
    assert result.version.kind == "files" and result.version.file_count == 1
    assert edges_into("credit-predictions@1") == {("model_version", "credit/2", "derived"),
                                                  ("dataset_version", "applicants@1", "derived")}
    assert leftovers(model_workspace) == ["scores.parquet"]


def test_a_rerun_with_other_chunks_and_output_makes_no_new_version_nor_audit_event(
    scored: pd.DataFrame, model_workspace: Path
) -> None:
    from shipyard.governance.audit import audit_head

    first = predict_batch(ctx(), "credit/2", "applicants@1", "a.parquet", chunk_rows=1000)
    head = audit_head(ctx())
    again = predict_batch(ctx(), "credit/2", "applicants", "b.parquet", chunk_rows=77)
    assert first.created and not again.created
    assert again.version.version_id == first.version.version_id == "credit-predictions@1"
    assert (model_workspace / "a.parquet").read_bytes() == (model_workspace / "b.parquet").read_bytes()
    assert audit_head(ctx()) == head
    # Another model makes other scores: the next version, derived from that model.
    other = predict_batch(ctx(), "credit/1", "applicants@1", "c.parquet", name="credit-predictions")
    assert other.created and other.version.version_id == "credit-predictions@2"
    assert ("model_version", "credit/1", "derived") in edges_into("credit-predictions@2")


@pytest.mark.parametrize("suffix", [".parquet", ".csv", ".jsonl"])
def test_scores_a_table_file_read_in_chunks(model_workspace: Path, predict_calls: list[int], suffix: str) -> None:
    frame = applicants(1200, seed=3)
    path = model_workspace / f"batch{suffix}"
    if suffix == ".parquet":
        frame.to_parquet(path, row_group_size=500)
    elif suffix == ".csv":
        frame.to_csv(path, index=False)
    else:
        frame.to_json(path, orient="records", lines=True)
    result = predict_batch(ctx(), "credit/1", path, "out.parquet", chunk_rows=250, keep=["application_id"],
                           name="batch-scores")
    assert max(predict_calls) == 250 and len(predict_calls) == 5
    out = pd.read_parquet(model_workspace / "out.parquet")
    assert out["application_id"].tolist() == frame["application_id"].tolist()
    expected = shipyard.models.load("credit/1").predict(frame[["age", "income"]])
    assert out["prediction"].tolist() == expected.tolist()
    [(kind, node, relation)] = [e for e in edges_into(result.version.version_id) if e[0] != "model_version"]
    assert (kind, relation) == ("file", "derived")
    assert node.startswith(f"{path.resolve()}#sha256:")


def test_a_model_without_predict_proba_is_refused_before_anything_is_written(model_workspace: Path) -> None:
    from sklearn.linear_model import LinearRegression

    x, _ = training_frame()
    shipyard.models.register("income", LinearRegression().fit(x[["age"]], x["income"]), input_example=x[["age"]])
    frame = applicants(100)
    frame.to_parquet(model_workspace / "in.parquet")
    with pytest.raises(ValidationError, match="has no predict_proba; score without --probabilities"):
        predict_batch(ctx(), "income/1", "in.parquet", "out.parquet", probabilities=True)
    assert leftovers(model_workspace) == ["in.parquet"]
    result = predict_batch(ctx(), "income/1", "in.parquet", "out.parquet", chunk_rows=30)
    assert result.columns == ["prediction"] and result.version.version_id == "income-predictions@1"


# -- bad input: a clear error, no output file, no scratch left, no version ---------------------------------


def predictions_versions() -> list[str]:
    from shipyard.data.versions import list_datasets

    return [d["name"] for d in list_datasets(ctx()) if d["name"].endswith("predictions")]


@pytest.mark.parametrize(("model", "source", "output", "kind", "fragment"), [
    ("credit/9", "applicants@1", "o.parquet", NotFoundError, "no version 9"),
    ("nosuch/1", "applicants@1", "o.parquet", NotFoundError, "'nosuch'"),
    ("credit/1", "applicant@1", "o.parquet", NotFoundError, "Did you mean 'applicants'"),
    ("credit/1", "applicants@7", "o.parquet", NotFoundError, "7"),
    ("credit/1", "missing.csv", "o.parquet", NotFoundError, "'missing.csv' does not exist"),
    ("credit/1", "applicants@1", "o.csv", ValidationError, "'o.csv' is not a .parquet file"),
    ("credit/1", "applicants@1", "nofolder/o.parquet", ValidationError, "'nofolder' does not exist"),
    ("credit/1", "applicants@1", "afolder.parquet", ValidationError, "is a folder"),
    ("credit/1", "notes.txt", "o.parquet", ValidationError, "give a table file"),
    ("credit/1", "garbage.parquet", "o.parquet", ValidationError, "Cannot read"),
    ("credit/1", "header-only.csv", "o.parquet", ValidationError, "header-only.csv has no rows"),
    ("credit/1", "infinite.parquet", "o.parquet", ValidationError, "'credit/1' could not predict rows 0-99"),
])
def test_bad_input_is_named_and_leaves_nothing(
    scored: pd.DataFrame, model_workspace: Path, model: str, source: str, output: str, kind: type[Exception],
    fragment: str,
) -> None:
    (model_workspace / "afolder.parquet").mkdir()
    (model_workspace / "notes.txt").write_text("not a table")
    (model_workspace / "garbage.parquet").write_bytes(b"PAR1 this is not parquet at all PAR1")
    (model_workspace / "header-only.csv").write_text("application_id,age,income\n")
    applicants(100).assign(income=np.inf).to_parquet(model_workspace / "infinite.parquet")
    before = leftovers(model_workspace)
    with pytest.raises(kind, match=fragment.replace("(", r"\(")):
        predict_batch(ctx(), model, source, output)
    assert leftovers(model_workspace) == before
    assert predictions_versions() == []


def test_missing_columns_are_named_before_scoring(model_workspace: Path, predict_calls: list[int]) -> None:
    applicants(50).drop(columns=["income"]).to_csv(model_workspace / "partial.csv", index=False)
    with pytest.raises(ValidationError) as failure:
        predict_batch(ctx(), "credit/1", "partial.csv", "o.parquet")
    message = str(failure.value)
    assert "lacks the column(s) 'income'" in message and "signature: age, income" in message
    assert predict_calls == [] and not (model_workspace / "o.parquet").exists()
    applicants(50).to_csv(model_workspace / "whole.csv", index=False)
    with pytest.raises(ValidationError, match=r"--keep 'brnach' is not a column of .*Did you mean 'branch'"):
        predict_batch(ctx(), "credit/1", "whole.csv", "o.parquet", keep=["brnach"])


def test_a_failure_after_chunks_were_written_leaves_no_output_and_no_version(
    model_workspace: Path, predict_calls: list[int]
) -> None:
    frame = applicants(3000)
    frame.loc[2600, "income"] = None  # the model was registered with no nulls in income
    frame.to_parquet(model_workspace / "late-null.parquet")
    (model_workspace / "late-null-out.parquet").write_bytes(b"an older file the failed run must not replace")
    with pytest.raises(ValidationError,
                       match=r"rows 2500-2999 of .*late-null.parquet.*'income' has a null at row 2600,"):
        predict_batch(ctx(), "credit/1", "late-null.parquet", "late-null-out.parquet", chunk_rows=500)
    assert len(predict_calls) == 6  # five chunks scored and written before the sixth failed
    assert (model_workspace / "late-null-out.parquet").read_bytes().startswith(b"an older file")
    assert sorted(p.name for p in model_workspace.iterdir() if p.name.endswith(".tmp")) == []
    assert predictions_versions() == []


def test_a_csv_broken_deep_inside_fails_with_its_line_and_leaves_nothing(model_workspace: Path) -> None:
    path = model_workspace / "long.csv"
    applicants(60_000).to_csv(path, index=False)  # several read blocks
    with open(path, "a") as handle:
        handle.write("1,2,3,4,5,6\n")
    with pytest.raises(ValidationError, match="at line 60002: expected 4 fields like the header, found 6"):
        predict_batch(ctx(), "credit/1", path, "o.parquet", chunk_rows=5000)
    assert leftovers(model_workspace) == []
    assert predictions_versions() == []


def test_a_csv_whose_column_changes_type_late_is_refused_naming_it(model_workspace: Path) -> None:
    frame = applicants(60_000).astype({"age": "object"})
    frame.loc[59_000, "age"] = "unknown"  # past the first read block, whose types the reader settled on
    frame.to_csv(model_workspace / "drift.csv", index=False)
    with pytest.raises(ValidationError, match=r"Cannot read .*drift.csv as csv: .*'unknown'.*one type throughout"):
        predict_batch(ctx(), "credit/1", "drift.csv", "o.parquet", chunk_rows=5000)
    assert leftovers(model_workspace) == []
    assert predictions_versions() == []


@pytest.mark.parametrize("executor", ["dask:/127.0.0.1:1", "dask://127.0.0.1", "dask://host:port", "spark://x:1"])
def test_a_bad_executor_address_is_named(scored: pd.DataFrame, executor: str) -> None:
    with pytest.raises(ValidationError, match=f"Unknown executor '{executor}'"):
        predict_batch(ctx(), "credit/1", "applicants@1", "o.parquet", executor=executor)


def test_an_unreachable_scheduler_is_a_backend_error(scored: pd.DataFrame, model_workspace: Path,
                                                    monkeypatch: pytest.MonkeyPatch) -> None:
    from shipyard.serving import batch
    from tests.services import free_port

    monkeypatch.setattr(batch, "CONNECT_SECONDS", 0.5)  # nothing listens there: no need to keep trying

    address = f"127.0.0.1:{free_port()}"
    with pytest.raises(BackendError, match=f"Cannot reach the Dask scheduler at {address}"):
        predict_batch(ctx(), "credit/1", "applicants@1", "o.parquet", executor=f"dask://{address}")
    assert leftovers(model_workspace) == [] and predictions_versions() == []


# -- bounded memory -----------------------------------------------------------------------------------

MEASURE = """\
import json, resource, sys, tracemalloc

import pyarrow as pa

from shipyard.context import open_context
from shipyard.models.loading import LoadedModel
from shipyard.serving.batch import predict_batch

calls = []
original = LoadedModel.predict


def recording(self, frame):
    calls.append(len(frame))
    return original(self, frame)


LoadedModel.predict = recording
tracemalloc.start()
result = predict_batch(open_context(), "wide/1", sys.argv[1], sys.argv[2], chunk_rows=int(sys.argv[3]),
                       keep=["row_id"], name=sys.argv[4])
print(json.dumps({"calls": calls, "rows": result.rows, "python_peak": tracemalloc.get_traced_memory()[1],
                  "arrow_peak": pa.default_memory_pool().max_memory(),
                  "max_rss": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024}))
"""

FEATURES = [f"x{i}" for i in range(20)]


def _wide_file(path: Path, rows: int, chunk: int = 20_000) -> int:
    """A Parquet file of `rows` rows of 20 float features, written a chunk at a time; its in-memory size."""
    rng = np.random.default_rng(rows)
    writer, size = None, 0
    for start in range(0, rows, chunk):
        n = min(chunk, rows - start)
        table = pa.table({"row_id": np.arange(start, start + n), **{f: rng.normal(size=n) for f in FEATURES}})
        writer = writer or pq.ParquetWriter(path, table.schema)
        writer.write_table(table)
        size += table.nbytes
    assert writer is not None
    writer.close()
    return size


def _measure(workspace: Path, source: Path, rows_per_chunk: int, name: str) -> dict[str, Any]:
    env = {"PYTHONPATH": str(ROOT / "src"), "PATH": "/usr/bin:/bin", "SHIPYARD_USER": "tester"}
    done = subprocess.run([sys.executable, "-c", MEASURE, str(source), str(workspace / f"{name}.parquet"),
                           str(rows_per_chunk), name], cwd=workspace, env=env, capture_output=True, text=True,
                          timeout=600)
    assert done.returncode == 0, done.stderr
    return dict(json.loads(done.stdout.strip().splitlines()[-1]))


def test_a_table_many_chunks_long_is_scored_in_bounded_memory(workspace: Path) -> None:
    from sklearn.linear_model import LogisticRegression

    rng = np.random.default_rng(0)
    train = pd.DataFrame({f: rng.normal(size=2000) for f in FEATURES})
    shipyard.models.register("wide", LogisticRegression().fit(train, train["x0"] > 0), input_example=train.head())
    small_rows, large_rows, chunk = 80_000, 320_000, 10_000
    _wide_file(workspace / "small.parquet", small_rows)
    large_bytes = _wide_file(workspace / "large.parquet", large_rows)
    assert large_bytes > 50_000_000
    small = _measure(workspace, workspace / "small.parquet", chunk, "small")
    large = _measure(workspace, workspace / "large.parquet", chunk, "large")
    assert large["rows"] == large_rows and max(large["calls"]) == chunk and len(large["calls"]) == 32
    # Four times the rows (54 MB in memory if loaded whole, twice that as a DataFrame too): Python's heap
    # (numpy and pandas included) and Arrow's pool grow by less than a tenth of it, the resident set (which
    # the allocators round up) by less than a quarter.
    for peak, share in (("python_peak", 10), ("arrow_peak", 10), ("max_rss", 4)):
        assert large[peak] - small[peak] < large_bytes // share, (peak, small, large)
    assert large["arrow_peak"] < large_bytes // 2, (small, large)
    assert pq.ParquetFile(workspace / "large.parquet").metadata.num_rows == large_rows


# -- on a Dask cluster ------------------------------------------------------------------------------


def test_chunks_scored_on_a_dask_cluster_give_the_same_bytes_and_version(
    scored: pd.DataFrame, model_workspace: Path, cluster: str,  # noqa: F811 - the imported fixture
) -> None:
    here = predict_batch(ctx(), "credit@staging", "applicants@1", "here.parquet", chunk_rows=200,
                         keep=["branch"], probabilities=True)
    there = predict_batch(ctx(), "credit@staging", "applicants@1", "there.parquet", chunk_rows=200,
                          keep=["branch"], probabilities=True, executor=cluster)
    assert there.executor == cluster and there.chunks == 13
    assert (model_workspace / "here.parquet").read_bytes() == (model_workspace / "there.parquet").read_bytes()
    assert here.created and not there.created and there.version.version_id == here.version.version_id


def test_bad_rows_found_on_a_worker_come_back_named(model_workspace: Path, cluster: str) -> None:  # noqa: F811
    frame = applicants(1000)
    frame.loc[900, "income"] = None
    frame.to_parquet(model_workspace / "late-null.parquet")
    with pytest.raises(ValidationError, match=r"rows 800-999 of .*'income' has a null at row 900,"):
        predict_batch(ctx(), "credit/1", "late-null.parquet", "o.parquet", chunk_rows=200, executor=cluster)
    assert not (model_workspace / "o.parquet").exists() and predictions_versions() == []

