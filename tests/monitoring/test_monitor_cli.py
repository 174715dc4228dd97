"""`shipyard monitor compare`: two dataset versions or files, a table or JSON, exit code 3 when the table drifted."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd

import shipyard


def cli(workspace: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([str(Path(sys.executable).with_name("shipyard")), "monitor", "compare", *args],
                          cwd=workspace, capture_output=True, text=True, timeout=120)


def test_compare_dataset_versions_and_files(workspace: Path) -> None:
    rng = np.random.default_rng(1)
    before = pd.DataFrame({"amount": rng.normal(100, 10, 3000), "region": rng.choice(["n", "s"], 3000)})
    after = pd.DataFrame({"amount": rng.normal(108, 10, 3000), "region": rng.choice(["n", "s"], 3000)})
    shipyard.data.add("loans", before, workspace=workspace)
    shipyard.data.add("loans", after, workspace=workspace)
    drifted = cli(workspace, "loans@1", "loans@2", "--json")
    assert drifted.returncode == 3, drifted.stderr
    report = json.loads(drifted.stdout)
    assert report["drifted_columns"] == ["amount"] and report["checked"] == 2  # 1 of 2 is half: the table drifts
    assert {c["column"]: c["method"] for c in report["columns"]} == {"amount": "wasserstein", "region": "jensenshannon"}
    before.to_csv(workspace / "before.csv", index=False)
    same = cli(workspace, "loans@1", str(workspace / "before.csv"))
    assert same.returncode == 0 and "no drift: 0 of 2 columns drifted" in same.stdout
    bad = cli(workspace, "loans@1", "loans@2", "--method", "amount=energy")
    assert bad.returncode == 1 and "Unknown drift method 'energy'" in bad.stderr and "Traceback" not in bad.stderr
