"""Model cards built from a real registry: the JSON against the stored gate results, the Markdown and HTML
renderings, the files written with their audit event, and the cards of regressors and of ungated models."""

from __future__ import annotations

import hashlib
import json
import os
import re
import stat
from pathlib import Path
from typing import Any

import pandas as pd
import pytest
import yaml
from sklearn.datasets import load_breast_cancer, load_diabetes
from sklearn.linear_model import LinearRegression, LogisticRegression

import shipyard
from shipyard.context import Context, open_context
from shipyard.errors import NotFoundError
from shipyard.governance.audit import audit_log
from shipyard.governance.cards import build_card, render_html, render_markdown, write_card
from shipyard.gates.gating import latest_gates, run_gates, waive_gate
from shipyard.gates.promotion import check_promotion

FEATURES = ["mean radius", "mean texture", "mean smoothness", "mean concavity"]
MCT_KEYS = {"schema_version", "model_details", "model_parameters", "quantitative_analysis", "considerations"}
SLICE = "large <em>tumours</em>"  # user text that must come out escaped


def _configure(root: Path, gates: dict[str, Any] | None = None, governance: dict[str, Any] | None = None) -> None:
    spec = root / "shipyard.yaml"
    extra = {key: value for key, value in (("gates", gates), ("governance", governance)) if value}
    spec.write_text(spec.read_text() + "\n" + yaml.safe_dump(extra, sort_keys=False))


def _train(name: str, model: Any, frame: pd.DataFrame, target: str, dataset: str) -> str:
    features = frame.drop(columns=[target, "group"], errors="ignore")
    with shipyard.start_run("train") as run:
        run.log_input(dataset)
        version = run.log_model(model.fit(features, frame[target]), name, input_example=features.head(20))
    return str(version.version_id)


@pytest.fixture
def cancer(workspace: Path) -> tuple[Context, str]:
    """A classifier with evaluation, behavioural (two slices) and fairness gates, the fairness gate waived."""
    data = load_breast_cancer(as_frame=True).frame[[*FEATURES, "target"]]
    data.insert(len(FEATURES), "group", ["a" if r > 14 else "b" for r in data["mean radius"]])
    shipyard.data.add("cancer-train", data.iloc[::2].reset_index(drop=True))
    shipyard.data.add("cancer-eval", data.iloc[1::2].reset_index(drop=True))
    _configure(workspace, gates={"cancer": {
        "evaluation": {"dataset": "cancer-eval@latest", "target": "target",
                       "thresholds": {"roc_auc": {"min": 0.8}, "accuracy": {"min": 0.7}}},
        "behavioural": {"slices": [
            {"name": SLICE, "where": {"mean radius": {"min": 15}}, "metric": "accuracy", "min": 0.5},
            {"where": {"group": {"equals": "b"}}, "metric": "roc_auc", "min": 0.5},
        ]},
        "fairness": {"sensitive": "group", "demographic_parity_difference": {"max": 0.05}},
    }}, governance={"cancer": {"intended_use": "Second reader for <b>screening</b>; never the only reader.",
                               "owners": ["imaging-team"], "reviews": ["ethical"]}})
    version = _train("cancer", LogisticRegression(max_iter=2000), data.iloc[::2], "target", "cancer-train@1")
    ctx = open_context()
    run_gates(ctx, version)
    waive_gate(ctx, version, "fairness", reason="groups differ in tumour size by construction")
    return ctx, version


