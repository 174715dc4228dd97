"""check_flavor passes a flavor that keeps the contract, and names the check each deliberately broken one fails."""

from __future__ import annotations

import hashlib
import importlib.metadata
import json
import pickle
import time
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest

import shipyard.models.flavors as flavors
from shipyard.errors import ValidationError
from shipyard.models.flavors.base import check_options, file_digest
from shipyard.testing import CheckFailed, CheckReport, check_flavor, flavor_checks
from tests.testing.scorecard import Scorecard, ScorecardFlavor, example_frame, example_model


def _check(flavor: ScorecardFlavor, **options: Any) -> CheckReport:
    """check_flavor on the example scorecard, told what is known about it."""
    return check_flavor(flavor, example_model(), example_frame(), task="classification", columns="by_name",
                        probabilities=True, **options)


def test_a_flavor_that_keeps_the_contract_passes_every_check() -> None:
    report = _check(ScorecardFlavor(), other_models=[{"income": 1.0}, "x"])
    assert report.skipped == {"load_verifies_digest": "the file is not pickle-based: loading it runs no code"}
    assert report.passed == [name for name in flavor_checks() if name != "load_verifies_digest"]
    assert report.subject == "flavor 'scorecard'"
    assert "  passed   fresh_interpreter " in str(report)


def test_the_checks_run_in_a_stable_order_with_unique_names() -> None:
    names = list(flavor_checks())
    assert names[:3] == ["interface", "handles", "detection"] and names[-1] == "stateless"
    assert len(names) == len(set(names))


# --- each broken flavor departs from ScorecardFlavor in one way --------------------------------------------


class SpacedName(ScorecardFlavor):
    name = "score card"


class Greedy(ScorecardFlavor):
    def handles(self, model: Any) -> bool:
        return model is not None


class Impostor(ScorecardFlavor):
    name = "onnx"


class NumpyInDescribe(ScorecardFlavor):
    def describe(self, model: Any) -> dict[str, Any]:
        return {**super().describe(model), "n_features": np.int64(len(model.points))}


class StaleEnvironment(ScorecardFlavor):
    def environment(self) -> dict[str, str]:
        return {"numpy": "1.0.0", "pandas": importlib.metadata.version("pandas")}


class DropsARow(ScorecardFlavor):
    def predict(self, model: Any, frame: pd.DataFrame) -> np.ndarray:
        return super().predict(model, frame)[:-1]


class ReturnsAList(ScorecardFlavor):
    def predict(self, model: Any, frame: pd.DataFrame) -> np.ndarray:
        return super().predict(model, frame).tolist()  # a list, not an array: the defect under test


class MutatesTheFrame(ScorecardFlavor):
    def predict(self, model: Any, frame: pd.DataFrame) -> np.ndarray:
        labels = super().predict(model, frame)
        frame["label"] = labels
        return labels


class HalfProbabilities(ScorecardFlavor):
    def predict_proba(self, model: Any, frame: pd.DataFrame) -> np.ndarray | None:
        proba = super().predict_proba(model, frame)
        return None if proba is None else proba / 2


class SidecarFile(ScorecardFlavor):
    def save(self, model: Any, path: Path, **options: Any) -> dict[str, Any]:
        meta = super().save(model, path, **options)
        path.with_suffix(".sha256").write_text(file_digest(path))
        return meta


class NoColumnsInMeta(ScorecardFlavor):
    def save(self, model: Any, path: Path, **options: Any) -> dict[str, Any]:
        return {k: v for k, v in super().save(model, path, **options).items() if k != "columns"}


class IgnoresOptions(ScorecardFlavor):
    def save(self, model: Any, path: Path, **options: Any) -> dict[str, Any]:
        return super().save(model, path)


class Timestamped(ScorecardFlavor):
    def save(self, model: Any, path: Path, **options: Any) -> dict[str, Any]:
        meta = super().save(model, path, **options)
        path.write_text(json.dumps({**json.loads(path.read_text()), "saved_at": time.time_ns()}))
        return meta


class ForgetsTheBase(ScorecardFlavor):
    def load(self, path: Path, meta: dict[str, Any]) -> Any:
        return Scorecard(json.loads(path.read_text())["points"], 0.0)


class PickleWithoutCheck(ScorecardFlavor):
    """Records the digest of its pickle, but never checks it before unpickling."""

    file_name = "model.pkl"
    pickle_based = True
    deterministic = False

    def save(self, model: Any, path: Path, **options: Any) -> dict[str, Any]:
        meta = super().save(model, path, **options)
        path.write_bytes(pickle.dumps(model))
        return {**meta, "pickle_based": True, "sha256": hashlib.sha256(path.read_bytes()).hexdigest()}

    def load(self, path: Path, meta: dict[str, Any]) -> Any:
        return pickle.loads(path.read_bytes())  # noqa: S301 - the defect under test


