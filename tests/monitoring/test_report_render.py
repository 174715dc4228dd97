"""A monitoring report rendered for people (one offline HTML page with its charts, every value escaped) and for
Prometheus (gauges read back with prometheus-client's own parser), from full reports and sparse ones."""

from __future__ import annotations

import datetime as dt
import re
from html.parser import HTMLParser
from typing import Any

import numpy as np
import pandas as pd
import pytest
from prometheus_client.parser import text_string_to_metric_families

from shipyard.data.report import format_value
from shipyard.errors import ValidationError
from shipyard.monitoring.drift import column_drift, dataset_drift
from shipyard.monitoring.html import render_report_html
from shipyard.monitoring.prometheus import exposition

ODD = "<b>x</b>"  # a column name that must come out as text
CATEGORY = "a&b"
VOID = {"meta", "br", "hr", "img", "input", "link", "area", "base", "col", "embed", "source", "track", "wbr"}


def _frames() -> tuple[pd.DataFrame, pd.DataFrame]:
    rng = np.random.default_rng(7)
    reference = pd.DataFrame({"income": rng.normal(50_000, 12_000, 3_000),
                              "region": rng.choice([CATEGORY, "south", "east"], 3_000, p=[0.5, 0.3, 0.2]),
                              ODD: rng.normal(0, 1, 3_000), "age": rng.integers(18, 80, 3_000)})
    current = pd.DataFrame({"income": rng.normal(58_000, 12_000, 800),
                            "region": rng.choice([CATEGORY, "south", "east"], 800, p=[0.3, 0.3, 0.4]),
                            ODD: rng.normal(0, 1, 800), "age": rng.integers(18, 80, 800)})
    return reference, current


def _distribution(ref: pd.Series, cur: pd.Series) -> dict[str, Any]:
    if pd.api.types.is_numeric_dtype(ref):
        edges = np.quantile(ref, np.linspace(0, 1, 11))
        shares = [np.histogram(s.clip(edges[0], edges[-1]), edges)[0] / len(s) for s in (ref, cur)]
        return {"kind": "numeric", "edges": edges.tolist(), "reference": shares[0].tolist(),
                "current": shares[1].tolist()}
    categories = sorted(set(ref) | set(cur))
    return {"kind": "categorical", "categories": categories,
            "reference": [float((ref == c).mean()) for c in categories],
            "current": [float((cur == c).mean()) for c in categories]}


def full_report() -> dict[str, Any]:
    reference, current = _frames()
    drift = dataset_drift(reference, current, methods={"age": "ks"}).to_dict()
    ref_pred, cur_pred = reference["income"] > 55_000, current["income"] > 55_000
    prediction = column_drift(ref_pred.map({True: "yes", False: "no"}), cur_pred.map({True: "yes", False: "no"}),
                              name="prediction").to_dict()
    distributions = {name: _distribution(reference[name], current[name]) for name in reference.columns}
    distributions["prediction"] = _distribution(ref_pred.astype(str), cur_pred.astype(str))
    return {
        "id": 12, "monitor": "credit-api", "created": "2026-12-01T18:00:00Z", "status": "alert",
        "target": {"deployment": "credit-api", "model": "credit", "version": 3},
        "window": {"start": "2026-12-01T17:00:00Z", "end": "2026-12-01T18:00:00Z", "rows": 800, "requests": 790,
                   "kind": "time", "size": "1h"},
        "reference": {"dataset": "credit@1", "rows": 3000, "source": "profile"},
        "data_drift": drift, "prediction_drift": prediction, "distributions": distributions,
        "performance": {"task": "classification", "labelled": 640,
                        "metrics": {"accuracy": {"value": 0.8125, "low": 0.7813, "high": 0.8406},
                                    "roc_auc": {"value": 0.871, "low": 0.84, "high": 0.9}},
                        "note": None, "detections": [{"detector": "adwin", "index": 512,
                                                      "timestamp": "2026-12-01T17:41:00Z", "request_id": "r-1",
                                                      "count": 1}]},
        "health": {"requests": 790, "throughput_rps": 0.22, "p50_ms": 2.1, "p99_ms": 61.5, "error_rate": 0.0,
                   "limits": {"max_p99_ms": 50, "max_error_rate": 0.01}},
        "alerts": [{"rule": "data_drift", "severity": "warning", "state": "firing", "value": drift["drift_share"],
                    "threshold": 0.5, "message": "income & region <drifted>"},
                   {"rule": "latency", "severity": "critical", "state": "firing", "value": 61.5, "threshold": 50,
                    "message": "p99 above 50 ms"}],
        "notes": ["labels arrive a day late"],
    }


