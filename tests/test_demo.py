"""`make demo` runs the whole lifecycle: here it runs into a temporary folder and its results are read back."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

DEMO = Path(__file__).resolve().parent.parent / "examples" / "demo.py"


def test_demo_runs_the_lifecycle(tmp_path: Path) -> None:
    workspace = tmp_path / "demo"
    proc = subprocess.run([sys.executable, str(DEMO), str(workspace)], capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    assert "Promoted cancer/1 to champion" in proc.stdout
    assert "Audit chain intact" in proc.stdout
    card = json.loads((workspace / "cards" / "cancer" / "1" / "card.json").read_text())
    assert card["model_details"]["path"] == "models:/cancer/1"
    assert {g: v["status"] for g, v in card["gates"].items()} == {
        "evaluation": "NO_BASELINE", "behavioural": "PASS", "fairness": "PASS", "infrastructure": "PASS"}
    assert (workspace / "cards" / "cancer" / "1" / "readiness.html").is_file()
    check = subprocess.run([str(Path(sys.executable).with_name("shipyard")), "-C", str(workspace), "readiness",
                            "cancer/1", "--json"], capture_output=True, text=True, timeout=120)
    items = {i["name"]: i["status"] for i in json.loads(check.stdout)["items"]}
    assert items["data"] == "PASS" and items["model"] == "PASS" and items["governance"] == "PASS"
