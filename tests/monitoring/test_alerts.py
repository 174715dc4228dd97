"""Alerts: the episode state machine, repeats and acknowledgement, silences, de-duplication under concurrent
evaluations, the webhook and Slack payloads as a real HTTP receiver sees them, failing sinks; bad input."""

from __future__ import annotations

import logging
import socket
import threading
from pathlib import Path
from typing import Any

import pytest

import shipyard
from shipyard.context import Context, open_context
from shipyard.errors import ConflictError, NotFoundError, ValidationError
from shipyard.monitoring import alerts
from shipyard.monitoring.alerts import Finding, evaluate
from shipyard.policy.monitor import MonitorSpec
from shipyard.store.db import now_ms
from tests.monitoring.receiver import Receiver

HOUR = 3600 * 1000


def drift(breached: bool | None, value: float = 0.4, rule: str = "data_drift") -> Finding:
    return Finding(rule, "warning", breached, value, 0.2, f"{rule}: value {value} against 0.2")


def spec(**overrides: Any) -> MonitorSpec:
    return MonitorSpec.model_validate({"deployment": "web", "repeat": 3600, **overrides})


def actions(monitor: str) -> list[str]:
    return [e.action for e in shipyard.audit_log(object_id=monitor, newest_first=False)]


@pytest.fixture
def ctx(workspace: Path) -> Context:
    return open_context()


def test_fire_repeat_acknowledge_resolve_and_fire_again(backend_workspace: Path,
                                                        caplog: pytest.LogCaptureFixture) -> None:
    ctx, watch, t0 = open_context(), spec(), now_ms()
    caplog.set_level(logging.INFO, logger="shipyard.monitoring.alerts")

    [fired] = evaluate(ctx, "credit", watch, 1, [drift(True), drift(None, rule="latency")], now_ms=t0)
    assert (fired.status, fired.repeat, fired.delivered, fired.suppressed_by) == ("firing", False, True, None)
    first = fired.alert
    assert (first.state, first.first_report, first.notifications, first.notified_at) == ("firing", 1, 1, t0)
    warning = [r for r in caplog.records if r.levelno == logging.WARNING]
    assert len(warning) == 1 and "[FIRING] monitor 'credit', rule data_drift" in warning[0].getMessage()

    assert evaluate(ctx, "credit", watch, 2, [drift(True, 0.5)], now_ms=t0 + 60_000) == []  # still firing: no resend
    [current] = alerts.alerts(ctx, "credit", "firing")
    assert (current.id, current.value, current.last_report, current.updated, current.notifications) == (
        first.id, 0.5, 2, t0 + 60_000, 1)

    [again] = evaluate(ctx, "credit", watch, 3, [drift(True, 0.6)], now_ms=t0 + HOUR)  # `repeat` has passed
    assert (again.status, again.repeat, again.alert.id, again.alert.notifications) == ("firing", True, first.id, 2)

    # a report that could not judge the rule (too little data) leaves the firing alert as it is
    assert evaluate(ctx, "credit", watch, 3, [drift(None)], now_ms=t0 + HOUR + 1) == []
    assert alerts.alerts(ctx, "credit")[0].state == "firing"

    acked = alerts.acknowledge(ctx, first.id)
    assert acked.acknowledged_by == "tester" and acked.acknowledged_at is not None
    assert evaluate(ctx, "credit", watch, 4, [drift(True)], now_ms=t0 + 5 * HOUR) == []  # acknowledged: no repeats

    [resolved] = evaluate(ctx, "credit", watch, 5, [drift(False, 0.1)], now_ms=t0 + 6 * HOUR)
    assert (resolved.status, resolved.alert.state) == ("resolved", "resolved")
    assert resolved.alert.resolved_at == t0 + 6 * HOUR
    assert any(r.levelno == logging.INFO and "[RESOLVED]" in r.getMessage() for r in caplog.records)

    head = shipyard.audit_head()
    assert evaluate(ctx, "credit", watch, 6, [drift(None), drift(False, rule="latency")], now_ms=t0 + 7 * HOUR) == []
    assert shipyard.audit_head() == head  # nothing judged or nothing firing: nothing written, nothing audited

    [new] = evaluate(ctx, "credit", watch, 7, [drift(True)], now_ms=t0 + 8 * HOUR)
    assert new.alert.id != first.id and new.alert.first_report == 7 and new.alert.acknowledged_at is None
    assert [a.id for a in alerts.alerts(ctx, "credit")] == [new.alert.id, first.id]
    assert [a.id for a in alerts.alerts(ctx, state="resolved")] == [first.id]
    assert actions("credit") == [
        "monitor.alert.evaluate", "monitor.alert.notify",  # fired, sent
        "monitor.alert.evaluate",  # updated
        "monitor.alert.evaluate", "monitor.alert.notify",  # repeated
        "monitor.alert.acknowledge", "monitor.alert.evaluate",
        "monitor.alert.evaluate", "monitor.alert.notify",  # resolved
        "monitor.alert.evaluate", "monitor.alert.notify",  # a new episode
    ]
    events = shipyard.audit_log(object_id="credit", action="monitor.alert.evaluate", newest_first=False)
    assert [c["change"] for e in events for c in e.payload["changes"]] == [
        "fired", "updated", "updated", "updated", "resolved", "fired"]
    assert first.to_dict()["started"].endswith("Z")


