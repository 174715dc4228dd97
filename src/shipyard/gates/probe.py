"""The infrastructure probe: load a model from its artifact alone in a clean interpreter, compare its
recorded environment with this one, and measure latency, throughput and peak memory (after a warm-up,
with the machine's load while measuring; see latency.measure).

Run as `python -m shipyard.gates.probe REQUEST.json`; prints one JSON object."""

from __future__ import annotations

import json
import platform
import resource
import sys
import time
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path
from typing import Any


def environment_diff(recorded: dict[str, Any]) -> list[dict[str, Any]]:
    """Packages whose running version differs from the recorded one (None: not installed)."""
    diffs = []
    for package, wanted in sorted((recorded.get("packages") or {}).items()):
        try:
            running: str | None = version(package)
        except PackageNotFoundError:
            running = None
        if running != wanted:
            diffs.append({"package": package, "recorded": wanted, "running": running})
    python = recorded.get("python")
    if python and python.rsplit(".", 1)[0] != platform.python_version().rsplit(".", 1)[0]:
        diffs.append({"package": "python", "recorded": python, "running": platform.python_version()})
    return diffs


def main(request_path: str) -> dict[str, Any]:
    import pandas as pd

    from shipyard.gates.latency import measure
    from shipyard.models.flavors import get_flavor

    request = json.loads(Path(request_path).read_text())
    started = time.perf_counter()
    flavor = get_flavor(request["flavor"])
    model = flavor.load(Path(request["artifact"]), request["flavor_meta"])
    load_seconds = time.perf_counter() - started
    frame = pd.read_parquet(request["sample"])
    if request.get("signature"):
        from shipyard.models.signature import Signature, enforce

        signature = Signature.from_dict(request["signature"])

        def predict(df: pd.DataFrame) -> Any:
            return flavor.predict(model, enforce(signature, df))
    else:

        def predict(df: pd.DataFrame) -> Any:
            return flavor.predict(model, df)

    measured = measure(predict, frame, max_seconds=float(request.get("max_seconds", 10)))
    peak_kib = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return {
        **measured,
        "load_seconds": round(load_seconds, 4),
        "peak_memory_mb": round(peak_kib / 1024, 1),
        "environment_diff": environment_diff(request.get("environment") or {}),
        "python": platform.python_version(),
    }


if __name__ == "__main__":
    try:
        print(json.dumps(main(sys.argv[1])))
    except Exception as exc:  # noqa: BLE001 - reported to the parent as data
        print(json.dumps({"error": f"{type(exc).__name__}: {exc}"}))
        sys.exit(1)
