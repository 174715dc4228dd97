"""The checks on a model in memory: what the flavor declares, how it detects, describes and predicts."""

from __future__ import annotations

from pathlib import Path

from shipyard.errors import NotFoundError, ValidationError
from shipyard.models.flavors.base import Flavor, qualified_name
from shipyard.testing._flavor_subject import Fail, Skip, Subject, json_dict, one_per_row, same, task_is

DESCRIBE_KEYS = ("class", "task", "params", "n_features", "classes")
_EXTRA_COLUMN = "__check_flavor_extra__"


def interface(s: Subject) -> str:
    cls = type(s.flavor)
    name, file_name = getattr(cls, "name", None), getattr(cls, "file_name", None)
    problems = []
    if not (isinstance(name, str) and name and not any(c.isspace() for c in name)):
        problems.append(f"name must be a non-empty string without spaces, got {name!r}")
    if not (isinstance(file_name, str) and file_name not in ("", ".", "..") and Path(file_name).name == file_name):
        problems.append(f"file_name must be a bare file name such as 'model.json', got {file_name!r}")
    for attribute in ("pickle_based", "deterministic"):
        if not isinstance(getattr(cls, attribute, None), bool):
            problems.append(f"{attribute} must be True or False, got {getattr(cls, attribute, None)!r}")
    packages = getattr(cls, "packages", None)
    if not (isinstance(packages, tuple) and all(isinstance(p, str) and p for p in packages)):
        problems.append(f"packages must be a tuple of distribution names such as ('scikit-learn',), got {packages!r}")
    if problems:
        raise Fail(f"{'; '.join(problems)}. Declare them as class attributes.")
    return f"name {name!r}, file {file_name!r}"


def handles(s: Subject) -> str:
    kind = qualified_name(s.model)
    if not s.flavor.handles(s.model):
        raise Fail(f"handles() is false for the {kind} it was given; it must be true for every model the flavor saves.")
    strangers = [("object()", object()), ("None", None), (f"the class {kind} itself", type(s.model))]
    strangers += [(f"a {qualified_name(other)}", other) for other in s.other_models]
    claimed = [label for label, other in strangers if s.flavor.handles(other)]
    if claimed:
        raise Fail(
            f"handles() also claims {', '.join(claimed)}. It must be false for anything that is not a model of "
            "this flavor, or flavor_for() hands such objects to it."
        )
    return f"claims the {kind}; refuses {len(strangers)} other objects"


def detection(s: Subject) -> str:
    from shipyard.models.flavors import flavor_for, get_flavor
    from shipyard.models.flavors.pyfunc import PyfuncFlavor

    name = s.flavor.name
    try:
        registered: Flavor | None = get_flavor(name)
    except NotFoundError:
        registered = None
    if registered is not None and type(registered) is not type(s.flavor):
        raise Fail(
            f"the flavor name {name!r} already belongs to {qualified_name(registered)}, so get_flavor({name!r}) "
            "never returns this one. Choose another name."
        )
    try:
        chosen: Flavor | None = flavor_for(s.model)
    except ValidationError:
        chosen = None
    if registered is not None:
        if chosen is None or chosen.name != name:
            picked = f"the {chosen.name} flavor" if chosen is not None else "no flavor"
            raise Fail(f"flavor_for() picks {picked} for the {qualified_name(s.model)}, not {name!r}.")
        return f"registered as {name!r}; flavor_for() picks it"
    if chosen is not None and not isinstance(chosen, PyfuncFlavor):  # plug-ins are tried before pyfunc only
        raise Fail(
            f"the {chosen.name} flavor already claims the {qualified_name(s.model)} and is tried first, so "
            f"flavor_for() would not pick {name!r} even once registered. Narrow one of the handles() methods, "
            "or register such models with an explicit flavor."
        )
    return "not registered in this environment; no flavor tried before plug-ins claims the model"