def test_silence_suppresses_sending_not_state(ctx: Context) -> None:
    watch, t0 = spec(), now_ms()
    quiet = alerts.silence(ctx, "credit", rule="data_drift", seconds=3600, reason=" deploying a fix ")
    [active] = alerts.silences(ctx, "credit")
    assert (active.id, active.rule, active.reason) == (quiet, "data_drift", "deploying a fix")
    assert active.created_by == "tester" and active.until > now_ms()

    sent = evaluate(ctx, "credit", watch, 1, [drift(True), drift(True, 900.0, rule="latency")], now_ms=t0)
    by_rule = {n.alert.rule: n for n in sent}
    assert by_rule["data_drift"].suppressed_by == quiet and by_rule["data_drift"].deliveries == []
    assert by_rule["latency"].suppressed_by is None and by_rule["latency"].delivered
    assert {a.rule: a.state for a in alerts.alerts(ctx, "credit")} == {"data_drift": "firing", "latency": "firing"}
    assert {a.rule: a.notifications for a in alerts.alerts(ctx, "credit")} == {"data_drift": 0, "latency": 1}
    [event] = shipyard.audit_log(object_id="credit", action="monitor.alert.evaluate")
    assert event.payload["suppressed"] == [{"alert_id": by_rule["data_drift"].alert.id, "silence_id": quiet}]

    ended = alerts.unsilence(ctx, quiet)
    assert ended.until <= now_ms() and alerts.silences(ctx, "credit") == []
    assert [s.id for s in alerts.silences(ctx, "credit", active_only=False)] == [quiet]
    assert alerts.unsilence(ctx, quiet) == ended  # already over: a no-op
    # The silenced alert was never sent, so it is owed now; the one already sent is not repeated yet.
    [owed] = evaluate(ctx, "credit", watch, 2, [drift(True), drift(True, 900.0, rule="latency")], now_ms=t0 + 1000)
    assert (owed.alert.rule, owed.repeat, owed.delivered, owed.alert.notifications) == ("data_drift", False, True, 1)

    everything = alerts.silence(ctx, "credit", rule=None, seconds=60, reason=None)
    [muted] = evaluate(ctx, "credit", watch, 3, [drift(False), drift(True, 900.0, rule="latency")], now_ms=t0 + 2000)
    assert (muted.status, muted.suppressed_by, muted.alert.state) == ("resolved", everything, "resolved")
    assert actions("credit").count("monitor.silence") == 2 and "monitor.unsilence" in actions("credit")


def test_sinks_post_json_to_a_real_receiver(ctx: Context) -> None:
    with Receiver().running() as receiver:
        watch = spec(sinks=[{"webhook": f"{receiver.url}/hooks/alerts"}, {"slack": f"{receiver.url}/services/T0/B0/x"}])
        [fired] = evaluate(ctx, "credit", watch, 11, [Finding("performance", "critical", True, 0.71, 0.8,
                                                                 "accuracy 0.71 below 0.8")])
        [resolved] = evaluate(ctx, "credit", watch, 12, [Finding("performance", "critical", False, 0.86, 0.8,
                                                                    "accuracy 0.86")])
    assert [d.ok for d in fired.deliveries + resolved.deliveries] == [True] * 4
    assert fired.deliveries[1].target == receiver.url  # a Slack URL's path is its secret: never shown
    paths = [(path, kind) for path, kind, _ in receiver.received]
    assert paths == [("/hooks/alerts", "application/json"), ("/services/T0/B0/x", "application/json")] * 2
    hook, slack = receiver.received[0][2], receiver.received[1][2]
    assert hook == {"version": 1, "status": "firing", "monitor": "credit", "rule": "performance",
                    "severity": "critical", "value": 0.71, "threshold": 0.8, "message": "accuracy 0.71 below 0.8",
                    "alert_id": fired.alert.id, "report_id": 11, "started": fired.alert.to_dict()["started"],
                    "resolved_at": None, "repeat": False}
    assert "FIRING" in slack["text"] and "accuracy 0.71 below 0.8" in slack["text"]
    [section] = slack["blocks"]
    assert section["type"] == "section" and section["text"]["type"] == "mrkdwn"
    assert [f["text"] for f in section["fields"][:3]] == ["*Value*\n0.71", "*Threshold*\n0.8", "*Severity*\ncritical"]
    back = receiver.received[2][2]
    assert (back["status"], back["value"], back["report_id"]) == ("resolved", 0.86, 12)
    assert back["resolved_at"] == resolved.alert.to_dict()["resolved_at"] is not None
    assert "RESOLVED" in receiver.received[3][2]["text"]


