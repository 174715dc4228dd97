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
class Answer:
    """One request's share of a batch: each output's values for its rows, and its rows as the model saw them
    (after the signature's checks and casts: what the prediction log keeps)."""

    values: dict[str, Any]
    frame: pd.DataFrame


@dataclass
class _Waiting:
    frame: pd.DataFrame
    wanted: tuple[str, ...]
    future: asyncio.Future[Answer]


#: Called with (requests in the batch, rows in the batch, seconds the call took) after every call.
Observer = Callable[[int, int, float], None]


@dataclass
class Batcher:
    """One model in one process. `prepare` checks and casts one request's frame (a request whose frame it
    refuses fails alone); `output(name, frame)` computes one output ("predict", "predict_proba") for a batch."""

    prepare: Callable[[pd.DataFrame], pd.DataFrame]
    output: Callable[[str, pd.DataFrame], Any]
    executor: Executor
    policy: BatchPolicy = field(default_factory=BatchPolicy)
    observe: Observer | None = None
    _queue: list[_Waiting] = field(default_factory=list)
    _running: asyncio.Task[None] | None = None

    async def submit(self, frame: pd.DataFrame, wanted: tuple[str, ...] = ("predict",)) -> Answer:
        loop = asyncio.get_running_loop()
        if not self.policy.enabled:
            return _answer((await self._call(loop, [frame], wanted))[0])
        waiting = _Waiting(frame, wanted, loop.create_future())
        self._queue.append(waiting)
        if self._running is None:
            self._running = loop.create_task(self._drain())
        return await waiting.future

    async def _drain(self) -> None:
        loop = asyncio.get_running_loop()
        batch: list[_Waiting] = []
        try:
            while self._queue:
                if self.policy.max_wait > 0 and _rows(self._queue) < self.policy.max_rows:
                    await asyncio.sleep(self.policy.max_wait)
                batch = self._take()
                try:
                    results = await self._call(loop, [w.frame for w in batch], batch[0].wanted)
                except Exception:  # noqa: BLE001 - answer each request on its own so only the culprit fails
                    results = [await self._alone(loop, w) for w in batch]
                for waiting, result in zip(batch, results, strict=True):
                    if waiting.future.done():
                        continue
                    if isinstance(result, BaseException):
                        waiting.future.set_exception(result)
                    else:
                        waiting.future.set_result(result)
        finally:
            self._running = None
            for waiting in [*batch, *self._queue]:  # cancelled (the loop is closing): nobody will answer them
                if not waiting.future.done():
                    waiting.future.cancel()
            self._queue.clear()

    def _take(self) -> list[_Waiting]:
        """The oldest requests up to max_rows rows, all asking for the same outputs and with the first one's
        columns and types; always at least one request, however large."""
        taken, rows = 0, 0
        first = self._queue[0]
        shape = _layout(first.frame)
        for waiting in self._queue:
            if taken and (rows + len(waiting.frame) > self.policy.max_rows or waiting.wanted != first.wanted
                          or _layout(waiting.frame) != shape):
                break
            taken, rows = taken + 1, rows + len(waiting.frame)
        batch, self._queue[:taken] = self._queue[:taken], []
        return batch

    async def _alone(self, loop: asyncio.AbstractEventLoop, waiting: _Waiting) -> Answer | BaseException:
        try:
            return (await self._call(loop, [waiting.frame], waiting.wanted))[0]
        except Exception as exc:  # noqa: BLE001 - handed to the request that caused it
            return exc

    async def _call(self, loop: asyncio.AbstractEventLoop, frames: list[pd.DataFrame],
                    wanted: tuple[str, ...]) -> list[Answer | BaseException]:
        return await loop.run_in_executor(self.executor, self._predict_split, frames, wanted)

    def _predict_split(self, frames: list[pd.DataFrame], wanted: tuple[str, ...]) -> list[Answer | BaseException]:
        import time

        import pandas as pd

        started = time.perf_counter()
        prepared: list[pd.DataFrame | BaseException] = []
        for frame in frames:
            try:
                prepared.append(self.prepare(frame))
            except Exception as exc:  # noqa: BLE001 - this request's input is refused, the others go on
                prepared.append(exc)
        good = [p for p in prepared if isinstance(p, pd.DataFrame)]
        if not good:
            return list(prepared)
        combined = good[0] if len(good) == 1 else pd.concat(good, ignore_index=True)
        values = {name: self.output(name, combined) for name in wanted}
        if self.observe is not None:
            self.observe(len(good), len(combined), time.perf_counter() - started)
        for name, array in values.items():
            if len(array) != len(combined):
                raise RuntimeError(f"The model's {name} answered {len(array)} rows for a batch of {len(combined)}.")
        answers: list[Answer | BaseException] = []
        start = 0
        for item in prepared:
            if not isinstance(item, pd.DataFrame):
                answers.append(item)
                continue
            end = start + len(item)
            answers.append(Answer({name: array[start:end] if len(good) > 1 else array
                                   for name, array in values.items()}, item))
            start = end
        return answers


def _answer(result: Answer | BaseException) -> Answer:
    if isinstance(result, BaseException):
        raise result
    return result


def _layout(frame: pd.DataFrame) -> tuple[Any, ...]:
    return tuple(zip(frame.columns, frame.dtypes, strict=True))


def _rows(queue: list[_Waiting]) -> int:
    return sum(len(w.frame) for w in queue)
