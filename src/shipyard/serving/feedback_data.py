"""Training data from a deployment's labelled requests: a new version of the standard pipeline's dataset built
from the inputs logged for the requests the deployment answered, with their feedback as the target, after the
rows of the dataset's newest version that was not itself built this way (or alone).

The log holds the model's inputs only, so the dataset's other columns (ids, timestamps, the columns
`features.drop` removes) are empty in those rows: nothing is made up. The version keeps the dataset's columns
and types, is checked against the dataset's contract before it is written, and comes from the model versions
whose requests it holds (lineage: model_version → dataset_version, derived)."""

from __future__ import annotations

import json
import math
from dataclasses import asdict, dataclass, field
from typing import TYPE_CHECKING, Any

from shipyard.errors import ConfigError, ValidationError

if TYPE_CHECKING:
    import pandas as pd
    import pyarrow as pa

    from shipyard.context import Context
    from shipyard.data.records import DatasetVersion
    from shipyard.policy.retrain import FeedbackSpec

#: How a version built from feedback comes from the model versions whose logged requests it holds.
RELATION = "derived"
#: Anomalies of the contract shown in an error (the rest are counted).
SHOWN = 5


@dataclass
class FeedbackVersion:
    """The dataset version built from feedback, and what went into it."""

    version: str  # e.g. credit@4: the version to train on
    created: bool  # False: the newest version holds these rows already (a step run again)
    base: str | None  # the version whose rows come first (combine: latest)
    base_rows: int
    feedback_rows: int  # labelled rows taken
    requests: int  # requests those rows came from
    models: list[str]  # the model versions that answered them
    since: str | None  # requests that arrived in [since, until] (UTC, ISO 8601); since None: all logged
    until: str
    skipped: int = 0  # labelled rows whose label is no value of the target's type
    skipped_example: dict[str, Any] | None = None
    empty_columns: list[str] = field(default_factory=list)  # dataset columns the log does not hold

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def build_feedback_version(ctx: Context, deployment: str, model: str, settings: FeedbackSpec, *, until_ms: int,
                           note: str, where: str = "feedback") -> FeedbackVersion:
    """Version the labelled requests of `model` answered through `deployment` up to `until_ms` (unix ms; with
    `settings.window`, from that long before) as the next version of the standard pipeline's dataset.

    Built from the store as it was at `until_ms` (the feedback received by then), so building again makes
    the same content, which makes no new version. Fewer than `settings.min_rows` labelled rows, or rows the
    dataset's contract refuses, raise a ValidationError before anything is written; `where` names the
    settings in messages (e.g. retrain.credit-api.feedback)."""
    from shipyard.data.refs import parse_ref
    from shipyard.data.versions import add_version, get_version
    from shipyard.store.lineage import Node

    lifecycle = ctx.policy.lifecycle()
    dataset, target = parse_ref(lifecycle.data.dataset).dataset, lifecycle.data.target
    newest = get_version(ctx, dataset)
    base = _base(ctx, dataset)
    shape = _table(ctx, base)
    if target not in shape.column_names:
        raise ConfigError(f"shipyard.yaml: data.target {target!r} is not a column of {base.version_id}; the "
                          f"columns are {', '.join(shape.column_names)}.")
    since_ms = None if settings.window is None else until_ms - round(settings.window * 1000)
    rows, logged = labelled_requests(ctx, deployment, model, since_ms, until_ms)
    inputs = _inputs(rows, shape.column_names, target, dataset, model)
    labels, kept, skipped, example = _labels(rows, shape.schema.field(target).type)
    period = (f"from {_iso(since_ms)} to {_iso(until_ms)}" if since_ms is not None else f"up to {_iso(until_ms)}")
    taken = rows[kept].reset_index(drop=True)
    if len(taken) < settings.min_rows:
        problems = (f"; {skipped} more had a label that is not a value of {target}'s type "
                    f"({shape.schema.field(target).type}), e.g. {example['value']!r}" if skipped and example else "")
        raise ValidationError(
            f"Only {len(taken)} labelled rows for training: {logged} rows of {model} were logged "
            f"through deployment '{deployment}' {period}, {len(rows)} of them with feedback{problems}. "
            f"{where}.min_rows asks for {settings.min_rows}: send more feedback (POST /v2/models/{model}/feedback "
            f"or `shipyard feedback record`), widen {where}.window, or lower {where}.min_rows.",
            rows=len(taken), min_rows=settings.min_rows)
    table = _feedback_table(shape, taken, inputs, target, labels)
    combined = settings.combine == "latest"
    if combined:
        import pyarrow as pa

        table = pa.concat_tables([shape, table])
    empty = [c for c in shape.column_names if c != target and c not in inputs]
    _check_contract(ctx, table, newest, dataset, lifecycle.data.schema_file, empty, len(taken))
    models = sorted({f"{model}/{int(v)}" for v in taken["version"]})
    requests = int(taken["request_id"].nunique())
    message = (f"{len(taken)} labelled rows of {requests} requests answered by {', '.join(models)} through "
               f"deployment {deployment} {period}" + (f", after the {shape.num_rows} rows of {base.version_id}"
                                                       if combined else "") + f" ({note})")
    result = add_version(ctx, dataset, table, message=message, key=base.key_columns,
                         parents=[base.version_id] if combined else [],
                         sources=[(Node("model_version", m), RELATION) for m in models])
    return FeedbackVersion(
        result.version.version_id, result.created, base.version_id if combined else None,
        shape.num_rows if combined else 0, len(taken), requests, models, _iso(since_ms), _iso(until_ms) or "",
        skipped, example, empty)


