"""Search runs: the filter tree compiled into SQLAlchemy expressions, ordering, paging, DataFrames."""

from __future__ import annotations

import base64
import json
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any, Literal

from sqlalchemy import ColumnElement, and_, exists, false, not_, or_, select, true

from shipyard.context import Context
from shipyard.errors import ValidationError
from shipyard.store.db import now_ms
from shipyard.store.tables import metric_latest, params, runs, tags
from shipyard.tracking.filters import BoolOp, Comparison, Field, Node, Not, OrderKey, parse_filter, parse_order_by
from shipyard.tracking.liveness import LOST, status_column
from shipyard.tracking.records import RunPage, RunRecord
from shipyard.tracking.runs import fetch_runs

if TYPE_CHECKING:
    import pandas as pd

MAX_RESULTS = 50_000
_TABLES = {"metrics": metric_latest, "params": params, "tags": tags}


def compile_filter(node: Node | None, status: ColumnElement[Any] | None = None) -> ColumnElement[bool]:
    """The filter as a SQL condition; `status` is what `status` compares (default: the stored column)."""
    if node is None:
        return true()
    if isinstance(node, BoolOp):
        parts = [compile_filter(item, status) for item in node.items]
        return and_(*parts) if node.op == "and" else or_(*parts)
    if isinstance(node, Not):
        return not_(compile_filter(node.item, status))
    return _comparison(node, status)


def _sees_lost(node: Node | None, order: list[OrderKey]) -> bool:
    """Whether the filter or the order can tell a lost run from a running one. Only then is the
    derived status worth computing: `status = 'finished'` matches the same rows either way, as lost
    runs are stored as running."""
    if any(key.field.namespace == "attributes" and key.field.key == "status" for key in order):
        return True
    if node is None:
        return False
    if isinstance(node, BoolOp):
        return any(_sees_lost(item, []) for item in node.items)
    if isinstance(node, Not):
        return _sees_lost(node.item, [])
    if node.field.namespace != "attributes" or node.field.key != "status":
        return False
    if node.op in ("=", "!=", "in", "notin"):
        values = node.value if isinstance(node.value, tuple) else (node.value,)
        return bool({"running", LOST} & set(values))
    return node.op not in ("isnull", "notnull")


def _names_field(node: Node | None, key: str) -> bool:
    """Whether the filter compares the run attribute `key`."""
    if node is None:
        return False
    if isinstance(node, BoolOp):
        return any(_names_field(item, key) for item in node.items)
    if isinstance(node, Not):
        return _names_field(node.item, key)
    return node.field.namespace == "attributes" and node.field.key == key


def _apply(column: Any, op: str, value: Any) -> ColumnElement[bool]:
    if op == "=":
        return column == value
    if op == "!=":
        return column != value
    if op == "<":
        return column < value
    if op == "<=":
        return column <= value
    if op == ">":
        return column > value
    if op == ">=":
        return column >= value
    if op == "like":
        return column.like(value)
    if op == "ilike":
        return column.ilike(value)
    if op == "in":
        return column.in_(list(value))
    if op == "notin":
        return column.not_in(list(value))
    raise AssertionError(op)


def _comparison(node: Comparison, status: ColumnElement[Any] | None) -> ColumnElement[bool]:
    field = node.field
    if field.namespace == "attributes":
        column = status if field.key == "status" and status is not None else runs.c[field.key]
        if node.op == "isnull":
            return column.is_(None)
        if node.op == "notnull":
            return column.is_not(None)
        return _apply(column, node.op, node.value)
    table = _TABLES[field.namespace]
    correlated = and_(table.c.run_id == runs.c.run_id, table.c.key == field.key)
    if node.op == "isnull":
        return not_(exists().where(correlated))
    if node.op == "notnull":
        return exists().where(correlated)
    return exists().where(correlated, _apply(table.c.value, node.op, node.value))


def _order_columns(order: list[OrderKey], status: ColumnElement[Any] | None = None) -> tuple[list[Any], list[Any]]:
    """Columns to order by, and the outer joins they need (one aliased key table per order key)."""
    columns: list[Any] = []
    joins: list[Any] = []
    for i, key in enumerate(order):
        if key.field.namespace == "attributes" and key.field.key == "status" and status is not None:
            column: Any = status
        elif key.field.namespace == "attributes":
            column = runs.c[key.field.key]
        else:
            alias = _TABLES[key.field.namespace].alias(f"order_{i}")
            joins.append((alias, and_(alias.c.run_id == runs.c.run_id, alias.c.key == key.field.key)))
            column = alias.c.value
        columns.append((column.desc() if key.descending else column.asc()).nulls_last())
    columns += [runs.c.start_time.desc(), runs.c.run_id.asc()]
    return columns, joins


