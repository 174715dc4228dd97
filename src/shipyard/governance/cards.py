"""Model cards: what a registered version is, what it was trained and evaluated on, its gate evidence, reviews
and lineage, with plots; as JSON (the Model Card Toolkit schema's structure plus Shipyard sections), Markdown
and one self-contained HTML page."""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import os
import re
import tempfile
from dataclasses import dataclass
from html import escape
from pathlib import Path
from typing import TYPE_CHECKING, Any

from shipyard.context import Context
from shipyard.data.lineage import Node, Tree, walk
from shipyard.data.report import _CSS, _CURRENT, _REFERENCE, _fmt, _histogram_svg
from shipyard.errors import NotFoundError, ShipyardError
from shipyard.models.gating import StoredGate, latest_gates
from shipyard.models.policy import Governance, configured_gates, gate_spec, governance
from shipyard.models.promotion import check_promotion
from shipyard.models.records import ModelVersion
from shipyard.models.registry import get_model_version
from shipyard.models.reviews import list_reviews

if TYPE_CHECKING:
    import pandas as pd

    from shipyard.gates.spec import GateSpec

SCHEMA_VERSION = "0.0.1"  # the Model Card Toolkit schema whose structure the JSON follows
FILES = {"json": "card.json", "markdown": "card.md", "html": "card.html"}
GROUP_RATES = ("selection_rate", "tpr", "fpr")
_RATE_COLOURS = (_CURRENT, "#dd6b20", "#38a169")
_DISPARITIES = ("demographic_parity_difference", "demographic_parity_ratio", "equalized_odds_difference")


@dataclass
class _Evaluation:
    """The evaluation data the gates used (or would use), or why there is none."""

    dataset: str | None = None
    target: str | None = None
    frame: pd.DataFrame | None = None
    missing: str | None = None


def build_card(ctx: Context, ref: str) -> dict[str, Any]:
    """The card of a version (any ref get_model_version accepts) as plain JSON data."""
    version = get_model_version(ctx, ref)
    vid, model = version.version_id, version.model
    rules = governance(ctx, model)
    spec = gate_spec(ctx, model)
    stored = latest_gates(ctx, vid)
    evaluation = _evaluation_data(ctx, version, spec, stored)
    graphics, notes = _graphics(ctx, version, spec, stored, evaluation)
    if "evaluation" not in stored:
        notes.insert(0, f"No evaluation results: {_how_to_evaluate(version, spec)}")
    return {
        "schema_version": SCHEMA_VERSION,
        "model_details": _details(version, rules),
        "model_parameters": _parameters(ctx, version, spec, evaluation),
        "quantitative_analysis": {"performance_metrics": _performance(stored), "graphics": graphics, "notes": notes},
        "considerations": _considerations(ctx, version, rules, spec, stored),
        "gates": _gates(version, spec, stored),
        "reviews": {"required": list(rules.reviews), "history": [r.to_dict() for r in list_reviews(ctx, vid)]},
        "lineage": _lineage(ctx, version),
        "promotion": check_promotion(ctx, vid).to_dict(),
    }


def write_card(ctx: Context, ref: str, out_dir: Path | None = None) -> dict[str, Path]:
    """Write card.json, card.md and card.html (each atomically) into `out_dir`, by default
    <workspace>/cards/<model>/<version>/, and audit their digests as a `model.card` event."""
    version = get_model_version(ctx, ref)
    card = build_card(ctx, version.version_id)
    folder = Path(out_dir) if out_dir is not None else ctx.workspace.root / "cards" / version.model / str(version.version)
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
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as out:
            out.write(data)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
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
            train["row_count"] = get_dataset_version(ctx, version.dataset_version).row_count
        except NotFoundError:
            train["row_count"] = None
        train["link"] = f"shipyard lineage show {version.dataset_version}"
    else:
        train["note"] = ("Not recorded: call run.log_input(\"NAME@VERSION\") before run.log_model, or pass "
                         "dataset= when registering.")
    evaluated: dict[str, Any] = {"name": evaluation.dataset}
    if evaluation.dataset:
        evaluated["row_count"] = len(evaluation.frame) if evaluation.frame is not None else None
        evaluated["target"] = evaluation.target
        evaluated["link"] = f"shipyard lineage show {evaluation.dataset}"
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


