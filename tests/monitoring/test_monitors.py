"""Monitors over the prediction log: windows by time and count per deployment, data and prediction drift against
the training data, performance on feedback (late labels update earlier reports), health, stored reports with
lineage and audit events, alerts to a real webhook receiver, and the cases where there is too little to judge."""

from __future__ import annotations

import json
import time
from pathlib import Path

import pytest

import shipyard
from shipyard.context import Context, open_context
from shipyard.errors import ConfigError, NotFoundError
from shipyard.monitoring.monitors import get_report, history, run_monitor
from shipyard.monitoring.windows import read_window
from shipyard.policy.monitor import load_monitor_spec
from tests.monitoring.receiver import Receiver
from tests.monitoring.traffic import FEATURES, loans, log_traffic, send_feedback, train


def declare(workspace: Path, text: str) -> None:
    path = workspace / "shipyard.yaml"
    path.write_text(path.read_text() + text)


@pytest.fixture
def ctx(workspace: Path) -> Context:
    train(workspace)
    return open_context()


MONITOR = """
monitor:
  loans-watch:
    model: loans/1
    window: {{last: 1h}}
    drift: {{share: 0.3}}
    performance: {{min: 0.8}}
    health: {{max_p99_ms: 50, max_error_rate: 0.05}}
    sinks: [log{sinks}]
"""


def test_unshifted_traffic_is_quiet_and_the_report_is_stored_with_its_lineage(workspace: Path, ctx: Context) -> None:
    declare(workspace, MONITOR.format(sinks=""))
    current = loans(1500, 1)
    ids = log_traffic(ctx, current)
    send_feedback(ctx, ids, current["approved"])
    run = run_monitor(ctx, "loans-watch")
    report = run.report
    assert report["status"] == "ok", [f for f in run.findings if f.breached]
    assert report["window"]["rows"] == 1500 and report["window"]["requests"] == 150
    assert report["reference"]["dataset"] == "loans@1" and report["reference"]["rows"] == 3000
    drift = report["data_drift"]
    assert drift["drifted"] is False and drift["checked"] == 3
    assert {c["column"]: c["method"] for c in drift["columns"]} == {"income": "wasserstein", "age": "wasserstein",
                                                                     "region": "jensenshannon"}
    assert report["prediction_drift"]["drifted"] is False
    assert set(report["distributions"]) == {*FEATURES, "prediction"}
    perf = report["performance"]
    assert perf["labelled"] == 1500 and perf["metrics"]["accuracy"]["value"] > 0.85
    assert report["health"]["requests"] == 150 and report["health"]["error_rate"] is None  # not logged for a model
    assert any("error rate not measured" in n for n in report["notes"])
    stored = get_report(ctx, "loans-watch")
    assert stored["id"] == run.id and stored["status"] == "ok"
    from shipyard.store.lineage import Node, neighbours

    with ctx.store.read() as conn:
        upstream = {(node.kind, node.id) for node, _ in neighbours(conn, Node("monitor_report", str(run.id)),
                                                                    upstream=True)}
    assert upstream == {("model_version", "loans/1"), ("dataset_version", "loans@1")}
    events = [e.action for e in shipyard.audit_log(object_id="loans-watch")]
    assert "monitor.run" in events


def test_shifted_traffic_and_worse_labels_fire_alerts_to_the_webhook(workspace: Path, ctx: Context) -> None:
    receiver = Receiver()
    with receiver.running():
        declare(workspace, MONITOR.format(sinks=f", {{webhook: '{receiver.url}/hook'}}"))
        shifted = loans(1000, 2, shift=1.0, flip=0.35)
        ids = log_traffic(ctx, shifted)
        send_feedback(ctx, ids, shifted["approved"])
        run = run_monitor(ctx, "loans-watch")
    report = run.report
    assert report["status"] == "alert"
    assert "income" in report["data_drift"]["drifted_columns"] and "region" not in report["data_drift"]["drifted_columns"]
    assert report["prediction_drift"]["drifted"] is True
    accuracy = report["performance"]["metrics"]["accuracy"]
    assert accuracy["value"] < 0.8 and accuracy["low"] <= accuracy["value"] <= accuracy["high"]
    fired = {f.rule for f in run.firing}
    assert {"data_drift", "prediction_drift", "performance"} <= fired
    posted = {body["rule"]: body for _, _, body in receiver.received}
    assert {"data_drift", "prediction_drift", "performance"} <= set(posted)
    assert posted["performance"]["status"] == "firing" and posted["performance"]["monitor"] == "loans-watch"
    assert posted["data_drift"]["report_id"] == run.id
    # the same breach again is the same alert: no new episode, nothing sent again before the repeat interval
    again = run_monitor(ctx, "loans-watch")
    assert not [n for n in again.notifications if n.status == "firing"]
    firing = shipyard.monitoring.list_alerts(monitor="loans-watch", state="firing")
    assert len([a for a in firing if a.rule == "data_drift"]) == 1