class StaleDigest(PickleWithoutCheck):
    """Records the digest of the file as it was before the pickle replaced it."""

    def save(self, model: Any, path: Path, **options: Any) -> dict[str, Any]:
        first = ScorecardFlavor.save(self, model, path, **options)
        stale = file_digest(path)
        return {**super().save(model, path, **options), **first, "pickle_based": True, "sha256": stale}


class LoadsAnything(ScorecardFlavor):
    def load(self, path: Path, meta: dict[str, Any]) -> Any:
        try:
            return super().load(path, meta)
        except Exception:  # noqa: BLE001 - the defect under test
            return Scorecard(dict.fromkeys(meta["feature_names"], 0.0), 0.0)


class ByPositionButSaysByName(ScorecardFlavor):
    def inputs(self, model: Any, frame: pd.DataFrame) -> pd.DataFrame:
        return frame.iloc[:, : len(model.points)]


class KeyErrorOnMissingColumn(ScorecardFlavor):
    def inputs(self, model: Any, frame: pd.DataFrame) -> pd.DataFrame:
        return frame[list(model.points)]


_MEMORY: dict[str, Any] = {}


class OnlyInThisProcess(ScorecardFlavor):
    """Saves a key and keeps the model in this process's memory: loading works here, and nowhere else."""

    deterministic = False

    def save(self, model: Any, path: Path, **options: Any) -> dict[str, Any]:
        meta = super().save(model, path, **options)
        key = f"{id(model)}-{time.time_ns()}"
        _MEMORY[key] = model
        path.write_text(key)
        return meta

    def load(self, path: Path, meta: dict[str, Any]) -> Any:
        return _MEMORY[path.read_text()]


class RemembersTheLastModel(ScorecardFlavor):
    def load(self, path: Path, meta: dict[str, Any]) -> Any:
        self.last_loaded = super().load(path, meta)
        return self.last_loaded


BROKEN = [
    (SpacedName, "interface", "name must be a non-empty string without spaces, got 'score card'"),
    (Greedy, "handles", "handles() also claims object(), the class tests.testing.scorecard.Scorecard itself"),
    (Impostor, "detection", "'onnx' already belongs to shipyard.models.flavors.onnx.OnnxFlavor"),
    (NumpyInDescribe, "describe", "not JSON-able: Object of type int64 is not JSON serializable"),
    (StaleEnvironment, "environment", "wrong or missing versions: numpy: '1.0.0' (installed: "),
    (DropsARow, "predict", "gives shape (49,) for 50 row(s); it must give one value per row"),
    (ReturnsAList, "predict", "gives a builtins.list; it must give a numpy array"),
    (MutatesTheFrame, "predict", "the flavor changed the frame it was given"),
    (HalfProbabilities, "predict_proba", "rows must sum to 1; row 0 sums to 0.5"),
    (SidecarFile, "save", "save() left ['model.json', 'model.sha256'] in its folder"),
    (NoColumnsInMeta, "save", "the metadata lacks columns"),
    (IgnoresOptions, "save_refuses_wrong_input", "save() accepted an unknown option"),
    (Timestamped, "deterministic_bytes", "saving the same model twice wrote different files"),
    (ForgetsTheBase, "round_trip", "predictions after loading differ from the original's"),
    (StaleDigest, "save", "the metadata records sha256 '"),
    (PickleWithoutCheck, "load_verifies_digest", "Call verify_digest(path, meta) first in load()"),
    (LoadsAnything, "load_refuses_garbage", "turned a file of garbage into a model that predicts"),
    (ByPositionButSaysByName, "column_matching", "the columns are matched by_name, but the predictions changed"),
    (KeyErrorOnMissingColumn, "missing_column", "dropping the column 'age' raised KeyError"),
    (OnlyInThisProcess, "fresh_interpreter", "predicting in a new process failed:"),
    (RemembersTheLastModel, "stateless", "changed the flavor's attribute(s) last_loaded"),
]


@pytest.mark.parametrize(("broken", "check", "reason"), BROKEN, ids=[b[0].__name__ for b in BROKEN])
def test_a_broken_flavor_fails_the_check_that_catches_it(broken: type[ScorecardFlavor], check: str, reason: str) -> None:
    with pytest.raises(AssertionError) as caught:
        _check(broken())
    failure = caught.value
    assert isinstance(failure, CheckFailed)
    assert failure.check == check, str(failure)
    assert str(failure).startswith(f"The flavor '{broken.name}' failed check '{check}' ({flavor_checks()[check]}): ")
    assert reason in failure.reason, failure.reason
    assert str(pickle.loads(pickle.dumps(failure))) == str(failure)


def test_every_check_is_shown_to_catch_a_broken_flavor() -> None:
    caught = {check for _, check, _ in BROKEN}
    assert [name for name in flavor_checks() if name not in caught] == []


