"""Model cards: what a registered version is, what it was trained and evaluated on, its gate evidence, reviews
and lineage, with plots; as JSON (the Model Card Toolkit schema's structure plus Shipyard sections), Markdown
and one self-contained HTML page."""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import os
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from shipyard.context import Context
from shipyard.governance.lineage import walk
from shipyard.store.lineage import Node, Tree
from shipyard.data.report import CURRENT_COLOUR, REFERENCE_COLOUR, histogram_svg
from shipyard.governance.card_render import GROUP_RATES, bars_svg, groups_svg, matrix_svg, render_html, render_markdown
from shipyard.errors import NotFoundError, ShipyardError, ValidationError
from shipyard.gates.gating import StoredGate, latest_gates
from shipyard.gates.promotion import check_promotion
from shipyard.models.records import ModelVersion
from shipyard.models.registry import get_model_version
from shipyard.models.reviews import Review, list_reviews

if TYPE_CHECKING:
    from shipyard.policy.gates import GateSpec
    from shipyard.policy.governance import Governance

SCHEMA_VERSION = "0.0.1"  # the Model Card Toolkit schema whose structure the JSON follows
FILES = {"json": "card.json", "markdown": "card.md", "html": "card.html"}
_DISPARITIES = ("demographic_parity_difference", "demographic_parity_ratio", "equalized_odds_difference")


@dataclass
class _Evaluation:
    """The evaluation data the gates used (or would use), or why there is none."""

    dataset: str | None = None
    target: str | None = None
    rows: int | None = None
    evidence: dict[str, Any] | None = None
    missing: str | None = None
    source: str | None = None  # "split": rows the standard pipeline held out of the training data; "declared"

    def describe(self, trained_on: str | None) -> str:
        """Which data the gate numbers come from, in a sentence."""
        if self.dataset is None or self.evidence is None:
            return "No gate numbers yet: " + (self.missing or "the evaluation gate has not run.")
        rows = f"{self.rows} rows" if self.rows is not None else "its rows"
        if self.source == "split":
            return (f"The numbers come from the gates on {self.dataset}: {rows} the standard pipeline held out of "
                    f"{trained_on or 'the training data'}, which the model never trained on.")
        return (f"The numbers come from the gates on {self.dataset} ({rows}), the evaluation data the gate spec "
                "declares.")


def build_card(ctx: Context, ref: str) -> dict[str, Any]:
    """The card of a version (any ref get_model_version accepts) as plain JSON data."""
    version = get_model_version(ctx, ref)
    vid, model = version.version_id, version.model
    rules = ctx.policy.governance(model)
    spec = ctx.policy.gates(model)
    stored = latest_gates(ctx, vid)
    reviews = list_reviews(ctx, vid)
    evaluation = _evaluation_data(version, spec, stored)
    graphics, notes = _graphics(version, stored, evaluation)
    if spec is not None and spec.evaluation is not None and "evaluation" not in stored:
        notes.insert(0, f"The evaluation gate has not run: run `shipyard models gate {vid}`.")
    return {
        "schema_version": SCHEMA_VERSION,
        "model_details": _details(version, rules),
        "model_parameters": _parameters(ctx, version, spec, evaluation),
        "quantitative_analysis": {"data": evaluation.describe(version.dataset_version),
                                  "performance_metrics": _performance(stored, evaluation.dataset),
                                  "graphics": graphics, "notes": notes},
        "considerations": _considerations(version, rules, spec, stored, reviews),
        "gates": _gates(version, spec, stored),
        "reviews": {"required": list(rules.reviews), "history": [r.to_dict() for r in reviews]},
        "lineage": _lineage(ctx, version),
        "promotion": check_promotion(ctx, vid).to_dict(),
    }