def labelled_requests(ctx: Context, deployment: str, model: str, since_ms: int | None,
                      until_ms: int) -> tuple[pd.DataFrame, int]:
    """The rows of `model`'s requests answered through `deployment` in [since_ms, until_ms] (all its versions
    and the routes that answered: a shadow's copies are the same requests) that have feedback received by
    `until_ms`, with it in `feedback` (the row's own, else the request's), oldest first; and how many answered
    rows there were in all."""
    from shipyard.serving.batches import read_predictions
    from shipyard.serving.feedback import attach_feedback, latest_feedback

    logged = read_predictions(ctx, model, since=None if since_ms is None else since_ms / 1000,
                              until=(until_ms + 1) / 1000, deployment=deployment)
    if "error" in logged.columns:
        logged = logged[logged["error"].isna()]
    if "deployment_route" in logged.columns:
        logged = logged[logged["deployment_route"] != "shadow"]
    logged = logged.drop_duplicates(["request_id", "row"]).astype({"row": "int32"}).reset_index(drop=True)
    import pandas as pd

    given = latest_feedback(ctx, model)
    given = given[(given["feedback_at"] <= pd.Timestamp(until_ms, unit="ms", tz="UTC"))
                  & given["request_id"].isin(set(logged["request_id"]))]
    joined = attach_feedback(logged, given)
    return joined.sort_values(["timestamp", "request_id", "row"], kind="stable", ignore_index=True), len(logged)


def _base(ctx: Context, dataset: str) -> DatasetVersion:
    """The newest version of `dataset` that was not built from feedback (its rows are the dataset's own)."""
    from shipyard.data.versions import list_versions
    from shipyard.store.lineage import Node, first_source

    versions = list_versions(ctx, dataset)
    with ctx.store.read() as conn:
        for version in versions:
            if first_source(conn, Node("dataset_version", version.version_id), "model_version", RELATION) is None:
                return version
    raise ValidationError(f"Every version of '{dataset}' was built from feedback; add the dataset's own rows "
                          f"with `shipyard data add {dataset} FILE` first.", dataset=dataset)


def _table(ctx: Context, version: DatasetVersion) -> pa.Table:
    from shipyard.data.workspace_files import load_arrow

    if version.kind != "table":
        raise ConfigError(f"shipyard.yaml: data.dataset {version.dataset!r} is a set of files; training needs a table.")
    return load_arrow(ctx, version).replace_schema_metadata(None)  # rows are added: the pandas index note goes


def _inputs(rows: pd.DataFrame, columns: list[str], target: str, dataset: str, model: str) -> dict[str, str]:
    """The dataset's columns the log holds, by the name each has in the log."""
    from shipyard.serving.batches import COLUMNS, DEPLOYMENT_COLUMNS, FEATURE_PREFIX, OUTPUTS, RESERVED

    meta = {*COLUMNS, *OUTPUTS, *DEPLOYMENT_COLUMNS, "version", "feedback", "feedback_at"}
    logged = [c for c in rows.columns if c not in meta]
    found = {c: (f"{FEATURE_PREFIX}{c}" if c in RESERVED else c) for c in columns if c != target}
    found = {c: name for c, name in found.items() if name in logged}
    foreign = [c.removeprefix(FEATURE_PREFIX) for c in logged if c not in found.values()]
    if foreign:
        raise ValidationError(
            f"The logged inputs of {model} include {', '.join(map(repr, foreign))}, which {dataset} has no column "
            f"for (made by features.function?); a version of {dataset} cannot be built from them. Train on "
            "data: latest, or log the dataset's own columns.", columns=foreign)
    return found


def _labels(rows: pd.DataFrame, kind: pa.DataType) -> tuple[list[Any], list[bool], int, dict[str, Any] | None]:
    """The feedback values as values of `kind`, which rows have one, how many do not, and the first of those."""
    values, kept, example = [], [], None
    for request_id, row, value in zip(rows["request_id"], rows["row"], rows["feedback"], strict=True):
        coerced = _coerce(value, kind)
        kept.append(coerced is not None)
        if coerced is not None:
            values.append(coerced)
        elif example is None:
            example = {"request_id": str(request_id), "row": int(row), "value": _plain(value)}
    return values, kept, kept.count(False), example


