"""End to end, with a real server: a deployment serves the model, traffic from a shifted population goes through
HTTP, feedback for part of it comes back over HTTP, and `shipyard monitor run` finds the drift and the drop in
accuracy, delivers the alerts to a local webhook receiver, and the report renders; the readiness checklist's
monitoring item then passes on that evidence."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import shipyard
from tests.monitoring.receiver import Receiver
from tests.monitoring.traffic import FEATURES, loans, train
from tests.serving.test_server import post, running_server

MONITOR = """
gates:
  loans: {{}}
deploy:
  loans-api: {{model: loans/1}}
monitor:
  loans-api:
    deployment: loans-api
    window: {{last: 1h}}
    drift: {{share: 0.3}}
    performance: {{min: 0.8, min_labelled: 50}}
    health: {{max_p99_ms: 2000, max_error_rate: 0.05}}
    sinks: [log, {{webhook: '{url}/alerts'}}, {{slack: '{url}/slack'}}]
"""


def cli(workspace: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([str(Path(sys.executable).with_name("shipyard")), *args], cwd=workspace,
                          capture_output=True, text=True, timeout=300)


def test_serve_shifted_traffic_feedback_monitor_alert_and_report(workspace: Path, tmp_path: Path) -> None:
    train(workspace)
    receiver = Receiver()
    with receiver.running():
        (workspace / "shipyard.yaml").write_text((workspace / "shipyard.yaml").read_text()
                                                 + MONITOR.format(url=receiver.url))
        applied = cli(workspace, "deploy", "apply", "loans-api")
        assert applied.returncode == 0, applied.stderr
        shifted = loans(600, 11, shift=1.2, flip=0.4)  # richer applicants, and a changed link to the outcome
        with running_server(workspace, "--deployment", "loans-api") as (url, _):
            for i in range(60):
                rows = shifted.iloc[i * 10:(i + 1) * 10][FEATURES]
                status, answer = predict(f"{url}/predict/loans-api", json.loads(rows.to_json(orient="records")),
                                         f"loan-{i}")
                assert status == 200, answer
            # the labels of the first 40 requests come back (partial feedback)
            items = [{"request_id": f"loan-{i}", "row": row, "value": shifted["approved"].iloc[i * 10 + row]}
                     for i in range(40) for row in range(10)]
            status, recorded = post(f"{url}/v2/models/loans/feedback", {"feedback": items})
            assert status == 200 and recorded["recorded"] == 400
        ran = cli(workspace, "monitor", "run", "loans-api", "--json")
    assert ran.returncode == 3, ran.stdout[-2000:] + ran.stderr[-2000:]
    report = json.loads(ran.stdout)
    assert report["target"] == {"deployment": "loans-api", "model": "loans", "version": 1}
    assert report["window"]["requests"] == 60 and report["window"]["rows"] == 600
    assert "income" in report["data_drift"]["drifted_columns"] and report["prediction_drift"]["drifted"] is True
    assert report["performance"]["labelled"] == 400 and report["performance"]["metrics"]["accuracy"]["value"] < 0.8
    assert report["health"]["requests"] == 60 and report["health"]["error_rate"] == 0
    firing = {f["rule"] for f in report["findings"] if f["breached"]}
    assert {"data_drift", "prediction_drift", "performance"} <= firing
    webhook = {body["rule"]: body for path, _, body in receiver.received if path == "/alerts"}
    slack = [body for path, _, body in receiver.received if path == "/slack"]
    assert {"data_drift", "performance"} <= set(webhook) and webhook["performance"]["status"] == "firing"
    assert len(slack) == len(webhook) and all("loans-api" in body["text"] for body in slack)
    page = tmp_path / "loans-api.html"
    shown = cli(workspace, "monitor", "report", "loans-api", "--format", "html", "--output", str(page))
    assert shown.returncode == 0, shown.stderr
    html = page.read_text()
    assert all(column in html for column in FEATURES) and "<script" not in html and html.count("<svg") >= 4
    ready = cli(workspace, "readiness", "loans/1", "--json")
    monitoring = next(i for i in json.loads(ready.stdout)["items"] if i["name"] == "monitoring")
    assert monitoring["status"] == "PASS", monitoring
    assert any("alerts go to webhook, slack" in e for e in monitoring["evidence"])
    audit = [e.action for e in shipyard.audit_log(object_id="loans-api", workspace=workspace)]
    assert "monitor.run" in audit and "monitor.alert.evaluate" in audit


def predict(url: str, records: list[dict[str, object]], request_id: str) -> tuple[int, object]:
    import urllib.request

    req = urllib.request.Request(url, data=json.dumps(records).encode(),
                                 headers={"content-type": "application/json", "x-request-id": request_id})
    with urllib.request.urlopen(req, timeout=30) as response:
        return response.status, json.loads(response.read())