def write_card(ctx: Context, ref: str, out_dir: Path | None = None) -> dict[str, Path]:
    """Write card.json, card.md and card.html (each atomically) into `out_dir`, by default
    <workspace>/cards/<model>/<version>/, and audit their digests as a `model.card` event."""
    version = get_model_version(ctx, ref)
    card = build_card(ctx, version.version_id)
    folder = ctx.workspace.root / "cards" / version.model / str(version.version) if out_dir is None else Path(out_dir)
    blocking = next((p for p in (folder, *folder.parents) if p.exists()), None)
    if blocking is not None and not blocking.is_dir():
        raise ValidationError(f"Cannot write the model card into {folder}: {blocking} is a file. Choose a folder.",
                              path=str(folder))
    folder.mkdir(parents=True, exist_ok=True)
    texts = {"json": json.dumps(card, indent=2, allow_nan=False, default=str) + "\n",
             "markdown": render_markdown(card), "html": render_html(card)}
    paths, digests = {}, {}
    for kind, text in texts.items():
        data = text.encode()
        paths[kind] = _write_atomically(folder / FILES[kind], data)
        digests[FILES[kind]] = hashlib.sha256(data).hexdigest()
    with ctx.store.mutation(ctx.actor, "model.card", "model_version", version.version_id, {"digests": digests}):
        pass
    return paths


def _write_atomically(path: Path, data: bytes) -> Path:
    # Opened like any new file (mode 0666 less the umask), not through mkstemp, whose 0600 the file
    # would keep after the rename.
    tmp = path.with_name(f".{path.name}.{uuid.uuid4().hex}.tmp")
    try:
        with open(tmp, "xb") as out:
            out.write(data)
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    return path


# -- the sections ------------------------------------------------------------------------------


def _details(version: ModelVersion, rules: Governance) -> dict[str, Any]:
    references = [f"run:{version.run_id}"] if version.run_id else []
    if version.dataset_version:
        references.append(f"dataset:{version.dataset_version}")
    return {
        "name": version.model,
        "overview": version.description or (
            f"No description recorded for {version.version_id}: pass description=… to run.log_model or "
            "shipyard.models.register."),
        "version": {"name": str(version.version), "date": _date(version.created), "aliases": version.aliases,
                    "status": version.status},
        "owners": [{"name": owner} for owner in rules.owners],
        "references": references,
        "licenses": [],
        "path": version.uri,
        "flavor": version.flavor,
        "artifact_digest": version.artifact_digest,
        "artifact_size": version.artifact_size,
        "environment": version.environment,
        "registered_by": version.created_by,
        "registered_at": _time(version.created),
    }


def _parameters(ctx: Context, version: ModelVersion, spec: GateSpec | None, evaluation: _Evaluation) -> dict[str, Any]:
    from shipyard.data.versions import get_version as get_dataset_version

    signature = version.signature or {}
    inputs = signature.get("inputs") or []
    output = signature.get("output") or {}
    output_format = " ".join(filter(None, [
        f"{output['dtype']} predictions" if output.get("dtype") else "predictions",
        f"(classes {', '.join(map(str, output['classes']))})" if output.get("classes") else "",
    ]))
    train: dict[str, Any] = {"name": version.dataset_version}
    if version.dataset_version:
        try:
            total = get_dataset_version(ctx, version.dataset_version).row_count
        except NotFoundError:
            total = None
        trained = version.metrics.get("training_rows")  # recorded by the standard pipeline
        train["row_count"] = int(trained) if trained is not None else total
        train["dataset_rows"] = total
        if trained is not None and total is not None and int(trained) < total:
            train["note"] = (f"The model trained on {int(trained)} of the {total} rows of {version.dataset_version}; "
                             "the others were held out for evaluation or had no target value.")
        train["link"] = f"shipyard lineage show {version.dataset_version}"
        views = (version.details.get("features") or {}).get("views")
        if views:  # trained through the standard pipeline's features.views: what serving must fetch
            train["feature_views"] = list(views)
            joined = f"Its features were joined point-in-time from feature views {', '.join(views)}."
            train["note"] = f"{train['note']} {joined}" if train.get("note") else joined
    else:
        train["note"] = ("Not recorded: call run.log_input(\"NAME@VERSION\") before run.log_model, or pass "
                         "dataset= when registering.")
    evaluated: dict[str, Any] = {"name": evaluation.dataset}
    if evaluation.dataset:
        evaluated["row_count"] = evaluation.rows
        evaluated["target"] = evaluation.target
        evaluated["source"] = evaluation.source
        evaluated["link"] = f"shipyard lineage show {evaluation.dataset}"
        if evaluation.source == "split":
            evaluated["note"] = (f"Held out of {version.dataset_version or 'the training data'} by the standard "
                                 "pipeline's split: the model never trained on these rows.")
    if evaluation.missing:
        evaluated["note"] = evaluation.missing
    if spec is not None and spec.fairness is not None:
        evaluated["sensitive"] = True
        evaluated["sensitive_columns"] = [spec.fairness.sensitive]
    return {
        "model_architecture": version.details.get("class") or version.flavor_meta.get("class") or version.flavor,
        "task": _task(version, spec),
        "input_format": ", ".join(f"{c['name']} ({c['dtype']})" for c in inputs) or (
            "Not recorded: register with input_example=… to record the input signature."),
        "input_format_map": [{"key": c["name"], "value": c["dtype"]} for c in inputs],
        "output_format": output_format,
        "data": {"train": train, "eval": evaluated},
    }


