"""Driver-side helpers shared by the benchmark suites (run with the project venv)."""

from __future__ import annotations

import json
import os
import platform
import shutil
import sqlite3
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

BENCH_DIR = Path(__file__).resolve().parent
REPO_ROOT = BENCH_DIR.parent
RESULTS_DIR = BENCH_DIR / "results"
PEERS_VENV = Path(os.environ.get("PEERS_VENV", BENCH_DIR / ".venv-peers"))
PEERS_PYTHON = PEERS_VENV / "bin" / "python"

RESULT_PREFIX = "BENCH_RESULT "
READY_LINE = "BENCH_READY"


class WorkerError(RuntimeError):
    pass


@dataclass
class Context:
    """What a suite gets from the driver."""

    quick: bool = False
    keep: bool = False
    tmp_base: Path | None = None
    verbose: bool = False
    project_python: Path = field(default_factory=lambda: Path(sys.executable))
    peers_python: Path = PEERS_PYTHON
    #: Suite-specific sizes given on the command line (e.g. the features suite's row counts); None when not given.
    params: dict[str, Any] = field(default_factory=dict)

    def log(self, msg: str) -> None:
        print(msg, file=sys.stderr, flush=True)

    @contextmanager
    def workdir(self, label: str) -> Iterator[Path]:
        """A fresh, empty directory for one workload run of one tool."""
        path = Path(tempfile.mkdtemp(prefix=f"shipyard-bench-{label}-", dir=self.tmp_base))
        try:
            yield path
        finally:
            if self.keep:
                self.log(f"  kept {path}")
            else:
                shutil.rmtree(path, ignore_errors=True)


def parse_result(stdout: str) -> dict[str, Any]:
    for line in reversed(stdout.splitlines()):
        if line.startswith(RESULT_PREFIX):
            return json.loads(line[len(RESULT_PREFIX) :])
    raise WorkerError("worker printed no result line")


def _failure(cmd: list[str], rc: int | None, stdout: str, stderr_file: Path) -> WorkerError:
    stderr = stderr_file.read_text(errors="replace") if stderr_file.exists() else ""
    tail = "\n".join((stdout + "\n" + stderr).strip().splitlines()[-25:])
    return WorkerError(f"worker failed (exit {rc}): {' '.join(cmd)}\n{tail}")


def run_worker(
    python: Path,
    script: Path,
    args: list[str],
    *,
    env: dict[str, str],
    cwd: Path,
    timeout: float = 900,
) -> dict[str, Any]:
    """Run one worker to completion and return its JSON result."""
    cmd = [str(python), str(script), *args]
    stderr_file = cwd / f"worker-{int(time.time() * 1e6)}.stderr"
    with open(stderr_file, "w") as err:
        proc = subprocess.run(cmd, env=env, cwd=cwd, stdout=subprocess.PIPE, stderr=err, text=True, timeout=timeout)
    if proc.returncode != 0:
        raise _failure(cmd, proc.returncode, proc.stdout, stderr_file)
    try:
        return parse_result(proc.stdout)
    except WorkerError:
        raise _failure(cmd, proc.returncode, proc.stdout, stderr_file) from None


def run_workers_together(
    python: Path,
    script: Path,
    arg_lists: list[list[str]],
    *,
    env: dict[str, str],
    cwd: Path,
    timeout: float = 900,
) -> list[dict[str, Any]]:
    """Start several workers, wait until each has printed READY, release them at once.

    Interpreter start-up and imports happen before the start signal, so they
    do not count towards the measured time.
    """
    procs = []
    for i, args in enumerate(arg_lists):
        cmd = [str(python), str(script), *args]
        stderr_file = cwd / f"writer-{i}.stderr"
        with open(stderr_file, "w") as err:
            proc = subprocess.Popen(
                cmd, env=env, cwd=cwd, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=err, text=True
            )
        procs.append((cmd, proc, stderr_file))
    early: list[list[str]] = []
    for cmd, proc, stderr_file in procs:
        lines = []
        while True:
            line = proc.stdout.readline()
            if not line:
                for _, p, _ in procs:
                    p.kill()
                raise _failure(cmd, proc.wait(), "".join(lines), stderr_file)
            if line.strip() == READY_LINE:
                break
            lines.append(line)
        early.append(lines)
    for _, proc, _ in procs:
        proc.stdin.write("go\n")
        proc.stdin.flush()
    results = []
    deadline = time.monotonic() + timeout
    for (cmd, proc, stderr_file), lines in zip(procs, early):
        out, _ = proc.communicate(timeout=max(1.0, deadline - time.monotonic()))
        stdout = "".join(lines) + out
        if proc.returncode != 0:
            raise _failure(cmd, proc.returncode, stdout, stderr_file)
        results.append(parse_result(stdout))
    return results