def test_an_empty_window_and_a_thin_one_are_insufficient_data_not_a_verdict(workspace: Path, ctx: Context) -> None:
    declare(workspace, MONITOR.format(sinks=""))
    empty = run_monitor(ctx, "loans-watch")
    assert empty.report["data_drift"] is None and empty.report["window"]["rows"] == 0
    assert "the window holds no prediction" in empty.report["notes"][0]
    assert {f.rule for f in empty.firing} == {"no_data"}
    assert next(f for f in empty.findings if f.rule == "data_drift").breached is None
    log_traffic(ctx, loans(20, 3), per_request=5)
    thin = run_monitor(ctx, "loans-watch")
    assert thin.report["data_drift"] is None and "20 answered rows in the window, 30 needed" in thin.report["notes"][0]
    assert thin.report["status"] == "insufficient data" and thin.firing == []
    no_data = shipyard.monitoring.list_alerts(monitor="loans-watch", state="resolved")
    assert [a.rule for a in no_data] == ["no_data"]  # traffic came back: the no-data alert resolved


def test_a_small_window_is_judged_by_the_tests(workspace: Path, ctx: Context) -> None:
    declare(workspace, MONITOR.format(sinks=""))
    log_traffic(ctx, loans(300, 11))
    report = run_monitor(ctx, "loans-watch").report
    drift = report["data_drift"]
    assert {c["column"]: c["method"] for c in drift["columns"]} == {"income": "ks", "age": "ks",
                                                                     "region": "chisquare"}
    assert report["prediction_drift"]["method"] == "ztest" and drift["drifted"] is False


def test_a_regression_monitor_survives_an_empty_window_and_a_wrong_metric(workspace: Path) -> None:
    from sklearn.linear_model import LinearRegression

    data = loans(2000, 0)
    data["limit"] = data["income"] * 0.3 + data["age"] * 10
    shipyard.data.add("limits", data[["income", "age", "limit"]])
    with shipyard.start_run("train-limits") as run:
        run.log_input("limits@1")
        run.log_model(LinearRegression().fit(data[["income", "age"]], data["limit"]), "limits",
                      input_example=data[["income", "age"]].head())
    declare(workspace, "monitor:\n  limits-watch: {model: limits/1, performance: {max: 100}}\n"
                       "  wrong-metric: {model: limits/1, performance: {metric: accuracy, min: 0.9}}\n")
    ctx = open_context()
    empty = run_monitor(ctx, "limits-watch")
    assert empty.report["status"] == "alert" and [f.rule for f in empty.firing] == ["no_data"]
    assert empty.report["performance"]["labelled"] == 0
    with pytest.raises(ConfigError, match="give one of min .* or max"):
        load_monitor_spec({"model": "limits/1", "performance": {"min": 0.8, "max": 0.9}}, "m")
    with pytest.raises(ConfigError, match="rmse is an error, lower is better: give max"):
        load_monitor_spec({"model": "limits/1", "performance": {"metric": "rmse", "min": 3}}, "m")
    from shipyard.models.loading import load_model
    from shipyard.serving.batches import build_batches, store_batch
    from shipyard.serving.predlog import Prediction

    rows = data[["income", "age"]].head(200)
    entry = Prediction("q1", time.time() - 5, "limits", 1, "infer", rows, load_model(ctx, "limits/1").predict(rows),
                       None, 1.0)
    for batch in build_batches([entry]):
        store_batch(ctx, batch)
    from shipyard.serving.feedback import FeedbackItem, record_feedback

    record_feedback(ctx, "limits", [FeedbackItem("q1", float(v), i) for i, v in enumerate(data["limit"].head(200))])
    judged = run_monitor(ctx, "limits-watch").report
    assert judged["performance"]["task"] == "regression" and judged["performance"]["metrics"]["rmse"]["value"] < 1e-6
    wrong = next(f for f in run_monitor(ctx, "wrong-metric").findings if f.rule == "performance")
    assert wrong.breached is None and "accuracy not judged: it is not a regression metric" in wrong.message


