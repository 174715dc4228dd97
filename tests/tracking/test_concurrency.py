"""Eight processes writing runs and metrics to one store at once lose nothing and see no lock errors."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

import shipyard

WRITER = r"""
import sys, shipyard
errors = 0
for r in range(2):
    with shipyard.start_run(f"w{sys.argv[1]}-{r}", experiment="load") as run:
        run.log_params({"writer": sys.argv[1], "round": r})
        for i in range(150):
            try:
                run.log_metric("value", float(i), step=i)
                if i % 10 == 9:
                    run.flush()  # many small commits: maximal contention on the write lock
            except Exception as exc:
                errors += 1
                print(repr(exc), file=sys.stderr)
        run.set_tag("done", "yes")
print(errors)
"""


def test_eight_writers_lose_nothing(backend_workspace: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SHIPYARD_TRACKING_FLUSH_INTERVAL_SECONDS", "3600")  # flushes only where the writer asks
    procs = [
        subprocess.Popen([sys.executable, "-c", WRITER, str(i)], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        for i in range(8)
    ]
    outputs = [p.communicate(timeout=300) for p in procs]
    for proc, (out, err) in zip(procs, outputs, strict=True):
        assert proc.returncode == 0, err
        assert out.strip() == "0", err
        assert "locked" not in err
    runs = shipyard.search_runs(experiment="load", max_results=100)
    assert len(runs) == 16
    assert all(r.status == "finished" and r.tags == {"done": "yes"} and r.metrics == {"value": 149.0} for r in runs)
    for run in runs:
        assert [p.step for p in shipyard.get_metric_history(run.run_id, "value")] == list(range(150))
    report = shipyard.verify_audit()
    assert report.ok
    # per run: create, params, 15 flushes, tag, finish
    assert report.events_checked == 16 * (1 + 1 + 15 + 1 + 1)
