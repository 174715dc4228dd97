"""Feedback: ground truth for logged requests, stored by request id (kept even when the request is not in
the log, which it may reach only after its next flush), reported as matched or not, and joined to the
logged predictions for monitoring. A later value for the same request (and row) replaces an earlier one."""

from __future__ import annotations

import csv
import io
import json
import os
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from sqlalchemy import select

from shipyard.context import Context
from shipyard.errors import NotFoundError, ValidationError, did_you_mean
from shipyard.serving.batches import read_predictions
from shipyard.store import KEY_LENGTH
from shipyard.store.db import now_ms
from shipyard.store.tables import feedback

if TYPE_CHECKING:
    import pandas as pd

#: Most items one HTTP request may carry; send more in several requests.
MAX_BODY_ITEMS = 10_000
#: Largest value, as JSON.
MAX_VALUE_BYTES = 64 * 1024
ITEM_KEYS = ("request_id", "value", "row")
BODY_SHAPE = ('{"request_id": "...", "value": ...} or {"feedback": [{"request_id": "...", "value": ..., '
              '"row": 0}, ...]} ("row" is optional)')


@dataclass(frozen=True)
class FeedbackItem:
    """The true value for a logged request: all its rows (row None) or one of them."""

    request_id: str
    value: Any
    row: int | None = None

    def to_dict(self) -> dict[str, Any]:
        return {"request_id": self.request_id, "value": self.value, "row": self.row}


@dataclass
class FeedbackReport:
    """Feedback of a model (the latest per request and row) that matches a logged request, and that does not."""

    model: str
    matched: int = 0
    unmatched: int = 0
    unmatched_request_ids: list[str] = field(default_factory=list)

    @property
    def received(self) -> int:
        return self.matched + self.unmatched

    def to_dict(self) -> dict[str, Any]:
        return {"model": self.model, "received": self.received, "matched": self.matched,
                "unmatched": self.unmatched, "unmatched_request_ids": self.unmatched_request_ids}


# -- parsing -------------------------------------------------------------------------------------------
def parse_feedback_body(body: Any) -> list[FeedbackItem]:
    """The items of a `POST /v2/models/NAME/feedback` body, or a ValidationError naming the bad value."""
    if isinstance(body, dict) and "feedback" in body:
        extra = sorted(set(body) - {"feedback"})
        if extra:
            raise ValidationError(f"Unexpected key(s) {', '.join(map(repr, extra))} beside 'feedback': the body "
                                  f"must be {BODY_SHAPE}.")
        items = body["feedback"]
        if not isinstance(items, list) or not items:
            raise ValidationError(f"'feedback' must be a non-empty list of items, got {_show(items)}: send "
                                  f"{BODY_SHAPE}.")
        if len(items) > MAX_BODY_ITEMS:
            raise ValidationError(f"'feedback' has {len(items)} items, over the limit of {MAX_BODY_ITEMS} per "
                                  "request; send them in several requests.")
        return [parse_item(item, f"feedback[{i}]") for i, item in enumerate(items)]
    if isinstance(body, dict):
        return [parse_item(body, "The body")]
    raise ValidationError(f"The body must be {BODY_SHAPE}; got {_show(body)}.")


def parse_item(item: Any, where: str) -> FeedbackItem:
    """One {"request_id", "value", "row"?} object; `where` names it in errors (e.g. "feedback[3]")."""
    if not isinstance(item, dict):
        raise ValidationError(f"{where} must be an object {{\"request_id\": \"...\", \"value\": ...}}, got "
                              f"{_show(item)}.")
    unknown = [k for k in item if k not in ITEM_KEYS]
    if unknown:
        key = str(unknown[0])
        raise ValidationError(f"{where} has an unknown key {key!r}.{did_you_mean(key, ITEM_KEYS)} Keys: "
                              "request_id, value, row (optional).")
    for key in ("request_id", "value"):
        if key not in item:
            raise ValidationError(f"{where} has no {key!r}: each item needs \"request_id\" and \"value\" (and may "
                                  "give \"row\").")
    return check_item(item["request_id"], item["value"], item.get("row"), where)


def check_item(request_id: Any, value: Any, row: Any, where: str) -> FeedbackItem:
    if not isinstance(request_id, str) or not request_id.strip():
        raise ValidationError(f"{where}: request_id {request_id!r} must be a non-empty string: the X-Request-Id "
                              "the server answered with.")
    if len(request_id) > KEY_LENGTH:
        raise ValidationError(f"{where}: request_id {request_id[:40]!r}… has {len(request_id)} characters, over the "
                              f"limit of {KEY_LENGTH}; use the X-Request-Id the server answered with.")
    if value is None:
        raise ValidationError(f"{where}: value for request {request_id!r} is null; give the true value (a label "
                              "or a number), or leave the item out.")
    try:
        encoded = json.dumps(value, allow_nan=False)
    except (TypeError, ValueError):
        raise ValidationError(f"{where}: value {value!r} for request {request_id!r} is not plain JSON (NaN and "
                              "infinity are not allowed); give a label, a number or a list.") from None
    if len(encoded) > MAX_VALUE_BYTES:
        raise ValidationError(f"{where}: value for request {request_id!r} has {len(encoded)} bytes as JSON, over the "
                              f"limit of {MAX_VALUE_BYTES}.")
    if row is not None and (isinstance(row, bool) or not isinstance(row, int) or row < 0 or row > 2**31 - 1):
        raise ValidationError(f"{where}: row {row!r} for request {request_id!r} must be the index of a row of the "
                              "request (0, 1, …), or left out for the whole request.")
    return FeedbackItem(request_id, value, row)