def _performance(stored: dict[str, StoredGate], dataset: str | None) -> list[dict[str, Any]]:
    """Overall metrics (evaluation gate), slice metrics (behavioural gate) and per-group rates (fairness gate),
    each with the dataset version it was measured on."""
    found: list[dict[str, Any]] = []

    def add(kind: str, value: Any, where: str, gate: str, rows: Any = None) -> None:
        if isinstance(value, int | float) and not isinstance(value, bool):
            found.append({"type": kind, "value": value, "slice": where, "gate": gate,
                          "dataset": stored[gate].result.get("dataset") or dataset,
                          **({"rows": rows} if rows is not None else {})})

    if "evaluation" in stored:
        for name, value in _metrics(stored["evaluation"]).items():
            add(name, value, "overall", "evaluation")
    if "behavioural" in stored:
        for label, metric, value, rows in _slices(_metrics(stored["behavioural"])):
            add(metric, value, label, "behavioural", rows)
    if "fairness" in stored:
        metrics = _metrics(stored["fairness"])
        for name in _DISPARITIES:
            add(name, metrics.get(name), f"across {metrics.get('sensitive')}", "fairness")
        for group, values in (metrics.get("by_group") or {}).items():
            for name in (*GROUP_RATES, "accuracy"):
                add(name, values.get(name), f"{metrics.get('sensitive')} = {group}", "fairness", values.get("count"))
    return found