def test_windows_by_count_and_by_deployment(ctx: Context) -> None:
    now = time.time()
    log_traffic(ctx, loans(300, 4), start=now - 600, prefix="old")
    log_traffic(ctx, loans(200, 5), start=now - 100, prefix="dep", deployment="loans-api")
    newest = read_window(ctx, "loans", 1, rows=250, until=now + 1)
    assert newest.rows == 250 and newest.kind == "count"
    assert newest.frame["request_id"].str.startswith("dep").sum() == 200  # the newest rows, wherever they came from
    through = read_window(ctx, "loans", 1, deployment="loans-api", last=3600, until=now + 1)
    assert through.rows == 200 and set(through.frame["deployment"]) == {"loans-api"}
    recent = read_window(ctx, "loans", 1, last=300, until=now + 1)
    assert recent.rows == 200
    assert recent.features == FEATURES and list(recent.inputs().columns) == FEATURES


def test_late_labels_update_the_performance_of_earlier_reports(workspace: Path, ctx: Context) -> None:
    declare(workspace, MONITOR.format(sinks=""))
    current = loans(400, 6)
    ids = log_traffic(ctx, current)
    first = run_monitor(ctx, "loans-watch")
    assert first.report["performance"]["labelled"] == 0
    send_feedback(ctx, ids[:20], current["approved"])  # the labels of 200 rows arrive later
    second = run_monitor(ctx, "loans-watch")
    assert first.id in second.updated_reports
    updated = get_report(ctx, "loans-watch", first.id)
    assert updated["performance"]["labelled"] == 200 and updated["updated"] is not None
    before = next(f for f in first.report["findings"] if f["rule"] == "performance")
    verdict = next(f for f in updated["findings"] if f["rule"] == "performance")  # judged on the late labels
    assert before["breached"] is None and "insufficient data: 0 labelled rows" in before["message"]
    assert verdict["breached"] is False and "on 200 labelled rows" in verdict["message"]
    assert [h["id"] for h in history(ctx, "loans-watch")] == [first.id, second.id]
    assert any(e.action == "monitor.report.update" for e in shipyard.audit_log(object_id=str(first.id)))


def test_missing_columns_unseen_categories_and_mismatched_labels_are_reported(workspace: Path, ctx: Context) -> None:
    declare(workspace, MONITOR.format(sinks=""))
    current = loans(300, 7)
    current.loc[:99, "region"] = "atlantis"  # a category the training data never had
    ids = log_traffic(ctx, current)
    send_feedback(ctx, ids, current["approved"].map({"yes": 1.5, "no": 2.5}))  # numbers for a yes/no model
    report = run_monitor(ctx, "loans-watch").report
    region = next(c for c in report["data_drift"]["columns"] if c["column"] == "region")
    chart = report["distributions"]["region"]
    assert region["drifted"] is True and chart["categories"][-1] == "other"  # the unseen category, counted
    assert chart["current"][-1] == pytest.approx(100 / 300) and chart["reference"][-1] == 0
    perf = report["performance"]
    assert perf["labelled"] == 0 and perf["unusable"] == 300 and perf["label_mismatch"] is not None


def test_unknown_and_invalid_monitors_name_the_fix(workspace: Path, ctx: Context) -> None:
    declare(workspace, MONITOR.format(sinks=""))
    with pytest.raises(NotFoundError, match="No monitor 'loans-wach'.*Did you mean 'loans-watch'"):
        run_monitor(ctx, "loans-wach")
    (workspace / "shipyard.yaml").write_text((workspace / "shipyard.yaml").read_text()
                                             + "  broken:\n    model: loans/1\n    window: {last: 1h, rows: 10}\n")
    with pytest.raises(ConfigError, match="monitor.broken.window: give one of last"):
        run_monitor(ctx, "broken")