def history() -> list[dict[str, Any]]:
    return [{"id": i, "created": f"2026-12-01T{15 + i - 9:02d}:00:00Z", "window_end": None, "drift_share": 0.0,
             "scores": {"income": 0.02 * i, "region": 0.01, ODD: 0.03, "age": 0.4}, "prediction_score": 0.01,
             "metrics": {"accuracy": 0.84}, "status": "ok"} for i in (9, 10, 11)]


class _Page(HTMLParser):
    """Checks that every tag closes in order, and keeps the SVG charts with the text inside each."""

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.stack: list[str] = []
        self.problems: list[str] = []
        self.charts: list[dict[str, Any]] = []
        self.text: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag == "svg":
            self.charts.append({"label": dict(attrs).get("aria-label"), "circles": 0, "rects": 0, "lines": 0})
        elif self.charts and "svg" in self.stack:
            for kind in ("circle", "rect", "line"):
                self.charts[-1][kind + "s"] += tag == kind
        if tag not in VOID:
            self.stack.append(tag)

    def handle_startendtag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if self.charts and "svg" in self.stack:
            for kind in ("circle", "rect", "line"):
                self.charts[-1][kind + "s"] += tag == kind

    def handle_endtag(self, tag: str) -> None:
        if not self.stack or self.stack[-1] != tag:
            self.problems.append(f"</{tag}> closes {self.stack[-1:]!r}")
        else:
            self.stack.pop()

    def handle_data(self, data: str) -> None:
        self.text.append(data)


def parse(page: str) -> _Page:
    parser = _Page()
    parser.feed(page)
    parser.close()
    assert parser.problems == [] and parser.stack == [], (parser.problems, parser.stack)
    return parser


def assert_offline(page: str) -> None:
    assert page.startswith("<!DOCTYPE html>")
    lowered = page.lower()
    for forbidden in ("<script", "http://", "https://", "src=", "href=", "@import", "url("):
        assert forbidden not in lowered, forbidden


def test_full_report_page_shows_every_column_with_its_charts() -> None:
    report = full_report()
    page = render_report_html(report, history())
    assert_offline(page)
    parsed = parse(page)
    text = "".join(parsed.text)
    columns = report["data_drift"]["columns"]
    assert {c["method"] for c in columns} == {"wasserstein", "jensenshannon", "ks"}
    for column in [*columns, report["prediction_drift"]]:
        assert column["column"] in text
        assert format_value(column["score"]) in text
        threshold = f"p < {format_value(column['threshold'])}" if column["method"] in ("ks", "chisquare", "ztest") \
            else f"≥ {format_value(column['threshold'])}"
        assert threshold in text
    assert "p < 0.05" in text and "≥ 0.1" in text and "p &lt; 0.05" in page
    drifted = [c["column"] for c in columns if c["drifted"]]
    assert "income" in drifted and "region" in drifted and ODD not in drifted  # the planted shifts were found

    distributions = [c for c in parsed.charts if c["label"].startswith("reference and current")]
    histories = [c for c in parsed.charts if c["label"] == "score over earlier reports"]
    assert len(distributions) == len(columns) + 1  # each column and the predictions
    assert len(histories) == len(columns) + 1 + 2  # the same, and each of the two metrics
    # Three earlier reports and this one: four points a history, the drift ones threshold drawn as a line.
    # accuracy, roc_auc (in this report only), then each column and the predictions, their thresholds drawn.
    assert [c["circles"] for c in histories] == [4, 1] + [4] * (len(columns) + 1)
    assert [c["lines"] for c in histories] == [1, 1] + [2] * (len(columns) + 1)  # the axis, and the threshold
    numeric_bins = [c for c in distributions if c["label"].endswith("by bin")]
    assert len(numeric_bins) == 3 and all(c["rects"] == 2 + 2 * 10 for c in numeric_bins)  # legend + 10 pairs

    for shown in ("credit-api", "credit@1", "model credit version 3", "the last 1h", "0.8125", "0.7813 – 0.8406",
                  "adwin", "r-1", "above the limit", "labels arrive a day late", "p99 above 50 ms", "alert"):
        assert shown in text, shown


def test_user_text_is_escaped() -> None:
    report = full_report()
    report["monitor"] = "<script>alert(1)</script>"
    page = render_report_html(report, history())
    assert_offline(page)
    parse(page)
    assert ODD not in page and "&lt;b&gt;x&lt;/b&gt;" in page
    assert CATEGORY not in page and "a&amp;b" in page
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in page
    assert "income &amp; region &lt;drifted&gt;" in page


