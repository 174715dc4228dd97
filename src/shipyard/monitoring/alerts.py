"""A monitor's alerts: findings become episodes (at most one firing per monitor and rule) that resolve, may be
silenced or acknowledged, and are sent to the monitor's sinks; every change is audited."""

from __future__ import annotations

import math
import re
from dataclasses import asdict, dataclass, field
from typing import Any, get_args

from sqlalchemy import Connection, Row, select

from shipyard.context import Context
from shipyard.errors import ConflictError, NotFoundError, ValidationError, did_you_mean
from shipyard.monitoring.sinks import Delivery, Message, iso, send
from shipyard.policy.monitor import RULES, MonitorSpec, Severity
from shipyard.store import db
from shipyard.store.tables import alert_silences, monitor_alerts

SEVERITIES: tuple[str, ...] = get_args(Severity)
STATES = ("firing", "resolved")
_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.\-]{0,127}$")  # the rule deployments and models follow
_MAX_SILENCE = 366 * 24 * 3600.0  # longer is switching the monitor off: remove its sinks instead


@dataclass
class Finding:
    """A monitor's verdict on one rule for one report. `breached` None: not judged (too little data)."""

    rule: str
    severity: str
    breached: bool | None
    value: float | None
    threshold: float | None
    message: str

    def __post_init__(self) -> None:
        self.rule = check_rule(self.rule)
        if self.severity not in SEVERITIES:
            raise ValidationError(f"Unknown severity {self.severity!r} of a {self.rule} finding: use one of "
                                  f"{', '.join(SEVERITIES)}.{did_you_mean(str(self.severity), SEVERITIES)}")
        if self.breached is not None and not isinstance(self.breached, bool):
            raise ValidationError(f"breached must be True, False or None (not judged), got {self.breached!r} "
                                  f"in the {self.rule} finding.")
        self.value = _number(self.value, "value", self.rule)
        self.threshold = _number(self.threshold, "threshold", self.rule)
        if not isinstance(self.message, str) or not self.message.strip():
            raise ValidationError(f"The {self.rule} finding needs a message saying what was seen, "
                                  f"got {self.message!r}.")

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass
class Alert:
    """One episode of a rule breached by a monitor: from the report that fired it to the one that resolved it."""

    id: int
    monitor: str
    rule: str
    severity: str
    state: str  # firing | resolved
    value: float | None
    threshold: float | None
    message: str
    started: int
    updated: int
    resolved_at: int | None
    first_report: int
    last_report: int
    acknowledged_by: str | None
    acknowledged_at: int | None
    notified_at: int | None
    notifications: int

    @classmethod
    def from_row(cls, row: Row[Any]) -> Alert:
        return cls(**{name: getattr(row, name) for name in cls.__dataclass_fields__})

    def to_dict(self) -> dict[str, Any]:
        data = asdict(self)
        for key in ("started", "updated", "resolved_at", "acknowledged_at", "notified_at"):
            data[key] = iso(data[key])
        return data


@dataclass
class Silence:
    """A monitor's alerts (one rule's, or all when rule is None) are not sent until `until`."""

    id: int
    monitor: str
    rule: str | None
    until: int
    reason: str | None
    created: int
    created_by: str

    def to_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data["until"], data["created"] = iso(self.until), iso(self.created)
        return data


@dataclass
class Notification:
    """An alert that fired (again, when `repeat`) or resolved, and what became of it at each sink.
    `suppressed_by` is the silence that kept it from being sent (then `deliveries` is empty)."""

    alert: Alert
    status: str  # firing | resolved
    repeat: bool
    suppressed_by: int | None = None
    deliveries: list[Delivery] = field(default_factory=list)

    @property
    def delivered(self) -> bool:
        return any(d.ok for d in self.deliveries)

    def to_dict(self) -> dict[str, Any]:
        return {"alert": self.alert.to_dict(), "status": self.status, "repeat": self.repeat,
                "suppressed_by": self.suppressed_by, "delivered": self.delivered,
                "deliveries": [d.to_dict() for d in self.deliveries]}


class _Unchanged(Exception):
    """Raised inside a mutation that finds nothing to change: it rolls back, and no event is audited."""


# -- judging -----------------------------------------------------------------------------------