def test_card_follows_the_model_card_toolkit_structure_and_the_stored_gate_results(cancer: tuple[Context, str]) -> None:
    ctx, version = cancer
    card = build_card(ctx, "models:/cancer/1")
    stored = {gate: entry.result for gate, entry in latest_gates(ctx, version).items()}

    assert MCT_KEYS <= set(card) and {"gates", "reviews", "lineage", "promotion"} <= set(card)
    details = card["model_details"]
    assert (details["name"], details["version"]["name"], details["path"]) == ("cancer", "1", "models:/cancer/1")
    assert details["owners"] == [{"name": "imaging-team"}] and details["flavor"] == "sklearn"
    assert re.fullmatch(r"[0-9a-f]{64}", details["artifact_digest"]) and details["registered_by"] == "tester"
    params = card["model_parameters"]
    assert params["model_architecture"].endswith("LogisticRegression")
    assert [item["key"] for item in params["input_format_map"]] == FEATURES
    assert params["data"]["train"]["name"] == "cancer-train@1" and params["data"]["train"]["row_count"] == 285
    assert params["data"]["eval"]["name"] == "cancer-eval@1" == stored["evaluation"]["dataset"]

    metrics = card["quantitative_analysis"]["performance_metrics"]
    overall = {m["type"]: m["value"] for m in metrics if m["slice"] == "overall"}
    assert overall == stored["evaluation"]["metrics"] and overall["roc_auc"] > 0.8
    sliced = {(m["slice"], m["type"]): m["value"] for m in metrics if m["gate"] == "behavioural"}
    assert sliced == {(SLICE, "accuracy"): stored["behavioural"]["metrics"][f"slices.{SLICE}.accuracy"],
                      ("group == 'b'", "roc_auc"): stored["behavioural"]["metrics"]["slices.group == 'b'.roc_auc"]}
    by_group = stored["fairness"]["metrics"]["by_group"]
    rates = {m["slice"]: m["value"] for m in metrics if m["type"] == "selection_rate"}
    assert rates == {f"group = {g}": values["selection_rate"] for g, values in by_group.items()}
    assert set(rates) == {"group = a", "group = b"}

    gates = card["gates"]
    assert {g: e["status"] for g, e in gates.items()} == {"evaluation": "PASS", "behavioural": "PASS",
                                                        "fairness": "WAIVED"}
    assert gates["fairness"]["waived_by"] == "tester" and "by construction" in gates["fairness"]["waiver_reason"]
    considerations = card["considerations"]
    assert considerations["use_cases"] == ["Second reader for <b>screening</b>; never the only reader."]
    assert considerations["limitations"] == ["Not documented: add governance.cancer.limitations to shipyard.yaml."]
    risks = " ".join(f"{r['name']} {r['mitigation_strategy']}" for r in considerations["ethical_considerations"])
    assert "WAIVED by tester" in risks and "ethical review (required before promotion) is not requested" in risks

    lineage = card["lineage"]
    run_id = lineage["run_id"]
    assert run_id and lineage["training_dataset"] == "cancer-train@1" and "git_dirty" in lineage
    assert {"source": f"run:{run_id}", "target": "model_version:cancer/1", "relation": "output"} in lineage["upstream"]
    assert {"source": "dataset_version:cancer-train@1", "target": f"run:{run_id}", "relation": "input"} \
        in lineage["upstream"]
    assert card["promotion"] == check_promotion(ctx, version).to_dict()
    assert card["promotion"]["allowed"] is False  # the ethical review is required and missing
    assert card["reviews"] == {"required": ["ethical"], "history": []}
    json.dumps(card, allow_nan=False)  # plain JSON throughout


def test_html_is_one_self_contained_page_with_three_plots_and_escaped_text(cancer: tuple[Context, str]) -> None:
    ctx, version = cancer
    card = build_card(ctx, version)
    names = [g["name"] for g in card["quantitative_analysis"]["graphics"]["collection"]]
    assert names == ["Metrics by slice", "Fairness by group (group)", "Confusion matrix"]
    html = render_html(card)

    assert html.count("<svg ") == 3 and html.count("</svg>") == 3
    assert 'aria-label="confusion matrix"' in html and 'aria-label="fairness by group"' in html
    assert not re.search(r"https?://", html) and "<script" not in html and "<link" not in html
    assert "&lt;b&gt;screening&lt;/b&gt;" in html and "<b>screening" not in html
    assert "large &lt;em&gt;tumours&lt;/em&gt;" in html and "<em>" not in html
    assert "WAIVED" in html and "groups differ in tumour size by construction" in html

    hostile = json.loads(json.dumps(card))
    hostile["model_details"]["name"] = "<script>alert(1)</script>"
    hostile["quantitative_analysis"]["graphics"]["collection"].append(
        {"name": "x", "image": '<svg onload="alert(1)"></svg>'})
    page = render_html(hostile)
    assert "<script" not in page and "&lt;script&gt;alert(1)&lt;/script&gt;" in page
    assert "onload" not in page and page.count("<svg ") == 3


def test_markdown_lists_the_metrics_and_gate_statuses(cancer: tuple[Context, str]) -> None:
    ctx, version = cancer
    card = build_card(ctx, version)
    text = render_markdown(card)
    roc_auc = next(m["value"] for m in card["quantitative_analysis"]["performance_metrics"] if m["type"] == "roc_auc")

    assert text.startswith("# Model card: cancer version 1\n")
    assert re.search(rf"\| roc_auc \| overall \| {re.escape(f'{roc_auc:.4g}')} \| evaluation \|", text)
    assert "| selection_rate | group = a |" in text
    for gate, status in (("evaluation", "PASS"), ("behavioural", "PASS"), ("fairness", "WAIVED")):
        assert f"| {gate} | {status} |" in text
    assert "| tester | groups differ in tumour size by construction |" in text
    assert "&lt;b>screening&lt;/b>" in text and "<b>" not in text  # no raw HTML reaches a Markdown renderer
    assert "Not ready to promote" in text and "the required ethical review is not requested" in text


def test_write_card_writes_three_files_and_audits_their_digests(cancer: tuple[Context, str]) -> None:
    ctx, version = cancer
    paths = write_card(ctx, version)

    folder = ctx.workspace.root / "cards" / "cancer" / "1"
    assert paths == {"json": folder / "card.json", "markdown": folder / "card.md", "html": folder / "card.html"}
    assert sorted(p.name for p in folder.iterdir()) == ["card.html", "card.json", "card.md"]  # no temp files left
    assert json.loads(paths["json"].read_text())["model_details"]["path"] == "models:/cancer/1"
    event = audit_log(ctx, action="model.card")[0]
    assert (event.object_kind, event.object_id, event.actor) == ("model_version", "cancer/1", "tester")
    assert event.payload["digests"] == {p.name: hashlib.sha256(p.read_bytes()).hexdigest() for p in paths.values()}

    elsewhere = write_card(ctx, "cancer@latest", out_dir=ctx.workspace.root / "out")
    assert all(p.parent == ctx.workspace.root / "out" and p.is_file() for p in elsewhere.values())
    assert len(audit_log(ctx, action="model.card")) == 2


