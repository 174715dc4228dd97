"""Model flavors: every built-in flavor passes shipyard.testing.check_flavor, plus the safety checks,
lookup errors and plug-ins that are particular to them."""

from __future__ import annotations

import importlib
import importlib.metadata
import json
import subprocess
import sys
import warnings
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from functools import cache
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest

import shipyard.models.flavors as flavors
from shipyard.errors import ConfigError, IntegrityError, NotFoundError, ValidationError
from shipyard.models.flavors import Flavor, all_flavors, flavor_for, get_flavor
from shipyard.models.flavors.base import ColumnMatching, Task
from shipyard.testing import check_flavor
from tests.models.pyfunc_model import LinearScorer

ROOT = Path(__file__).resolve().parents[2]
N_ROWS = 100  # rows predicted on in every check


@dataclass(frozen=True)
class Case:
    """A small trained model and what its flavor promises about it."""

    id: str
    flavor: str
    model: Any
    frame: pd.DataFrame
    columns: ColumnMatching  # how the flavor must match the frame's columns to the model's inputs
    main_module: str  # the library whose installed version environment() must report
    task: Task
    save_options: dict[str, Any] = field(default_factory=dict)


# --- the models: small, trained on data bundled with scikit-learn -------------------------------


@cache
def _data(name: str) -> tuple[pd.DataFrame, pd.Series]:
    from sklearn.datasets import load_breast_cancer, load_diabetes

    loader = {"breast_cancer": load_breast_cancer, "diabetes": load_diabetes}[name]
    frame, target = loader(return_X_y=True, as_frame=True)
    return frame, target


def _sklearn_pipeline() -> Case:
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    X, y = _data("breast_cancer")
    model = make_pipeline(StandardScaler(), LogisticRegression(max_iter=500)).fit(X, y)
    return Case("sklearn-pipeline", "sklearn", model, X.head(N_ROWS), "by_name", "sklearn", "classification")


def _sklearn_forest_regressor() -> Case:
    from sklearn.ensemble import RandomForestRegressor

    X, y = _data("diabetes")
    model = RandomForestRegressor(n_estimators=10, max_depth=5, random_state=0).fit(X.to_numpy(), y)
    return Case("sklearn-forest-regressor", "sklearn", model, X.head(N_ROWS), "by_position", "sklearn", "regression")


def _sklearn_pickled_forest() -> Case:
    """The same forest in the pickle format: pickle-based, so loading must check its digest."""
    case = build("sklearn-forest-regressor")
    return Case("sklearn-pickle", "sklearn", case.model, case.frame, "by_position", "sklearn", "regression",
                {"format": "pickle"})


def _xgboost_classifier() -> Case:
    import xgboost as xgb

    X, y = _data("breast_cancer")
    model = xgb.XGBClassifier(n_estimators=10, max_depth=3, n_jobs=1).fit(X, y)
    return Case("xgboost-classifier", "xgboost", model, X.head(N_ROWS), "by_name", "xgboost", "classification")


def _xgboost_regressor() -> Case:
    import xgboost as xgb

    X, y = _data("diabetes")
    model = xgb.XGBRegressor(n_estimators=10, max_depth=3, n_jobs=1).fit(X, y)
    return Case("xgboost-regressor", "xgboost", model, X.head(N_ROWS), "by_name", "xgboost", "regression")


def _lightgbm_classifier() -> Case:
    import lightgbm as lgb

    X, y = _data("breast_cancer")
    labels = np.array(["malignant", "benign"])[y]  # string classes: predict must give them back, not 0/1
    model = lgb.LGBMClassifier(n_estimators=10, num_leaves=8, n_jobs=1, verbose=-1).fit(X, labels)
    return Case("lightgbm-classifier", "lightgbm", model, X.head(N_ROWS), "by_name", "lightgbm", "classification")


def _lightgbm_regressor() -> Case:
    import lightgbm as lgb

    X, y = _data("diabetes")
    model = lgb.LGBMRegressor(n_estimators=10, num_leaves=8, n_jobs=1, verbose=-1).fit(X, y)
    return Case("lightgbm-regressor", "lightgbm", model, X.head(N_ROWS), "by_name", "lightgbm", "regression")


def _onnx_zipmap() -> Case:
    from skl2onnx import to_onnx
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    X, y = _data("breast_cancer")
    array = X.to_numpy(dtype=np.float32)
    fitted = make_pipeline(StandardScaler(), LogisticRegression(max_iter=500)).fit(array, y)
    model = to_onnx(fitted, array[:1])  # probabilities come as ZipMap's list of {class: p} dicts
    return Case("onnx-zipmap", "onnx", model, X.head(N_ROWS), "by_position", "onnxruntime", "classification")


