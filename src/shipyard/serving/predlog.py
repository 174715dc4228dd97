"""The prediction log: answered requests, sampled, queued in memory by the server and written in batches by
a writer thread (Parquet blobs, one store row per blob). Nothing recorded is dropped: a full queue spills to
a local file, a failed write is retried, and close() writes everything or leaves it in a spill file that
the next start() writes."""

from __future__ import annotations

import logging
import threading
import time
import zlib
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from shipyard.context import Context
from shipyard.errors import ValidationError
from shipyard.serving.batches import Batch, build_batches, read_predictions, store_batch
from shipyard.serving.spill import SpillFile, orphans

if TYPE_CHECKING:
    import pandas as pd

__all__ = ["Prediction", "PredictionLog", "read_predictions", "sampled"]

log = logging.getLogger("shipyard.serving.predlog")
#: Longest wait between two attempts at a write that keeps failing.
MAX_BACKOFF_SECONDS = 30.0
#: After close()'s deadline, how long the write in progress still gets before its requests are spilled too.
ABORT_SECONDS = 2.0


@dataclass
class Prediction:
    """One answered request. The log keeps a reference to `inputs`: do not change the frame afterwards."""

    request_id: str
    timestamp: float  # unix seconds when the request arrived
    model: str
    version: int
    route: str  # "infer" | "invocations" | "predict"
    inputs: pd.DataFrame  # the decoded features, one row per predicted row
    outputs: Any  # np.ndarray: predict values (1-D) ...
    probabilities: Any | None  # ... and predict_proba (2-D) when it was computed, else None
    latency_ms: float
    deployment: str | None = None  # served through a deployment: its name, and the route that answered
    deployment_route: str | None = None  # (primary, canary, shadow or an A/B variant's label)
    error: str | None = None  # a prediction that failed (logged for deployments, to know each route's errors)


def sampled(request_id: str, rate: float) -> bool:
    """Whether a request is logged at `rate`: decided by its id alone, so every process (and a re-run)
    decides the same, and feedback for a logged id always finds it."""
    if rate >= 1.0:
        return True
    return zlib.crc32(str(request_id).encode("utf-8", "surrogatepass")) < rate * 2**32


def default_spill_dir(ctx: Context) -> Path:
    return ctx.workspace.state_dir / "spill" / "predictions"


@dataclass
class _Chunk:
    """Entries the writer holds until they are stored: from the queue, or a chunk of a spill file."""

    batches: list[Batch]
    entries: list[Prediction]
    spill: SpillFile | None = None
    records: int = 0  # records of the spill file it covers
    end: int = 0  # offset in the spill file after them