def test_a_regressor_gets_a_residual_histogram_instead_of_a_confusion_matrix(workspace: Path) -> None:
    data = load_diabetes(as_frame=True).frame
    shipyard.data.add("diabetes", data)
    _configure(workspace, gates={"sugar": {"evaluation": {
        "dataset": "diabetes@1", "target": "target", "thresholds": {"rmse": {"max": 80}}}}})
    version = _train("sugar", LinearRegression(), data, "target", "diabetes@1")
    ctx = open_context()
    run_gates(ctx, version)
    card = build_card(ctx, version)

    graphics = card["quantitative_analysis"]["graphics"]["collection"]
    assert [g["name"] for g in graphics] == ["Residuals (actual - predicted)"]
    assert graphics[0]["image"].startswith("<svg ") and 'aria-label="histogram"' in graphics[0]["image"]
    overall = {m["type"]: m["value"] for m in card["quantitative_analysis"]["performance_metrics"]}
    assert overall == latest_gates(ctx, version)["evaluation"].result["metrics"]
    assert set(overall) == {"rmse", "mae", "r2"}
    assert card["model_parameters"]["task"] == "regression"
    assert "Confusion matrix" not in render_html(card)


def test_a_model_without_gates_gets_a_card_that_says_the_evaluation_is_missing(workspace: Path) -> None:
    data = load_diabetes(as_frame=True).frame
    shipyard.data.add("diabetes", data)
    version = _train("sugar", LinearRegression(), data, "target", "diabetes@1")
    ctx = open_context()
    card = build_card(ctx, version)

    analysis = card["quantitative_analysis"]
    assert analysis["performance_metrics"] == [] and analysis["graphics"]["collection"] == []
    assert any("No evaluation dataset is configured: add gates.sugar.evaluation" in n for n in analysis["notes"])
    assert card["model_parameters"]["data"]["eval"]["name"] is None
    assert card["considerations"]["use_cases"] == [
        "Not documented: add governance.sugar.intended_use to shipyard.yaml."]
    assert card["gates"] == {} and card["promotion"]["allowed"] is False  # no gates: promotion needs a decision
    assert card["promotion"]["problems"][0].startswith("no gates are configured for 'sugar'")
    html, text = render_html(card), render_markdown(card)
    assert "<svg" not in html and "No evaluation dataset is configured" in html
    assert "No gates are declared in shipyard.yaml." in text


@pytest.mark.parametrize("umask", [0o022, 0o027])
def test_card_files_follow_the_umask_like_other_outputs(workspace: Path, tmp_path: Path, umask: int) -> None:
    data = load_diabetes(as_frame=True).frame.head(60)
    shipyard.data.add("diabetes", data)
    version = _train("sugar", LinearRegression(), data, "target", "diabetes@1")
    previous = os.umask(umask)
    try:
        paths = write_card(open_context(), version, tmp_path / "cards")
        (tmp_path / "other.txt").write_text("any other output")
    finally:
        os.umask(previous)
    expected = 0o666 & ~umask
    assert stat.S_IMODE((tmp_path / "other.txt").stat().st_mode) == expected
    assert {kind: stat.S_IMODE(path.stat().st_mode) for kind, path in paths.items()} == dict.fromkeys(paths, expected)
    assert sorted(p.name for p in (tmp_path / "cards").iterdir()) == ["card.html", "card.json", "card.md"]  # no temp files


def test_an_unknown_model_is_not_found_with_a_suggestion(cancer: tuple[Context, str]) -> None:
    ctx, _ = cancer
    with pytest.raises(NotFoundError, match="No registered model named 'cancr'. Did you mean 'cancer'?"):
        build_card(ctx, "cancr/1")
    with pytest.raises(NotFoundError, match="has no version 7"):
        write_card(ctx, "cancer/7")
    assert not (ctx.workspace.root / "cards").exists()


def test_the_card_plots_what_the_gates_stored_without_loading_the_model(cancer: tuple[Context, str]) -> None:
    ctx, version = cancer
    stored = latest_gates(ctx, version)["evaluation"].result["evidence"]
    assert stored["rows"] == 284 and sum(map(sum, stored["confusion_matrix"]["matrix"])) == 284
    digest = shipyard.models.get(version).artifact_digest
    blob = ctx.workspace.root / ".shipyard" / "artifacts" / "sha256" / digest[:2] / digest
    blob.unlink()  # the model cannot be loaded any more; the card needs only the stored evidence
    card = build_card(ctx, version)
    names = [g["name"] for g in card["quantitative_analysis"]["graphics"]["collection"]]
    assert "Confusion matrix" in names
    assert card["model_parameters"]["data"]["eval"]["row_count"] == 284