def _onnx_arrays() -> Case:
    from skl2onnx import to_onnx
    from sklearn.ensemble import RandomForestClassifier

    X, y = _data("breast_cancer")
    array = X.to_numpy(dtype=np.float32)
    fitted = RandomForestClassifier(n_estimators=10, max_depth=4, random_state=0).fit(array, y)
    model = to_onnx(fitted, array[:1], options={RandomForestClassifier: {"zipmap": False}})
    return Case("onnx-arrays", "onnx", model, X.head(N_ROWS), "by_position", "onnxruntime", "classification")


def _pyfunc_scorer() -> Case:
    X, y = _data("breast_cancer")
    model = LinearScorer.fit(X, y)
    return Case("pyfunc-scorer", "pyfunc", model, X.head(N_ROWS), "as_given", "cloudpickle", "classification")


BUILDERS: dict[str, Callable[[], Case]] = {
    "sklearn-pipeline": _sklearn_pipeline,
    "sklearn-forest-regressor": _sklearn_forest_regressor,
    "sklearn-pickle": _sklearn_pickled_forest,
    "xgboost-classifier": _xgboost_classifier,
    "xgboost-regressor": _xgboost_regressor,
    "lightgbm-classifier": _lightgbm_classifier,
    "lightgbm-regressor": _lightgbm_regressor,
    "onnx-zipmap": _onnx_zipmap,
    "onnx-arrays": _onnx_arrays,
    "pyfunc-scorer": _pyfunc_scorer,
}


@cache
def build(case_id: str) -> Case:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # convergence and converter chatter, not what is tested here
        return BUILDERS[case_id]()


@cache
def saved(case_id: str, folder: Path) -> tuple[Path, dict[str, Any]]:
    case = build(case_id)
    flavor = get_flavor(case.flavor)
    path = folder / case_id / flavor.file_name
    path.parent.mkdir(parents=True)
    return path, flavor.save(case.model, path)


# --- the contract: shipyard.testing.check_flavor, as third-party flavors run it ---------------------------

# The checks that do not apply: only a pickle-based file has a digest to verify at load, and pyfunc
# promises no byte-for-byte saves and hands the frame to the model as given.
SKIPPED = {"sklearn-pickle": set(), "pyfunc-scorer": {"deterministic_bytes", "column_matching", "missing_column"}}
SKIPPED_OTHERWISE = {"load_verifies_digest"}


@pytest.mark.parametrize("case_id", list(BUILDERS))
def test_builtin_flavor_passes_check_flavor(case_id: str) -> None:
    case = build(case_id)
    others = [build(other).model for other in BUILDERS if build(other).flavor != case.flavor]
    report = check_flavor(get_flavor(case.flavor), case.model, case.frame, task=case.task, columns=case.columns,
                          probabilities=case.task == "classification", save_options=case.save_options,
                          other_models=others)
    assert set(report.skipped) == SKIPPED.get(case_id, SKIPPED_OTHERWISE), report


@pytest.mark.parametrize("case_id", list(BUILDERS))
def test_environment_reports_the_flavors_main_library(case_id: str) -> None:
    case = build(case_id)
    version = importlib.import_module(case.main_module).__version__
    assert version in get_flavor(case.flavor).environment().values()


def test_only_pyfunc_is_pickle_based_and_without_byte_for_byte_saves() -> None:
    builtins = [get_flavor(name) for name in ("xgboost", "lightgbm", "onnx", "sklearn", "pyfunc")]
    assert [f.name for f in builtins if f.pickle_based] == ["pyfunc"]
    assert [f.name for f in builtins if not f.deterministic] == ["pyfunc"]


# --- safety: skops trusts only what was recorded, pickles load only with their digest ----------------


def test_skops_records_the_types_it_must_trust(tmp_path: Path) -> None:
    path, meta = saved("sklearn-forest-regressor", tmp_path)
    assert meta["format"] == "skops"
    assert "sklearn.tree._tree.Tree" in meta["trusted_types"]
    pipeline_meta = get_flavor("sklearn").save(build("sklearn-pipeline").model, tmp_path / "pipeline.skops")
    assert pipeline_meta["trusted_types"] == []


