"""Feedback: stored all-or-none with an audit event on SQLite and PostgreSQL, kept when its request is not
logged yet, matched by request (and row), joined to the predictions; and bad input on every path."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest
from sqlalchemy import func, select

from shipyard.context import Context, open_context
from shipyard.errors import NotFoundError, ValidationError
from shipyard.serving.feedback import (
    FeedbackItem,
    feedback_report,
    joined_feedback,
    parse_feedback_body,
    parse_value,
    read_feedback_file,
    record_feedback,
)
from shipyard.serving.predlog import Prediction, PredictionLog
from shipyard.store.tables import audit_events, feedback
from tests.serving.conftest import training_frame

FRAME = pd.DataFrame({"age": [30, 52], "income": [65000.0, 31000.5]})


@pytest.fixture
def registered(backend_workspace: Path) -> Iterator[Context]:
    import shipyard
    from sklearn.linear_model import LogisticRegression

    x, y = training_frame()
    shipyard.models.register("credit", LogisticRegression().fit(x, y), input_example=x.head())
    yield open_context(backend_workspace)


def log_requests(ctx: Context, *specs: tuple[str, int]) -> None:
    """Log requests (id, rows) for credit/1 and write them."""
    log = PredictionLog(ctx, flush_seconds=3600)
    for i, (request_id, rows) in enumerate(specs):
        log.record(Prediction(request_id, 1_700_000_000.0 + i, "credit", 1, "infer", FRAME.head(rows),
                              np.array(["yes", "no"][:rows]), None, 1.0))
    log.close()


def stored(ctx: Context) -> int:
    with ctx.store.read() as conn:
        return int(conn.execute(select(func.count()).select_from(feedback)).scalar_one())


def test_feedback_is_kept_before_its_request_is_logged_and_matched_once_it_is(registered: Context) -> None:
    assert record_feedback(registered, "credit", [FeedbackItem("a", "yes"), FeedbackItem("b", "no", row=1)]) == 2
    report = feedback_report(registered, "credit")
    assert (report.matched, report.unmatched, report.unmatched_request_ids) == (0, 2, ["a", "b"])

    log_requests(registered, ("a", 1), ("b", 2), ("c", 1))
    report = feedback_report(registered, "credit")
    assert report.to_dict() == {"model": "credit", "received": 2, "matched": 2, "unmatched": 0,
                                "unmatched_request_ids": []}
    record_feedback(registered, "credit", [FeedbackItem("b", "no", row=5), FeedbackItem("zz", 1)])
    report = feedback_report(registered, "credit")
    assert (report.matched, report.unmatched, report.unmatched_request_ids) == (2, 2, ["b", "zz"])


def test_recording_is_audited_and_all_or_none(registered: Context) -> None:
    record_feedback(registered, "credit", [FeedbackItem("a", 1)])
    with registered.store.read() as conn:
        [event] = conn.execute(select(audit_events).where(audit_events.c.action == "feedback.record")).all()
    assert event.object_kind == "model" and event.object_id == "credit" and event.actor == "tester"
    with pytest.raises(ValidationError, match="item 1: value for request 'b' is null"):
        record_feedback(registered, "credit", [FeedbackItem("ok", 1), FeedbackItem("b", None)])
    with pytest.raises(NotFoundError, match="Did you mean 'credit'"):
        record_feedback(registered, "credt", [FeedbackItem("a", 1)])
    with pytest.raises(ValidationError, match="No feedback"):
        record_feedback(registered, "credit", [])
    assert stored(registered) == 1


def test_joined_feedback_takes_the_rows_own_value_else_the_requests_and_the_latest(registered: Context) -> None:
    log_requests(registered, ("a", 2), ("b", 1), ("c", 1))
    record_feedback(registered, "credit", [FeedbackItem("a", "no"), FeedbackItem("a", "yes", row=1),
                                           FeedbackItem("b", "no")])
    record_feedback(registered, "credit", [FeedbackItem("b", "yes")])  # a correction
    joined = joined_feedback(registered, "credit")
    assert joined[["request_id", "row", "prediction", "feedback"]].values.tolist() == [
        ["a", 0, "yes", "no"], ["a", 1, "no", "yes"], ["b", 0, "yes", "yes"]]
    assert str(joined["feedback_at"].dtype).startswith("datetime64") and "age" in joined.columns
    assert joined_feedback(registered, "credit", version=2).empty


@pytest.mark.parametrize(("body", "expected"), [
    ({"request_id": "r-1", "value": "yes"}, [FeedbackItem("r-1", "yes")]),
    ({"request_id": "r-1", "value": 0.5, "row": 2}, [FeedbackItem("r-1", 0.5, 2)]),
    ({"feedback": [{"request_id": "a", "value": 1}, {"request_id": "b", "value": [1, 2], "row": 0}]},
     [FeedbackItem("a", 1), FeedbackItem("b", [1, 2], 0)]),
])
def test_feedback_bodies(body: Any, expected: list[FeedbackItem]) -> None:
    assert parse_feedback_body(body) == expected


@pytest.mark.parametrize(("body", "fragment"), [
    ([{"request_id": "a", "value": 1}], "The body must be"),
    ("yes", "got 'yes'"),
    ({}, "has no 'request_id'"),
    ({"request_id": "a"}, "has no 'value'"),
    ({"request_id": "a", "value": None}, "is null"),
    ({"request_id": "", "value": 1}, "request_id ''"),
    ({"request_id": 17, "value": 1}, "request_id 17"),
    ({"request_id": "a" * 300, "value": 1}, "300 characters"),
    ({"request_id": "a", "value": 1, "row": -1}, "row -1"),
    ({"request_id": "a", "value": 1, "row": "0"}, "row '0'"),
    ({"request_id": "a", "value": 1, "row": True}, "row True"),
    ({"request_id": "a", "value": float("nan")}, "value nan"),
    ({"request_id": "a", "value": 1, "rwo": 1}, "Did you mean 'row'"),
    ({"feedback": []}, "non-empty list"),
    ({"feedback": {"request_id": "a"}}, "non-empty list"),
    ({"feedback": [{"request_id": "a", "value": 1}], "model": "x"}, "'model'"),
    ({"feedback": [{"request_id": "a", "value": 1}, "b"]}, "feedback[1] must be an object"),
    ({"feedback": [{"request_id": "a", "value": 1}, {"request_id": "b"}]}, "feedback[1] has no 'value'"),
    ({"feedback": [{"request_id": "a", "value": 1}] * 10_001}, "10001 items"),
    ({"request_id": "a", "value": "x" * 70_000}, "over the limit"),
])
def test_bad_bodies_name_the_value_and_the_fix(body: Any, fragment: str) -> None:
    with pytest.raises(ValidationError) as caught:
        parse_feedback_body(body)
    assert fragment in str(caught.value)


def test_values_from_text_are_json_when_they_are_json() -> None:
    assert [parse_value(t) for t in ("1", "2.5", "true", '"1"', "yes", "NaN", "[1, 2]")] == [
        1, 2.5, True, "1", "yes", "NaN", [1, 2]]


def test_feedback_files(tmp_path: Path) -> None:
    (tmp_path / "f.csv").write_text("request_id,value,row\na,yes,\nb,1,0\n\nc,\"x, y\",\n")
    assert read_feedback_file(tmp_path / "f.csv") == [FeedbackItem("a", "yes"), FeedbackItem("b", 1, 0),
                                                      FeedbackItem("c", "x, y")]
    (tmp_path / "f.jsonl").write_text('{"request_id": "a", "value": "yes"}\n\n{"request_id": "b", "value": 0, "row": 1}\n')
    assert read_feedback_file(tmp_path / "f.jsonl") == [FeedbackItem("a", "yes"), FeedbackItem("b", 0, 1)]


@pytest.mark.parametrize(("name", "content", "fragment"), [
    ("f.txt", b"request_id,value\na,1\n", "expected a .csv file"),
    ("missing.csv", None, "no such file"),
    ("f.csv", b"", "holds no feedback"),
    ("f.csv", b"request,value\na,1\n", "no column 'request_id'"),
    ("f.csv", b"request_id,value,rows\na,1,0\n", "Did you mean 'row'"),
    ("f.csv", b"request_id,value\na,1\nb\n", "line 3: 1 cells"),
    ("f.csv", b"request_id,value\na,\n", "line 2: the value for request 'a' is empty"),
    ("f.csv", b"request_id,value,row\na,1,first\n", "row 'first'"),
    ("f.csv", b"request_id,value\n,1\n", "line 2: request_id ''"),
    ("f.csv", "request_id,value\na,Zürich\n".encode("latin-1"), "line 2: it is not UTF-8"),
    ("f.jsonl", b'{"request_id": "a", "value": 1}\n{"request_id": "b", value: 1}\n', "line 2: not valid JSON"),
    ("f.jsonl", b'["a", 1]\n', "line 1 must be an object"),
    ("f.jsonl", b'{"request_id": "a", "value": null}\n', "line 1: value for request 'a' is null"),
])
def test_bad_feedback_files_name_the_file_the_line_and_the_fix(tmp_path: Path, name: str, content: bytes | None,
                                                               fragment: str) -> None:
    if content is not None:
        (tmp_path / name).write_bytes(content)
    with pytest.raises((ValidationError, NotFoundError)) as caught:
        read_feedback_file(tmp_path / name)
    assert fragment in str(caught.value) and name in str(caught.value)