def evaluate(ctx: Context, monitor: str, spec: MonitorSpec, report_id: int, findings: list[Finding],
             *, now_ms: int | None = None) -> list[Notification]:
    """Turn one report's findings into alert changes, in one audited transaction, then send what is due.

    Breached with no firing episode opens one; breached again updates it; no longer breached resolves it;
    not judged changes nothing. A new alert and a resolution are sent; a firing one again after `spec.repeat`
    seconds (0: never) unless acknowledged. An active silence suppresses sending, not the state change."""
    monitor = check_monitor(monitor)
    if isinstance(report_id, bool) or not isinstance(report_id, int) or report_id < 1:
        raise ValidationError(f"Invalid report id {report_id!r}: give the positive integer id of the monitor's report.")
    judged = _check_findings(findings)
    now = db.now_ms() if now_ms is None else _check_time(now_ms)
    payload: dict[str, Any] = {"report_id": report_id}
    due: list[tuple[Notification, int | None]] = []  # with notified_at before the claim
    try:
        with ctx.store.mutation(ctx.actor, "monitor.alert.evaluate", "monitor", monitor, payload) as conn:
            firing = {r.rule: r for r in conn.execute(select(monitor_alerts).where(
                monitor_alerts.c.monitor == monitor, monitor_alerts.c.state == "firing")
                .order_by(monitor_alerts.c.id))}
            changes: list[dict[str, Any]] = []
            for finding in judged:
                row = firing.get(finding.rule)
                notification = _apply(conn, monitor, spec, report_id, finding, row, now, changes)
                if notification is not None:
                    due.append((notification, row.notified_at if row is not None else None))
            if not changes:
                raise _Unchanged
            active = _active_silences(conn, monitor, now)
            for notification, _ in due:
                notification.suppressed_by = _silenced_by(active, notification.alert.rule)
                if notification.suppressed_by is None:  # the claim: a concurrent evaluation will not send it too
                    conn.execute(monitor_alerts.update().where(monitor_alerts.c.id == notification.alert.id)
                                 .values(notified_at=now))
            payload["changes"] = changes
            payload["suppressed"] = [{"alert_id": n.alert.id, "silence_id": n.suppressed_by}
                                     for n, _ in due if n.suppressed_by is not None]
    except _Unchanged:
        return []
    _deliver(ctx, monitor, spec, report_id, [(n, before) for n, before in due if n.suppressed_by is None], now)
    return [n for n, _ in due]


def _apply(conn: Connection, monitor: str, spec: MonitorSpec, report_id: int, finding: Finding,
           row: Row[Any] | None, now: int, changes: list[dict[str, Any]]) -> Notification | None:
    """Write one finding's change; the notification it owes, if any."""
    observed = {"value": finding.value, "threshold": finding.threshold, "message": finding.message,
                "updated": now, "last_report": report_id}
    if finding.breached and row is None:
        alert_id = int(conn.execute(monitor_alerts.insert().values(
            monitor=monitor, rule=finding.rule, severity=finding.severity, state="firing", started=now,
            first_report=report_id, notifications=0, **observed).returning(monitor_alerts.c.id)).scalar_one())
        changes.append({"alert_id": alert_id, "rule": finding.rule, "change": "fired", "value": finding.value})
        return Notification(_find(conn, alert_id), "firing", repeat=False)
    if row is None or finding.breached is None:
        return None  # nothing firing to resolve, or not judged this time: the alert stays as it was
    if finding.breached:
        conn.execute(monitor_alerts.update().where(monitor_alerts.c.id == row.id)
                     .values(severity=finding.severity, **observed))
        changes.append({"alert_id": row.id, "rule": finding.rule, "change": "updated", "value": finding.value})
        alert = _find(conn, row.id)
        if alert.acknowledged_at is not None:
            return None
        if alert.notified_at is None:  # never delivered (silenced, or every sink failed): still owed
            return Notification(alert, "firing", repeat=alert.notifications > 0)
        if spec.repeat > 0 and now - alert.notified_at >= spec.repeat * 1000:
            return Notification(alert, "firing", repeat=True)
        return None
    conn.execute(monitor_alerts.update().where(monitor_alerts.c.id == row.id)
                 .values(state="resolved", resolved_at=now, **observed))
    changes.append({"alert_id": row.id, "rule": finding.rule, "change": "resolved", "value": finding.value})
    return Notification(_find(conn, row.id), "resolved", repeat=False)