def environment_info() -> dict[str, Any]:
    return {
        "python": platform.python_version(),
        "platform": platform.platform(),
        "machine": platform.machine(),
        "cpus": os.cpu_count(),
        "sqlite": sqlite3.sqlite_version,
        "date": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
    }


def write_json(path: Path, data: dict[str, Any]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(data, indent=2, sort_keys=False) + "\n")


def fmt_seconds(s: float | None) -> str:
    if s is None:
        return "-"
    if s < 0.001:
        return f"{s * 1e6:.1f} µs"
    if s < 0.01:
        return f"{s * 1000:.2f} ms"
    if s < 1:
        return f"{s * 1000:.1f} ms" if s < 0.1 else f"{s * 1000:.0f} ms"
    return f"{s:.2f} s"


def fmt_rate(r: float | None, unit: str = "pts/s") -> str:
    if r is None:
        return "-"
    return f"{r:,.0f} {unit}"


def fmt_ratio(r: float | None) -> str:
    if r is None:
        return "-"
    if r >= 100:
        return f"{r:,.0f}x"
    return f"{r:.1f}x" if r >= 10 else f"{r:.2f}x"

# -- MLflow-vs-Shipyard worker processes (the tracking and registry suites) ---------------------
SCRUB_PREFIXES = ("MLFLOW_", "SHIPYARD_")


def base_env() -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(SCRUB_PREFIXES)}
    env.pop("PYTHONPATH", None)
    env["PYTHONUNBUFFERED"] = "1"
    return env


class Tool:
    def __init__(self, name: str, label: str, python: Path, worker: Path) -> None:
        self.name, self.label, self.python, self.worker = name, label, python, worker

    def env(self, workdir: Path) -> dict[str, str]:
        env = base_env()
        if self.name == "mlflow":
            env.update(
                MLFLOW_TRACKING_URI=f"sqlite:///{workdir / 'mlflow.db'}",
                MLFLOW_DISABLE_TELEMETRY="true",
                DO_NOT_TRACK="true",
            )
        else:
            env.update(SHIPYARD_WORKSPACE=str(workdir), SHIPYARD_USER="bench")
        return env

    def run(self, workdir: Path, workload: str, *args: str) -> dict[str, Any]:
        return run_worker(
            self.python,
            self.worker,
            [workload, "--workdir", str(workdir), *args],
            env=self.env(workdir),
            cwd=workdir,
        )


def mlflow_and_shipyard(ctx: Context, shipyard_worker: Path, mlflow_worker: Path) -> tuple[Tool, Tool]:
    return (
        Tool("shipyard", "Shipyard", ctx.project_python, shipyard_worker),
        Tool("mlflow", "MLflow", ctx.peers_python, mlflow_worker),
    )


def guard(ctx: Context, label: str, fn) -> dict[str, Any]:
    t0 = time.perf_counter()
    try:
        result = fn()
    except (WorkerError, OSError, ValueError) as exc:
        ctx.log(f"  {label}: FAILED\n{exc}")
        return {"failed": True, "error": str(exc)[-2000:]}
    ctx.log(f"  {label}: done in {time.perf_counter() - t0:.1f} s")
    return result
