"""The filter language and search, on each metadata backend."""

from __future__ import annotations

from pathlib import Path

import pytest

import shipyard
from shipyard.errors import FilterSyntaxError, ValidationError

RUNS = [
    # name, experiment, params, metrics, tags, fails
    ("rf-small", "credit", {"model": "rf", "depth": 3}, {"auc": 0.81, "loss": 0.5}, {"team": "risk"}, False),
    ("rf-big", "credit", {"model": "rf", "depth": 12}, {"auc": 0.93, "loss": 0.3}, {"team": "growth"}, False),
    ("gbm", "credit", {"model": "gbm", "depth": 5}, {"auc": 0.95}, {"team": "risk"}, False),
    ("logreg", "churn", {"model": "logreg"}, {"auc": 0.72, "loss": 0.7}, {}, False),
    ("broken", "churn", {"model": "rf"}, {}, {"team": "risk"}, True),
]


@pytest.fixture
def runs(backend_workspace: Path) -> dict[str, str]:
    ids = {}
    for name, experiment, params, metrics, tags, fails in RUNS:
        try:
            with shipyard.start_run(name, experiment=experiment, tags=tags) as run:
                run.log_params(params)
                run.log_metrics(metrics)
                ids[name] = run.run_id
                if fails:
                    raise RuntimeError("training diverged")
        except RuntimeError:
            pass
    return ids


def names(filter: str | None = None, order_by: list[str] | None = None, **kw: object) -> list[str]:
    return [r.name for r in shipyard.search_runs(filter, order_by, **kw)]  # type: ignore[arg-type]


@pytest.mark.parametrize(
    "filter, expected",
    [
        ("metrics.auc > 0.9", {"rf-big", "gbm"}),
        ("metrics.auc >= 0.93 and params.model = 'rf'", {"rf-big"}),
        ("metrics.auc > 0.9 and (params.model = 'rf' or tags.team = 'risk')", {"rf-big", "gbm"}),
        ("not params.model = 'rf'", {"gbm", "logreg"}),
        ("params.model in ('gbm', 'logreg')", {"gbm", "logreg"}),
        ("params.model not in ('rf')", {"gbm", "logreg"}),
        ("params.depth = 12", {"rf-big"}),
        ("name like 'rf-%'", {"rf-small", "rf-big"}),
        ("tags.team ILIKE 'RISK'", {"rf-small", "gbm", "broken"}),
        ("metrics.loss is null", {"gbm", "broken"}),
        ("tags.team is not null and experiment = 'churn'", {"broken"}),
        ("status = 'FAILED'", {"broken"}),
        ("metrics.`loss` < 0.4 or metrics.auc <= 0.72", {"rf-big", "logreg"}),
        ("attributes.status != 'failed' and metrics.auc > 0", {"rf-small", "rf-big", "gbm", "logreg"}),
        ("params.model = 'x'' OR 1=1 --'", set()),
        ("", {r[0] for r in RUNS}),
    ],
)
def test_filters(runs: dict[str, str], filter: str, expected: set[str]) -> None:
    assert set(names(filter)) == expected


def test_order_paging_and_experiments(runs: dict[str, str]) -> None:
    assert names(order_by=["metrics.auc DESC"]) == ["gbm", "rf-big", "rf-small", "logreg", "broken"]
    assert names(order_by=["metrics.loss asc", "name desc"])[:3] == ["rf-big", "rf-small", "logreg"]
    assert names(experiment="churn", order_by=["name"]) == ["broken", "logreg"]
    seen: list[str] = []
    token = None
    while True:
        page = shipyard.search_runs(order_by=["name"], max_results=2, page_token=token)
        seen += [r.name for r in page]
        token = page.next_page_token
        if token is None:
            break
    assert seen == sorted(r[0] for r in RUNS)


def test_results_as_a_dataframe(runs: dict[str, str]) -> None:
    frame = shipyard.search_runs("experiment = 'credit'", ["metrics.auc desc"], output="pandas")
    assert list(frame["name"]) == ["gbm", "rf-big", "rf-small"]
    assert list(frame["metrics.auc"]) == [0.95, 0.93, 0.81]
    assert frame["params.depth"].tolist() == ["5", "12", "3"]
    assert {"run_id", "status", "start_time", "tags.team", "metrics.loss"} <= set(frame.columns)
    assert str(frame["start_time"].dtype).startswith("datetime64")


def test_found_runs_carry_their_artifacts(backend_workspace: Path) -> None:
    with shipyard.start_run("with-files") as run:
        run.log_artifact(b"{}", name="config.json")
        run.log_artifact(b"weights", name="models/weights.bin")
    with shipyard.start_run("without"):
        pass
    found = {r.name: r for r in shipyard.search_runs()}
    assert [(a.path, a.size) for a in found["with-files"].artifacts] == [("config.json", 2), ("models/weights.bin", 7)]
    assert found["without"].artifacts == []
    assert found["with-files"].to_dict()["artifacts"] == shipyard.get_run(run.run_id).to_dict()["artifacts"]


def test_top_level_leaves_out_nested_runs(backend_workspace: Path) -> None:
    with shipyard.start_run("parent") as parent:
        with shipyard.start_run("child", nested=True):
            pass
    with shipyard.start_run("alone"):
        pass
    assert set(names()) == {"parent", "child", "alone"}
    assert set(names(top_level=True)) == {"parent", "alone"}
    # Asking for a parent's children is a question about nested runs: they are found.
    assert names(f"parent_id = '{parent.run_id}'", top_level=True) == ["child"]


@pytest.mark.parametrize(
    "filter, position, message",
    [
        ("metrics.auc >", 13, "expected a value"),
        ("metrics.auc > 0.9 and", 21, "expected a field"),
        ("params.model = 'rf", 15, "string is not closed"),
        ("foo.bar = 1", 0, "unknown namespace 'foo'"),
        ("auc > 0.9", 0, "unknown field 'auc'"),
        ("params.depth > 3", 13, "params are text"),
        ("metrics.auc = 'high'", 12, "is a number"),
        ("(metrics.auc > 0.9", 18, "expected ')'"),
        ("metrics.auc > 0.9 metrics.loss < 1", 18, "expected 'and', 'or'"),
        ("metrics.auc ~ 1", 12, "unexpected character '~'"),
        ("params.model in 'rf'", 16, "expected '('"),
        ("attributes.colour = 'red'", 0, "unknown attribute 'colour'"),
    ],
)
def test_filter_errors_point_at_the_position(workspace: Path, filter: str, position: int, message: str) -> None:
    with pytest.raises(FilterSyntaxError) as info:
        shipyard.search_runs(filter)
    assert info.value.position == position
    assert message in str(info.value)
    assert str(info.value).splitlines()[-1] == "  " + " " * position + "^"


def test_bad_search_arguments(workspace: Path) -> None:
    with pytest.raises(ValidationError, match="max_results"):
        shipyard.search_runs(max_results=0)
    with pytest.raises(ValidationError, match="page token"):
        shipyard.search_runs(page_token="not-a-token")
    with pytest.raises(FilterSyntaxError, match="ASC or DESC"):
        shipyard.search_runs(order_by=["metrics.auc downwards"])
    with pytest.raises(ValidationError, match="output"):
        shipyard.search_runs(output="csv")  # type: ignore[arg-type]