def _deliver(ctx: Context, monitor: str, spec: MonitorSpec, report_id: int,
             due: list[tuple[Notification, int | None]], now: int) -> None:
    """Send outside any transaction, then record the outcome: a delivered alert counts one more notification;
    one no sink took gets its claim back, so the next evaluation tries again."""
    if not due:
        return
    for notification, _ in due:
        alert = notification.alert
        message = Message(notification.status, monitor, alert.rule, alert.severity, alert.value, alert.threshold,
                          alert.message, alert.id, report_id, alert.started, alert.resolved_at, notification.repeat)
        notification.deliveries = [send(sink, message) for sink in spec.sinks]
    payload = {"report_id": report_id, "alerts": [
        {"alert_id": n.alert.id, "status": n.status, "repeat": n.repeat, "delivered": n.delivered,
         "deliveries": [d.to_dict() for d in n.deliveries]} for n, _ in due]}
    with ctx.store.mutation(ctx.actor, "monitor.alert.notify", "monitor", monitor, payload) as conn:
        for notification, before in due:
            where = monitor_alerts.update().where(monitor_alerts.c.id == notification.alert.id)
            if notification.delivered:
                conn.execute(where.values(notified_at=now, notifications=monitor_alerts.c.notifications + 1))
            else:
                conn.execute(where.where(monitor_alerts.c.notified_at == now).values(notified_at=before))
            notification.alert = _find(conn, notification.alert.id)


# -- acknowledging and reading -----------------------------------------------------------------


def acknowledge(ctx: Context, alert_id: int) -> Alert:
    """Mark a firing alert as seen by the actor: it is no longer sent again while it fires. Twice is a no-op."""
    alert_id = _check_id(alert_id, "alert")
    with ctx.store.read() as conn:
        alert = _find(conn, alert_id)
    payload = {"alert_id": alert_id, "rule": alert.rule}
    try:
        with ctx.store.mutation(ctx.actor, "monitor.alert.acknowledge", "monitor", alert.monitor, payload) as conn:
            alert = _find(conn, alert_id)
            if alert.state == "resolved":
                raise ConflictError(
                    f"Alert {alert_id} ({alert.monitor}, rule {alert.rule}) resolved at {iso(alert.resolved_at)}, so "
                    "there is nothing to acknowledge; a new breach opens a new alert, which you can acknowledge.",
                    alert_id=alert_id)
            if alert.acknowledged_at is not None:
                raise _Unchanged
            conn.execute(monitor_alerts.update().where(monitor_alerts.c.id == alert_id)
                         .values(acknowledged_by=ctx.actor, acknowledged_at=db.now_ms()))
    except _Unchanged:
        return alert
    with ctx.store.read() as conn:
        return _find(conn, alert_id)


def alerts(ctx: Context, monitor: str | None = None, state: str | None = None) -> list[Alert]:
    """Alerts, newest first; of one monitor and/or in one state (firing, resolved) when given."""
    query = select(monitor_alerts).order_by(monitor_alerts.c.id.desc())
    if monitor is not None:
        query = query.where(monitor_alerts.c.monitor == check_monitor(monitor))
    if state is not None:
        if state not in STATES:
            raise ValidationError(f"Unknown alert state {state!r}: use firing or resolved."
                                  f"{did_you_mean(str(state), STATES)}")
        query = query.where(monitor_alerts.c.state == state)
    with ctx.store.read() as conn:
        return [Alert.from_row(r) for r in conn.execute(query)]


def _find(conn: Connection, alert_id: int) -> Alert:
    row = conn.execute(select(monitor_alerts).where(monitor_alerts.c.id == alert_id)).first()
    if row is None:
        newest = conn.execute(select(monitor_alerts.c.id).order_by(monitor_alerts.c.id.desc()).limit(5)).scalars().all()
        known = f"The newest alert ids are {', '.join(map(str, newest))}." if newest else "No alert has fired yet."
        raise NotFoundError(f"No alert with id {alert_id}. {known}", alert_id=alert_id)
    return Alert.from_row(row)


# -- silences ----------------------------------------------------------------------------------


def silence(ctx: Context, monitor: str, *, rule: str | None, seconds: float, reason: str | None) -> int:
    """Keep the monitor's alerts (one rule's, or all with rule None) from being sent for `seconds`; their state
    still changes. Returns the silence's id."""
    monitor = check_monitor(monitor)
    rule = check_rule(rule) if rule is not None else None
    if isinstance(seconds, bool) or not isinstance(seconds, int | float) or not math.isfinite(seconds) \
            or not 0 < seconds <= _MAX_SILENCE:
        raise ValidationError(f"Invalid silence length {seconds!r}: give seconds above 0 and at most a year "
                              f"({_MAX_SILENCE:.0f}), e.g. 3600 for an hour.")
    if reason is not None and not isinstance(reason, str):
        raise ValidationError(f"The reason of a silence must be text, got {reason!r}.")
    if reason is not None:
        reason = reason.strip() or None
    now = db.now_ms()
    until = now + math.ceil(seconds * 1000)
    payload: dict[str, Any] = {"rule": rule, "until": until, "reason": reason}
    with ctx.store.mutation(ctx.actor, "monitor.silence", "monitor", monitor, payload) as conn:
        silence_id = int(conn.execute(alert_silences.insert().values(
            monitor=monitor, rule=rule, until=until, reason=reason, created=now,
            created_by=ctx.actor).returning(alert_silences.c.id)).scalar_one())
        payload["silence_id"] = silence_id
    return silence_id