def _performance(stored: dict[str, StoredGate]) -> list[dict[str, Any]]:
    """Overall metrics (evaluation gate), slice metrics (behavioural gate) and per-group rates (fairness gate)."""
    found: list[dict[str, Any]] = []

    def add(kind: str, value: Any, where: str, gate: str, rows: Any = None) -> None:
        if isinstance(value, int | float) and not isinstance(value, bool):
            found.append({"type": kind, "value": value, "slice": where, "gate": gate,
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


def _considerations(ctx: Context, version: ModelVersion, rules: Governance, spec: GateSpec | None,
                    stored: dict[str, StoredGate]) -> dict[str, Any]:
    from shipyard.gates.results import format_number
    from shipyard.models.reviews import latest_review

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
    kinds = list(dict.fromkeys([*rules.reviews, *(r.kind for r in list_reviews(ctx, version.version_id))]))
    for kind in kinds:
        review = latest_review(ctx, version.version_id, kind)
        required = " (required before promotion)" if kind in rules.reviews else ""
        if review is None:
            risks.append({"name": f"The {kind} review{required} is not requested.",
                          "mitigation_strategy": f"`shipyard review request {version.version_id} --kind {kind}`."})
        else:
            who = f" by {review.decided_by}" if review.decided_by else f", requested by {review.requested_by}"
            risks.append({"name": f"The {kind} review{required} is {review.status}{who}.",
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

    names = configured_gates(spec)
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


def _evaluation_data(ctx: Context, version: ModelVersion, spec: GateSpec | None,
                     stored: dict[str, StoredGate]) -> _Evaluation:
    from shipyard.data.versions import get_version as get_dataset_version
    from shipyard.data.workspace_files import load as load_frame

    if spec is None or spec.evaluation is None:
        return _Evaluation(missing=f"No evaluation dataset is configured: {_how_to_evaluate(version, spec)}")
    used = stored["evaluation"].result.get("dataset") if "evaluation" in stored else None
    target = spec.evaluation.target
    try:
        dataset = get_dataset_version(ctx, used or spec.evaluation.dataset).version_id
        frame = load_frame(ctx, dataset)
    except ShipyardError as exc:
        return _Evaluation(target=target, missing=f"The evaluation dataset could not be read: {exc}")
    if target not in frame.columns:
        return _Evaluation(dataset, target, missing=f"The target column '{target}' is not in {dataset}.")
    return _Evaluation(dataset, target, frame)


def _how_to_evaluate(version: ModelVersion, spec: GateSpec | None) -> str:
    if spec is None or spec.evaluation is None:
        return (f"add gates.{version.model}.evaluation (dataset, target, thresholds) to shipyard.yaml, then run "
                f"`shipyard models gate {version.version_id}`.")
    return f"run `shipyard models gate {version.version_id}`."


def _graphics(ctx: Context, version: ModelVersion, spec: GateSpec | None, stored: dict[str, StoredGate],
              evaluation: _Evaluation) -> tuple[dict[str, Any], list[str]]:
    collection, notes = [], []
    overall = _metrics(stored["evaluation"]) if "evaluation" in stored else {}
    slices = _slices(_metrics(stored["behavioural"])) if "behavioural" in stored else []
    if slices:
        bars = []
        for metric in dict.fromkeys(m for _, m, _, _ in slices):
            if isinstance(overall.get(metric), int | float):
                bars.append((f"overall {metric}", float(overall[metric]), _REFERENCE))
            bars += [(f"{label} {metric}", float(v), _CURRENT) for label, m, v, _ in slices if m == metric]
        collection.append({"name": "Metrics by slice", "image": _bars_svg(bars)})
    else:
        notes.append(f"No slice metrics: declare gates.{version.model}.behavioural.slices and run the gates.")
    groups = (_metrics(stored["fairness"]).get("by_group") or {}) if "fairness" in stored else {}
    if groups:
        collection.append({"name": f"Fairness by group ({_metrics(stored['fairness']).get('sensitive')})",
                           "image": _groups_svg(groups)})
    else:
        notes.append(f"No fairness results: declare gates.{version.model}.fairness and run the gates.")
    if evaluation.frame is None or evaluation.target is None:
        notes.append(evaluation.missing or "No evaluation data.")
    else:
        try:
            collection.append(_prediction_plot(ctx, version, spec, evaluation.frame, evaluation.target))
        except Exception as exc:  # noqa: BLE001 - a model failing on its data is reported in the card, not raised
            notes.append(f"No prediction plot: predicting on {evaluation.dataset} raised {type(exc).__name__}: {exc}")
    source = f"predictions on {evaluation.dataset}" if evaluation.frame is not None else "no evaluation dataset"
    description = f"Plots from the stored gate results and from {source}."
    return {"description": description, "collection": collection}, notes


def _prediction_plot(ctx: Context, version: ModelVersion, spec: GateSpec | None, frame: pd.DataFrame,
                     target: str) -> dict[str, str]:
    """A confusion matrix for a classifier, a histogram of residuals for a regressor."""
    import numpy as np

    from shipyard.gates.evaluation import class_labels
    from shipyard.models.loading import load_model

    model = load_model(ctx, version.version_id)
    truth = frame[target].to_numpy()
    predicted = np.asarray(model.predict(frame.drop(columns=[target])))
    if _task(version, spec, truth) == "regression":
        residuals = truth.astype(float) - predicted.astype(float)
        counts, edges = np.histogram(residuals[np.isfinite(residuals)], bins=20)
        return {"name": "Residuals (actual - predicted)",
                "image": _histogram_svg({"edges": edges.tolist(), "counts": counts.tolist()}, None)}
    from sklearn.metrics import confusion_matrix

    labels = class_labels(truth, predicted)
    matrix = confusion_matrix(truth, predicted, labels=labels)
    return {"name": "Confusion matrix", "image": _matrix_svg([str(x) for x in labels], matrix.tolist())}


def _task(version: ModelVersion, spec: GateSpec | None, truth: Any = None) -> str | None:
    recorded = version.details.get("task") or version.flavor_meta.get("task")
    task = (spec.task if spec is not None else None) or (
        recorded if recorded in ("classification", "regression") else None)
    if task is None and truth is not None:
        from shipyard.gates.evaluation import infer_task

        task = infer_task(truth)
    return task


def _bars_svg(bars: list[tuple[str, float, str]]) -> str:
    """Horizontal bars, one (label, value, colour) a row, the value written after each."""
    width, label_width, row = 340, 140, 18
    height = row * len(bars) + 4
    scale = (width - label_width - 50) / (max([v for _, v, _ in bars] + [0.0]) or 1.0)
    items = []
    for i, (label, value, colour) in enumerate(bars):
        y, short = i * row + 2, label if len(label) <= 24 else label[:23] + "…"
        size = max(value, 0.0) * scale
        items.append(f'<text x="{label_width - 4}" y="{y + 11}" text-anchor="end">{escape(short)}'
                     f'<title>{escape(label)}</title></text>'
                     f'<rect x="{label_width}" y="{y + 2}" width="{size:.1f}" height="12" fill="{colour}"/>'
                     f'<text x="{label_width + size + 3:.1f}" y="{y + 12}">{escape(_fmt(value))}</text>')
    return (f'<svg width="{width}" height="{height}" viewBox="0 0 {width} {height}" role="img" '
            f'aria-label="metrics by slice">{"".join(items)}</svg>')


def _groups_svg(groups: dict[str, dict[str, Any]]) -> str:
    """Grouped vertical bars on a 0-1 scale: selection rate, TPR and FPR of each group."""
    bar, gap, top, plot = 14, 18, 18, 110
    width = max(320, 40 + len(groups) * (bar * len(GROUP_RATES) + gap))
    height = top + plot + 18
    items = [f'<rect x="{40 + i * 90}" y="2" width="10" height="10" fill="{colour}"/>'
             f'<text x="{54 + i * 90}" y="11">{name}</text>'
             for i, (name, colour) in enumerate(zip(("selection rate", "TPR", "FPR"), _RATE_COLOURS, strict=True))]
    items += [f'<text x="30" y="{top + plot * (1 - t) + 4:.1f}" text-anchor="end">{t:g}</text>'
              f'<line x1="34" x2="{width}" y1="{top + plot * (1 - t):.1f}" y2="{top + plot * (1 - t):.1f}" '
              'stroke="#e4e7eb"/>' for t in (0.0, 0.5, 1.0)]
    for g, (group, rates) in enumerate(groups.items()):
        x0 = 40 + g * (bar * len(GROUP_RATES) + gap)
        for r, (name, colour) in enumerate(zip(GROUP_RATES, _RATE_COLOURS, strict=True)):
            value = float(rates.get(name) or 0.0)
            size = min(max(value, 0.0), 1.0) * plot
            items.append(f'<rect x="{x0 + r * bar}" y="{top + plot - size:.1f}" width="{bar - 2}" '
                         f'height="{size:.1f}" fill="{colour}"><title>{escape(str(group))} {name}: '
                         f'{escape(_fmt(value))}</title></rect>')
        short = str(group) if len(str(group)) <= 8 else str(group)[:7] + "…"
        items.append(f'<text x="{x0 + bar * len(GROUP_RATES) / 2:.1f}" y="{height - 4}" text-anchor="middle">'
                     f'{escape(short)}<title>{escape(str(group))}</title></text>')
    return (f'<svg width="{width}" height="{height}" viewBox="0 0 {width} {height}" role="img" '
            f'aria-label="fairness by group">{"".join(items)}</svg>')


def _matrix_svg(labels: list[str], matrix: list[list[int]]) -> str:
    """Rows are the actual class, columns the predicted one; darker cells hold more rows."""
    cell, left, top = 44, 80, 34
    size = cell * len(labels)
    width, height = left + size + 4, top + size + 4
    most = max((v for row in matrix for v in row), default=0) or 1
    items = [f'<text x="{left + size / 2:.0f}" y="10" text-anchor="middle">predicted</text>',
             f'<text x="4" y="{top + size / 2:.0f}">actual</text>']
    for i, label in enumerate(labels):
        short = escape(label if len(label) <= 6 else label[:5] + "…")
        items.append(f'<text x="{left + i * cell + cell / 2:.0f}" y="{top - 6}" text-anchor="middle">{short}</text>'
                     f'<text x="{left - 6}" y="{top + i * cell + cell / 2 + 4:.0f}" text-anchor="end">{short}</text>')
    for i, row in enumerate(matrix):
        for j, count in enumerate(row):
            share = count / most
            light = ' style="fill:#fff"' if share > 0.5 else ""
            items.append(
                f'<rect x="{left + j * cell}" y="{top + i * cell}" width="{cell - 2}" height="{cell - 2}" '
                f'fill="{_CURRENT}" fill-opacity="{0.08 + 0.92 * share:.2f}"><title>actual {escape(labels[i])}, '
                f'predicted {escape(labels[j])}: {count:,}</title></rect>'
                f'<text x="{left + j * cell + cell / 2 - 1:.0f}" y="{top + i * cell + cell / 2 + 3:.0f}" '
                f'text-anchor="middle"{light}>{count:,}</text>')
    return (f'<svg width="{width}" height="{height}" viewBox="0 0 {width} {height}" role="img" '
            f'aria-label="confusion matrix">{"".join(items)}</svg>')


# -- small helpers -----------------------------------------------------------------------------


def _metrics(entry: StoredGate) -> dict[str, Any]:
    return dict(entry.result.get("metrics") or {})


def _slices(metrics: dict[str, Any]) -> list[tuple[str, str, Any, Any]]:
    """(label, metric, value, rows) of each slice the behavioural gate measured (keys slices.LABEL.METRIC)."""
    from shipyard.gates.spec import METRICS

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


# -- rendering ---------------------------------------------------------------------------------


def render_markdown(card: dict[str, Any]) -> str:
    """The card as Markdown; plots are only in the HTML page. Text is escaped for tables and raw HTML."""
    details, params = card.get("model_details", {}), card.get("model_parameters", {})
    analysis, considerations = card.get("quantitative_analysis", {}), card.get("considerations", {})
    lineage, promotion = card.get("lineage", {}), card.get("promotion", {})
    version = details.get("version", {})
    lines = [f"# Model card: {_md(details.get('name'))} version {_md(version.get('name'))}", "",
             _md(details.get("overview")), "", "## Model details", "", "| | |", "|---|---|"]
    lines += [f"| {_md(k)} | {_md(v)} |" for k, v in _detail_rows(card)]
    for title, key in (("Intended use", "use_cases"), ("Users", "users"), ("Limitations", "limitations"),
                       ("Tradeoffs", "tradeoffs")):
        lines += ["", f"## {title}", "", *[f"- {_md(item)}" for item in considerations.get(key, [])]]
    lines += ["", "## Ethical considerations", ""]
    lines += [f"- {_md(r.get('name'))} {_md(r.get('mitigation_strategy'))}"
              for r in considerations.get("ethical_considerations", [])]
    lines += ["", "## Data", ""]
    for part, data in params.get("data", {}).items():
        lines.append(f"- **{part}**: {_md(data.get('name') or data.get('note'))}"
                     + (f" ({_md(data.get('row_count'))} rows; lineage: `{_md(data.get('link'))}`)"
                        if data.get("name") else ""))
    lines += ["", "## Performance metrics", ""]
    metrics = analysis.get("performance_metrics", [])
    if metrics:
        lines += ["| Metric | Slice | Value | Gate |", "|---|---|---:|---|"]
        lines += [f"| {_md(m['type'])} | {_md(m.get('slice'))} | {_md(_fmt(m['value']))} | {_md(m.get('gate'))} |"
                  for m in metrics]
    lines += [f"- {_md(note)}" for note in analysis.get("notes", [])]
    graphics = analysis.get("graphics", {})
    names = ", ".join(g.get("name", "") for g in graphics.get("collection", []))
    lines += ["", f"{_md(graphics.get('description'))} Plots ({_md(names or 'none')}) are in card.html.", "",
              "## Gates", "", "| Gate | Status | Summary | Waived by | Reason |", "|---|---|---|---|---|"]
    lines += [f"| {_md(g)} | {_md(e.get('status'))} | {_md(e.get('summary'))} | {_md(e.get('waived_by') or '')} | "
              f"{_md(e.get('waiver_reason') or '')} |" for g, e in card.get("gates", {}).items()]
    if not card.get("gates"):
        lines.append("| – | NOT CONFIGURED | no gates are declared in shipyard.yaml | | |")
    lines += ["", "## Reviews", ""]
    history = card.get("reviews", {}).get("history", [])
    lines += [f"- {_md(r['kind'])}: {_md(r['status'])} (requested by {_md(r['requested_by'])}"
              f"{', decided by ' + _md(r['decided_by']) if r.get('decided_by') else ''})" for r in history]
    if not history:
        lines.append("- None recorded.")
    lines += ["", "## Lineage", "", f"- Run: {_md(lineage.get('run_id') or 'none')}",
              f"- Git commit: {_md(lineage.get('git_commit') or 'unknown')}"
              f"{' (uncommitted changes)' if lineage.get('git_dirty') else ''}",
              f"- Training data: {_md(lineage.get('training_dataset') or 'not recorded')}"]
    lines += [f"- {_md(e['source'])} → {_md(e['target'])} ({_md(e['relation'])})" for e in lineage.get("upstream", [])]
    lines += ["", "## Promotion", "", "Ready to promote." if promotion.get("allowed") else "Not ready to promote:"]
    lines += [f"- {_md(p)}" for p in promotion.get("problems", [])]
    return "\n".join(lines) + "\n"


def render_html(card: dict[str, Any]) -> str:
    """A standalone page (inline CSS and SVG, no scripts, fonts or links); all card text is escaped."""
    details, params = card.get("model_details", {}), card.get("model_parameters", {})
    analysis, considerations = card.get("quantitative_analysis", {}), card.get("considerations", {})
    lineage, promotion = card.get("lineage", {}), card.get("promotion", {})
    title = f"Model card: {details.get('name')} version {details.get('version', {}).get('name')}"
    ready = ('<span class="status pass">Ready to promote</span>' if promotion.get("allowed")
             else '<span class="status fail">Not ready to promote</span>')
    parts = ["<!DOCTYPE html>", '<html lang="en"><head><meta charset="utf-8">',
             f"<title>{escape(title)}</title><style>{_CSS}{_EXTRA_CSS}</style></head><body>",
             f"<h1>{escape(title)}</h1>", f"<p>{ready}</p>", f"<p>{escape(str(details.get('overview', '')))}</p>",
             "<h2>Model details</h2>", _table(["", ""], _detail_rows(card))]
    for heading, key in (("Intended use", "use_cases"), ("Users", "users"), ("Limitations", "limitations"),
                         ("Tradeoffs", "tradeoffs")):
        parts.append(f"<h2>{heading}</h2>{_list(considerations.get(key, []))}")
    risks = considerations.get("ethical_considerations", [])
    parts.append("<h2>Ethical considerations</h2>" + _table(
        ["Consideration", "Mitigation"], [(r.get("name"), r.get("mitigation_strategy")) for r in risks]))
    data = params.get("data", {})
    parts.append("<h2>Data</h2>" + _table(["", "Dataset", "Rows", "Lineage"], [
        (part, d.get("name") or d.get("note"), d.get("row_count"), d.get("link")) for part, d in data.items()]))
    metrics = analysis.get("performance_metrics", [])
    parts.append("<h2>Performance metrics</h2>" + (_table(
        ["Metric", "Slice", "Value", "Gate"], [(m["type"], m.get("slice"), _fmt(m["value"]), m.get("gate"))
                                               for m in metrics]) if metrics else "") + _list(analysis.get("notes", [])))
    graphics = analysis.get("graphics", {})
    plots = "".join(f'<div class="card"><h3>{escape(str(g.get("name", "")))}</h3>{_svg(g.get("image"))}</div>'
                    for g in graphics.get("collection", []))
    parts.append(f'<h2>Plots</h2><p class="meta">{escape(str(graphics.get("description", "")))}</p>'
                 f'<div class="cols">{plots}</div>')
    gates = card.get("gates", {})
    rows = "".join(
        f'<tr><td>{escape(g)}</td><td><span class="status {_STATUS_CLASS.get(e.get("status"), "none")}">'
        f'{escape(str(e.get("status")))}</span></td><td>{escape(str(e.get("summary", "")))}</td>'
        f'<td>{escape(str(e.get("waived_by") or ""))}</td><td>{escape(str(e.get("waiver_reason") or ""))}</td></tr>'
        for g, e in gates.items())
    parts.append("<h2>Gates</h2>" + (
        "<table><thead><tr><th>Gate</th><th>Status</th><th>Summary</th><th>Waived by</th><th>Reason</th></tr>"
        f"</thead><tbody>{rows}</tbody></table>" if gates else "<p>No gates are declared in shipyard.yaml.</p>"))
    history = card.get("reviews", {}).get("history", [])
    parts.append("<h2>Reviews</h2>" + (_table(["Kind", "Status", "Requested by", "Decided by", "Notes"], [
        (r["kind"], r["status"], r["requested_by"], r.get("decided_by"), r.get("notes")) for r in history])
        if history else "<p>None recorded.</p>"))
    dirty = {True: "yes", False: "no"}.get(lineage.get("git_dirty"), "unknown")
    parts.append('<h2 id="lineage">Lineage</h2>' + _table(["", ""], [
        ("run", lineage.get("run_id")), ("git commit", lineage.get("git_commit")), ("uncommitted changes", dirty),
        ("training data", lineage.get("training_dataset"))]) + _table(
        ["From", "To", "Relation"], [(e["source"], e["target"], e["relation"]) for e in lineage.get("upstream", [])]))
    parts.append("<h2>Promotion</h2>" + _list(promotion.get("problems", []) or ["Every gate and review allows it."]))
    parts.append("</body></html>")
    return "\n".join(parts)


_EXTRA_CSS = ".warn{background:#b7791f}.none{background:#718096}.cols .card svg{max-width:100%;height:auto}"
_STATUS_CLASS = {"PASS": "pass", "FAIL": "fail", "WAIVED": "warn", "NO_BASELINE": "warn"}
_UNSAFE_SVG = re.compile(r"<script|<foreignobject|<image|<use\b|\shref\s*=|\son\w+\s*=", re.IGNORECASE)


def _detail_rows(card: dict[str, Any]) -> list[tuple[str, Any]]:
    details, params = card.get("model_details", {}), card.get("model_parameters", {})
    version = details.get("version", {})
    owners = ", ".join(o.get("name", "") for o in details.get("owners", []))
    packages = (details.get("environment") or {}).get("packages") or {}
    return [
        ("path", details.get("path")), ("version", version.get("name")), ("date", version.get("date")),
        ("aliases", ", ".join(version.get("aliases", [])) or "none"), ("status", version.get("status")),
        ("owners", owners or f"Not documented: add governance.{details.get('name')}.owners to shipyard.yaml."),
        ("licenses", ", ".join(map(str, details.get("licenses", []))) or "Not documented."),
        ("architecture", params.get("model_architecture")), ("task", params.get("task")),
        ("flavor", details.get("flavor")), ("artifact digest", details.get("artifact_digest")),
        ("registered by", details.get("registered_by")), ("registered at", details.get("registered_at")),
        ("python", (details.get("environment") or {}).get("python")),
        ("packages", ", ".join(f"{k} {v}" for k, v in packages.items())),
        ("input", params.get("input_format")), ("output", params.get("output_format")),
    ]


def _text(value: Any) -> str:
    return "–" if value is None else value if isinstance(value, str) else _fmt(value)


def _table(headers: list[str], rows: list[tuple[Any, ...]]) -> str:
    head = "".join(f"<th>{escape(h)}</th>" for h in headers) if any(headers) else ""
    body = "".join("<tr>" + "".join(f"<td>{escape(_text(cell))}</td>" for cell in row) + "</tr>" for row in rows)
    return f"<table>{f'<thead><tr>{head}</tr></thead>' if head else ''}<tbody>{body}</tbody></table>"


def _list(items: list[Any]) -> str:
    return "<ul>" + "".join(f"<li>{escape(_text(item))}</li>" for item in items) + "</ul>" if items else ""


def _svg(image: Any) -> str:
    """An image as build_card draws it (inline SVG); anything else, or SVG that could load or run something,
    is shown as a note instead."""
    if isinstance(image, str) and image.startswith("<svg ") and image.endswith("</svg>") and not _UNSAFE_SVG.search(image):
        return image
    return '<p class="meta">This image is not an inline SVG drawn by Shipyard, so it is not shown.</p>'


def _md(value: Any) -> str:
    """Text for a Markdown line or table cell: no raw HTML tag can open, pipes and newlines are neutralised."""
    return re.sub(r"<(?=[A-Za-z/!?])", "&lt;", _text(value)).replace("|", "\\|").replace("\n", " ")