def parse_value(text: str) -> Any:
    """A value typed on the command line or in a CSV cell: JSON when it is JSON (1, 2.5, true, "yes"), else
    the text itself (yes)."""
    def refuse(constant: str) -> Any:
        raise ValueError(constant)

    try:
        return json.loads(text, parse_constant=refuse)
    except ValueError:
        return text


def read_feedback_file(path: str | os.PathLike[str]) -> list[FeedbackItem]:
    """Items from a CSV file (a header with request_id and value, row optional) or a JSON Lines file (one
    object per line, as in the HTTP body). Errors name the file and the line."""
    source = Path(path)
    kind = source.suffix.lower()
    if kind not in (".csv", ".jsonl", ".ndjson"):
        raise ValidationError(f"Cannot read feedback from {source}: expected a .csv file (columns request_id, "
                              "value and optionally row) or a .jsonl file (one {\"request_id\", \"value\"} object "
                              "per line).")
    if not source.is_file():
        raise NotFoundError(f"Cannot read feedback from {source}: no such file. Check the path.")
    try:
        text = source.read_text(encoding="utf-8-sig")
    except UnicodeDecodeError as exc:
        line = source.read_bytes()[: exc.start].count(b"\n") + 1
        raise ValidationError(f"{source} line {line}: it is not UTF-8 text; save the file as UTF-8.") from None
    items = _read_csv(source, text) if kind == ".csv" else _read_jsonl(source, text)
    if not items:
        raise ValidationError(f"{source} holds no feedback; add lines with a request id and a value.")
    return items


def _read_csv(source: Path, text: str) -> list[FeedbackItem]:
    reader = csv.reader(io.StringIO(text))
    header = next(reader, None)
    if header is None:
        return []
    names = [h.strip() for h in header]
    missing = [c for c in ("request_id", "value") if c not in names]
    if missing:
        raise ValidationError(f"{source} line 1: the header {header} has no column {missing[0]!r}; "
                              "name the columns request_id, value and optionally row.")
    unknown = [n for n in names if n not in ITEM_KEYS]
    if unknown:
        raise ValidationError(f"{source} line 1: unknown column {unknown[0]!r}.{did_you_mean(unknown[0], ITEM_KEYS)} "
                              "Columns: request_id, value, row (optional).")
    items = []
    for cells in reader:
        line = reader.line_num
        if not any(c.strip() for c in cells):
            continue
        if len(cells) != len(names):
            raise ValidationError(f"{source} line {line}: {len(cells)} cells where the header has {len(names)}; "
                                  "quote values that contain commas.")
        record = dict(zip(names, cells, strict=True))
        where = f"{source} line {line}"
        if not record["value"].strip():
            raise ValidationError(f"{where}: the value for request {record['request_id']!r} is empty.")
        row: Any = record.get("row", "").strip() or None
        if row is not None:
            row = int(row) if row.isdigit() else row
        items.append(check_item(record["request_id"].strip(), parse_value(record["value"].strip()), row, where))
    return items


def _read_jsonl(source: Path, text: str) -> list[FeedbackItem]:
    items = []
    for number, line in enumerate(text.splitlines(), start=1):
        if not line.strip():
            continue
        try:
            item = json.loads(line)
        except ValueError as exc:
            raise ValidationError(f"{source} line {number}: not valid JSON ({exc}); write one object per line, "
                                  "e.g. {\"request_id\": \"r-1\", \"value\": 1}.") from None
        items.append(parse_item(item, f"{source} line {number}"))
    return items


def _show(value: Any) -> str:
    text = json.dumps(value, default=str) if not isinstance(value, str) else repr(value)
    return text if len(text) <= 60 else text[:57] + "..."


