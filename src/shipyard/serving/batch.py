"""Batch scoring: a registered model over a dataset version or a table file, chunk by chunk in bounded
memory (here or on a Dask cluster), into a Parquet file that is versioned as a dataset with its lineage."""

from __future__ import annotations

import os
import shutil
import uuid
from collections import deque
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path
from typing import TYPE_CHECKING, Any

from shipyard.context import Context
from shipyard.data import formats
from shipyard.errors import BackendError, NotFoundError, ValidationError
from shipyard.serving.chunks import RowGroupWriter, ScoreSpec, TableSource, check_columns, score_chunk
from shipyard.store import lineage
from shipyard.store.lineage import Node

if TYPE_CHECKING:
    import pyarrow as pa

    from shipyard.data.records import DatasetVersion
    from shipyard.models.loading import LoadedModel

DEFAULT_CHUNK_ROWS = 50_000
#: The name of the scores file inside a predictions dataset version, whatever --output is called, so
#: the same scores make the same version.
OUTPUT_FILE = "predictions.parquet"
#: Chunks sent to a Dask cluster ahead of the one being written: bounds what the driver holds.
IN_FLIGHT_PER_WORKER = 2
#: How long a Dask client keeps trying to reach its scheduler before scoring fails.
CONNECT_SECONDS = 5.0

FILE = lineage.register_kind("file", "a local file read as input, named by its path and content digest")

Progress = Callable[[int, "int | None"], None]


@dataclass
class BatchResult:
    model: str  # the model version scored with, e.g. credit/3
    input: str  # the dataset version (credit@2) or the file scored
    output: Path
    rows: int
    chunks: int
    columns: list[str]
    version: DatasetVersion  # the predictions dataset version
    created: bool  # False when the same predictions were already the latest version
    executor: str = "local"
    max_chunk_rows: int = 0
    lineage: list[str] = field(default_factory=list)  # the nodes the predictions derive from

    def to_dict(self) -> dict[str, Any]:
        return {"model": self.model, "input": self.input, "output": str(self.output), "rows": self.rows,
                "chunks": self.chunks, "columns": self.columns, "version": self.version.version_id,
                "created": self.created, "executor": self.executor, "max_chunk_rows": self.max_chunk_rows,
                "lineage": self.lineage}


def predict_batch(
    ctx: Context,
    model_ref: str,
    source: str | os.PathLike[str],
    output: str | os.PathLike[str],
    *,
    name: str | None = None,
    chunk_rows: int = DEFAULT_CHUNK_ROWS,
    keep: Sequence[str] = (),
    probabilities: bool = False,
    executor: str | None = None,
    progress: Progress | None = None,
) -> BatchResult:
    """Score `source` (NAME@V, or a .parquet/.csv/.jsonl file) with `model_ref` (credit/3, credit@champion)
    into `output` (.parquet), and version the scores as dataset `name` (default MODEL-predictions).

    The output appears only when everything succeeded (it is written beside it, then renamed); an
    identical result to the latest version of `name` makes no new version."""
    from shipyard.data.refs import check_dataset_name
    from shipyard.models.loading import load_version
    from shipyard.models.registry import get_model_version

    if chunk_rows < 1:
        raise ValidationError(f"--chunk-rows must be at least 1, got {chunk_rows}.", chunk_rows=chunk_rows)
    target = _check_output(output)
    cluster = _parse_executor(executor)
    model_version = get_model_version(ctx, model_ref)
    dataset_name = check_dataset_name(name or f"{model_version.model}-predictions")
    scratch = target.parent / f".{target.name}.{uuid.uuid4().hex}.tmp"
    try:
        scratch.mkdir()
    except OSError as exc:
        raise ValidationError(f"Cannot write beside {target}: {exc.strerror}. Choose an output folder you may "
                              "write to.", output=str(target)) from None
    try:
        table, origin = _open_input(ctx, source, scratch)
        model = load_version(ctx, model_version)
        identifiers = _identifiers(origin, keep)
        check_columns(model, table.schema(), identifiers, table.label)
        spec = ScoreSpec(tuple(identifiers), probabilities, table.label)
        scores = scratch / OUTPUT_FILE
        writer = RowGroupWriter(scores)
        try:
            if cluster is None:
                chunks, biggest = _score_here(model, table, spec, chunk_rows, writer, progress)
            else:
                chunks, biggest = _score_on_dask(ctx, cluster, model_version.version_id, table, spec, chunk_rows,
                                                 writer, progress)
        except BaseException:
            writer.abort()
            raise
        writer.close()
        if writer.rows == 0:
            raise ValidationError(f"{table.label} has no rows; there is nothing to score.")
        version, created, sources = _version(ctx, dataset_name, scores, model_version.version_id, origin,
                                             message=f"Scores of {model_version.version_id} on {table.label}")
        columns = _columns(scores)
        os.replace(scores, target)
    finally:
        shutil.rmtree(scratch, ignore_errors=True)
    return BatchResult(model_version.version_id, table.label, target, writer.rows, chunks, columns, version,
                       created, executor=f"dask://{cluster}" if cluster else "local", max_chunk_rows=biggest,
                       lineage=[str(s) for s in sources])