def _coerce(value: Any, kind: pa.DataType) -> Any:
    """`value` (a feedback value: JSON) as a value of the Arrow type `kind`, or None when it is none."""
    import pyarrow as pa

    value = _plain(value)
    if value is None or isinstance(value, list | dict):
        return None
    if pa.types.is_boolean(kind):
        text = str(value).strip().lower()
        return {"true": True, "1": True, "false": False, "0": False}.get(text)
    if pa.types.is_integer(kind) or pa.types.is_floating(kind):
        number = _number(value)
        if number is None or (pa.types.is_integer(kind) and not float(number).is_integer()):
            return None
        value = int(number) if pa.types.is_integer(kind) else float(number)
    elif pa.types.is_string(kind) or pa.types.is_large_string(kind):
        value = value if isinstance(value, str) else json.dumps(value)
    try:
        return pa.scalar(value, kind).as_py()  # out of range, or a type with no rule here that refuses it
    except (pa.ArrowInvalid, pa.ArrowTypeError, pa.ArrowNotImplementedError, OverflowError, TypeError, ValueError):
        return None


def _number(value: Any) -> float | int | None:
    if isinstance(value, bool):
        return int(value)
    if isinstance(value, int):
        return value
    try:
        number = float(value)
    except (TypeError, ValueError):
        return None
    return number if math.isfinite(number) else None


def _plain(value: Any) -> Any:
    item = getattr(value, "item", None)  # numpy scalars from the joined frame
    return item() if callable(item) and not isinstance(value, list | dict | str) else value


def _feedback_table(shape: pa.Table, rows: pd.DataFrame, inputs: dict[str, str], target: str,
                    labels: list[Any]) -> pa.Table:
    """The labelled rows with the dataset's columns and types: the inputs as logged, the labels as the target,
    the rest empty."""
    import pyarrow as pa

    columns = []
    for column in shape.schema:
        if column.name == target:
            columns.append(pa.array(labels, column.type))
        elif column.name in inputs:
            logged = rows[inputs[column.name]]
            try:
                columns.append(pa.array(logged, from_pandas=True).cast(column.type))
            except (pa.ArrowInvalid, pa.ArrowTypeError, pa.ArrowNotImplementedError) as exc:
                raise ValidationError(f"The logged values of {column.name!r} are not values of its type in the "
                                      f"dataset ({column.type}): {exc}", column=column.name) from None
        else:
            columns.append(pa.nulls(len(rows), column.type))
    return pa.Table.from_arrays(columns, schema=pa.schema([pa.field(f.name, f.type) for f in shape.schema]))


def _check_contract(ctx: Context, table: pa.Table, newest: DatasetVersion, dataset: str, schema_file: str | None,
                    empty: list[str], rows: int) -> None:
    """The checks the pipeline's validate step makes (its contract, against the newest version), before the
    version is written: a version the pipeline would refuse is not written."""
    from pathlib import Path

    from shipyard.data.checks import schema_path
    from shipyard.data.profile import profile_table
    from shipyard.data.schema import load_schema
    from shipyard.data.validation import validate_table

    path = Path(schema_file) if schema_file else schema_path(ctx, dataset)
    if not path.is_absolute() and not path.is_file():
        path = ctx.workspace.root / path
    if not path.is_file():
        return  # no contract (or a declared one that is missing, which the pipeline reports)
    schema = load_schema(path.read_text(), source=str(path))
    report = validate_table(table, profile_table(table), schema, reference_profile=newest.profile,
                            previous_row_count=newest.row_count)
    if report.ok:
        return
    errors = report.errors
    shown = "; ".join(a.message.rstrip(".") for a in errors[:SHOWN]) + (
        f"; and {len(errors) - SHOWN} more" if len(errors) > SHOWN else "")
    hint = ""
    blank = sorted({a.column for a in errors if a.column in empty and a.kind in ("excess_nulls", "duplicate_key")}
                   | {c for a in errors if a.kind == "duplicate_key" for c in (a.details.get("key") or [])
                      if c in empty})
    if blank:
        hint = (f" The log holds only the model's inputs, so {', '.join(blank)} are empty in the {rows} rows from "
                f"feedback: declare them `nullable: true` with a max_null_fraction that admits them in {path} "
                "(and no key of them), or train on data: latest.")
    raise ValidationError(f"The version of {dataset} built from feedback would fail its contract {path}, so nothing "
                          f"was written: {shown}.{hint}", errors=len(errors))


def _iso(ms: int | None) -> str | None:
    import datetime as dt

    return None if ms is None else dt.datetime.fromtimestamp(ms / 1000, dt.UTC).isoformat(timespec="milliseconds")
