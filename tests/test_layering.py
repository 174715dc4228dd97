"""The architecture of DESIGN.md §2, checked: edges → services → foundation with no import cycles between
service packages (import-linter's contracts in pyproject.toml), every table written and read only by the
building block that owns it, and no module importing another building block's private names."""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

from shipyard.store import tables

PACKAGE = Path(__file__).resolve().parents[1] / "src" / "shipyard"
OWNERS = {
    "store": {"audit_events", "audit_head", "lineage_edges", "store_identity", "leases"},
    "tracking": {"runs", "params", "tags", "metrics", "metric_latest", "artifacts"},
    "data": {"datasets", "dataset_versions", "dataset_files", "data_validations"},
    "models": {"registered_models", "model_versions", "model_aliases", "alias_history", "reviews"},
    "gates": {"gate_results"},
    "serving": {"prediction_batches", "feedback"},
    "deployments": {"deployments", "deployment_revisions"},
    "monitoring": {"monitor_reports", "monitor_alerts", "alert_silences", "reference_sketches"},
    "control": {"retrain_cycles"},
    "features": {"feature_views"},
}


def _imports(path: Path) -> list[ast.ImportFrom]:
    return [node for node in ast.walk(ast.parse(path.read_text())) if isinstance(node, ast.ImportFrom)]


def _block(path: Path) -> str:
    return path.relative_to(PACKAGE).parts[0].removesuffix(".py")


def test_the_import_contracts_hold() -> None:
    exe = Path(sys.executable).with_name("lint-imports")
    done = subprocess.run([str(exe), "--no-cache"], capture_output=True, text=True, timeout=120,
                          cwd=PACKAGE.parents[1])
    assert done.returncode == 0, done.stdout + done.stderr
    assert "1 kept, 0 broken" in done.stdout


def test_every_table_has_one_owner_and_only_its_owner_touches_it() -> None:
    owned = [name for names in OWNERS.values() for name in names]
    assert sorted(owned) == sorted(tables.metadata.tables)  # a new table must be given an owner here
    trespass = []
    for path in PACKAGE.rglob("*.py"):
        if "migrations" in path.parts:
            continue
        for node in _imports(path):
            if node.module == "shipyard.store.tables":
                for alias in node.names:
                    if alias.name in tables.metadata.tables and alias.name not in OWNERS.get(_block(path), set()):
                        trespass.append(f"{path.relative_to(PACKAGE)} uses {alias.name}")
    assert trespass == []


def test_no_building_block_imports_the_private_names_of_another() -> None:
    found = []
    for path in PACKAGE.rglob("*.py"):
        for node in _imports(path):
            parts = (node.module or "").split(".")
            if parts[0] == "shipyard" and len(parts) > 1 and parts[1] != _block(path):
                found += [f"{path.relative_to(PACKAGE)}: {node.module}.{a.name}" for a in node.names
                          if a.name.startswith("_") and a.name != "__version__"]
    assert found == []