def test_skops_refuses_a_type_that_was_not_recorded(tmp_path: Path) -> None:
    path, meta = saved("sklearn-forest-regressor", tmp_path)
    tampered = {**meta, "trusted_types": [t for t in meta["trusted_types"] if t != "sklearn.tree._tree.Tree"]}
    with pytest.raises(ValidationError, match=r"not trusted when it was saved: sklearn\.tree\._tree\.Tree"):
        get_flavor("sklearn").load(path, tampered)


def test_sklearn_pickle_format_is_recorded_as_pickle_based(tmp_path: Path) -> None:
    meta = get_flavor("sklearn").save(build("sklearn-forest-regressor").model, tmp_path / "model.pkl", format="pickle")
    assert meta["format"] == "pickle" and meta["pickle_based"] is True and len(meta["sha256"]) == 64


def test_pyfunc_refuses_a_replaced_file(tmp_path: Path) -> None:
    path, meta = saved("pyfunc-scorer", tmp_path)
    replacement = tmp_path / "other.pkl"
    get_flavor("pyfunc").save(LinearScorer({"mean radius": 1.0}, 0.0), replacement)
    with pytest.raises(IntegrityError, match=meta["sha256"]):
        get_flavor("pyfunc").load(replacement, meta)


def test_unknown_save_options_and_formats_are_refused(tmp_path: Path) -> None:
    model = build("sklearn-pipeline").model
    with pytest.raises(ValidationError, match="Unknown save option.*compress.*Accepted options: format"):
        get_flavor("sklearn").save(model, tmp_path / "m", compress=True)
    with pytest.raises(ValidationError, match="Unknown sklearn save format 'joblib'"):
        get_flavor("sklearn").save(model, tmp_path / "m", format="joblib")
    with pytest.raises(ValidationError, match="cannot save a .*LinearScorer"):
        get_flavor("sklearn").save(build("pyfunc-scorer").model, tmp_path / "m")


# --- ONNX specifics --------------------------------------------------------------------------------


def _two_input_onnx() -> Any:
    """y = 2a - b with inputs 'a' and 'b' fed by name."""
    from onnx import TensorProto, helper

    graph = helper.make_graph(
        [helper.make_node("Mul", ["a", "two"], ["a2"]), helper.make_node("Sub", ["a2", "b"], ["y"])],
        "two_inputs",
        [helper.make_tensor_value_info(n, TensorProto.FLOAT, [None, 1]) for n in ("a", "b")],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [None, 1])],
        initializer=[helper.make_tensor("two", TensorProto.FLOAT, [1], [2.0])],
    )
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)])


def test_onnx_with_several_inputs_feeds_columns_by_name(tmp_path: Path) -> None:
    flavor = get_flavor("onnx")
    meta = flavor.save(_two_input_onnx(), tmp_path / "model.onnx")
    assert meta["columns"] == "by_name" and meta["feature_names"] == ["a", "b"]
    assert meta["task"] == "regression"
    session = flavor.load(tmp_path / "model.onnx", meta)
    frame = pd.DataFrame({"b": [1.0, 2.0], "extra": ["x", "y"], "a": [3.0, 5.0]})
    np.testing.assert_array_equal(flavor.predict(session, frame), np.array([5.0, 8.0], dtype=np.float32))
    assert flavor.predict_proba(session, frame) is None


def test_onnx_accepts_serialized_bytes_and_refuses_garbage(tmp_path: Path) -> None:
    flavor = get_flavor("onnx")
    data = _two_input_onnx().SerializeToString()
    assert flavor_for(data) is flavor
    meta = flavor.save(data, tmp_path / "model.onnx")
    assert (tmp_path / "model.onnx").read_bytes() == data and meta["inputs"][0]["name"] == "a"
    with pytest.raises(ValidationError, match="not a serialized ONNX model"):
        flavor.save(b"\x08\xff\xff\xff", tmp_path / "bad.onnx")


# --- finding flavors: by name, by model, through plug-ins ------------------------------------------


def test_get_flavor_suggests_the_closest_name() -> None:
    with pytest.raises(NotFoundError, match=r"No model flavor named 'sklaern'.*lightgbm.*Did you mean 'sklearn'\?"):
        get_flavor("sklaern")


def test_flavor_for_an_unsupported_object_says_what_is_supported() -> None:
    with pytest.raises(ValidationError, match=r"No model flavor can save a builtins\.object\. Supported: scikit-learn"):
        flavor_for(object())
    with pytest.raises(ValidationError, match="builtins.type"):
        flavor_for(LinearScorer)  # a class, not a model


