"""Where a monitor's alerts go: a JSON webhook, a Slack incoming webhook or the log. A send that fails is
logged and reported as a Delivery, never raised, so a broken receiver cannot stop a monitor."""

from __future__ import annotations

import datetime as dt
import http.client
import json
import logging
import urllib.error
import urllib.parse
import urllib.request
from dataclasses import asdict, dataclass
from typing import Any

from shipyard.policy.monitor import SinkSpec

logger = logging.getLogger("shipyard.monitoring.alerts")

#: The version of the webhook payload's shape; it changes only when a field changes meaning or goes away.
PAYLOAD_VERSION = 1
_EMOJI = {"critical": ":red_circle:", "warning": ":large_orange_circle:", "info": ":large_blue_circle:"}


def iso(ms: int | None) -> str | None:
    """Milliseconds since the epoch as an ISO 8601 UTC time (None stays None)."""
    if ms is None:
        return None
    return dt.datetime.fromtimestamp(ms / 1000, tz=dt.UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


@dataclass(frozen=True)
class Message:
    """The facts of one notification: an alert that fired (again, when `repeat`) or resolved."""

    status: str  # firing | resolved
    monitor: str
    rule: str
    severity: str
    value: float | None
    threshold: float | None
    message: str
    alert_id: int
    report_id: int
    started: int
    resolved_at: int | None
    repeat: bool

    def webhook_payload(self) -> dict[str, Any]:
        return {"version": PAYLOAD_VERSION, "status": self.status, "monitor": self.monitor, "rule": self.rule,
                "severity": self.severity, "value": self.value, "threshold": self.threshold, "message": self.message,
                "alert_id": self.alert_id, "report_id": self.report_id, "started": iso(self.started),
                "resolved_at": iso(self.resolved_at), "repeat": self.repeat}

    def title(self) -> str:
        state = "RESOLVED" if self.status == "resolved" else "still firing" if self.repeat else "FIRING"
        return f"[{state}] monitor '{self.monitor}', rule {self.rule} ({self.severity})"

    def slack_payload(self) -> dict[str, Any]:
        """Slack's incoming-webhook shape: `text` for notifications and old clients, `blocks` for the message."""
        emoji = ":white_check_mark:" if self.status == "resolved" else _EMOJI.get(self.severity, ":warning:")
        title, message = _slack_escape(self.title()), _slack_escape(self.message)
        text = f"{title}: {message}"
        fields = [{"type": "mrkdwn", "text": f"*Value*\n{_number(self.value)}"},
                  {"type": "mrkdwn", "text": f"*Threshold*\n{_number(self.threshold)}"},
                  {"type": "mrkdwn", "text": f"*Severity*\n{self.severity}"},
                  {"type": "mrkdwn", "text": f"*Alert*\n#{self.alert_id} (report {self.report_id})"}]
        section = {"type": "section", "text": {"type": "mrkdwn", "text": f"{emoji} *{title}*\n{message}"},
                   "fields": fields}
        return {"text": text, "blocks": [section]}

    def line(self) -> str:
        since = f", resolved {iso(self.resolved_at)}" if self.resolved_at is not None else ""
        return (f"{self.title()}: {self.message} (value {_number(self.value)}, threshold {_number(self.threshold)}, "
                f"alert {self.alert_id}, report {self.report_id}, started {iso(self.started)}{since})")


@dataclass(frozen=True)
class Delivery:
    """What became of one message at one sink. `target` is the receiver's scheme and host only: a Slack
    webhook's path is its secret, so it never reaches a log, a result or the audit trail."""

    sink: str  # log | webhook | slack
    target: str | None
    ok: bool
    error: str | None = None

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def send(sink: SinkSpec, message: Message) -> Delivery:
    """Deliver `message` to one sink; failures (refused, timed out, HTTP ≥ 400) come back as ok=False."""
    if sink.kind == "log":
        logger.log(logging.INFO if message.status == "resolved" else logging.WARNING, "%s", message.line())
        return Delivery("log", None, True)
    url = sink.webhook if sink.kind == "webhook" else sink.slack
    assert url is not None  # SinkSpec guarantees the URL of its kind
    payload = message.webhook_payload() if sink.kind == "webhook" else message.slack_payload()
    target = _redact(url)
    error = post_json(url, payload, sink.timeout)
    if error is not None:
        logger.error("Could not send alert %s of monitor '%s' to the %s sink %s: %s", message.alert_id,
                     message.monitor, sink.kind, target, error)
        return Delivery(sink.kind, target, False, error)
    return Delivery(sink.kind, target, True)


def post_json(url: str, payload: dict[str, Any], timeout: float) -> str | None:
    """POST `payload` as JSON; None when the receiver accepted it, else why not."""
    body = json.dumps(payload, allow_nan=False).encode()
    request = urllib.request.Request(url, data=body, method="POST",
                                     headers={"Content-Type": "application/json", "User-Agent": "shipyard-monitor"})
    try:
        # SinkSpec admits only http(s) URLs, so urlopen cannot be steered to file: or ftp:
        with urllib.request.urlopen(request, timeout=timeout) as response:  # noqa: S310
            response.read()
    except urllib.error.HTTPError as exc:
        return f"HTTP {exc.code} {exc.reason}"
    except (urllib.error.URLError, OSError) as exc:
        reason = exc.reason if isinstance(exc, urllib.error.URLError) else exc
        return f"{type(reason).__name__}: {reason}" if not isinstance(reason, str) else reason
    except (http.client.HTTPException, ValueError) as exc:  # a garbled response, or a URL urllib cannot parse
        return f"{type(exc).__name__}: {exc}"
    return None


def _redact(url: str) -> str:
    parts = urllib.parse.urlsplit(url)
    return f"{parts.scheme}://{parts.hostname}{f':{parts.port}' if parts.port else ''}"


def _slack_escape(text: str) -> str:
    # Slack reads <…> as links and mentions: a message quoting a column such as "<unk>" must stay text
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def _number(value: float | None) -> str:
    return "n/a" if value is None else f"{value:.4g}"