def _considerations(version: ModelVersion, rules: Governance, spec: GateSpec | None, stored: dict[str, StoredGate],
                    reviews: list[Review]) -> dict[str, Any]:
    from shipyard.gates.results import format_number

    key = f"governance.{version.model}"
    risks: list[dict[str, str]] = []
    fairness = stored.get("fairness")
    if fairness is None:
        configured = spec is not None and spec.fairness is not None
        risks.append({
            "name": "Fairness was not evaluated: " + ("the fairness gate has not run." if configured
                                                      else "no fairness gate is configured."),
            "mitigation_strategy": f"Run `shipyard models gate {version.version_id}`." if configured else
            f"Declare gates.{version.model}.fairness with the sensitive column in shipyard.yaml, then run the gates.",
        })
    else:
        metrics = _metrics(fairness)
        shown = ", ".join(f"{name.replace('_', ' ')} {format_number(metrics[name])}" for name in _DISPARITIES
                          if metrics.get(name) is not None)
        verdicts = "; ".join(c.get("message", "") for c in fairness.result.get("checks", []))
        outcome = {"PASS": "passed", "FAIL": "FAILED", "NO_BASELINE": "has no baseline"}.get(fairness.status, "")
        if fairness.status == "WAIVED":
            outcome = f"failed and was WAIVED by {fairness.waived_by}: {fairness.waiver_reason}"
        risks.append({"name": f"Disparity across '{metrics.get('sensitive')}' groups: {shown or 'not computed'}.",
                      "mitigation_strategy": f"The fairness gate {outcome}" + (f" ({verdicts})." if verdicts else ".")})
    latest = {review.kind: review for review in reviews}  # oldest first, so the newest of each kind wins
    kinds = list(dict.fromkeys([*rules.reviews, *latest]))
    for kind in kinds:
        review = latest.get(kind)
        required = " (required before promotion)" if kind in rules.reviews else ""
        if review is None:
            risks.append({"name": f"The {kind} review{required} is not requested.",
                          "mitigation_strategy": f"`shipyard review request {version.version_id} --kind {kind}`."})
        else:
            who = f"{review.status} by {review.decided_by}" if review.decided_by else \
                f"requested by {review.requested_by}, not yet decided"
            risks.append({"name": f"The {kind} review{required} is {who}.",
                          "mitigation_strategy": review.notes or "No notes recorded."})
    if not kinds:
        risks.append({"name": "No review is required or recorded.",
                      "mitigation_strategy": f"Require one under {key}.reviews in shipyard.yaml."})
    tradeoffs = []
    if "evaluation" in stored:
        tradeoffs += [c["message"] for c in stored["evaluation"].result.get("checks", [])
                      if str(c.get("name", "")).startswith("against_champion.")]
    if "infrastructure" in stored:
        cost = ", ".join(f"{k} {format_number(v)}" for k, v in _metrics(stored["infrastructure"]).items()
                         if isinstance(v, int | float) and not isinstance(v, bool))
        if cost:
            tradeoffs.append(f"Serving cost measured in a clean process: {cost}.")
    return {
        "users": [f"As in the use cases ({key}.intended_use)." if rules.intended_use else
                  f"Not documented: name the intended users in {key}.intended_use in shipyard.yaml."],
        "use_cases": [rules.intended_use or f"Not documented: add {key}.intended_use to shipyard.yaml."],
        "limitations": [rules.limitations or f"Not documented: add {key}.limitations to shipyard.yaml."],
        "tradeoffs": tradeoffs or [f"None recorded: declare gates.{version.model}.evaluation.against_champion "
                                   f"or gates.{version.model}.infrastructure to measure them."],
        "ethical_considerations": risks,
    }


def _gates(version: ModelVersion, spec: GateSpec | None, stored: dict[str, StoredGate]) -> dict[str, Any]:
    from shipyard.gates.results import GateResult

    names = list(spec.configured) if spec is not None else []
    out: dict[str, Any] = {}
    for gate in [*names, *sorted(g for g in stored if g not in names)]:
        entry = stored.get(gate)
        if entry is None:
            out[gate] = {"status": "NOT RUN", "summary": f"not run yet: `shipyard models gate {version.version_id}`"}
            continue
        out[gate] = {
            "status": entry.status, "summary": GateResult.from_dict(entry.result).summary(),
            "dataset": entry.result.get("dataset"), "run_at": _time(entry.created), "run_by": entry.created_by,
            "waived_by": entry.waived_by, "waiver_reason": entry.waiver_reason,
            "checks": entry.result.get("checks", []), "metrics": entry.result.get("metrics", {}),
        }
    return out


def _lineage(ctx: Context, version: ModelVersion) -> dict[str, Any]:
    from shipyard.tracking.runs import get_run

    run = None
    if version.run_id:
        try:
            run = get_run(ctx, version.run_id)
        except NotFoundError:
            run = None
    edges: list[dict[str, Any]] = []

    def collect(tree: Tree) -> None:
        for child in tree.children:
            edges.append({"source": str(child.node), "target": str(tree.node), "relation": child.relation})
            collect(child)

    collect(walk(ctx, Node("model_version", version.version_id), upstream=True))
    return {"run_id": version.run_id, "run_name": run.name if run else None,
            "git_commit": run.git_commit if run else None, "git_dirty": run.git_dirty if run else None,
            "training_dataset": version.dataset_version, "upstream": edges}


# -- evaluation data and plots -----------------------------------------------------------------


