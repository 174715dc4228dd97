"""A process killed with SIGKILL while writing a blob leaves the store consistent."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

from shipyard.context import open_context
from shipyard.governance.audit import verify_audit
from shipyard.store.gc import collect_garbage

SLOW_WRITER = r"""
import io, sys, time
import shipyard

class Slow(io.RawIOBase):
    def readable(self): return True
    def readinto(self, buf):
        time.sleep(0.01)
        n = min(len(buf), 1 << 16)
        buf[:n] = b"w" * n
        return n

with shipyard.start_run("writer") as run:
    run.log_metric("before", 1.0)
    run.flush()
    print("writing", flush=True)
    run.log_artifact(Slow(), name="endless.bin")
"""


def test_sigkill_mid_blob_write_leaves_store_consistent(workspace: Path) -> None:
    proc = subprocess.Popen([sys.executable, "-c", SLOW_WRITER], stdout=subprocess.PIPE, text=True)
    assert proc.stdout is not None
    assert proc.stdout.readline().strip() == "writing"
    tmp_dir = workspace / ".shipyard" / "artifacts" / "tmp"
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline and not any(p.stat().st_size > 0 for p in tmp_dir.rglob("*.part")):
        time.sleep(0.05)
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait(10)

    ctx = open_context(workspace)
    partial = list(tmp_dir.rglob("*.part"))
    assert partial, "the writer was killed before it started the blob"
    assert list(ctx.blobs.iter_digests()) == []  # no partial blob is visible under a digest
    assert verify_audit(ctx).ok
    from shipyard.tracking.search import search_runs

    [run] = search_runs(ctx)
    assert run.status == "lost"  # still stored as running, but its process is gone
    assert run.metrics == {"before": 1.0} and run.artifacts == []
    report = collect_garbage(ctx.store, ctx.blobs, ctx.actor, grace_seconds=0)
    assert report.temp_removed == len(partial)
    assert list(tmp_dir.rglob("*.part")) == []
    assert verify_audit(ctx).ok  # the sweep itself was audited and the chain still verifies
