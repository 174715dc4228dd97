"""The package surface: light imports, a complete public API, a working console script."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import shipyard

HEAVY = ["pandas", "sklearn", "numpy", "pyarrow", "s3fs", "botocore", "fastapi", "starlette", "uvicorn",
         "sqlalchemy.dialects.postgresql", "psycopg", "alembic", "pydantic", "fsspec"]

PROBE = """
import json, sys
{setup}
print(json.dumps(sorted(sys.modules)))
"""


def _modules(setup: str, cwd: Path | None = None) -> set[str]:
    out = subprocess.run(
        [sys.executable, "-c", PROBE.format(setup=setup)], capture_output=True, text=True, check=True, cwd=cwd
    ).stdout
    return set(json.loads(out))


def test_import_shipyard_loads_nothing_heavy() -> None:
    loaded = _modules("import shipyard")
    assert [m for m in HEAVY if m in loaded] == []
    assert "sqlalchemy" not in loaded  # the store opens on first use


def test_import_shipyard_testing_loads_neither_pytest_nor_anything_heavy() -> None:
    loaded = _modules("import shipyard.testing")
    assert [m for m in [*HEAVY, "pytest", "_pytest", "unittest"] if m in loaded] == []


def test_tracking_on_sqlite_loads_no_other_backend(workspace: Path) -> None:
    from shipyard.context import open_context

    open_context(workspace)  # create and migrate the store first, as `shipyard init` does
    setup = "import shipyard\nwith shipyard.start_run() as r:\n    r.log_metric('m', 1.0)\n    r.log_artifact(b'x', name='x')"
    loaded = _modules(setup, cwd=workspace)
    unexpected = ["sqlalchemy.dialects.postgresql", "psycopg", "s3fs", "botocore", "pandas", "sklearn",
                  "fastapi", "starlette", "uvicorn", "alembic"]  # alembic too: the store is already migrated
    assert [m for m in unexpected if m in loaded] == []
    assert "sqlalchemy.dialects.sqlite" in loaded


def test_public_api_is_complete_and_sorted() -> None:
    public = {name for name in vars(shipyard) if not name.startswith("_")} - {
        "config", "errors", "tracking", "store", "context", "settings", "governance", "control", "cli", "gates",
        "pipelines", "policy", "synthetic",
        "testing",  # shipyard.testing, imported as a submodule by a plug-in's own tests
    }
    assert set(shipyard.__all__) == public | {"__version__"}
    assert shipyard.__all__ == sorted(shipyard.__all__)


def test_console_script_help_and_version() -> None:
    exe = Path(sys.executable).with_name("shipyard")
    help_out = subprocess.run([str(exe), "--help"], capture_output=True, text=True, timeout=60)
    assert help_out.returncode == 0
    for command in ("init", "runs", "audit", "artifacts", "config"):
        assert command in help_out.stdout
    version = subprocess.run([str(exe), "--version"], capture_output=True, text=True, timeout=60)
    assert version.stdout.strip() == f"shipyard {shipyard.__version__}"