def test_monitor_cli_run_report_html_alerts_and_export(workspace: Path, ctx: Context, tmp_path: Path) -> None:
    import subprocess
    import sys

    from prometheus_client.parser import text_string_to_metric_families

    declare(workspace, MONITOR.format(sinks=""))
    shifted = loans(600, 8, shift=1.0)
    log_traffic(ctx, shifted)
    exe = str(Path(sys.executable).with_name("shipyard"))

    def cli(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run([exe, "monitor", *args], cwd=workspace, capture_output=True, text=True, timeout=300)

    ran = cli("run", "loans-watch", "--json")
    assert ran.returncode == 3, ran.stderr  # a rule is breached
    assert json.loads(ran.stdout)["status"] == "alert"
    page = tmp_path / "report.html"
    shown = cli("report", "loans-watch", "--format", "html", "--output", str(page))
    assert shown.returncode == 0, shown.stderr
    text = page.read_text()
    assert "<svg" in text and "income" in text and "<script" not in text
    table = cli("report", "loans-watch")
    assert table.returncode == 0 and "ALERT data_drift" in table.stdout
    listed = cli("alerts", "--json")
    alert = next(a for a in json.loads(listed.stdout) if a["rule"] == "data_drift")
    assert cli("ack", str(alert["id"])).returncode == 0
    assert cli("silence", "loans-watch", "--for", "2h", "--reason", "known shift").returncode == 0
    bad = cli("silence", "loans-watch", "--for", "soon")
    assert bad.returncode != 0 and "Invalid --for 'soon'" in bad.stderr and "Traceback" not in bad.stderr
    unknown = cli("report", "nope")
    assert unknown.returncode != 0 and "No monitor 'nope'" in unknown.stderr or "No report of monitor 'nope'" in unknown.stderr
    exported = cli("export")
    families = {f.name: f for f in text_string_to_metric_families(exported.stdout)}
    assert families["shipyard_monitor_drift_share"].samples[0].labels == {"monitor": "loans-watch"}
    firing = {s.labels["rule"]: s.value for s in families["shipyard_monitor_alert_firing"].samples}
    assert firing["data_drift"] == 1.0


def test_readiness_names_what_the_monitoring_lacks(workspace: Path, ctx: Context) -> None:
    from shipyard.governance.readiness import evaluate

    def item() -> tuple[str, list[str]]:
        found = next(i for i in evaluate(ctx, "loans/1").items if i.name == "monitoring")
        return found.status, found.missing

    assert item() == ("FAIL", ["no monitor watches loans/1 (declare one under monitor: in shipyard.yaml, for a "
                               "deployment serving it or for the model)"])
    declare(workspace, "monitor:\n  loans-watch: {model: loans/1, performance: null}\n")
    status, missing = item()
    assert status == "FAIL" and missing == [
        "monitor loans-watch sets no performance limit (monitor.loans-watch.performance.min or .max)",
        "monitor loans-watch sends alerts only to the log (add a webhook or slack sink)",
        "monitor loans-watch has no report on loans/1 that judged drift or performance (`shipyard monitor run "
        "loans-watch` once traffic and feedback came in)"]
    run_monitor(ctx, "loans-watch")  # an empty window judges nothing: still no evidence
    assert len(item()[1]) == 3


def test_monitor_reports_alerts_sketches_and_late_labels_on_both_stores(backend_workspace: Path) -> None:
    """The same run on SQLite and PostgreSQL: stored report ids, lineage, the reference sketch found again by
    its key, late labels updating the first report, and the alert opened once."""
    train(backend_workspace)
    declare(backend_workspace, MONITOR.format(sinks=""))
    ctx = open_context()
    shifted = loans(1200, 12, shift=1.0)
    ids = log_traffic(ctx, shifted)
    first = run_monitor(ctx, "loans-watch")
    assert first.report["reference"]["source"] == "data" and "data_drift" in {f.rule for f in first.firing}
    send_feedback(ctx, ids[:50], shifted["approved"])
    second = run_monitor(ctx, "loans-watch")
    assert second.report["reference"]["source"] in ("sketch", "profile") and second.id == first.id + 1
    assert second.updated_reports == [first.id]
    assert get_report(ctx, "loans-watch", first.id)["performance"]["labelled"] == 500
    firing = shipyard.monitoring.list_alerts(monitor="loans-watch", state="firing")
    assert len([a for a in firing if a.rule == "data_drift"]) == 1
    assert [h["id"] for h in history(ctx, "loans-watch")] == [first.id, second.id]


def test_a_deployment_monitor_watches_the_route_it_names(workspace: Path, ctx: Context) -> None:
    from shipyard.monitoring.monitors import monitor_spec, target_version

    declare(workspace, "gates:\n  loans: {}\nmonitor:\n  primary: {deployment: loans-api}\n"
                       "  shadowed: {deployment: loans-api, route: shadow}\n"
                       "  wrong: {model: loans/1, route: canary}\n")
    shipyard.deployments.create("loans-api", "loans/1")
    assert target_version(ctx, monitor_spec(ctx, "primary")).version_id == "loans/1"
    with pytest.raises(NotFoundError, match=r"Deployment 'loans-api' has no shadow route now \(it routes: primary "
                                            r"loans/1\); set the monitor's route"):
        target_version(ctx, monitor_spec(ctx, "shadowed"))
    with pytest.raises(ConfigError, match="route picks one of a deployment's routes: give deployment, not model"):
        monitor_spec(ctx, "wrong")