class PredictionLog:
    """Record answered requests on the event loop; a writer thread stores them.

    record() is O(1) in the common path (a deque append); when `max_queue` requests wait, it appends to
    this process's spill file instead. The writer flushes when `batch_rows` rows wait or every
    `flush_seconds`, whichever comes first, and drains spill files when the queue is empty."""

    def __init__(self, ctx: Context, *, sample_rate: float = 1.0, max_queue: int = 10_000, batch_rows: int = 5_000,
                 flush_seconds: float = 1.0, spill_dir: Path | None = None) -> None:
        _check("sample_rate", sample_rate, lambda v: 0 < v <= 1, "a fraction in (0, 1], e.g. 0.1 logs 10% of requests")
        _check("max_queue", max_queue, lambda v: v >= 0 and float(v).is_integer(), "a whole number of requests >= 0")
        _check("batch_rows", batch_rows, lambda v: v >= 1 and float(v).is_integer(), "a whole number of rows >= 1")
        _check("flush_seconds", flush_seconds, lambda v: 0 < v < 86_400, "a number of seconds > 0, e.g. 1.0")
        self.ctx = ctx
        self.sample_rate = float(sample_rate)
        self.max_queue = int(max_queue)
        self.batch_rows = int(batch_rows)
        self.flush_seconds = float(flush_seconds)
        self.spill_dir = Path(spill_dir) if spill_dir is not None else default_spill_dir(ctx)
        #: Notified after every write attempt, failed or not (tests and flush() wait on it).
        self.progress = threading.Condition()
        self.failures = 0  # write attempts that failed
        self.last_error: str | None = None
        self._queue: deque[Prediction] = deque()
        self._queued_rows = 0
        self._lock = threading.Lock()  # the queue and its counters
        self._spill_lock = threading.Lock()  # the current spill file and the list of files to drain
        self._current: SpillFile | None = None
        self._spills: list[SpillFile] = []
        self._overflow: list[Prediction] = []  # could not be spilled (the disk failed): kept in memory
        self._inflight = 0  # requests taken from memory by the writer and not yet written
        self._inflight_oldest = 0.0
        self._held: _Chunk | None = None
        self._written = 0
        self._wake = threading.Event()
        self._stop = threading.Event()
        self._abort = threading.Event()
        self._retry_now = threading.Event()  # cuts a back-off short: flush() and close()
        self._thread: threading.Thread | None = None
        self._closed = False

    # -- the event loop's side ------------------------------------------------------------------
    def record(self, p: Prediction) -> None:
        """Log one answered request (if sampled). Never raises, never blocks on I/O unless the queue is full."""
        try:
            if self.sample_rate < 1.0 and not sampled(p.request_id, self.sample_rate):
                return
            rows = len(p.inputs)  # also refuses what is not a Prediction before it reaches the writer
            if isinstance(p.timestamp, bool) or not isinstance(p.timestamp, (int, float)):
                raise TypeError(f"timestamp {p.timestamp!r} is not unix seconds")
            with self._lock:
                if not self._closed and len(self._queue) < self.max_queue:
                    self._queue.append(p)
                    self._queued_rows += rows
                    if self._queued_rows >= self.batch_rows:
                        self._wake.set()
                    return
            self._spill([p])
        except Exception:  # noqa: BLE001 - logging must never fail a request
            log.exception("Could not log request %r", getattr(p, "request_id", p))

    def _spill(self, entries: list[Prediction]) -> None:
        with self._spill_lock:
            appended = 0
            try:
                if self._current is None:
                    self._current = SpillFile.create(self.spill_dir)
                for entry in entries:
                    self._current.append(entry)
                    appended += 1
                if self._closed:  # no writer of this log will drain it: let the next start() take it over
                    self._current.release()
                    self._current = None
            except Exception as exc:  # noqa: BLE001 - the disk is full or gone, or an entry cannot be pickled
                log.error("Cannot append to the prediction log's spill file in %s (%s); keeping %d request(s) in "
                          "memory", self.spill_dir, exc, len(entries) - appended)
                if self._current is not None:  # a failed append may have left a torn record: start a new file
                    self._spills.append(self._current)
                    self._current = None
                with self._lock:
                    self._overflow.extend(entries[appended:])

    # -- state ------------------------------------------------------------------------------------
    @property
    def depth(self) -> int:
        """Requests recorded and not yet written: queued, being written, and spilled."""
        with self._lock:
            in_memory = len(self._queue) + len(self._overflow) + self._inflight
        with self._spill_lock:
            spilled = sum(s.entries for s in self._spills) + (self._current.entries if self._current else 0)
        return in_memory + spilled

    @property
    def lag_seconds(self) -> float:
        """Age of the oldest request not yet written; 0 when there is none."""
        stamps = []
        with self._lock:
            if self._queue:
                stamps.append(self._queue[0].timestamp)
            if self._overflow:
                stamps.append(self._overflow[0].timestamp)
            if self._inflight:
                stamps.append(self._inflight_oldest)
        with self._spill_lock:
            stamps += [s.oldest for s in (*self._spills, self._current) if s is not None and s.oldest is not None]
        return max(0.0, time.time() - min(stamps)) if stamps else 0.0

    @property
    def written(self) -> int:
        """Requests this process has written to the store."""
        return self._written

    # -- lifecycle --------------------------------------------------------------------------------
    def start(self) -> None:
        """Start the writer; first take over the spill files of processes that died, to write them too."""
        if self._thread is not None:
            return
        adopted = orphans(self.spill_dir)
        with self._spill_lock:
            self._spills.extend(adopted)
        self._thread = threading.Thread(target=self._run, name="shipyard-prediction-log", daemon=True)
        self._thread.start()

    def flush(self, timeout: float | None = None) -> bool:
        """Wake the writer and wait until nothing is left to write (True) or `timeout` passes (False)."""
        if self._closed:
            return self.depth == 0
        if self._thread is None:
            self.start()
        deadline = None if timeout is None else time.monotonic() + timeout
        self._retry_now.set()
        with self.progress:
            while self.depth:
                self._wake.set()
                left = None if deadline is None else deadline - time.monotonic()
                if left is not None and left <= 0:
                    return False
                self.progress.wait(left)
        return True

    def close(self, timeout: float | None = None) -> None:
        """Write everything recorded, then stop the writer. Past `timeout` seconds the writer stops after
        the write in progress and what is left goes to the spill file, for the next start() to write.
        Requests recorded after close() are spilled too. Idempotent."""
        with self._lock:
            if self._closed:
                return
            self._closed = True
        if self._thread is None:
            self.start()
        assert self._thread is not None
        self._stop.set()
        self._wake.set()
        self._retry_now.set()
        self._thread.join(timeout)
        if self._thread.is_alive():
            self._abort.set()
            self._wake.set()
            self._retry_now.set()
            # The write in progress may be blocked in the store (a lock held elsewhere) for as long as its busy
            # timeout; with a deadline, wait a little for it and then spill its requests as well. Should it
            # commit before the process ends, those requests are stored twice, which read_predictions drops.
            self._thread.join(None if timeout is None else ABORT_SECONDS)
        held, self._held = self._held, None
        with self._lock:
            left = self._overflow + list(self._queue)
            self._queue.clear()
            self._overflow, self._queued_rows = [], 0
            if held is not None and held.spill is None:  # what the writer took and did not write
                left = [e for b in held.batches for e in b.entries] + left

            self._inflight = 0
        if left:
            self._spill(left)
        with self._spill_lock:
            for spill in (*self._spills, self._current):
                if spill is not None:
                    spill.release()
            self._spills, self._current = [], None
        with self.progress:
            self.progress.notify_all()

    # -- the writer ---------------------------------------------------------------------------------
    def _run(self) -> None:
        attempt = 0
        while True:
            self._wake.wait(self.flush_seconds)
            self._wake.clear()
            stopping = self._stop.is_set()
            try:
                ok = self._drain()
            except Exception as exc:  # noqa: BLE001 - the writer must outlive any one failure
                log.exception("The prediction log's writer failed; retrying")
                self.failures += 1
                self.last_error = f"{type(exc).__name__}: {exc}"
                ok = False
            attempt = 0 if ok else attempt + 1
            with self.progress:
                self.progress.notify_all()
            if self._abort.is_set() or (stopping and ok and not self._has_work()):
                return
            if not ok:  # back off; flush() and close() cut the wait short
                self._retry_now.wait(min(MAX_BACKOFF_SECONDS, 0.05 * 2 ** min(attempt, 10)))
                self._retry_now.clear()

    def _has_work(self) -> bool:
        with self._lock:
            if self._queue or self._overflow:
                return True
        with self._spill_lock:
            return bool(self._spills or (self._current and self._current.entries))

    def _drain(self) -> bool:
        """Write what is held, then the queue, then spill files, until nothing is left; False on a failure."""
        while not self._abort.is_set():
            if self._held is None:
                self._held = self._next_chunk()
                if self._held is None:
                    return True
            if not self._write(self._held):
                return False
            self._held = None
        return True

    def _next_chunk(self) -> _Chunk | None:
        entries = self._take()
        if entries:
            try:
                batches = self._build(entries)
            except BaseException:  # put them back, to be tried again
                with self._lock:
                    self._overflow[:0] = entries
                    self._inflight -= len(entries)
                raise
            kept = [e for b in batches for e in b.entries]
            if len(kept) < len(entries):
                with self._lock:
                    self._inflight -= len(entries) - len(kept)
            return _Chunk(batches, kept)
        with self._spill_lock:
            if not self._spills and self._current is not None and self._current.entries:
                self._spills.append(self._current)  # rotate: record() starts a new file when it next spills
                self._current = None
            spill = self._spills[0] if self._spills else None
        if spill is None:
            return None
        chunk, count, end = spill.chunk(self.batch_rows)
        if count == 0:  # the end of the file: every record is written
            with self._spill_lock:
                self._spills.remove(spill)
            spill.remove()
            return self._next_chunk()
        spill.mark(done=spill.done, intent=end)
        return _Chunk(self._build(chunk), chunk, spill, count, end)

    def _build(self, entries: list[Prediction]) -> list[Batch]:
        """The batches of `entries`. A request that cannot be turned into a table (a bug, or outputs of an
        unexpected kind) is set aside in spill_dir/rejected/ with the error logged, not retried forever."""
        try:
            return build_batches(entries)
        except Exception:  # noqa: BLE001 - find the culprits, write the others
            good = []
            for entry in entries:
                try:
                    build_batches([entry])
                    good.append(entry)
                except Exception:  # noqa: BLE001
                    log.exception("Request %r cannot be stored in the prediction log; it is kept in %s",
                                  entry.request_id, self.spill_dir / "rejected")
                    self._reject(entry)
            return build_batches(good)

    def _reject(self, entry: Prediction) -> None:
        rejected = SpillFile.create(self.spill_dir / "rejected")
        try:
            rejected.append(entry)
        finally:
            rejected.release()

    def _take(self) -> list[Prediction]:
        """Up to batch_rows rows of requests kept in memory (at least one request), oldest first."""
        with self._lock:
            taken, self._overflow = self._overflow, []
            rows = sum(len(e.inputs) for e in taken)
            while self._queue and (rows < self.batch_rows or not taken):
                entry = self._queue.popleft()
                taken.append(entry)
                rows += len(entry.inputs)
                self._queued_rows -= len(entry.inputs)
            if taken:
                self._inflight += len(taken)
                self._inflight_oldest = min(e.timestamp for e in taken)
        return taken

    def _write(self, chunk: _Chunk) -> bool:
        try:
            while chunk.batches:
                store_batch(self.ctx, chunk.batches[0])
                done = chunk.batches.pop(0)
                if chunk.spill is None:
                    with self._lock:
                        self._inflight -= len(done.entries)
                    self._written += len(done.entries)
            if chunk.spill is not None:
                spill = chunk.spill
                spill.mark(done=chunk.end, intent=None)
                self._written += len(chunk.entries)
                with self._spill_lock:
                    spill.entries -= chunk.records
                    spill.oldest = None
                    finished = spill.entries <= 0
                    if finished:
                        self._spills.remove(spill)
                if finished:
                    spill.remove()
                else:
                    self._peek_oldest(spill)
            ok = True
        except Exception as exc:  # noqa: BLE001 - kept and retried: a store outage must not lose requests
            self.failures += 1
            self.last_error = f"{type(exc).__name__}: {exc}"
            log.warning("Writing the prediction log failed (attempt %d); retrying: %s", self.failures, exc)
            ok = False
        with self.progress:
            self.progress.notify_all()
        return ok

    def _peek_oldest(self, spill: SpillFile) -> None:
        for _, entry in spill.records(spill.done, peek=True):
            if entry is not None:
                with self._spill_lock:
                    spill.oldest = entry.timestamp
            return


def _check(name: str, value: Any, ok: Callable[[Any], bool], expected: str) -> None:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not ok(value):
        raise ValidationError(f"Invalid {name} {value!r}: expected {expected}.", **{name: repr(value)})
