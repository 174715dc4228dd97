"""The HTTP edge of the server: request bodies read within a limit and parsed (JSON, CSV), the errors that
become 4xx answers, and the middleware that gives every response its X-Request-Id and counts it."""

from __future__ import annotations

import logging
import time
import uuid
from typing import TYPE_CHECKING, Any

from shipyard.errors import ValidationError
from shipyard.store import KEY_LENGTH

if TYPE_CHECKING:
    import pandas as pd
    from starlette.requests import Request
    from starlette.types import ASGIApp, Message, Receive, Scope, Send

    from shipyard.serving.metrics import ServerMetrics

log = logging.getLogger("shipyard.serving")


class HTTPProblem(Exception):
    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status


class UnprocessableInput(ValidationError):
    """Well-formed JSON that does not fit the model (a column missing, a value that cannot be cast)."""


async def read_body(request: Request, limit: int) -> bytes:
    declared = request.headers.get("content-length")
    if declared is not None and declared.isdigit() and int(declared) > limit:
        raise HTTPProblem(413, f"The body has {declared} bytes, over this server's limit of {limit}; send "
                               "fewer rows per request or start the server with a larger --max-body-bytes.")
    chunks, size = [], 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > limit:
            raise HTTPProblem(413, f"The body is over this server's limit of {limit} bytes; send fewer rows "
                                   "per request or start the server with a larger --max-body-bytes.")
        chunks.append(chunk)
    return b"".join(chunks)


def parse_json(raw: bytes) -> Any:
    import json

    try:
        return json.loads(raw)
    except (ValueError, UnicodeDecodeError) as exc:
        raise HTTPProblem(400, f"The body is not valid JSON: {exc}.") from None
    except RecursionError:
        raise HTTPProblem(400, "The body's JSON is nested too deeply to read; flatten it.") from None


def parse_csv(raw: bytes) -> pd.DataFrame:
    """A CSV body with a header row: every row as wide as the header, every column named once."""
    import csv
    import io

    import pandas as pd

    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise HTTPProblem(400, f"The body is not UTF-8 text: {exc}.") from None
    try:
        rows = [row for row in csv.reader(io.StringIO(text)) if row]
    except csv.Error as exc:
        raise HTTPProblem(400, f"The body is not a CSV table with a header row: {exc}.") from None
    if len(rows) < 2:
        raise HTTPProblem(400, "The CSV body needs a header row and at least one row to predict on.")
    header = rows[0]
    dupes = sorted({c for c in header if header.count(c) > 1})
    if dupes:
        raise HTTPProblem(400, f"The CSV header names {', '.join(repr(d) for d in dupes)} more than once; name "
                               "each column once.")
    ragged = next((n for n, row in enumerate(rows[1:], start=1) if len(row) != len(header)), None)
    if ragged is not None:
        raise HTTPProblem(400, f"CSV row {ragged} has {len(rows[ragged])} fields but the header has "
                               f"{len(header)}; give every row one value per column.")
    try:
        return pd.read_csv(io.StringIO(text), index_col=False)
    except ValueError as exc:  # pandas' parser errors are ValueErrors
        raise HTTPProblem(400, f"The body is not a CSV table with a header row: {exc}.") from None


class Instrumented:
    """Every response carries X-Request-Id (the client's, or a new one) and is counted and timed in the
    metrics; an unexpected failure too: it becomes a 500 with the error's JSON shape instead of a dropped
    connection. Handlers put the route, model and version they served in the request's state."""

    def __init__(self, app: ASGIApp, metrics: ServerMetrics) -> None:
        self.app = app
        self.metrics = metrics

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        given = dict(scope.get("headers") or []).get(b"x-request-id")
        request_id = given.decode("latin-1") if given else uuid.uuid4().hex
        if len(request_id) > KEY_LENGTH or not request_id.isprintable():
            from starlette.responses import JSONResponse

            response = JSONResponse({"error": f"X-Request-Id has {len(request_id)} characters or unprintable "
                                              f"ones; send at most {KEY_LENGTH} printable characters (feedback "
                                              "names the request by it), or none to get one."}, status_code=400)
            await response(scope, receive, send)
            return
        state = scope.setdefault("state", {})
        state.update(request_id=request_id, time=time.time(), started=time.perf_counter())
        status, responded = 500, False

        async def with_id(message: Message) -> None:
            nonlocal status, responded
            if message["type"] == "http.response.start":
                status, responded = message["status"], True
                headers = [(k, v) for k, v in message.get("headers", []) if k.lower() != b"x-request-id"]
                message["headers"] = [*headers, (b"x-request-id", request_id.encode("latin-1"))]
            await send(message)

        self.metrics.in_flight.inc()
        try:
            await self.app(scope, receive, with_id)
        except Exception as exc:  # noqa: BLE001 - a server bug still answers, with the request's id
            log.exception("Request %s to %s failed unexpectedly", request_id, scope.get("path"))
            if responded:  # the response had started: nothing more can be sent
                raise
            from starlette.responses import JSONResponse

            response = JSONResponse({"error": f"The server failed unexpectedly: {type(exc).__name__}: {exc}"},
                                    status_code=500, headers={"x-request-id": request_id})
            await response(scope, receive, send)
        finally:
            self.metrics.in_flight.dec()
            endpoint = scope.get("endpoint")
            route = state.get("route") or (endpoint.__name__ if endpoint is not None else "unmatched")
            model, version = state.get("model", ""), state.get("version", "")
            self.metrics.requests.labels(model, version, route, str(status)).inc()
            self.metrics.request_seconds.labels(model, version, route).observe(
                time.perf_counter() - state["started"])