def unsilence(ctx: Context, silence_id: int) -> Silence:
    """End a silence now (it stays listed as ended); ending one already over changes nothing."""
    silence_id = _check_id(silence_id, "silence")
    with ctx.store.read() as conn:
        found = _find_silence(conn, silence_id)
    try:
        with ctx.store.mutation(ctx.actor, "monitor.unsilence", "monitor", found.monitor,
                                {"silence_id": silence_id, "rule": found.rule}) as conn:
            now = db.now_ms()
            if _find_silence(conn, silence_id).until <= now:
                raise _Unchanged
            conn.execute(alert_silences.update().where(alert_silences.c.id == silence_id).values(until=now))
    except _Unchanged:
        return found
    with ctx.store.read() as conn:
        return _find_silence(conn, silence_id)


def silences(ctx: Context, monitor: str | None = None, active_only: bool = True) -> list[Silence]:
    """Silences, newest first; only those still in force unless `active_only` is False."""
    query = select(alert_silences).order_by(alert_silences.c.id.desc())
    if monitor is not None:
        query = query.where(alert_silences.c.monitor == check_monitor(monitor))
    if active_only:
        query = query.where(alert_silences.c.until > db.now_ms())
    with ctx.store.read() as conn:
        return [_silence(r) for r in conn.execute(query)]


def _active_silences(conn: Connection, monitor: str, now: int) -> list[Silence]:
    rows = conn.execute(select(alert_silences).where(alert_silences.c.monitor == monitor,
                                                     alert_silences.c.until > now)
                        .order_by(alert_silences.c.until.desc()))
    return [_silence(r) for r in rows]


def _silenced_by(active: list[Silence], rule: str) -> int | None:
    return next((s.id for s in active if s.rule is None or s.rule == rule), None)


def _find_silence(conn: Connection, silence_id: int) -> Silence:
    row = conn.execute(select(alert_silences).where(alert_silences.c.id == silence_id)).first()
    if row is None:
        raise NotFoundError(f"No silence with id {silence_id}; `shipyard monitor silences --all` lists them.",
                            silence_id=silence_id)
    return _silence(row)


def _silence(row: Row[Any]) -> Silence:
    return Silence(int(row.id), row.monitor, row.rule, int(row.until), row.reason, int(row.created), row.created_by)


# -- checking input ----------------------------------------------------------------------------


def check_monitor(name: object) -> str:
    if not isinstance(name, str) or not _NAME.match(name) or ".." in name:
        raise ValidationError(
            f"Invalid monitor name {name!r}: use 1-128 letters, digits, '_', '-' or '.', starting with a letter or "
            "digit, as under monitor: in shipyard.yaml (for example 'credit-drift').", monitor=name)
    return name


def check_rule(rule: object) -> str:
    if rule not in RULES:
        raise ValidationError(f"Unknown alert rule {rule!r}: use one of {', '.join(RULES)}."
                              f"{did_you_mean(str(rule), RULES)}", rule=str(rule))
    return str(rule)


def _check_findings(findings: object) -> list[Finding]:
    if not isinstance(findings, list | tuple) or not all(isinstance(f, Finding) for f in findings):
        raise ValidationError(f"findings must be a list of Finding, got {findings!r}.")
    seen: set[str] = set()
    for finding in findings:
        if finding.rule in seen:
            raise ValidationError(f"Two findings for rule {finding.rule} in one report: give one verdict per rule.",
                                  rule=finding.rule)
        seen.add(finding.rule)
    return list(findings)


def _check_id(value: object, what: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise ValidationError(f"Invalid {what} id {value!r}: give the positive integer id of the {what}.")
    return value


def _check_time(value: object) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise ValidationError(f"Invalid now_ms {value!r}: give milliseconds since the epoch as an integer.")
    return value


def _number(value: object, what: str, rule: str) -> float | None:
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
        raise ValidationError(f"The {what} of the {rule} finding must be a finite number or None, got {value!r}.")
    return float(value)