def describe(s: Subject) -> str:
    details = json_dict(s.flavor.describe(s.model), "describe()")
    missing = [key for key in DESCRIBE_KEYS if key not in details]
    if missing:
        raise Fail(f"describe() lacks {', '.join(missing)}; it must give {', '.join(DESCRIBE_KEYS)} (None when unknown).")
    kind = type(s.model).__name__
    if not isinstance(details["class"], str) or kind not in details["class"]:
        raise Fail(f"describe()['class'] is {details['class']!r}, which does not name the model's class {kind!r}.")
    task_is(details["task"], s.task, "describe()['task']")
    if not isinstance(details["params"], dict):
        raise Fail(f"describe()['params'] must be a dict of parameters, got {details['params']!r}.")
    n_features = details["n_features"]
    if n_features is not None and (isinstance(n_features, bool) or not isinstance(n_features, int) or n_features < 0):
        raise Fail(f"describe()['n_features'] must be a count or None, got {n_features!r}.")
    classes = details["classes"]
    if classes is not None and not (isinstance(classes, list) and classes):
        raise Fail(f"describe()['classes'] must be a non-empty list of labels or None, got {classes!r}.")
    s.details = details
    return f"{details['class']}, task {details['task']}, classes {classes}"


def environment(s: Subject) -> str:
    from importlib.metadata import PackageNotFoundError, version

    reported = s.flavor.environment()
    if not (isinstance(reported, dict) and all(isinstance(k, str) and isinstance(v, str) for k, v in reported.items())):
        raise Fail(f"environment() must map distribution names to version strings, got {reported!r}.")
    installed: dict[str, str] = {}
    for package in s.flavor.packages:
        try:
            installed[package] = version(package)
        except PackageNotFoundError:
            continue
    if s.flavor.packages and not installed:
        raise Fail(
            f"none of the declared packages ({', '.join(s.flavor.packages)}) is installed, yet a model of this "
            "flavor exists here. Declare distribution names as pip knows them ('scikit-learn', not 'sklearn')."
        )
    wrong = [f"{name}: {reported.get(name)!r} (installed: {v})" for name, v in installed.items()
             if reported.get(name) != v]
    undeclared = sorted(set(reported) - set(installed))
    if wrong or undeclared:
        parts = ([f"wrong or missing versions: {'; '.join(wrong)}"] if wrong else []) + (
            [f"packages that are not declared or not installed: {', '.join(undeclared)}"] if undeclared else [])
        raise Fail(f"environment() {', and '.join(parts)}. Report the installed version of each package in `packages`.")
    return ", ".join(f"{name} {v}" for name, v in reported.items()) or "no packages declared"


def predict(s: Subject) -> str:
    import numpy as np

    predictions = s.predict(s.frame)
    one_per_row(predictions, len(s.frame), "predict(model, frame)")
    task, classes = s.details["task"], s.details["classes"]
    if task == "regression" and not np.issubdtype(predictions.dtype, np.number):
        raise Fail(f"predict() gives {predictions.dtype} values for a regressor; a regressor predicts numbers.")
    if task == "classification" and classes is not None:
        unknown = sorted({repr(v) for v in predictions.tolist() if v not in classes})
        if unknown:
            raise Fail(f"predict() gives label(s) {', '.join(unknown[:5])} that describe()['classes'] ({classes}) lacks.")
    first = s.predict(s.frame.iloc[:1])
    one_per_row(first, 1, "predict(model, frame.iloc[:1])")
    same(first, predictions[:1], "a single row predicts differently than it does within the frame", exact=False)
    s.expected = predictions
    return f"{len(predictions)} {predictions.dtype} predictions; one row alone predicts the same"


