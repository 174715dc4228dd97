"""What `lineage show` accepts: every form the rest of the CLI accepts, and an error listing the
candidates when a form names more than one object."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from sklearn.dummy import DummyClassifier

import shipyard
from shipyard.cli.main import main
from shipyard.context import open_context
from shipyard.errors import NotFoundError, ValidationError
from shipyard.gates.promotion import promote
from shipyard.governance.lineage import resolve_node
from shipyard.store.lineage import Node


@pytest.fixture
def objects(workspace: Path) -> dict[str, str]:
    """Dataset credit (2 versions), model churn (2 versions, champion at 1) fed by credit@1, and a run."""
    shipyard.data.add("credit", pd.DataFrame({"x": [1, 2, 3], "y": [0, 1, 0]}))
    shipyard.data.add("credit", pd.DataFrame({"x": [1, 2, 3, 4], "y": [0, 1, 0, 1]}))
    with shipyard.start_run("train") as run:
        run.log_input("credit@1")
        model = DummyClassifier().fit(np.zeros((4, 1)), [0, 1, 0, 1])
        run.log_model(model, "churn")
    shipyard.models.register("churn", model)
    promote(open_context(), "churn/1", "champion", no_gates=True)
    return {"run": run.run_id}


@pytest.mark.parametrize(
    ("text", "node"),
    [
        ("credit@1", ("dataset_version", "credit@1")),
        ("credit", ("dataset_version", "credit@2")),  # a bare dataset name: its latest version
        ("credit@latest", ("dataset_version", "credit@2")),
        ("dataset:credit@1", ("dataset_version", "credit@1")),
        ("churn@champion", ("model_version", "churn/1")),
        ("churn", ("model_version", "churn/2")),  # a bare model name: its latest version
        ("churn/1", ("model_version", "churn/1")),
        ("models:/churn@champion", ("model_version", "churn/1")),
        ("run:{run}", ("run", "{run}")),
        ("{run}", ("run", "{run}")),
        ("{prefix}", ("run", "{run}")),
    ],
)
def test_every_form_resolves(objects: dict[str, str], text: str, node: tuple[str, str]) -> None:
    values = {"run": objects["run"], "prefix": objects["run"][:8]}
    kind, ident = node
    assert resolve_node(open_context(), text.format(**values)) == Node(kind, ident.format(**values))


def test_a_name_of_both_a_dataset_and_a_model_is_ambiguous(objects: dict[str, str]) -> None:
    shipyard.data.add("churn", pd.DataFrame({"x": [1]}))
    ctx = open_context()
    with pytest.raises(ValidationError, match="'churn' is ambiguous") as info:
        resolve_node(ctx, "churn")
    assert info.value.fields["candidates"] == ["dataset:churn@1", "models:/churn/2"]
    with pytest.raises(ValidationError, match="ambiguous"):
        resolve_node(ctx, "churn@latest")
    # The unambiguous forms work, and a form only one kind has is not ambiguous.
    assert resolve_node(ctx, "dataset:churn") == Node("dataset_version", "churn@1")
    assert resolve_node(ctx, "churn@champion") == Node("model_version", "churn/1")
    assert resolve_node(ctx, "churn@1") == Node("dataset_version", "churn@1")


@pytest.mark.parametrize(
    ("text", "error", "message"),
    [
        ("credit@9", NotFoundError, "Dataset 'credit' has no version 9. Versions: credit@1, credit@2."),
        ("churn@champoin", NotFoundError, "Model 'churn' has no alias 'champoin'"),
        ("credt", NotFoundError, "no dataset, model or run by that name. Did you mean 'credit'?"),
        ("credit@x!", ValidationError, "'credit@x!' is not a reference Shipyard knows"),
        ("  ", ValidationError, "Name an object"),
    ],
)
def test_errors_name_the_reference(objects: dict[str, str], text: str, error: type[Exception], message: str) -> None:
    with pytest.raises(error, match=message.replace(".", r"\.").replace("?", r"\?")):
        resolve_node(open_context(), text)


def test_lineage_show_accepts_an_alias_and_a_bare_name(objects: dict[str, str], capsys: pytest.CaptureFixture[str]) -> None:
    capsys.readouterr()
    assert main(["lineage", "show", "churn@champion"]) == 0
    out = capsys.readouterr().out
    assert "model_version churn/1" in out and objects["run"] in out and "credit@1" in out
    assert main(["lineage", "show", "credit", "--downstream"]) == 0
    assert "dataset_version credit@2" in capsys.readouterr().out