# -- the pieces ------------------------------------------------------------------------------------


@dataclass(frozen=True)
class _Origin:
    """Where the input came from: a dataset version (with its key columns) or a file (with its digest)."""

    node: Node
    dataset_version: str | None = None
    key_columns: tuple[str, ...] = ()


def _check_output(output: str | os.PathLike[str]) -> Path:
    text = os.fspath(output)
    target = Path(text).expanduser()
    if target.suffix.lower() != ".parquet":
        raise ValidationError(f"The output {text!r} is not a .parquet file: scores are written as Parquet. Give a "
                              "path ending in .parquet, e.g. --output scores.parquet.", output=text)
    if target.is_dir():
        raise ValidationError(f"The output {text!r} is a folder; give a file path ending in .parquet.", output=text)
    parent = target.parent
    if not parent.is_dir():
        raise ValidationError(f"The output's folder {str(parent)!r} does not exist (or is a file). Create it "
                              "first, or choose another --output.", output=text)
    if not os.access(parent, os.W_OK):
        raise ValidationError(f"Cannot write {text!r}: its folder is not writable. Choose an --output you may "
                              "write to.", output=text)
    return target.resolve()


def _parse_executor(spec: str | None) -> str | None:
    """None for scoring in this process, else the Dask scheduler's HOST:PORT."""
    if spec in (None, "", "local"):
        return None
    assert spec is not None
    address = spec[len("dask://"):] if spec.startswith("dask://") else None
    host, _, port = (address or "").rpartition(":")
    if not host or not port.isdigit() or not 0 < int(port) < 65536:
        raise ValidationError(f"Unknown executor {spec!r}: use 'local' or 'dask://HOST:PORT' (e.g. "
                              "dask://127.0.0.1:8786).", executor=spec)
    return address


def _open_input(ctx: Context, source: str | os.PathLike[str], scratch: Path) -> tuple[TableSource, _Origin]:
    """A file when the path exists (or names a table file), else a dataset version reference."""
    from shipyard.data.versions import get_version

    text = os.fspath(source)
    path = Path(text).expanduser()
    fmt = formats.table_format(path)
    if path.exists():
        if path.is_dir() or fmt is None:
            raise ValidationError(
                f"Cannot score {text!r}: give a table file ({', '.join(sorted(formats.TABLE_FORMATS))}) or a dataset "
                "version (NAME@VERSION).", input=text)
        from shipyard.store.blobs import hash_file

        digest, _ = hash_file(path)
        return TableSource(path, fmt, str(path)), _Origin(Node(FILE, f"{path.resolve()}#sha256:{digest}"))
    if fmt is not None or os.sep in text:
        raise NotFoundError(f"The input file {text!r} does not exist. Check the path, or name a dataset version "
                            "(NAME@VERSION).", input=text)
    version = get_version(ctx, text)
    if version.table_digest is None:
        raise ValidationError(f"{version.version_id} is a set of files, not a table; score a table version or one "
                              "of its files (`shipyard data checkout`).", input=text)
    local = ctx.blobs.get_file(version.table_digest, scratch / "input.parquet")  # verified, streamed to disk
    origin = _Origin(Node("dataset_version", version.version_id), version.version_id, tuple(version.key_columns or ()))
    return TableSource(local, "parquet", version.version_id), origin


def _identifiers(origin: _Origin, keep: Sequence[str]) -> list[str]:
    """The dataset's key columns, then those --keep names, each once, in that order."""
    return list(dict.fromkeys([*origin.key_columns, *keep]))


