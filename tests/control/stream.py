"""A live stream of loan applications to a running `shipyard serve --deployment` process: each request carries a
few rows of a frame, and is followed by the true labels of its rows through the server's feedback endpoint.
Every answer is kept (status, revision, version, route), so a test can say that none failed."""

from __future__ import annotations

import http.client
import json
import threading
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlparse

import pandas as pd

FEATURES = ["age", "income", "loan_amount", "term_months", "debt_ratio", "credit_history_years", "prior_defaults"]


@dataclass(frozen=True)
class Answer:
    """One request of the stream and the feedback sent for it."""

    request_id: str
    status: int
    feedback_status: int
    revision: int
    version: str
    route: str


class Stream:
    """Requests of `rows` rows each, taken in turn from `frame` (round and round), to deployment `deployment`
    at `url`; with `feedback`, each is followed by its rows' `target` values."""

    def __init__(self, url: str, frame: pd.DataFrame, *, deployment: str = "credit-api", rows: int = 20,
                 target: str = "default", feedback: bool = True) -> None:
        parsed = urlparse(url)
        assert parsed.hostname is not None and parsed.port is not None
        self.host, self.port = parsed.hostname, parsed.port
        self.records = frame[FEATURES].to_dict("records")
        self.labels = [int(v) for v in frame[target]]
        self.deployment, self.rows, self.feedback = deployment, rows, feedback
        self.answers: list[Answer] = []
        self._next = 0
        self._lock = threading.Lock()

    def send(self, count: int) -> list[Answer]:
        """`count` requests, one after the other, on one connection."""
        connection = http.client.HTTPConnection(self.host, self.port, timeout=60)
        try:
            return [self._one(connection) for _ in range(count)]
        finally:
            connection.close()

    def until(self, stop: threading.Event, limit: int) -> None:
        """Requests until `stop` is set, at most `limit` (a thread's target)."""
        connection = http.client.HTTPConnection(self.host, self.port, timeout=60)
        try:
            for _ in range(limit):
                if stop.is_set():
                    return
                self._one(connection)
        finally:
            connection.close()

    def failed(self) -> list[Answer]:
        with self._lock:
            return [a for a in self.answers if a.status != 200 or a.feedback_status not in (200, -1)]

    def _one(self, connection: http.client.HTTPConnection) -> Answer:
        with self._lock:
            start = self._next
            self._next = (start + self.rows) % len(self.records)
        positions = [(start + i) % len(self.records) for i in range(self.rows)]
        status, headers, _ = _post(connection, f"/predict/{self.deployment}", [self.records[p] for p in positions])
        request_id = headers.get("x-request-id", "")
        feedback_status = -1
        if self.feedback and status == 200:
            items = [{"request_id": request_id, "value": self.labels[p], "row": row}
                     for row, p in enumerate(positions)]
            feedback_status = _post(connection, f"/v2/models/{self.deployment}/feedback", {"feedback": items})[0]
        answer = Answer(request_id, status, feedback_status, int(headers.get("x-deployment-revision", -1)),
                        headers.get("x-model-version", ""), headers.get("x-deployment-route", ""))
        with self._lock:
            self.answers.append(answer)
        return answer


def _post(connection: http.client.HTTPConnection, path: str, payload: Any) -> tuple[int, dict[str, str], bytes]:
    connection.request("POST", path, json.dumps(payload), {"content-type": "application/json"})
    response = connection.getresponse()
    body = response.read()
    return response.status, {k.lower(): v for k, v in response.getheaders()}, body