def test_failing_sinks_are_reported_not_raised(ctx: Context, caplog: pytest.LogCaptureFixture) -> None:
    refusing = socket.socket()
    refusing.bind(("127.0.0.1", 0))  # bound, never listening: connections are refused
    silent = socket.socket()
    silent.bind(("127.0.0.1", 0))
    silent.listen()  # accepts into its backlog, never answers: the request times out
    try:
        with Receiver().running() as receiver:
            broken = spec(sinks=[{"webhook": f"http://127.0.0.1:{refusing.getsockname()[1]}/x"},
                                 {"webhook": f"{receiver.url}/fail"},
                                 {"slack": f"http://127.0.0.1:{silent.getsockname()[1]}/x", "timeout": 0.2}])
            [failed] = evaluate(ctx, "credit", broken, 1, [drift(True)])
            errors = [d.error or "" for d in failed.deliveries]
            assert not failed.delivered and [d.ok for d in failed.deliveries] == [False] * 3
            assert "refused" in errors[0].lower() and errors[1] == "HTTP 500 Internal Server Error"
            assert "timed out" in errors[2].lower()
            assert len([r for r in caplog.records if r.levelno == logging.ERROR
                        and r.name == "shipyard.monitoring.alerts"]) == 3
            # Nothing took it, so it is not counted as sent and the next evaluation tries again.
            [state] = alerts.alerts(ctx, "credit")
            assert (state.notified_at, state.notifications) == (None, 0)
            [retried] = evaluate(ctx, "credit", spec(sinks=["log", {"webhook": f"{receiver.url}/fail"}]), 2,
                                 [drift(True)])
            assert retried.delivered and [d.ok for d in retried.deliveries] == [True, False]
            assert retried.alert.notifications == 1
    finally:
        refusing.close()
        silent.close()
    [notify] = shipyard.audit_log(object_id="credit", action="monitor.alert.notify", limit=1)
    assert notify.payload["alerts"][0]["deliveries"][1]["error"] == "HTTP 500 Internal Server Error"


def test_concurrent_evaluations_open_one_alert_and_send_it_once(backend_workspace: Path) -> None:
    ctx, threads, barrier = open_context(), 4, threading.Barrier(4)
    results: list[list[alerts.Notification]] = []

    def run(report: int) -> None:
        barrier.wait()
        results.append(evaluate(ctx, "credit", spec(), report, [drift(True)]))

    workers = [threading.Thread(target=run, args=(n + 1,)) for n in range(threads)]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join()
    assert len(results) == threads
    assert len(alerts.alerts(ctx, "credit")) == 1
    assert [n.status for found in results for n in found] == ["firing"]
    assert alerts.alerts(ctx, "credit")[0].notifications == 1


def test_acknowledge_unknown_twice_and_resolved(ctx: Context) -> None:
    with pytest.raises(NotFoundError, match="No alert with id 7. No alert has fired yet"):
        alerts.acknowledge(ctx, 7)
    [fired] = evaluate(ctx, "credit", spec(), 1, [drift(True)])
    first = alerts.acknowledge(ctx, fired.alert.id)
    head = shipyard.audit_head()
    assert alerts.acknowledge(ctx, fired.alert.id) == first and shipyard.audit_head() == head
    evaluate(ctx, "credit", spec(), 2, [drift(False)])
    with pytest.raises(ConflictError, match=f"Alert {fired.alert.id} .*resolved at .*nothing to acknowledge"):
        alerts.acknowledge(ctx, fired.alert.id)
    with pytest.raises(NotFoundError, match=f"newest alert ids are {fired.alert.id}"):
        alerts.acknowledge(ctx, 99)
    for bad in (0, -1, "1", True, 1.0):
        with pytest.raises(ValidationError, match="Invalid alert id"):
            alerts.acknowledge(ctx, bad)  # type: ignore[arg-type]


