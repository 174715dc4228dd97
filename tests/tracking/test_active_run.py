"""The active run belongs to the thread or asyncio task that started it, not to the whole process."""

from __future__ import annotations

import asyncio
import subprocess
import sys
import threading
from collections.abc import Callable
from pathlib import Path

import shipyard
from shipyard.tracking.fluent import Run


def _in_threads(*bodies: Callable[[], None]) -> None:
    """Run each body in its own thread; re-raise the first error any of them hit."""
    errors: list[BaseException] = []

    def guarded(body: Callable[[], None]) -> None:
        try:
            body()
        except BaseException as exc:  # noqa: BLE001 - handed to the test thread
            errors.append(exc)

    threads = [threading.Thread(target=guarded, args=(body,)) for body in bodies]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)
    assert not any(t.is_alive() for t in threads), "a thread is stuck"
    if errors:
        raise errors[0]


def test_two_threads_each_have_their_own_run(workspace: Path) -> None:
    both_open = threading.Barrier(2, timeout=30)  # both runs are open before either looks or logs
    both_checked = threading.Barrier(2, timeout=30)  # and neither ends before the other has looked
    seen: dict[str, tuple[str, str | None]] = {}

    def worker(name: str) -> Callable[[], None]:
        def body() -> None:
            try:
                with shipyard.start_run(name) as run:
                    both_open.wait()
                    active = shipyard.active_run()
                    seen[name] = (run.run_id, active.run_id if active else None)
                    shipyard.log_metric("thread", 1.0 if name == "a" else 2.0)
                    both_checked.wait()
            except BaseException:
                both_open.abort()  # the other thread must not wait for this one forever
                both_checked.abort()
                raise

        return body

    _in_threads(worker("a"), worker("b"))
    assert seen["a"][0] != seen["b"][0]
    assert all(own == active for own, active in seen.values())
    assert shipyard.get_run(seen["a"][0]).metrics == {"thread": 1.0}
    assert shipyard.get_run(seen["b"][0]).metrics == {"thread": 2.0}
    assert shipyard.active_run() is None  # nothing leaked into the test's own thread


def test_a_nested_run_never_takes_another_threads_run_as_parent(workspace: Path) -> None:
    a_open, b_done = threading.Event(), threading.Event()
    runs: dict[str, Run] = {}

    def thread_a() -> None:
        with shipyard.start_run("a") as run:
            runs["a"] = run
            a_open.set()
            assert b_done.wait(30)

    def thread_b() -> None:
        try:
            assert a_open.wait(30)
            with shipyard.start_run("b", nested=True) as run:
                runs["b"] = run
                assert shipyard.active_run() is run
        finally:
            b_done.set()

    _in_threads(thread_a, thread_b)
    assert shipyard.get_run(runs["b"].run_id).parent_id is None
    assert shipyard.get_run(runs["a"].run_id).status == "finished"


def test_asyncio_tasks_each_have_their_own_run(workspace: Path) -> None:
    async def task(name: str, mine: asyncio.Event, other: asyncio.Event) -> tuple[str, str | None, str | None]:
        with shipyard.start_run(name) as run:
            mine.set()
            await other.wait()  # both tasks' runs are open here, interleaved on one thread
            active = shipyard.active_run()
            with shipyard.start_run(f"{name}-child", nested=True) as child:
                parent = shipyard.get_run(child.run_id).parent_id
            return run.run_id, active.run_id if active else None, parent

    async def main() -> list[tuple[str, str | None, str | None]]:
        a, b = asyncio.Event(), asyncio.Event()
        return await asyncio.gather(task("a", a, b), task("b", b, a))

    results = asyncio.run(main())
    assert results[0][0] != results[1][0]
    assert all(own == active == parent for own, active, parent in results)


EXIT_FROM_A_THREAD = """
import threading, shipyard
runs = []
thread = threading.Thread(target=lambda: runs.append(shipyard.start_run("from-a-thread")))
thread.start(); thread.join()
runs[0].log_metric("m", 1.0)
print(runs[0].run_id, flush=True)
"""


def test_a_run_left_open_in_a_thread_is_ended_at_exit(workspace: Path) -> None:
    proc = subprocess.run([sys.executable, "-c", EXIT_FROM_A_THREAD], capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    record = shipyard.get_run(proc.stdout.strip())
    assert record.status == "finished" and record.metrics == {"m": 1.0}