def test_what_the_caller_knows_is_held_against_the_flavor() -> None:
    with pytest.raises(CheckFailed, match=r"failed check 'describe'.*task\'\] is 'classification', but the model is a "
                                          r"regression model"):
        check_flavor(ScorecardFlavor(), example_model(), example_frame(), task="regression")
    with pytest.raises(CheckFailed, match=r"failed check 'save'.*takes its columns by_name, but it takes them by_position"):
        check_flavor(ScorecardFlavor(), example_model(), example_frame(), columns="by_position")
    with pytest.raises(CheckFailed, match=r"failed check 'predict_proba'.*for a model without class probabilities"):
        check_flavor(ScorecardFlavor(), example_model(), example_frame(), probabilities=False)

    class AlsoDicts(ScorecardFlavor):
        def handles(self, model: Any) -> bool:
            return isinstance(model, (Scorecard, dict))

    with pytest.raises(CheckFailed, match=r"failed check 'handles'.*: handles\(\) also claims a builtins\.dict\. It"):
        check_flavor(AlsoDicts(), example_model(), example_frame(), other_models=[{}])


def test_a_model_a_built_in_flavor_claims_fails_detection() -> None:
    from sklearn.linear_model import LinearRegression

    class Shadowed(ScorecardFlavor):
        name = "shadowed"

        def handles(self, model: Any) -> bool:
            return isinstance(model, LinearRegression)

    with pytest.raises(CheckFailed, match=r"failed check 'detection'.*the sklearn flavor already claims"):
        check_flavor(Shadowed(), LinearRegression(), example_frame())


def test_a_registered_plugin_is_picked_by_flavor_for(monkeypatch: pytest.MonkeyPatch) -> None:
    point = importlib.metadata.EntryPoint(name="scorecard", value="tests.testing.scorecard:ScorecardFlavor",
                                          group=flavors.ENTRY_POINT_GROUP)
    monkeypatch.setattr(importlib.metadata, "entry_points",
                        lambda **kw: [point] if kw.get("group") == flavors.ENTRY_POINT_GROUP else [])
    monkeypatch.setattr(flavors, "_plugins", None)
    report = _check(ScorecardFlavor(), fresh_interpreter=False)
    [detection] = [o for o in report.outcomes if o.name == "detection"]
    assert detection.detail == "registered as 'scorecard'; flavor_for() picks it"
    assert report.skipped["fresh_interpreter"] == "turned off with fresh_interpreter=False"


def test_a_flavor_a_new_process_cannot_import_skips_that_check() -> None:
    class Local(ScorecardFlavor):
        pass

    report = check_flavor(Local(), example_model(), example_frame())
    assert report.skipped["fresh_interpreter"].startswith(
        "test_a_flavor_a_new_process_cannot_import_skips_that_check.<locals>.Local is defined in a function"
    )


def test_a_pickle_based_flavor_that_checks_its_digest_passes() -> None:
    from shipyard.models.flavors.base import verify_digest

    class Checked(PickleWithoutCheck):
        def load(self, path: Path, meta: dict[str, Any]) -> Any:
            verify_digest(path, meta)
            return super().load(path, meta)

    report = check_flavor(Checked(), example_model(), example_frame(), fresh_interpreter=False)
    assert "load_verifies_digest" in report.passed
    assert report.skipped.keys() == {"deterministic_bytes", "fresh_interpreter"}


def test_wrong_arguments_say_what_to_pass() -> None:
    with pytest.raises(ValidationError, match=r"got the class ScorecardFlavor\. Pass an instance: "
                                              r"check_flavor\(ScorecardFlavor\(\), model, frame\)"):
        check_flavor(ScorecardFlavor, example_model(), example_frame())  # type: ignore[arg-type]
    with pytest.raises(ValidationError, match=r"got a builtins\.str\. Subclass Flavor"):
        check_flavor("scorecard", example_model(), example_frame())  # type: ignore[arg-type]
    with pytest.raises(ValidationError, match=r"got an empty frame of shape \(0, 3\)\. Pass a few rows"):
        check_flavor(ScorecardFlavor(), example_model(), example_frame().head(0))
    with pytest.raises(ValidationError, match=r"got a numpy\.ndarray"):
        check_flavor(ScorecardFlavor(), example_model(), example_frame().to_numpy())
    with pytest.raises(ValidationError, match=r"task must be one of classification, regression, unknown"):
        check_flavor(ScorecardFlavor(), example_model(), example_frame(), task="classifier")  # type: ignore[arg-type]


def test_check_options_is_what_refuses_unknown_options() -> None:
    """The fix the save_refuses_wrong_input message suggests does make the check pass."""
    with pytest.raises(ValidationError, match="no_such_option"):
        check_options("scorecard", {"no_such_option": True})
