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

from tests.control.lifecycle import FEATURES



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
    at `url`, each followed by its rows' `target` values."""

    def __init__(self, url: str, frame: pd.DataFrame, *, deployment: str = "credit-api", rows: int = 20,
                 target: str = "default") -> None:
        parsed = urlparse(url)
        assert parsed.hostname is not None and parsed.port is not None
        self.host, self.port = parsed.hostname, parsed.port
        self.records = frame[FEATURES].to_dict("records")
        self.labels = [int(v) for v in frame[target]]
        self.deployment, self.rows = deployment, rows
        self.answers: list[Answer] = []
        self._next = 0
        self._lock = threading.Lock()

    def send(self, count: int) -> list[Answer]:
        """`count` requests, one after the other, on one connection."""
        connection = self._connect()
        try:
            return [self._one(connection) for _ in range(count)]
        finally:
            connection.close()

    def until(self, stop: threading.Event, limit: int, *, pause: float = 0.0) -> None:
        """Requests until `stop` is set, at most `limit`, `pause` seconds apart (a thread's target). Each
        request's feedback is stored before the next request is sent, so whenever the server's log is read, at
        most one logged request of this stream has no labels yet."""
        connection = self._connect()
        try:
            for _ in range(limit):
                if stop.wait(pause):
                    return
                self._one(connection)
        finally:
            connection.close()

    def failed(self) -> list[Answer]:
        """The requests not answered 200, or whose feedback was not stored."""
        with self._lock:
            return [a for a in self.answers if a.status != 200 or a.feedback_status not in (200, -1)]

    def _connect(self) -> http.client.HTTPConnection:
        return http.client.HTTPConnection(self.host, self.port, timeout=60)

    def _one(self, connection: http.client.HTTPConnection) -> Answer:
        """One request and its feedback; a connection that breaks is a failed request (status 0)."""
        with self._lock:
            start = self._next
            self._next = (start + self.rows) % len(self.records)
        positions = [(start + i) % len(self.records) for i in range(self.rows)]
        status, feedback_status = 0, -1  # -1: no feedback sent (the request failed)
        headers: dict[str, str] = {}
        try:
            status, headers, _ = _post(connection, f"/predict/{self.deployment}",
                                       [self.records[p] for p in positions])
            if status == 200:
                items = [{"request_id": headers.get("x-request-id", ""), "value": self.labels[p], "row": row}
                         for row, p in enumerate(positions)]
                feedback_status = _post(connection, f"/v2/models/{self.deployment}/feedback",
                                        {"feedback": items})[0]
        except (OSError, http.client.HTTPException):
            connection.close()  # the next request opens it again
            if status == 200:
                feedback_status = 0
        request_id = headers.get("x-request-id", "")
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