def _evaluation_data(version: ModelVersion, spec: GateSpec | None, stored: dict[str, StoredGate]) -> _Evaluation:
    """What the evaluation gate saw, as stored with its result."""
    if spec is None or spec.evaluation is None:
        return _Evaluation(missing=f"No evaluation dataset is configured: add gates.{version.model}.evaluation "
                                   f"(dataset, target, thresholds) to shipyard.yaml, then run "
                                   f"`shipyard models gate {version.version_id}`.")
    target = spec.evaluation.target
    if "evaluation" not in stored:
        return _Evaluation(spec.evaluation.dataset, target,
                           missing=f"The evaluation gate has not run: `shipyard models gate {version.version_id}`.")
    result = stored["evaluation"].result
    evidence = dict(result.get("evidence") or {})
    return _Evaluation(result.get("dataset") or spec.evaluation.dataset, target, evidence.get("rows"), evidence,
                       None if evidence else "The evaluation result predates stored evidence: re-run the gates "
                       f"(`shipyard models gate {version.version_id}`) for its plots.", result.get("dataset_source"))


def _graphics(version: ModelVersion, stored: dict[str, StoredGate],
              evaluation: _Evaluation) -> tuple[dict[str, Any], list[str]]:
    collection, notes = [], []
    overall = _metrics(stored["evaluation"]) if "evaluation" in stored else {}
    slices = _slices(_metrics(stored["behavioural"])) if "behavioural" in stored else []
    if slices:
        bars = []
        for metric in dict.fromkeys(m for _, m, _, _ in slices):
            if isinstance(overall.get(metric), int | float):
                bars.append((f"overall {metric}", float(overall[metric]), REFERENCE_COLOUR))
            bars += [(f"{label} {metric}", float(v), CURRENT_COLOUR) for label, m, v, _ in slices
                     if m == metric and isinstance(v, int | float)]
        collection.append({"name": "Metrics by slice", "image": bars_svg(bars)})
    else:
        notes.append(f"No slice metrics: declare gates.{version.model}.behavioural.slices and run the gates.")
    groups = (_metrics(stored["fairness"]).get("by_group") or {}) if "fairness" in stored else {}
    if groups:
        collection.append({"name": f"Fairness by group ({_metrics(stored['fairness']).get('sensitive')})",
                           "image": groups_svg(groups)})
    else:
        notes.append(f"No fairness results: declare gates.{version.model}.fairness and run the gates.")
    evidence = evaluation.evidence or {}
    if "confusion_matrix" in evidence:
        matrix = evidence["confusion_matrix"]
        collection.append({"name": "Confusion matrix", "image": matrix_svg(matrix["labels"], matrix["matrix"])})
    elif "residuals" in evidence:
        collection.append({"name": "Residuals (actual - predicted)",
                           "image": histogram_svg(evidence["residuals"], None)})
    else:
        notes.append(evaluation.missing or "No evaluation data.")
    source = f"the evaluation gate's predictions on {evaluation.dataset}" if evidence else "no evaluation result"
    description = f"Plots from the stored gate results, including {source}."
    return {"description": description, "collection": collection}, notes


def _task(version: ModelVersion, spec: GateSpec | None, truth: Any = None) -> str | None:
    recorded = version.details.get("task") or version.flavor_meta.get("task")
    task = (spec.task if spec is not None else None) or (
        recorded if recorded in ("classification", "regression") else None)
    if task is None and truth is not None:
        from shipyard.gates.evaluation import infer_task

        task = infer_task(truth)
    return task


def _metrics(entry: StoredGate) -> dict[str, Any]:
    return dict(entry.result.get("metrics") or {})


def _slices(metrics: dict[str, Any]) -> list[tuple[str, str, Any, Any]]:
    """(label, metric, value, rows) of each slice the behavioural gate measured (keys slices.LABEL.METRIC)."""
    from shipyard.policy.gates import METRICS

    found = []
    for key, rows in metrics.items():
        if key.startswith("slices.") and key.endswith(".rows"):
            label = key[len("slices."):-len(".rows")]
            prefix = f"slices.{label}."
            found += [(label, name[len(prefix):], value, rows) for name, value in metrics.items()
                      if name.startswith(prefix) and name[len(prefix):] in METRICS]
    return found


def _date(ms: int) -> str:
    return dt.datetime.fromtimestamp(ms / 1000, tz=dt.UTC).date().isoformat()


def _time(ms: int) -> str:
    return dt.datetime.fromtimestamp(ms / 1000, tz=dt.UTC).strftime("%Y-%m-%d %H:%M:%SZ")

