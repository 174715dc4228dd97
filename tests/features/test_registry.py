"""The registry: applying a view makes a version only when its fingerprint changed, in one audited transaction with
a lineage edge from the source dataset version; on SQLite and PostgreSQL. `shipyard features apply` finds a
module's views, and a registered transform is imported again from its file in another process."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest

import shipyard
from shipyard.context import open_context
from shipyard.errors import NotFoundError, ValidationError
from shipyard.features import FeatureView, apply, get, get_historical, list_views, versions
from shipyard.store.audit import list_events
from shipyard.store.lineage import Node, neighbours

SRC = Path(__file__).resolve().parents[2] / "src"
TX = pd.DataFrame({"customer_id": [1, 1, 2], "event_ts": pd.to_datetime(["2026-01-01", "2026-01-03", "2026-01-02"]),
                   "spend": [10.0, 20.0, 5.0]})


def stats(**changes: object) -> FeatureView:
    args: dict[str, object] = {"entities": ["customer_id"], "source": "tx", "features": {"spend": "float64"},
                               "ttl": "7d"}
    args.update(changes)
    return FeatureView("stats", **args)  # type: ignore[arg-type]


def _events() -> list[object]:
    with open_context().store.read() as conn:
        return list_events(conn, object_kind="feature_view", limit=1000)


def test_apply_twice_changes_nothing_and_a_change_makes_a_version(backend_workspace: Path) -> None:
    shipyard.data.add("tx", TX)
    [first] = apply([stats()])
    assert (first.created, first.view.version_id) == (True, "stats@1")
    assert len(_events()) == 1
    [again] = apply([stats(description="same values, other words")])
    assert (again.created, again.view.version_id, again.view.fingerprint) == (False, "stats@1", first.view.fingerprint)
    assert len(_events()) == 1  # nothing happened, so nothing is audited
    [changed] = apply([stats(ttl="14d")])
    assert (changed.created, changed.view.version_id) == (True, "stats@2")
    [event, earlier] = _events()
    assert (event.action, event.object_id, event.actor) == ("feature_view.apply", "stats", "tester")
    assert event.payload["version"] == 2 and event.payload["source"] == "tx@1"
    assert [v.version for v in versions("stats")] == [2, 1]
    assert get("stats").ttl_seconds == 14 * 86400 and get("stats@1").ttl_seconds == 7 * 86400
    [listed] = list_views()
    assert listed["versions"] == 2 and listed["latest"]["version_id"] == "stats@2"
    with open_context().store.read() as conn:
        assert neighbours(conn, Node("feature_view", "stats@2"), upstream=True) == [
            (Node("dataset_version", "tx@1"), "input")]


def test_the_lineage_edge_names_the_dataset_version_the_view_was_applied_on(workspace: Path) -> None:
    shipyard.data.add("tx", TX)
    shipyard.data.add("tx", pd.concat([TX, TX.tail(1)]))
    apply([stats(source="tx@1"), FeatureView("latest", entities=["customer_id"], source="tx",
                                             features={"spend": "float64"})])
    with open_context().store.read() as conn:
        assert neighbours(conn, Node("feature_view", "stats@1"), upstream=True)[0][0].id == "tx@1"
        assert neighbours(conn, Node("feature_view", "latest@1"), upstream=True)[0][0].id == "tx@2"


def test_apply_refuses_bad_views_before_registering_any(workspace: Path) -> None:
    shipyard.data.add("tx", TX)
    with pytest.raises(ValidationError, match="declares column 'spnd'.*Did you mean 'spend'"):
        apply([FeatureView("ok", entities=["customer_id"], source="tx", features={"spend": "float64"}),
               stats(features={"spnd": "float64"})])
    with pytest.raises(NotFoundError, match="No dataset named 'txx'"):
        apply([stats(source="txx")])
    with pytest.raises(NotFoundError, match="missing.parquet"):
        apply([stats(source="missing.parquet")])
    with pytest.raises(ValidationError, match="'stats' is given twice"):
        apply([stats(), stats(ttl="1d")])
    assert list_views() == [] and _events() == []
    with pytest.raises(NotFoundError, match="No feature view named 'stats'"):
        get("stats")
    apply([stats()])
    with pytest.raises(NotFoundError, match="has no version 3. Versions: stats@1"):
        get("stats@3")
    with pytest.raises(NotFoundError, match="Did you mean 'stats'"):
        get("stat")


VIEWS = '''
from shipyard.features import FeatureView


def doubled(df):
    return df.assign(spend2=df["spend"] * {factor})


stats = FeatureView("stats", entities=["customer_id"], source="tx", features={{"spend2": "float64"}},
                    transform=doubled)
'''

RETRIEVE = """
import pandas as pd
from shipyard.features import get_historical
entities = pd.DataFrame({"customer_id": [1], "event_timestamp": pd.to_datetime(["2026-01-04"])})
print(get_historical(entities, ["stats:spend2"])["spend2"].iloc[0])
"""


def test_a_changed_transform_is_a_new_version_and_is_imported_again_elsewhere(
    workspace: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from shipyard.cli.main import main

    shipyard.data.add("tx", TX)
    module = workspace / "features" / "views.py"
    module.parent.mkdir()
    module.write_text(VIEWS.format(factor=2))
    assert main(["features", "apply", "features/views.py"]) == 0
    assert main(["features", "apply", "features/views.py"]) == 0
    assert capsys.readouterr().out.splitlines() == ["stats@1: registered", "stats@1: unchanged"]

    def in_another_process() -> str:
        done = subprocess.run([sys.executable, "-c", RETRIEVE], cwd=workspace, capture_output=True, text=True,
                              timeout=120, env={**os.environ, "PYTHONPATH": str(SRC)})
        return done.stdout.strip() + done.stderr

    assert in_another_process() == "40.0"
    module.write_text(VIEWS.format(factor=3))  # stats@1's code is gone from the file
    assert "has changed since that version was applied" in in_another_process()
    for name in [m for m in sys.modules if m.endswith("views")]:
        sys.modules.pop(name)  # the module file changed: import it afresh, as a new process would
    assert main(["features", "apply", "features.views"]) == 0
    assert capsys.readouterr().out.strip() == "stats@2: registered"
    assert in_another_process() == "60.0"


def test_apply_from_a_module_without_views_or_that_fails_says_so(workspace: Path) -> None:
    from shipyard.features.loading import load_views

    (workspace / "empty_views.py").write_text("x = 1\n")
    (workspace / "broken_views.py").write_text("raise RuntimeError('no database here')\n")
    with pytest.raises(ValidationError, match="defines no feature view"):
        load_views("empty_views.py")
    with pytest.raises(ValidationError, match="RuntimeError: no database here"):
        load_views("broken_views")
    with pytest.raises(NotFoundError, match="Cannot import module 'nosuch_views'"):
        load_views("nosuch_views")
    with pytest.raises(NotFoundError, match="No file 'gone/views.py'"):
        load_views("gone/views.py")
