"""`shipyard predict`: score a dataset version or a table file with a registered model, in chunks."""

from __future__ import annotations

import sys
from typing import Annotated, Any, Optional

import typer

from shipyard.cli.output import console, print_json
from shipyard.cli.workspace import context


def predict(
    model: Annotated[str, typer.Argument(help="Model version or alias: credit/3, credit@champion.")],
    input_: Annotated[str, typer.Option("--input", "-i", help="A dataset version (credit@2) or a table file "
                                                              "(.parquet, .csv, .jsonl).")],
    output: Annotated[str, typer.Option("--output", "-o", help="The Parquet file to write the scores to.")],
    as_: Annotated[Optional[str], typer.Option("--as", help="Dataset to version the scores as "
                                                            "(default: MODEL-predictions).")] = None,
    keep: Annotated[Optional[list[str]], typer.Option("--keep", help="An input column to carry into the scores, "
                                                                     "besides the dataset's key (repeatable).")] = None,
    probabilities: Annotated[bool, typer.Option("--probabilities", help="Add a proba_CLASS column per class "
                                                                        "(classifiers).")] = False,
    chunk_rows: Annotated[int, typer.Option("--chunk-rows", min=1, help="Rows scored at a time: bounds the "
                                                                        "memory used.")] = 50_000,
    executor: Annotated[Optional[str], typer.Option("--executor", help="Where chunks are scored: local (this "
                                                                       "process) or dask://HOST:PORT.")] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON for scripts.")] = False,
) -> None:
    """Score INPUT with MODEL into a Parquet file, versioned as a dataset with its lineage."""
    from shipyard.serving.batch import predict_batch

    bar, update = _progress(not as_json)
    try:
        result = predict_batch(context(), model, input_, output, name=as_, chunk_rows=chunk_rows, keep=keep or [],
                               probabilities=probabilities, executor=executor, progress=update)
    finally:
        if bar is not None:
            bar.stop()
    if as_json:
        print_json(result.to_dict())
        return
    versioned = (f"versioned as {result.version.version_id}" if result.created
                 else f"unchanged since {result.version.version_id}; no new version")
    console().print(f"Scored {result.rows} rows of {result.input} with {result.model} in {result.chunks} chunk(s) "
                    f"({result.executor}) into {result.output}: {', '.join(result.columns)}; {versioned}.")


def _progress(enabled: bool) -> tuple[Any, Any]:
    """A progress bar of rows scored, on a terminal only."""
    if not enabled or not sys.stderr.isatty():
        return None, None
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TimeElapsedColumn, TimeRemainingColumn

    from shipyard.cli.output import err_console

    bar = Progress("scoring", BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(), TimeRemainingColumn(),
                   console=err_console(), transient=True)
    task = bar.add_task("predict", total=None)
    bar.start()

    def update(done: int, total: int | None) -> None:
        bar.update(task, completed=done, total=total)

    return bar, update
