"""What the flavor checks share: the subject under check, how a check skips or fails, and comparisons."""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, get_args

from shipyard.models.flavors.base import ColumnMatching, Flavor, Task, qualified_name

if TYPE_CHECKING:
    import pandas as pd

TASKS: tuple[str, ...] = get_args(Task)
COLUMN_MATCHING: tuple[str, ...] = get_args(ColumnMatching)
RTOL, ATOL = 1e-6, 1e-7  # how closely probabilities (and float predictions) computed twice must agree


class Skip(Exception):
    """The check does not apply to this flavor or model; the message says why."""


class Fail(Exception):
    """The flavor broke the promise the check holds it to; the message says how, and what to change."""


@dataclass
class Subject:
    """The flavor and model under check, what the caller expects of them, and what earlier checks found."""

    flavor: Flavor
    model: Any
    frame: pd.DataFrame  # handed to the flavor; `pristine` is kept to prove predict left it alone
    pristine: pd.DataFrame
    folder: Path
    task: str | None
    columns: str | None
    probabilities: bool | None
    save_options: dict[str, Any]
    other_models: list[Any]
    fresh_interpreter: bool
    state: dict[str, Any]  # the flavor instance's attributes before any check ran
    details: dict[str, Any] = field(default_factory=dict)
    expected: Any = None  # predict(model, frame)
    proba: Any = None  # predict_proba(model, frame)
    path: Path | None = None  # the saved file
    meta: dict[str, Any] = field(default_factory=dict)  # its metadata, as JSON gives it back

    def save(self, folder: str, model: Any = None, **extra: Any) -> tuple[Path, Any]:
        target = self.folder / folder
        target.mkdir()
        path = target / self.flavor.file_name
        return path, self.flavor.save(self.model if model is None else model, path, **self.save_options, **extra)

    def predict(self, frame: pd.DataFrame, model: Any = None) -> Any:
        out = self.flavor.predict(self.model if model is None else model, frame)
        unchanged(self)
        return out

    def predict_proba(self, frame: pd.DataFrame, model: Any = None) -> Any:
        out = self.flavor.predict_proba(self.model if model is None else model, frame)
        unchanged(self)
        return out


@dataclass(frozen=True)
class Check:
    name: str
    summary: str  # what the check holds the flavor to
    run: Callable[[Subject], str]  # returns what it saw, or raises Skip or Fail


def unchanged(s: Subject) -> None:
    frame, pristine = s.frame, s.pristine
    if list(frame.columns) != list(pristine.columns) or not frame.equals(pristine):
        raise Fail("the flavor changed the frame it was given; work on a copy (frame.assign, frame.loc[...]).")


def one_per_row(values: Any, rows: int, call: str) -> None:
    import numpy as np

    if not isinstance(values, np.ndarray):
        raise Fail(f"{call} gives a {qualified_name(values)}; it must give a numpy array (np.asarray(...)).")
    if values.shape != (rows,):
        raise Fail(f"{call} gives shape {values.shape} for {rows} row(s); it must give one value per row, shape ({rows},).")


def same(actual: Any, expected: Any, what: str, *, exact: bool) -> None:
    import numpy as np

    try:
        if exact or not np.issubdtype(np.asarray(expected).dtype, np.floating):
            np.testing.assert_array_equal(actual, expected)
        else:
            np.testing.assert_allclose(actual, expected, rtol=RTOL, atol=ATOL)
    except AssertionError as exc:
        raise Fail(f"{what}:\n{str(exc).strip()}") from None


def json_dict(value: Any, what: str) -> dict[str, Any]:
    if not isinstance(value, dict):
        raise Fail(f"{what} must be a dict, got a {qualified_name(value)}.")
    try:
        back = json.loads(json.dumps(value))
    except (TypeError, ValueError) as exc:
        raise Fail(f"{what} is not JSON-able: {exc}. Convert numpy values with .item() or .tolist().") from None
    if back != value:
        keys = [str(k) for k in value if back.get(str(k)) != value[k]]
        raise Fail(f"{what} changes when read back from JSON (at {', '.join(keys) or 'its keys'}): use str keys, "
                   "lists rather than tuples, and finite floats.")
    return back  # a copy, as the registry will hand it back


def task_is(value: Any, expected: str | None, what: str) -> None:
    if value not in TASKS:
        raise Fail(f"{what} is {value!r}; it must be one of {', '.join(TASKS)}.")
    if expected is not None and value != expected:
        raise Fail(f"{what} is {value!r}, but the model is a {expected} model.")