def test_bad_findings_name_the_value_and_the_fix() -> None:
    with pytest.raises(ValidationError, match="Unknown alert rule 'data_drfit': use one of data_drift, "
                                              r"prediction_drift, .*retrain_failed\. Did you mean 'data_drift'\?"):
        Finding("data_drfit", "warning", True, 1.0, 0.5, "drifted")
    with pytest.raises(ValidationError, match="Unknown severity 'high'.*info, warning, critical"):
        Finding("latency", "high", True, 1.0, 0.5, "slow")
    with pytest.raises(ValidationError, match="value of the latency finding must be a finite number.*nan"):
        Finding("latency", "warning", True, float("nan"), 0.5, "slow")
    with pytest.raises(ValidationError, match="threshold of the latency finding.*'0.5'"):
        Finding("latency", "warning", True, 1.0, "0.5", "slow")  # type: ignore[arg-type]
    with pytest.raises(ValidationError, match="breached must be True, False or None"):
        Finding("latency", "warning", 1, 1.0, 0.5, "slow")  # type: ignore[arg-type]
    with pytest.raises(ValidationError, match="needs a message"):
        Finding("latency", "warning", True, 1.0, 0.5, " ")


def test_bad_input_writes_nothing(ctx: Context) -> None:
    head = shipyard.audit_head()
    cases: list[tuple[Any, str]] = [
        (lambda: evaluate(ctx, "bad name", spec(), 1, [drift(True)]), "Invalid monitor name 'bad name'"),
        (lambda: evaluate(ctx, "credit", spec(), 0, [drift(True)]), "Invalid report id 0"),
        (lambda: evaluate(ctx, "credit", spec(), 1, [drift(True), drift(False)]), "Two findings for rule data_drift"),
        (lambda: evaluate(ctx, "credit", spec(), 1, [{"rule": "latency"}]),  # type: ignore[list-item]
         "findings must be a list of Finding"),
        (lambda: evaluate(ctx, "credit", spec(), 1, [drift(True)], now_ms=-5), "Invalid now_ms -5"),
        (lambda: alerts.silence(ctx, "credit", rule="latncy", seconds=60, reason=None), "Did you mean 'latency'"),
        (lambda: alerts.silence(ctx, "../x", rule=None, seconds=60, reason=None), "Invalid monitor name '../x'"),
        (lambda: alerts.silence(ctx, "credit", rule=None, seconds=60, reason=3),  # type: ignore[arg-type]
         "reason of a silence must be text"),
        (lambda: alerts.unsilence(ctx, 0), "Invalid silence id 0"),
        (lambda: alerts.alerts(ctx, state="open"), "Unknown alert state 'open'"),
        (lambda: alerts.alerts(ctx, monitor=""), "Invalid monitor name ''"),
        (lambda: alerts.silences(ctx, monitor="a b"), "Invalid monitor name 'a b'"),
    ]
    cases += [(lambda s=s: alerts.silence(ctx, "credit", rule=None, seconds=s, reason=None),
               f"Invalid silence length {s!r}: give seconds above 0")
              for s in (0, -1, float("inf"), float("nan"), True, "1h", 400 * 86400)]
    for call, message in cases:
        with pytest.raises(ValidationError) as caught:
            call()
        assert message in str(caught.value), (message, str(caught.value))
    with pytest.raises(NotFoundError, match="No silence with id 42"):
        alerts.unsilence(ctx, 42)
    assert shipyard.audit_head() == head and alerts.alerts(ctx) == [] and alerts.silences(ctx, active_only=False) == []


def test_slack_text_stays_text() -> None:
    from shipyard.monitoring.sinks import Message

    message = Message("firing", "credit", "data_drift", "info", None, 0.2, "column <unk> & 'x' drifted", 3, 9,
                      now_ms(), None, repeat=True)
    payload = message.slack_payload()
    assert payload["text"] == ("[still firing] monitor 'credit', rule data_drift (info): "
                               "column &lt;unk&gt; &amp; 'x' drifted")
    assert payload["blocks"][0]["fields"][0]["text"] == "*Value*\nn/a"
    assert message.webhook_payload()["message"] == "column <unk> & 'x' drifted"  # JSON needs no escaping