def test_sparse_report_says_what_was_not_measured() -> None:
    report = {"id": 3, "monitor": "quiet", "created": "2026-12-01T18:00:00Z", "status": "insufficient data",
              "target": {"deployment": None, "model": "credit", "version": 1},
              "window": {"start": None, "end": None, "rows": 2, "requests": None, "kind": "count", "size": 5000},
              "reference": None, "data_drift": None, "prediction_drift": None, "distributions": {},
              "performance": None, "health": None, "alerts": [], "notes": []}
    page = render_report_html(report, [])
    assert_offline(page)
    parsed = parse(page)
    text = "".join(parsed.text)
    assert parsed.charts == []
    for section in ("Data drift was", "Prediction drift was", "Performance was", "Serving health was"):
        assert f"{section} not measured" in text, section
    assert "reference" in text and "insufficient data" in text and "the last 5,000 requests" in text
    assert "deployment" not in text  # None: a model watched outside a deployment
    assert "no alert rule fired" in text

    bare = render_report_html({"monitor": "bare"}, [])  # every key missing
    assert_offline(bare)
    assert "".join(parse(bare).text).count("not measured") >= 7


def test_unjudged_columns_and_broken_distributions_render_as_notes() -> None:
    reference, current = _frames()
    drift = dataset_drift(reference, current.head(3)).to_dict()  # three rows: no column can be judged
    report = {"id": 4, "monitor": "m", "status": "insufficient data", "data_drift": drift,
              "distributions": {"income": {"kind": "numeric", "edges": [0, 1], "reference": [0.5, 0.5],
                                           "current": [1.0]},
                                "region": {"kind": "categorical", "categories": [CATEGORY], "reference": [1.0],
                                           "current": [1.0]}}}
    page = render_report_html(report, [{"id": 4, "created": "2026-12-01T18:00:00Z", "scores": {"income": 0.5}}])
    assert_offline(page)
    parsed = parse(page)
    text = "".join(parsed.text)
    assert drift["checked"] == 0 and "none of its 4 compared columns could be" in text
    assert text.count("not judged") >= len(drift["columns"]) and "insufficient data: 3 non-null values" in text
    assert "2 bin edges for 2 reference and 1 current shares" in text
    assert [c["label"] for c in parsed.charts] == ["reference and current share by category"]
    # No scores now, and the only summary is this report's own: no history points, so no line charts.
    assert text.count("No earlier scores to draw.") == len(drift["columns"])


# -- Prometheus ------------------------------------------------------------------------------------


def samples(body: bytes) -> dict[tuple[str, frozenset[tuple[str, str]]], float]:
    found = {}
    for family in text_string_to_metric_families(body.decode()):
        assert family.type == "gauge"
        for sample in family.samples:
            found[(sample.name, frozenset(sample.labels.items()))] = sample.value
    return found


def key(name: str, **labels: str) -> tuple[str, frozenset[tuple[str, str]]]:
    return name, frozenset(labels.items())