def predict_proba(s: Subject) -> str:
    import numpy as np

    proba = s.predict_proba(s.frame)
    if proba is None:
        if s.probabilities:
            raise Fail("predict_proba() gives None, but the model offers class probabilities.")
        return "None: the model gives no probabilities"
    if s.probabilities is False or s.details["task"] == "regression":
        raise Fail(f"predict_proba() gives a {type(proba).__name__} for a model without class probabilities; "
                   "it must give None.")
    n = len(s.frame)
    if not isinstance(proba, np.ndarray) or proba.ndim != 2 or proba.shape[0] != n:
        shape = getattr(proba, "shape", None)
        raise Fail(f"predict_proba() must give a numpy array of shape ({n}, n_classes), got a "
                   f"{type(proba).__name__} of shape {shape}.")
    classes = s.details["classes"]
    if classes is None or len(classes) != proba.shape[1]:
        raise Fail(f"predict_proba() gives {proba.shape[1]} columns, but describe()['classes'] is {classes}; it "
                   "must list one class per column, in the same order.")
    if not np.issubdtype(proba.dtype, np.number) or not np.isfinite(proba).all():
        raise Fail(f"predict_proba() gives {proba.dtype} values that are not all finite numbers.")
    if proba.min() < -1e-6 or proba.max() > 1 + 1e-6:
        raise Fail(f"predict_proba() gives values from {proba.min()} to {proba.max()}; probabilities lie in [0, 1].")
    sums = proba.sum(axis=1)
    if not np.allclose(sums, 1.0, rtol=1e-5, atol=0):
        row = int(np.argmax(np.abs(sums - 1.0)))
        raise Fail(f"predict_proba()'s rows must sum to 1; row {row} sums to {sums[row]}.")
    same(s.predict_proba(s.frame.iloc[:1]), proba[:1],
         "a single row gets other probabilities than it does within the frame", exact=False)
    s.proba = proba
    return f"({n}, {proba.shape[1]}) probabilities for classes {classes}"


def column_matching(s: Subject) -> str:
    matching = s.meta["columns"]
    if matching == "as_given":
        raise Skip("the columns are as_given: the frame reaches the model unchanged and the model decides")
    if matching == "by_name":
        changed = s.frame[list(reversed(s.frame.columns))]
        changed.insert(0, _EXTRA_COLUMN, 0.0)
        done = "reversed the columns and added one"
    else:
        changed = s.frame.set_axis([f"c{i}" for i in range(s.frame.shape[1])], axis=1)
        done = "renamed the columns"
    same(s.predict(changed), s.expected,
         f"the columns are matched {matching}, but the predictions changed when check_flavor {done}", exact=True)
    return f"{done}: the same predictions"


def missing_column(s: Subject) -> str:
    matching, names = s.meta["columns"], s.meta["feature_names"]
    if matching == "as_given":
        raise Skip("the columns are as_given: the model reports its own errors")
    if matching == "by_name":
        # The recorded spelling may differ (LightGBM stores spaces as underscores); accept either.
        spellings = {str(c): {str(c), str(c).replace(" ", "_")} & set(names) for c in s.frame.columns}
        used = [c for c in s.frame.columns if spellings[str(c)]]
        if not used:
            raise Skip(f"none of the frame's columns is named as in feature_names ({names[:5]}…)")
        dropped = used[-1]
        mentions = {str(dropped), *spellings[str(dropped)]}
        expect = f"name the column {str(dropped)!r}"
    else:
        dropped = s.frame.columns[-1]
        mentions = {str(s.frame.shape[1] - 1)}
        expect = f"say how many columns the frame has ({s.frame.shape[1] - 1})"
    try:
        s.predict(s.frame.drop(columns=[dropped]))
    except ValidationError as exc:
        if not any(m in str(exc) for m in mentions):
            raise Fail(f"the ValidationError for a missing column does not {expect}: {exc}") from None
        return f"dropping {str(dropped)!r} raised a ValidationError that names it"
    except Exception as exc:  # noqa: BLE001
        raise Fail(f"dropping the column {str(dropped)!r} raised {type(exc).__name__}: {exc}; raise a ValidationError "
                   f"that names it (match_columns(frame, feature_names) does).") from exc
    raise Fail(f"predict() worked without the column {str(dropped)!r}; it must raise a ValidationError.")


def stateless(s: Subject) -> str:
    after = dict(getattr(s.flavor, "__dict__", {}))
    changed = sorted(k for k in {*s.state, *after} if k not in s.state or k not in after or s.state[k] is not after[k])
    if changed:
        raise Fail(f"the checks changed the flavor's attribute(s) {', '.join(changed)}. One flavor instance serves "
                   "every model and every thread; keep per-model state in the model or the metadata.")
    return "no attribute changed"
