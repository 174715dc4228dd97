"""The credit generator: the same data for the same seed, and its drift knobs move what they say they move."""

from __future__ import annotations

import hashlib

import pytest

from shipyard.errors import ValidationError
from shipyard.synthetic import credit


def test_without_drift_the_data_is_what_it_always_was() -> None:
    frame = credit(300, seed=1)
    # the digest of this table before the drift knobs existed: adding them changed nothing by default
    assert hashlib.sha256(frame.to_csv(index=False).encode()).hexdigest() == \
        "a6d713a4eaa3634d70bf4dba64eda834c76973ad7c0bee89ca01fbb5fa0be954"


def test_population_and_concept_shifts() -> None:
    from sklearn.ensemble import HistGradientBoostingClassifier

    base = credit(6000, seed=0)
    moved = credit(4000, seed=5, population_shift=1.0)
    assert moved["age"].mean() < base["age"].mean() - 5
    assert moved["loan_amount"].median() > 1.5 * base["loan_amount"].median()
    assert (moved["employment"] == "contract").mean() > (base["employment"] == "contract").mean() + 0.2
    features = ["age", "income", "loan_amount", "term_months", "debt_ratio", "credit_history_years",
                "prior_defaults"]

    def inputs(frame):  # type: ignore[no-untyped-def]
        return frame[features].assign(contract=(frame["employment"] == "contract") * 1,
                                      self_employed=(frame["employment"] == "self-employed") * 1)

    model = HistGradientBoostingClassifier(max_iter=150, random_state=0).fit(inputs(base), base["default"])
    same = credit(4000, seed=5)
    changed = credit(4000, seed=5, concept_shift=1.0)
    taught = credit(6000, seed=6, concept_shift=1.0)
    retrained = HistGradientBoostingClassifier(max_iter=150, random_state=0).fit(inputs(taught), taught["default"])
    accuracy = {name: float((m.predict(inputs(f)) == f["default"]).mean())
                for name, m, f in (("same", model, same), ("changed", model, changed),
                                   ("retrained", retrained, changed))}
    assert accuracy["changed"] < accuracy["same"] - 0.01  # the old model fits the new relationship worse
    assert accuracy["retrained"] > accuracy["changed"] + 0.03  # and a model trained on it does much better
    assert changed.drop(columns="default").equals(same.drop(columns="default"))  # only the outcome moved
    with pytest.raises(ValidationError, match="population_shift 2 must be between 0"):
        credit(10, population_shift=2)
