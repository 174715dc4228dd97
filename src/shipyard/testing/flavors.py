"""check_flavor: the contract every model flavor keeps, as a suite a flavor's own tests run on a model of its kind.

Importing this module imports neither pytest nor any ML library; numpy and pandas load when a check runs."""

from __future__ import annotations

import tempfile
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

from shipyard.errors import ValidationError
from shipyard.models.flavors.base import ColumnMatching, Flavor, Task, qualified_name
from shipyard.testing import _flavor_file_checks as files
from shipyard.testing import _flavor_model_checks as model_checks
from shipyard.testing._flavor_subject import COLUMN_MATCHING, TASKS, Check, Fail, Skip, Subject
from shipyard.testing.report import CheckFailed, CheckOutcome, CheckReport

if TYPE_CHECKING:
    import pandas as pd

# In the order they run: a later check relies on what the earlier ones established (the predictions,
# the saved file and its metadata).
CHECKS: tuple[Check, ...] = (
    Check("interface", "the class declares name, file_name, pickle_based, deterministic and packages",
          model_checks.interface),
    Check("handles", "handles() claims the model and nothing else", model_checks.handles),
    Check("detection", "flavor_for() picks this flavor for the model", model_checks.detection),
    Check("describe", "describe() gives JSON with class, task, params, n_features and classes", model_checks.describe),
    Check("environment", "environment() reports the installed version of each declared package",
          model_checks.environment),
    Check("predict", "predict() gives a 1-D numpy array with one value per row and leaves the frame unchanged",
          model_checks.predict),
    Check("predict_proba", "predict_proba() gives None, or per row one probability per class, in the order of classes",
          model_checks.predict_proba),
    Check("save", "save() writes one file and returns JSON metadata that agrees with describe()", files.save),
    Check("save_refuses_wrong_input", "save() refuses unknown options and models it does not handle (ValidationError)",
          files.save_refuses_wrong_input),
    Check("deterministic_bytes", "a flavor that declares deterministic = True writes the same bytes when saving again",
          files.deterministic_bytes),
    Check("round_trip", "the loaded model predicts exactly as the original and describes itself the same",
          files.round_trip),
    Check("load_verifies_digest", "a pickle-based file loads only if its SHA-256 is the one recorded at save",
          files.load_verifies_digest),
    Check("load_refuses_garbage", "a file that is not a model is refused, at load or at the latest at predict",
          files.load_refuses_garbage),
    Check("column_matching", "the frame's columns are matched as the metadata says (by_name or by_position)",
          model_checks.column_matching),
    Check("missing_column", "a missing column is refused with a ValidationError that names it (or the count)",
          model_checks.missing_column),
    Check("fresh_interpreter", "a new Python process loads the saved file and predicts the same",
          files.fresh_interpreter),
    Check("stateless", "the flavor instance keeps no state: its attributes are the same after every check",
          model_checks.stateless),
)


def flavor_checks() -> dict[str, str]:
    """The checks check_flavor runs, in order: name → what it holds the flavor to."""
    return {check.name: check.summary for check in CHECKS}


def check_flavor(
    flavor: Flavor,
    model: Any,
    example_frame: pd.DataFrame,
    *,
    task: Task | None = None,
    columns: ColumnMatching | None = None,
    probabilities: bool | None = None,
    save_options: Mapping[str, Any] | None = None,
    other_models: Iterable[Any] = (),
    fresh_interpreter: bool = True,
) -> CheckReport:
    """Run every check of the flavor contract on `model`, a fitted model of the flavor's kind, predicting on
    `example_frame` (a few rows of its input). Raises CheckFailed (an AssertionError) naming the first check
    that fails and why; returns the report of the checks that ran, each passed or skipped with the reason.

    What the caller knows about the model is held against what the flavor says: `task`, `columns` (how
    the flavor matches the frame's columns) and `probabilities` (whether predict_proba gives any); None
    accepts whatever the flavor says, as long as it is consistent. `save_options` go to every save;
    `other_models` are models of other kinds that the flavor must not claim. `fresh_interpreter=False`
    skips loading the saved file in a new Python process."""
    _check_arguments(flavor, example_frame, task, columns)
    name = f"flavor {getattr(type(flavor), 'name', type(flavor).__name__)!r}"
    outcomes: list[CheckOutcome] = []
    with tempfile.TemporaryDirectory(prefix="shipyard-check-flavor-") as tmp:
        subject = Subject(
            flavor=flavor, model=model, frame=example_frame.copy(deep=True), pristine=example_frame.copy(deep=True),
            folder=Path(tmp), task=task, columns=columns, probabilities=probabilities,
            save_options=dict(save_options or {}), other_models=list(other_models),
            fresh_interpreter=fresh_interpreter, state=dict(getattr(flavor, "__dict__", {})),
        )
        for check in CHECKS:
            try:
                detail = check.run(subject)
            except Skip as skip:
                outcomes.append(CheckOutcome(check.name, check.summary, "skipped", str(skip)))
                continue
            except Fail as fail:
                raise CheckFailed(name, check.name, check.summary, str(fail)) from fail.__cause__
            except Exception as exc:  # noqa: BLE001 - whatever the flavor raises fails the check that called it
                raise CheckFailed(name, check.name, check.summary, f"it raised {type(exc).__name__}: {exc}") from exc
            outcomes.append(CheckOutcome(check.name, check.summary, "passed", detail))
    return CheckReport(name, tuple(outcomes))


def _check_arguments(flavor: Any, frame: Any, task: str | None, columns: str | None) -> None:
    import pandas as pd

    if isinstance(flavor, type):
        raise ValidationError(
            f"check_flavor takes a flavor instance, got the class {flavor.__qualname__}. "
            f"Pass an instance: check_flavor({flavor.__qualname__}(), model, frame)."
        )
    if not isinstance(flavor, Flavor):
        raise ValidationError(
            f"check_flavor takes a shipyard.models.flavors.base.Flavor, got a {qualified_name(flavor)}. "
            "Subclass Flavor and pass an instance."
        )
    if not isinstance(frame, pd.DataFrame) or frame.empty:
        got = f"an empty frame of shape {frame.shape}" if isinstance(frame, pd.DataFrame) else f"a {qualified_name(frame)}"
        raise ValidationError(
            f"check_flavor needs a DataFrame with at least one row and one column of the model's input, got {got}. "
            "Pass a few rows of the training features, e.g. X.head(20)."
        )
    if task is not None and task not in TASKS:
        raise ValidationError(f"task must be one of {', '.join(TASKS)} or None, got {task!r}.")
    if columns is not None and columns not in COLUMN_MATCHING:
        raise ValidationError(f"columns must be one of {', '.join(COLUMN_MATCHING)} or None, got {columns!r}.")