def _score_here(model: LoadedModel, table: TableSource, spec: ScoreSpec, chunk_rows: int, writer: RowGroupWriter,
                progress: Progress | None) -> tuple[int, int]:
    total = table.row_count()
    chunks = biggest = done = 0
    for batch in table.batches(chunk_rows):
        writer.write(score_chunk(model, batch, spec, done))
        chunks, biggest, done = chunks + 1, max(biggest, batch.num_rows), done + batch.num_rows
        if progress is not None:
            progress(done, total)
    return chunks, biggest


def _score_on_dask(ctx: Context, address: str, model_version: str, table: TableSource, spec: ScoreSpec,
                   chunk_rows: int, writer: RowGroupWriter, progress: Progress | None) -> tuple[int, int]:
    """Chunks go to the workers as they are read, a few per worker ahead; scores are written in input order."""
    client = _dask_client(address)
    try:
        workers = max(1, len(client.scheduler_info().get("workers", {})))
        window: deque[tuple[Any, int]] = deque()
        total = table.row_count()
        chunks = biggest = done = sent = 0

        def collect() -> None:
            nonlocal done
            future, rows = window.popleft()
            writer.write(_remote_result(future, address))
            done += rows
            if progress is not None:
                progress(done, total)

        workspace = str(ctx.workspace.root)
        for batch in table.batches(chunk_rows):
            key = f"shipyard-score-{uuid.uuid4().hex}"
            window.append((client.submit(score_remote, workspace, ctx.actor, model_version, batch, spec, sent,
                                         key=key, pure=False), batch.num_rows))
            chunks, biggest, sent = chunks + 1, max(biggest, batch.num_rows), sent + batch.num_rows
            del batch
            while len(window) >= workers * IN_FLIGHT_PER_WORKER:
                collect()
        while window:
            collect()
        return chunks, biggest
    finally:
        client.close()


def _dask_client(address: str) -> Any:
    try:
        from distributed import Client
    except ModuleNotFoundError:
        raise BackendError("Scoring on Dask needs dask.distributed. Install it with "
                           "`pip install 'shipyard-mlops[dask]'`.") from None
    try:
        return Client(address, timeout=CONNECT_SECONDS, set_as_default=False)
    except (OSError, TimeoutError) as exc:
        raise BackendError(f"Cannot reach the Dask scheduler at {address}: {exc}. Start one with `dask scheduler` "
                           "or check the address (--executor dask://HOST:PORT).", executor=address) from None


def _remote_result(future: Any, address: str) -> pa.Table:
    from shipyard.errors import ShipyardError

    try:
        return future.result()
    except ShipyardError:
        raise  # bad input found on the worker: the same message as here
    except Exception as exc:  # noqa: BLE001 - a lost worker, a cancelled task
        raise BackendError(f"Scoring a chunk on the Dask cluster at {address} failed: {type(exc).__name__}: {exc}. "
                           "Check that the workers run and can open the workspace.") from None


def score_remote(workspace: str, actor: str, model_version: str, batch: pa.RecordBatch, spec: ScoreSpec,
                 first_row: int) -> pa.Table:
    """One chunk scored on a Dask worker, with the model loaded once per worker process."""
    return score_chunk(_worker_model(workspace, actor, model_version), batch, spec, first_row)


@lru_cache(maxsize=4)
def _worker_model(workspace: str, actor: str, model_version: str) -> LoadedModel:
    from shipyard.context import open_context
    from shipyard.models.loading import load_model

    return load_model(open_context(workspace, actor=actor), model_version)


def _version(ctx: Context, name: str, scores: Path, model_version: str, origin: _Origin, *,
             message: str) -> tuple[DatasetVersion, bool, list[Node]]:
    """Version the scores file (streamed into the blob store, never loaded) with edges from the input
    dataset version (in the version's own transaction) and from the model version and a file input."""
    from shipyard.data.versions import add_version

    parents = [origin.dataset_version] if origin.dataset_version else []
    result = add_version(ctx, name, scores, kind="files", parents=parents, message=message)
    node = Node("dataset_version", result.version.version_id)
    sources = [Node("model_version", model_version), origin.node]
    with ctx.store.read() as conn:
        present = {other for other, _ in lineage.neighbours(conn, node, upstream=True)}
    for src in sources:
        if src not in present:  # a re-run records nothing new (and leaves no audit event)
            lineage.record_edge(ctx.store, ctx.actor, src, node, "derived")
    return result.version, result.created, sources


def _columns(path: Path) -> list[str]:
    import pyarrow.parquet as pq

    return list(pq.ParquetFile(path).schema_arrow.names)

