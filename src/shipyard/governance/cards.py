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
from dataclasses import dataclass, field
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


@dataclass
class _Section:
    """A part of the card for people: a table (with headers) or a bulleted list (the rows' first cells)."""

    heading: str
    rows: list[tuple[Any, ...]]
    headers: tuple[str, ...] = ()
    plots: list[dict[str, Any]] = field(default_factory=list)
    anchor: str = ""


def render_markdown(card: dict[str, Any]) -> str:
    """The card as Markdown (the plots are in the HTML page); no raw HTML tag can open from card text."""
    title, overview, ready = _headline(card)
    lines = [f"# {_md(title)}", "", _md(overview), "", f"**{ready}**"]
    for section in _sections(card):
        lines += ["", f"## {section.heading}", ""]
        if section.plots:
            lines += [f"Plots in card.html: {_md(', '.join(str(p.get('name')) for p in section.plots))}.", ""]
        if section.headers:
            lines += ["| " + " | ".join(_md(h) for h in section.headers) + " |", "|" + "---|" * len(section.headers)]
            lines += ["| " + " | ".join(_md(cell) for cell in row) + " |" for row in section.rows]
        else:
            lines += [f"- {_md(row[0])}" for row in section.rows]
    return "\n".join(lines) + "\n"


def render_html(card: dict[str, Any]) -> str:
    """A standalone page (inline CSS and SVG, no scripts, fonts or links); all card text is escaped."""
    title, overview, ready = _headline(card)
    badge = "pass" if card.get("promotion", {}).get("allowed") else "fail"
    parts = ["<!DOCTYPE html>", '<html lang="en"><head><meta charset="utf-8">',
             f"<title>{escape(title)}</title><style>{_CSS}{_EXTRA_CSS}</style></head><body>",
             f"<h1>{escape(title)}</h1>", f'<p><span class="status {badge}">{escape(ready)}</span></p>',
             f"<p>{escape(overview)}</p>"]
    for section in _sections(card):
        anchor = f' id="{escape(section.anchor)}"' if section.anchor else ""
        parts.append(f"<h2{anchor}>{escape(section.heading)}</h2>")
        if section.plots:
            parts.append('<div class="cols">' + "".join(
                f'<div class="card"><h3>{escape(str(p.get("name", "")))}</h3>{_svg(p.get("image"))}</div>'
                for p in section.plots) + "</div>")
        if section.headers:
            head = "".join(f"<th>{escape(h)}</th>" for h in section.headers) if any(section.headers) else ""
            body = "".join("<tr>" + "".join(_cell(h, c) for h, c in zip(section.headers, row, strict=True))
                           + "</tr>" for row in section.rows)
            parts.append(f"<table>{f'<thead><tr>{head}</tr></thead>' if head else ''}<tbody>{body}</tbody></table>")
        elif section.rows:
            parts.append("<ul>" + "".join(f"<li>{escape(_text(row[0]))}</li>" for row in section.rows) + "</ul>")
    parts.append("</body></html>")
    return "\n".join(parts)


_EXTRA_CSS = ".warn{background:#b7791f}.none{background:#718096}.cols .card svg{max-width:100%;height:auto}"
_STATUS_CLASS = {"PASS": "pass", "FAIL": "fail", "WAIVED": "warn", "NO_BASELINE": "warn"}
_UNSAFE_SVG = re.compile(r"<script|<foreignobject|<image|<use\b|\shref\s*=|\son\w+\s*=", re.IGNORECASE)


def _headline(card: dict[str, Any]) -> tuple[str, str, str]:
    details = card.get("model_details", {})
    title = f"Model card: {details.get('name')} version {details.get('version', {}).get('name')}"
    ready = "Ready to promote" if card.get("promotion", {}).get("allowed") else "Not ready to promote"
    return title, str(details.get("overview", "")), ready