class EchoFlavor(Flavor):
    """A plug-in flavor for models that are plain strings starting with 'echo:'."""

    name = "echo"
    file_name = "model.txt"
    pickle_based = False
    packages = ("numpy",)

    def handles(self, model: Any) -> bool:
        return isinstance(model, str) and model.startswith("echo:")

    def save(self, model: Any, path: Path, **options: Any) -> dict[str, Any]:
        path.write_text(model)
        return {"flavor": self.name}

    def load(self, path: Path, meta: dict[str, Any]) -> Any:
        return path.read_text()

    def predict(self, model: Any, frame: pd.DataFrame) -> np.ndarray:
        return np.full(len(frame), model)

    def predict_proba(self, model: Any, frame: pd.DataFrame) -> np.ndarray | None:
        return None

    def describe(self, model: Any) -> dict[str, Any]:
        return {"class": "builtins.str", "task": "unknown", "params": {}, "n_features": None, "classes": None}


@pytest.fixture
def entry_points(monkeypatch: pytest.MonkeyPatch) -> Iterator[Callable[..., None]]:
    """Install fake "shipyard.flavors" entry points (name, value) and forget any loaded plug-ins."""

    def install(*points: tuple[str, str]) -> None:
        fakes = [importlib.metadata.EntryPoint(name=n, value=v, group="shipyard.flavors") for n, v in points]

        def fake(**kwargs: Any) -> list[importlib.metadata.EntryPoint]:
            return fakes if kwargs.get("group") == "shipyard.flavors" else []

        monkeypatch.setattr(importlib.metadata, "entry_points", fake)
        monkeypatch.setattr(flavors, "_plugins", None)

    yield install


def test_a_plugin_flavor_is_found_by_name_and_by_model(entry_points: Callable[..., None]) -> None:
    entry_points(("echo", "tests.models.test_flavors:EchoFlavor"))
    echo = get_flavor("echo")
    assert isinstance(echo, EchoFlavor)
    assert flavor_for("echo:hello") is echo
    assert [f.name for f in all_flavors()] == ["xgboost", "lightgbm", "onnx", "sklearn", "pyfunc", "echo"]
    with pytest.raises(NotFoundError, match="Flavors: echo, lightgbm"):
        get_flavor("nope")


def test_a_plugin_instance_is_accepted(entry_points: Callable[..., None], monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(sys.modules[__name__], "ECHO", EchoFlavor(), raising=False)
    entry_points(("echo", "tests.models.test_flavors:ECHO"))
    assert get_flavor("echo") is sys.modules[__name__].ECHO


def test_a_broken_plugin_is_reported_by_name(entry_points: Callable[..., None]) -> None:
    entry_points(("echo", "tests.models.test_flavors:EchoFlavor"), ("broken", "tests.models.no_such_module:Flavor"))
    assert get_flavor("sklearn").name == "sklearn"  # built-ins still resolve without loading plug-ins
    for _ in range(2):  # reported every time, not only on the first call
        with pytest.raises(ConfigError, match=r"plug-in 'broken' \(tests\.models\.no_such_module:Flavor\) failed"):
            get_flavor("echo")


def test_a_plugin_that_is_no_flavor_or_shadows_a_builtin_is_refused(entry_points: Callable[..., None]) -> None:
    entry_points(("odd", "tests.models.test_flavors:N_ROWS"))
    with pytest.raises(ConfigError, match=r"plug-in 'odd' .* gave a builtins\.int, not a Flavor"):
        all_flavors()
    entry_points(("sk", "tests.models.test_flavors:SklearnLookalike"))
    with pytest.raises(ConfigError, match=r"plug-in 'sk' .* is named 'sklearn', which is built in"):
        all_flavors()


class SklearnLookalike(EchoFlavor):
    name = "sklearn"


# --- light imports -----------------------------------------------------------------------------------


def test_importing_and_detecting_loads_no_ml_library() -> None:
    probe = (
        "import json, sys\n"
        "from shipyard.models.flavors import all_flavors, flavor_for\n"
        "class Model:\n"
        "    def predict(self, frame): return frame\n"
        "assert flavor_for(Model()).name == 'pyfunc'\n"
        "assert not any(f.handles(object()) for f in all_flavors())\n"
        "print(json.dumps(sorted(sys.modules)))\n"
    )
    out = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, check=True, cwd=ROOT).stdout
    loaded = set(json.loads(out))
    heavy = ["xgboost", "lightgbm", "onnxruntime", "onnx", "sklearn", "skops", "cloudpickle", "pandas", "numpy"]
    assert [m for m in heavy if m in loaded] == []