def _page_offset(token: str | None) -> int:
    if not token:
        return 0
    try:
        offset = int(json.loads(base64.urlsafe_b64decode(token.encode()).decode())["offset"])
        if offset < 0:
            raise ValueError
        return offset
    except (ValueError, KeyError, TypeError):
        raise ValidationError(
            f"Invalid page token {token!r}: pass back the next_page_token of the previous page unchanged."
        ) from None


def _page_token(offset: int) -> str:
    return base64.urlsafe_b64encode(json.dumps({"offset": offset}).encode()).decode()


def search_run_ids(
    ctx: Context,
    filter: str | None = None,
    order_by: Sequence[str] | str | None = None,
    *,
    max_results: int = 1000,
    page_token: str | None = None,
    experiment: str | Sequence[str] | None = None,
    include_deleted: bool = False,
    top_level: bool = False,
) -> tuple[list[str], str | None]:
    if isinstance(max_results, bool) or not isinstance(max_results, int) or not 1 <= max_results <= MAX_RESULTS:
        raise ValidationError(f"max_results must be an integer from 1 to {MAX_RESULTS}, got {max_results!r}.")
    node, order = parse_filter(filter), parse_order_by(order_by)
    offset = _page_offset(page_token)
    with ctx.store.read() as conn:
        # The filter sees the status a reader sees: `status = 'running'` leaves lost runs out.
        status = status_column(
            conn, now=now_ms(), lost_after_seconds=ctx.workspace.settings.tracking.lost_after_seconds
        ) if _sees_lost(node, order) else None
        where = [compile_filter(node, status)]
        if experiment is not None:
            names = [experiment] if isinstance(experiment, str) else list(experiment)
            where.append(runs.c.experiment.in_(names) if names else false())
        if not include_deleted:
            where.append(runs.c.lifecycle == "active")
        if top_level and not _names_field(node, "parent_id"):  # a filter on parent_id asks for nested runs
            where.append(runs.c.parent_id.is_(None))
        columns, joins = _order_columns(order, status)
        source: Any = runs
        for alias, cond in joins:
            source = source.outerjoin(alias, cond)
        query = (
            select(runs.c.run_id).select_from(source).where(and_(*where)).order_by(*columns)
            .limit(max_results + 1).offset(offset)
        )
        ids = list(conn.execute(query).scalars())
    more = len(ids) > max_results
    return ids[:max_results], (_page_token(offset + max_results) if more else None)


def search_runs(
    ctx: Context,
    filter: str | None = None,
    order_by: Sequence[str] | str | None = None,
    *,
    max_results: int = 1000,
    page_token: str | None = None,
    experiment: str | Sequence[str] | None = None,
    include_deleted: bool = False,
    top_level: bool = False,
    output: Literal["runs", "pandas"] = "runs",
) -> RunPage | pd.DataFrame:
    """Runs matching `filter`, ordered, one page at a time; as records (with their artifacts) or as a
    pandas DataFrame. `top_level` leaves out nested runs (a pipeline's step runs), unless the filter
    compares `parent_id`."""
    if output not in ("runs", "pandas"):
        raise ValidationError(f"output must be 'runs' or 'pandas', got {output!r}.")
    ids, token = search_run_ids(
        ctx, filter, order_by, max_results=max_results, page_token=page_token,
        experiment=experiment, include_deleted=include_deleted, top_level=top_level,
    )
    with ctx.store.read() as conn:
        records = fetch_runs(conn, ids, lost_after_seconds=ctx.workspace.settings.tracking.lost_after_seconds,
                             with_artifacts=output == "runs")
    if output == "pandas":
        return to_frame(records)
    return RunPage(records, token)


def to_frame(records: list[RunRecord]) -> pd.DataFrame:
    import pandas as pd

    base = ["run_id", "name", "experiment", "status", "user", "start_time", "end_time", "parent_id",
            "git_commit", "wall_seconds", "cpu_seconds", "peak_memory_bytes"]
    columns: dict[str, list[Any]] = {c: [getattr(r, c) for r in records] for c in base}
    n = len(records)
    for attr, prefix in (("metrics", "metrics."), ("params", "params."), ("tags", "tags.")):
        keys = sorted({k for r in records for k in getattr(r, attr)})
        for key in keys:
            columns[prefix + key] = [getattr(r, attr).get(key) for r in records]
    frame = pd.DataFrame(columns, index=pd.RangeIndex(n))
    for column in ("start_time", "end_time"):
        frame[column] = pd.to_datetime(frame[column], unit="ms", utc=True)
    return frame


def field_label(field: Field) -> str:
    return field.key if field.namespace == "attributes" else f"{field.namespace}.{field.key}"