# -- the service ---------------------------------------------------------------------------------------
def record_feedback(ctx: Context, model: str, items: Iterable[FeedbackItem]) -> int:
    """Store the items for a registered model in one audited transaction (all or none); the number stored."""
    from shipyard.models.refs import check_model_name
    from shipyard.models.registry import find_version

    check_model_name(model)
    checked = [check_item(i.request_id, i.value, i.row, f"item {n}") if isinstance(i, FeedbackItem) else
               parse_item(i, f"item {n}") for n, i in enumerate(items)]
    if not checked:
        raise ValidationError("No feedback to record: give at least one item with a request id and a value.")
    received, actor = now_ms(), ctx.actor
    rows = [(model, i.request_id, i.row, json.dumps(i.value, allow_nan=False), received, actor) for i in checked]
    payload = {"items": len(rows), "request_ids": sorted({i.request_id for i in checked})[:20]}
    with ctx.store.mutation(ctx.actor, "feedback.record", "model", model, payload) as conn:
        find_version(conn, model)  # the model is registered (NotFoundError with a suggestion otherwise)
        ctx.store.insert_many(conn, feedback, ("model", "request_id", "row", "value", "received_at", "actor"), rows)
    return len(rows)


def latest_feedback(ctx: Context, model: str) -> pd.DataFrame:
    """A model's feedback, the latest value per (request_id, row): columns request_id, row (None: the whole
    request), feedback and feedback_at."""
    import pandas as pd

    c = feedback.c
    with ctx.store.read() as conn:
        rows = conn.execute(select(c.request_id, c.row, c.value, c.received_at).where(c.model == model)
                            .order_by(c.id)).all()
    latest = {(r.request_id, r.row): r for r in rows}
    return pd.DataFrame({
        "request_id": pd.Series([k[0] for k in latest], dtype=object),
        "row": pd.Series([k[1] for k in latest], dtype="Int64"),
        "feedback": pd.Series([json.loads(r.value) for r in latest.values()], dtype=object),
        "feedback_at": pd.to_datetime(pd.Series([r.received_at for r in latest.values()], dtype="int64"),
                                      unit="ms", utc=True),
    })


def feedback_report(ctx: Context, model: str) -> FeedbackReport:
    """How much of a model's feedback matches a logged request (and row), and the request ids that do not."""
    import pandas as pd

    from shipyard.models.refs import check_model_name
    from shipyard.models.registry import get_model_version

    get_model_version(ctx, check_model_name(model))
    given = latest_feedback(ctx, model)
    report = FeedbackReport(model)
    if given.empty:
        return report
    logged = read_predictions(ctx, model, columns=["request_id", "row"])
    ids = set(logged["request_id"])
    pairs = set(zip(logged["request_id"], logged["row"].astype(int), strict=True))
    unmatched: set[str] = set()
    for request_id, row in zip(given["request_id"], given["row"], strict=True):
        if request_id in ids if pd.isna(row) else (request_id, int(row)) in pairs:
            report.matched += 1
        else:
            report.unmatched += 1
            unmatched.add(request_id)
    report.unmatched_request_ids = sorted(unmatched)
    return report


def joined_feedback(ctx: Context, model: str, version: int | None = None) -> pd.DataFrame:
    """The logged predictions that have feedback, with it: read_predictions' columns plus `feedback` (the
    true value: the row's own, else the request's) and `feedback_at`."""
    return attach_feedback(read_predictions(ctx, model, version), latest_feedback(ctx, model))


def labelled(ctx: Context, frame: pd.DataFrame, model: str) -> pd.DataFrame:
    """The rows of `frame` (logged predictions, e.g. a monitoring window) that have feedback, with it in
    `feedback` and `feedback_at`: the row's own value, else the whole request's; failed rows are left out."""
    import pandas as pd

    if frame.empty:
        return frame.assign(feedback=pd.Series(dtype=object), feedback_at=pd.Series(dtype="datetime64[ns, UTC]"))
    served = frame[frame["error"].isna()] if "error" in frame.columns else frame
    given = latest_feedback(ctx, model)
    return attach_feedback(served.astype({"row": "int32"}), given[given["request_id"].isin(set(served["request_id"]))])


def attach_feedback(predictions: pd.DataFrame, given: pd.DataFrame) -> pd.DataFrame:
    """The logged rows that have feedback, with it: the row's own value, else the whole request's."""
    import pandas as pd

    whole = given[given["row"].isna()].drop(columns="row")
    per_row = given[given["row"].notna()].astype({"row": "int32"})
    joined = predictions.merge(per_row, on=["request_id", "row"], how="left")
    joined = joined.merge(whole, on="request_id", how="left", suffixes=("", "_request"))
    own = joined["feedback"].notna()
    joined["feedback"] = joined["feedback"].where(own, joined["feedback_request"])
    joined["feedback_at"] = joined["feedback_at"].where(own, joined["feedback_at_request"])
    joined = joined.drop(columns=["feedback_request", "feedback_at_request"])
    joined = joined[joined["feedback"].notna()].reset_index(drop=True)
    if joined.empty:
        return joined.astype({"feedback": object})
    return joined.assign(feedback=pd.Series(joined["feedback"].tolist()).infer_objects())

def feedback_since(ctx: Context, model: str, since_ms: int) -> bool:
    """Whether any feedback for `model` arrived after `since_ms` (unix milliseconds)."""
    c = feedback.c
    with ctx.store.read() as conn:
        return conn.execute(select(c.id).where(c.model == model, c.received_at > since_ms).limit(1)).first() is not None
