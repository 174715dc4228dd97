"""Adaptive micro-batching: requests for the same model and output that arrive while a prediction is running
are combined into one call, up to a number of rows, and each gets its own slice of the answer back.

An idle model answers at once (no added wait unless `max_wait` asks for one); under load the batches grow by
themselves, because whatever queued during one call goes out together in the next. A batch that fails is
retried request by request, so one request's bad values answer only that request with an error."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from concurrent.futures import Executor
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import pandas as pd


@dataclass
class BatchPolicy:
    """`max_rows` 0 turns batching off: every request is its own call."""

    max_rows: int = 64
    max_wait: float = 0.0  # seconds an idle model waits for company before it predicts

    @property
    def enabled(self) -> bool:
        return self.max_rows > 0


@dataclass
class _Waiting:
    frame: pd.DataFrame
    future: asyncio.Future[Any]


#: Called with (requests in the batch, rows in the batch, seconds the call took) after every call.
Observer = Callable[[int, int, float], None]


@dataclass
class Batcher:
    """One model's one output (predict or predict_proba) in one process."""

    predict: Callable[[pd.DataFrame], Any]
    executor: Executor
    policy: BatchPolicy = field(default_factory=BatchPolicy)
    observe: Observer | None = None
    _queue: list[_Waiting] = field(default_factory=list)
    _running: asyncio.Task[None] | None = None

    async def submit(self, frame: pd.DataFrame) -> Any:
        loop = asyncio.get_running_loop()
        if not self.policy.enabled:
            return (await self._call(loop, [frame]))[0]
        waiting = _Waiting(frame, loop.create_future())
        self._queue.append(waiting)
        if self._running is None:
            self._running = loop.create_task(self._drain())
        return await waiting.future

    async def _drain(self) -> None:
        loop = asyncio.get_running_loop()
        try:
            while self._queue:
                if self.policy.max_wait > 0 and _rows(self._queue) < self.policy.max_rows:
                    await asyncio.sleep(self.policy.max_wait)
                batch = self._take()
                try:
                    results = await self._call(loop, [w.frame for w in batch])
                except Exception:  # noqa: BLE001 - answer each request on its own so only the culprit fails
                    await self._one_by_one(loop, batch)
                    continue
                for waiting, result in zip(batch, results, strict=True):
                    if not waiting.future.done():
                        waiting.future.set_result(result)
        finally:
            self._running = None
            for waiting in self._queue:  # cancelled while waiting: nobody is left to answer them
                if not waiting.future.done():
                    waiting.future.cancel()
            self._queue.clear()

    def _take(self) -> list[_Waiting]:
        """The oldest requests up to max_rows rows, all with the first one's columns and types (a batch never
        fills a request's missing column with another's); always at least one request, however large."""
        taken, rows = 0, 0
        shape = _layout(self._queue[0].frame)
        for waiting in self._queue:
            if taken and (rows + len(waiting.frame) > self.policy.max_rows or _layout(waiting.frame) != shape):
                break
            taken, rows = taken + 1, rows + len(waiting.frame)
        batch, self._queue[:taken] = self._queue[:taken], []
        return batch

    async def _one_by_one(self, loop: asyncio.AbstractEventLoop, batch: list[_Waiting]) -> None:
        for waiting in batch:
            try:
                [result] = await self._call(loop, [waiting.frame])
            except Exception as exc:  # noqa: BLE001 - handed to the request that caused it
                if not waiting.future.done():
                    waiting.future.set_exception(exc)
            else:
                if not waiting.future.done():
                    waiting.future.set_result(result)

    async def _call(self, loop: asyncio.AbstractEventLoop, frames: list[pd.DataFrame]) -> list[Any]:
        return await loop.run_in_executor(self.executor, self._predict_split, frames)

    def _predict_split(self, frames: list[pd.DataFrame]) -> list[Any]:
        import time

        import pandas as pd

        started = time.perf_counter()
        combined = frames[0] if len(frames) == 1 else pd.concat(frames, ignore_index=True)
        values = self.predict(combined)
        if self.observe is not None:
            self.observe(len(frames), len(combined), time.perf_counter() - started)
        if len(frames) == 1:
            return [values]
        if len(values) != len(combined):
            raise RuntimeError(f"The model answered {len(values)} rows for a batch of {len(combined)}.")
        parts, start = [], 0
        for frame in frames:
            parts.append(values[start:start + len(frame)])
            start += len(frame)
        return parts


def _layout(frame: pd.DataFrame) -> tuple[Any, ...]:
    return tuple(zip(frame.columns, frame.dtypes, strict=True))


def _rows(queue: list[_Waiting]) -> int:
    return sum(len(w.frame) for w in queue)