def _sections(card: dict[str, Any]) -> list[_Section]:
    details, params = card.get("model_details", {}), card.get("model_parameters", {})
    analysis, considerations = card.get("quantitative_analysis", {}), card.get("considerations", {})
    lineage, history = card.get("lineage", {}), card.get("reviews", {}).get("history", [])
    version, environment = details.get("version", {}), details.get("environment") or {}
    owners = ", ".join(str(o.get("name", "")) for o in details.get("owners", []))
    graphics = analysis.get("graphics", {})
    dirty = {True: "yes", False: "no"}.get(lineage.get("git_dirty"), "unknown")

    def bullets(key: str) -> list[tuple[Any, ...]]:
        return [(item,) for item in considerations.get(key, [])]

    return [
        _Section("Model details", [
            ("path", details.get("path")), ("version", version.get("name")), ("date", version.get("date")),
            ("aliases", ", ".join(version.get("aliases", [])) or "none"), ("status", version.get("status")),
            ("owners", owners or f"Not documented: add governance.{details.get('name')}.owners to shipyard.yaml."),
            ("licenses", ", ".join(map(str, details.get("licenses", []))) or "Not documented."),
            ("architecture", params.get("model_architecture")), ("task", params.get("task")),
            ("flavor", details.get("flavor")), ("artifact digest", details.get("artifact_digest")),
            ("registered by", details.get("registered_by")), ("registered at", details.get("registered_at")),
            ("python", environment.get("python")),
            ("packages", ", ".join(f"{k} {v}" for k, v in (environment.get("packages") or {}).items())),
            ("input", params.get("input_format")), ("output", params.get("output_format")),
        ], ("", "")),
        _Section("Intended use", bullets("use_cases")),
        _Section("Limitations", bullets("limitations")),
        _Section("Users", bullets("users")),
        _Section("Data", [(part, d.get("name") or d.get("note"), d.get("row_count"), d.get("link"))
                          for part, d in params.get("data", {}).items()], ("", "Dataset", "Rows", "Lineage")),
        _Section("Evaluation", [(note,) for note in [graphics.get("description"), *analysis.get("notes", [])]],
                 plots=list(graphics.get("collection", []))),
        _Section("Performance metrics", [(m.get("type"), m.get("slice"), m.get("value"), m.get("gate"))
                                         for m in analysis.get("performance_metrics", [])],
                 ("Metric", "Slice", "Value", "Gate")) if analysis.get("performance_metrics") else
        _Section("Performance metrics", [("None recorded.",)]),
        _Section("Gates", [(g, e.get("status"), e.get("summary"), e.get("waived_by") or "", e.get("waiver_reason") or "")
                           for g, e in card.get("gates", {}).items()], ("Gate", "Status", "Summary", "Waived by", "Reason"))
        if card.get("gates") else _Section("Gates", [("No gates are declared in shipyard.yaml.",)]),
        _Section("Ethical considerations", [(r.get("name"), r.get("mitigation_strategy"))
                                            for r in considerations.get("ethical_considerations", [])],
                 ("Consideration", "Mitigation")),
        _Section("Tradeoffs", bullets("tradeoffs")),
        _Section("Reviews", [(r.get("kind"), r.get("status"), r.get("requested_by"), r.get("decided_by"), r.get("notes"))
                             for r in history], ("Kind", "Status", "Requested by", "Decided by", "Notes"))
        if history else _Section("Reviews", [("None recorded.",)]),
        _Section("Lineage", [("run", lineage.get("run_id")), ("git commit", lineage.get("git_commit")),
                             ("uncommitted changes", dirty), ("training data", lineage.get("training_dataset")),
                             *((e.get("relation"), f"{e.get('source')} → {e.get('target')}")
                               for e in lineage.get("upstream", []))], ("", ""), anchor="lineage"),
        _Section("Promotion", [(p,) for p in card.get("promotion", {}).get("problems", [])]
                 or [("Every configured gate and required review allows it.",)]),
    ]


def _cell(header: str, value: Any) -> str:
    if header == "Status" and isinstance(value, str):
        return f'<td><span class="status {_STATUS_CLASS.get(value, "none")}">{escape(value)}</span></td>'
    return f'<td{" class=num" if isinstance(value, int | float) and not isinstance(value, bool) else ""}>' \
           f"{escape(_text(value))}</td>"


def _text(value: Any) -> str:
    return "–" if value is None else value if isinstance(value, str) else _fmt(value)


def _svg(image: Any) -> str:
    """An image as build_card draws it (inline SVG); anything else, or SVG that could load or run something,
    is shown as a note instead."""
    if isinstance(image, str) and image.startswith("<svg ") and image.endswith("</svg>") and not _UNSAFE_SVG.search(image):
        return image
    return '<p class="meta">This image is not an inline SVG drawn by Shipyard, so it is not shown.</p>'


def _md(value: Any) -> str:
    """Text for a Markdown line or table cell: no raw HTML tag can open, pipes and newlines are neutralised."""
    return re.sub(r"<(?=[A-Za-z/!?])", "&lt;", _text(value)).replace("|", "\\|").replace("\n", " ")