def test_exposition_exports_the_latest_reports_and_alerts() -> None:
    report = full_report()
    quiet = {"id": 2, "monitor": "quiet", "created": "2026-12-01T12:00:00+01:00", "status": "insufficient data",
             "window": {"rows": 3}, "data_drift": None, "prediction_drift": None, "performance": None,
             "health": None}
    older = {**report, "id": 11, "created": "2026-12-01T17:00:00Z", "window": {"rows": 99}}
    alerts = [{"monitor": "credit-api", "rule": "data_drift", "severity": "warning", "state": "firing"},
              {"monitor": "credit-api", "rule": "latency", "severity": "critical", "state": "resolved"},
              {"monitor": "quiet", "rule": "latency", "severity": "critical", "state": "resolved"},
              {"monitor": "quiet", "rule": "latency", "severity": "critical", "state": "firing"}]
    found = samples(exposition([report, quiet, older], alerts))

    columns = report["data_drift"]["columns"]
    for column in columns:
        name = column["column"]
        assert found[key("shipyard_monitor_drift_score", monitor="credit-api", column=name,
                         method=column["method"])] == pytest.approx(column["score"])
        assert found[key("shipyard_monitor_column_drifted", monitor="credit-api", column=name)] == float(
            column["drifted"])
    assert found[key("shipyard_monitor_drift_share", monitor="credit-api")] == pytest.approx(
        report["data_drift"]["drift_share"])
    prediction = report["prediction_drift"]
    assert found[key("shipyard_monitor_prediction_drift_score", monitor="credit-api",
                     method=prediction["method"])] == pytest.approx(prediction["score"])
    assert found[key("shipyard_monitor_metric", monitor="credit-api", metric="accuracy")] == 0.8125
    assert found[key("shipyard_monitor_rows", monitor="credit-api")] == 800  # the later report, not `older`
    assert found[key("shipyard_monitor_report_timestamp_seconds", monitor="credit-api")] == dt.datetime(
        2026, 12, 1, 18, tzinfo=dt.UTC).timestamp()
    assert found[key("shipyard_monitor_report_timestamp_seconds", monitor="quiet")] == dt.datetime(
        2026, 12, 1, 11, tzinfo=dt.UTC).timestamp()
    assert found[key("shipyard_monitor_health", monitor="credit-api", measure="p99_ms")] == 61.5
    assert found[key("shipyard_monitor_health", monitor="credit-api", measure="error_rate")] == 0.0
    assert found[key("shipyard_monitor_alert_firing", monitor="credit-api", rule="data_drift",
                     severity="warning")] == 1
    assert found[key("shipyard_monitor_alert_firing", monitor="credit-api", rule="latency", severity="critical")] == 0
    assert found[key("shipyard_monitor_alert_firing", monitor="quiet", rule="latency", severity="critical")] == 1

    # The sparse report exports what it has and nothing for what it lacks (no zeros standing in for None).
    quiet_series = {k for k in found if ("monitor", "quiet") in k[1]}
    assert {k[0] for k in quiet_series} == {"shipyard_monitor_rows", "shipyard_monitor_report_timestamp_seconds",
                                            "shipyard_monitor_alert_firing"}
    # Per column a score and a verdict; drift share, prediction score, two metrics, rows and time of each
    # monitor, five health measures and three alert series (quiet's latency alert listed twice is one series).
    assert len(found) == 2 * len(columns) + 1 + 1 + 2 + 2 + 2 + 5 + 3


def test_label_values_are_escaped() -> None:
    monitor = 'say "hi"\nthen \\ leave'
    report = {"id": 1, "monitor": monitor, "created": "2026-12-01T18:00:00Z", "window": {"rows": 5},
              "data_drift": {"drift_share": 0.5, "columns": [
                  {"column": 'a"b', "method": "psi", "score": 0.2, "drifted": True}]}}
    body = exposition([report], [{"monitor": monitor, "rule": "r\n2", "severity": "warning", "state": "firing"}])
    raw = body.decode()
    assert 'monitor="say \\"hi\\"\\nthen \\\\ leave"' in raw and 'column="a\\"b"' in raw
    assert not re.search(r'monitor="say "hi"', raw)
    found = samples(body)
    assert found[key("shipyard_monitor_drift_score", monitor=monitor, column='a"b', method="psi")] == 0.2
    assert found[key("shipyard_monitor_column_drifted", monitor=monitor, column='a"b')] == 1
    assert found[key("shipyard_monitor_alert_firing", monitor=monitor, rule="r\n2", severity="warning")] == 1


def test_bad_reports_and_alerts_are_refused_by_name() -> None:
    with pytest.raises(ValidationError, match=r"Report 7 has no monitor name"):
        exposition([{"id": 7, "monitor": None}], [])
    with pytest.raises(ValidationError, match=r"state 'pending'.*'firing' or 'resolved'"):
        exposition([], [{"monitor": "m", "rule": "latency", "severity": "warning", "state": "pending"}])
    with pytest.raises(ValidationError, match=r"'yesterday' is not an ISO 8601 time"):
        exposition([{"id": 1, "monitor": "m", "created": "yesterday"}], [])
    assert samples(exposition([], [])) == {}


def test_p_value_history_marks_the_drifted_reports() -> None:
    from shipyard.monitoring.charts import DRIFT_COLOUR, history_svg

    # scipy's p-values underflow to 0.0; a None score (an unjudged report) is skipped, not drawn as 0.
    chart = history_svg([("a", 0.5), ("b", None), ("c", 0.0), ("d", 1e-30), ("e", 0.2)], 0.05, p_values=True)
    parse(chart)
    assert chart.count("<circle") == 4
    assert len(re.findall(rf'<circle [^>]*fill="{DRIFT_COLOUR}"', chart)) == 2  # c and d
    assert ">1e-16<" in chart  # the axis reaches the floor of the log scale
    distances = history_svg([("a", 0.05), ("b", 0.3)], 0.1, p_values=False)
    assert len(re.findall(rf'<circle [^>]*fill="{DRIFT_COLOUR}"', distances)) == 1  # b, at or above 0.1
