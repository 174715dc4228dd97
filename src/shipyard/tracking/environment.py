"""What a run records about where it ran: code version, interpreter, packages, resources used."""

from __future__ import annotations

import platform
import resource
import subprocess
import sys
import threading
import time
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Any

# Packages whose versions change a model's behaviour; those installed are recorded with every run.
KEY_PACKAGES = (
    "shipyard-mlops",
    "numpy",
    "pandas",
    "pyarrow",
    "scikit-learn",
    "scipy",
    "xgboost",
    "lightgbm",
    "onnxruntime",
    "torch",
)
_GIT_TTL = 10.0
_git_cache: dict[str, tuple[float, tuple[str | None, bool | None]]] = {}
_git_lock = threading.Lock()


@lru_cache(maxsize=1)
def environment() -> dict[str, Any]:
    from importlib.metadata import PackageNotFoundError, version

    packages: dict[str, str] = {}
    for name in KEY_PACKAGES:
        try:
            packages[name] = version(name)
        except PackageNotFoundError:
            continue
    return {
        "python": platform.python_version(),
        "implementation": platform.python_implementation(),
        "platform": platform.platform(),
        "executable": sys.executable,
        "packages": packages,
    }


def git_state(folder: Path | None = None) -> tuple[str | None, bool | None]:
    """(commit, dirty) of the git checkout holding `folder`, or (None, None) outside one."""
    where = str((folder or Path.cwd()).resolve())
    now = time.monotonic()
    with _git_lock:
        cached = _git_cache.get(where)
        if cached and now - cached[0] < _GIT_TTL:
            return cached[1]
    state = _read_git(where)
    with _git_lock:
        _git_cache[where] = (now, state)
    return state


def _read_git(where: str) -> tuple[str | None, bool | None]:
    try:
        commit = subprocess.run(
            ["git", "rev-parse", "HEAD"], cwd=where, capture_output=True, text=True, timeout=10
        )
        if commit.returncode != 0:
            return None, None
        status = subprocess.run(
            ["git", "status", "--porcelain", "--untracked-files=no"],
            cwd=where,
            capture_output=True,
            text=True,
            timeout=30,
        )
    except (OSError, subprocess.TimeoutExpired):
        return None, None
    dirty = bool(status.stdout.strip()) if status.returncode == 0 else None
    return commit.stdout.strip(), dirty


def source_name() -> str | None:
    main = sys.modules.get("__main__")
    path = getattr(main, "__file__", None)
    return str(Path(path).resolve()) if path else (sys.argv[0] or None)


@dataclass
class ResourceMeter:
    """CPU seconds, peak resident memory and wall time between start() and read()."""

    wall0: float = 0.0
    cpu0: float = 0.0

    def start(self, reset_peak: bool) -> None:
        if reset_peak:
            _reset_peak_rss()
        self.wall0 = time.perf_counter()
        self.cpu0 = _cpu_seconds()

    def read(self) -> dict[str, float | int]:
        return {
            "wall_seconds": round(time.perf_counter() - self.wall0, 6),
            "cpu_seconds": round(_cpu_seconds() - self.cpu0, 6),
            "peak_memory_bytes": _peak_rss_bytes(),
        }


def _cpu_seconds() -> float:
    own = resource.getrusage(resource.RUSAGE_SELF)
    kids = resource.getrusage(resource.RUSAGE_CHILDREN)
    return own.ru_utime + own.ru_stime + kids.ru_utime + kids.ru_stime


def _reset_peak_rss() -> None:
    """Linux lets a process reset its high-water mark, so a run's peak is its own, not the process's."""
    try:
        with open("/proc/self/clear_refs", "w") as handle:
            handle.write("5")
    except OSError:
        pass


def _peak_rss_bytes() -> int:
    try:
        with open("/proc/self/status") as handle:
            for line in handle:
                if line.startswith("VmHWM:"):
                    own = int(line.split()[1]) * 1024
                    break
            else:
                raise OSError
    except (OSError, ValueError):
        own = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
    kids = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss * 1024
    return max(own, kids)
