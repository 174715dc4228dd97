"""The feature store's bad-input list, case by case where the other suites leave it open: each error names the
offending value and the fix, the CLI shows no traceback, and nothing is half-registered or half-materialised
(registry rows, audit events, online store contents, watermarks)."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pandas as pd
import pytest

import shipyard
import shipyard.features as fs
from shipyard.context import close_all, open_context
from shipyard.errors import BackendError, NotFoundError, ValidationError
from shipyard.features.loading import load_views
from shipyard.features.online import online_store
from shipyard.store.audit import list_events
from tests.cli.helpers import cli, fails
from tests.services import REDIS_URL, free_port, redis_client

T0 = pd.Timestamp("2026-03-01", tz="UTC")
DAY = pd.Timedelta(days=1)

VIEWS = '''
import pandas as pd

from shipyard.features import FeatureView


def per_visit(df: pd.DataFrame) -> pd.DataFrame:
    return df.assign(per_visit=df["spend"] / df["visits"])


accounts = FeatureView("accounts", entities=["account"], source="accounts", timestamp="ts",
                       features={"balance": "float64", "tier": "string"})
visits = FeatureView("visits", entities=["customer", "store_id"], source="visits.parquet", timestamp="ts",
                     features={"spend": "float64", "visits": "int64"}, ttl="2d")
ratios = FeatureView("ratios", entities=["customer", "store_id"], source="visits.parquet", timestamp="ts",
                     features={"per_visit": "float64"}, transform=per_visit)
'''


def _visits() -> pd.DataFrame:
    return pd.DataFrame({"customer": ["alice", "alice", "bob"], "store_id": [1, 1, 2],
                         "ts": [T0, T0 + DAY, T0], "spend": [10.0, 30.0, 5.0], "visits": [2, 3, 1]})


@pytest.fixture
def ws(workspace: Path) -> Path:
    """Three applied views: a dataset keyed by a string, a Parquet file keyed by (string, int), a transform."""
    shipyard.data.add("accounts", pd.DataFrame({"account": ["A-1", "A-2"], "ts": [T0, T0 + DAY],
                                                "balance": [1.5, 2.5], "tier": ["gold", "silver"]}))
    _visits().to_parquet(workspace / "visits.parquet")
    (workspace / "views.py").write_text(VIEWS)
    fs.apply(load_views("views.py"))
    return workspace


def events(action: str) -> list[Any]:
    with open_context().store.read() as conn:
        return list_events(conn, action=action)


def watermarks() -> dict[str, Any]:
    with online_store(open_context()) as store:
        return {f"{i.view}@{i.version}": i.watermark for i in store.views()}


def registered() -> list[str]:
    return [v["latest"]["version_id"] for v in fs.list_views()]


# -- a missing or non-temporal timestamp column, and a mix of aware and naive times --------------------------


@pytest.mark.parametrize(("source", "write", "column", "kind"), [
    ("ledger", lambda root, frame: shipyard.data.add("ledger", frame), "ts", "string"),
    ("ledger.parquet", lambda root, frame: frame.to_parquet(root / "ledger.parquet"), "ts", "string"),
    ("ledger.parquet", lambda root, frame: frame.to_parquet(root / "ledger.parquet"), "epoch", "int64"),
])
def test_a_source_time_column_without_times_is_refused_at_apply(workspace: Path, source: str, write: Any,
                                                               column: str, kind: str) -> None:
    write(workspace, pd.DataFrame({"account": ["A-1"], "ts": ["2026-03-01"], "epoch": [1772323200],
                                   "real": [T0], "balance": [1.0]}))
    good = fs.FeatureView("good", entities=["account"], source=source, timestamp="real",
                          features={"balance": "float64"})
    with pytest.raises(ValidationError) as caught:
        fs.apply([good, fs.FeatureView("ledger", entities=["account"], source=source, timestamp=column,
                                       features={"balance": "float64"})])
    assert f"takes timestamp column '{column}'" in str(caught.value) and kind in str(caught.value)
    assert "timestamp=..." in str(caught.value)
    with pytest.raises(ValidationError, match="created timestamp column 'epoch'"):
        fs.apply([fs.FeatureView("ledger", entities=["account"], source=source, timestamp="real",
                                 created_timestamp="epoch", features={"balance": "float64"})])
    assert registered() == [] and events("feature_view.apply") == []  # the good view was not registered either


def test_a_source_whose_times_became_numbers_stops_materialize_before_any_write(ws: Path) -> None:
    _visits().assign(ts=[1772323200, 1772409600, 1772323200]).to_parquet(ws / "visits.parquet")
    with pytest.raises(ValidationError) as caught:
        fs.materialize()
    # the value as written, not numpy's repr of it
    assert ("'ts' of feature view ratios@1 must hold timestamps, got int64 values such as 1772323200:"
            in str(caught.value))
    assert watermarks() == {} and events("feature_view.materialize") == []


def mixed_zones(df: pd.DataFrame) -> pd.DataFrame:
    stamps = [T0.tz_convert("Europe/Berlin"), pd.Timestamp("2026-03-01 12:00"), T0]
    return df.assign(ts=pd.Series(stamps, dtype=object), per_visit=df["spend"])


def test_a_source_mixing_aware_and_naive_times_is_refused_offline_and_online(ws: Path) -> None:
    fs.apply([fs.FeatureView("mixed", entities=["customer", "store_id"], source="visits.parquet", timestamp="ts",
                             features={"per_visit": "float64"}, transform=mixed_zones)])
    entities = pd.DataFrame({"customer": ["alice"], "store_id": [1], "event_timestamp": [T0]})
    with pytest.raises(ValidationError, match="'ts' of feature view mixed@1 mixes timezone-aware and naive"):
        fs.get_historical(entities, ["mixed:per_visit"])
    with pytest.raises(ValidationError, match="mixes timezone-aware and naive timestamps: give them all a timezone"):
        fs.materialize()
    assert watermarks() == {} and events("feature_view.materialize") == []


def test_cli_entity_data_mixing_aware_and_naive_times_names_both(ws: Path,
                                                               capsys: pytest.CaptureFixture[str]) -> None:
    # The CSV reader leaves a column of mixed times as text: the message says why, with one time of each kind.
    (ws / "labels.csv").write_text("account,event_timestamp\nA-1,2026-03-02T00:00:00+01:00\nA-2,2026-03-02T00:00:00\n")
    err = fails(capsys, "features", "get", "--entities", "labels.csv", "--features", "accounts:balance",
                "--save-as", "train", "-o", "train.csv")
    assert "mixes times with and without a UTC offset, such as '2026-03-02T00:00:00+01:00' and " \
           "'2026-03-02T00:00:00'" in " ".join(err.split())
    assert not (ws / "train.csv").exists()
    with pytest.raises(NotFoundError):
        shipyard.data.get("train")


# -- duplicate entity rows at one time ----------------------------------------------------------------------


def test_entity_rows_repeating_a_key_at_one_time_are_refused(ws: Path) -> None:
    labels = pd.DataFrame({"account": ["A-1", "A-2", "A-1"], "event_timestamp": [T0 + DAY] * 3, "label": [0, 1, 1]})
    with pytest.raises(ValidationError, match="'A-1'"):
        fs.build_training_set("train", labels, ["accounts:balance"])
    with pytest.raises(NotFoundError):
        shipyard.data.get("train")


# -- unknown views and features, in every command ------------------------------------------------------------


@pytest.mark.parametrize("args", [
    ["features", "show", "acounts"],
    ["features", "materialize", "acounts"],
    ["features", "skew", "acounts"],
    ["features", "get", "--entities", "labels.csv", "--features", "acounts:balance", "-o", "out.csv"],
    ["features", "get", "--online", "--entities", '[{"account": "A-1"}]', "--features", "acounts:balance",
     "-o", "out.csv"],
])
def test_cli_an_unknown_view_suggests_the_nearest(ws: Path, capsys: pytest.CaptureFixture[str],
                                                  args: list[str]) -> None:
    pd.DataFrame({"account": ["A-1"], "event_timestamp": [T0 + DAY]}).to_csv(ws / "labels.csv", index=False)
    err = " ".join(fails(capsys, *args).split())
    assert "No feature view named 'acounts'. Did you mean 'accounts'?" in err
    assert not (ws / "out.csv").exists() and watermarks() == {} and events("feature_view.materialize") == []


@pytest.mark.parametrize("online", [False, True])
def test_cli_an_unknown_feature_suggests_the_nearest(ws: Path, capsys: pytest.CaptureFixture[str],
                                                     online: bool) -> None:
    fs.materialize()
    entities = '[{"account": "A-1"}]' if online else "labels.csv"
    pd.DataFrame({"account": ["A-1"], "event_timestamp": [T0 + DAY]}).to_csv(ws / "labels.csv", index=False)
    err = " ".join(fails(capsys, "features", "get", *(["--online"] if online else []), "--entities", entities,
                         "--features", "accounts:tier,balanse", "-o", "out.csv").split())
    assert "Feature view accounts@1 has no feature 'balanse'. Did you mean 'balance'?" in err
    assert not (ws / "out.csv").exists()


# -- entity keys of the wrong type --------------------------------------------------------------------------


def test_a_key_of_the_wrong_type_is_named_on_every_path(ws: Path) -> None:
    at = T0 + DAY
    with pytest.raises(ValidationError, match=r"Entity key 'account' is integer in the entity data \(e.g. 1\) but "
                                              "string in the source of feature view accounts@1"):
        fs.get_historical(pd.DataFrame({"account": [1], "event_timestamp": [at]}), ["accounts:balance"])
    fs.materialize()
    wrong = [{"customer": "alice", "store_id": "1"}]  # the second key of a composite one as text
    fix = r"keyed by store_id holding whole numbers \(int\); the entity rows give strings \(str\). Convert store_id"
    with pytest.raises(ValidationError, match=fix):
        fs.get_online(["visits:spend"], wrong, at=at)
    with pytest.raises(ValidationError, match=fix):
        fs.online_reader().get(["visits:spend"], wrong, at=at)
    with pytest.raises(ValidationError, match=r"keyed by account holding strings \(str\).*astype\(str\)"):
        fs.get_online(["accounts:balance"], pd.DataFrame({"account": [1]}), at=at)
    assert fs.get_online(["visits:spend"], [{"customer": "alice", "store_id": 1}], at=at).values["spend"].tolist() \
        == [30.0]  # the right types still read


# -- `features apply` of a module that fails, declares nothing, or declares one name twice -------------------


@pytest.mark.parametrize(("module", "fragment"), [
    ("raise RuntimeError('no database here')\n", "Importing bad_views.py failed: RuntimeError: no database here"),
    ("import pandas\nanswer = 42\n", "bad_views.py defines no feature view at its top level"),
    (("from shipyard.features import FeatureView\n"
      "a = FeatureView('twin', entities=['account'], source='accounts', timestamp='ts', features={'x': 'float64'})\n"
      "b = FeatureView('twin', entities=['account'], source='accounts', timestamp='ts', features={'y': 'string'})\n"),
     "bad_views.py declares feature view 'twin' twice, as `a` and `b`"),
])
def test_cli_apply_of_a_bad_module_registers_nothing(workspace: Path, capsys: pytest.CaptureFixture[str],
                                                     module: str, fragment: str) -> None:
    shipyard.data.add("accounts", pd.DataFrame({"account": ["A-1"], "ts": [T0], "balance": [1.0], "tier": ["x"]}))
    (workspace / "bad_views.py").write_text(module)
    assert fragment in " ".join(fails(capsys, "features", "apply", "bad_views.py").split())
    code, _, err = cli(capsys, "--debug", "features", "apply", "bad_views.py")
    assert code == 1 and "Traceback" in err  # --debug shows it
    assert registered() == [] and events("feature_view.apply") == []


def test_one_view_bound_to_two_names_is_one_view(workspace: Path, capsys: pytest.CaptureFixture[str]) -> None:
    shipyard.data.add("accounts", pd.DataFrame({"account": ["A-1"], "ts": [T0], "balance": [1.0]}))
    (workspace / "aliased.py").write_text(
        "from shipyard.features import FeatureView\n"
        "accounts = FeatureView('accounts', entities=['account'], source='accounts', timestamp='ts', "
        "features={'balance': 'float64'})\ndefault = accounts\n")
    code, out, err = cli(capsys, "features", "apply", "aliased.py")
    assert code == 0, err
    assert out.splitlines() == ["accounts@1: registered"] and registered() == ["accounts@1"]


# -- a failure in the middle of materialize -----------------------------------------------------------------


def test_a_transform_that_raises_stops_materialize_before_any_write(ws: Path,
                                                                    capsys: pytest.CaptureFixture[str]) -> None:
    pd.DataFrame({"customer": ["alice"], "store_id": [1], "ts": [T0], "spend": [1.0]}).to_parquet(
        ws / "visits.parquet")  # `visits` lost a column, which the transform of `ratios` divides by
    # accounts (read fine, and first in line) is not loaded either: every view is read before any is written
    err = " ".join(fails(capsys, "features", "materialize").split())
    assert "The transform of feature view ratios@1 failed: KeyError: 'visits'" in err
    assert watermarks() == {} and events("feature_view.materialize") == []
    err = " ".join(fails(capsys, "features", "materialize", "accounts", "visits").split())
    assert "visits.parquet of feature view visits@1 has no column 'visits'" in err
    assert watermarks() == {} and events("feature_view.materialize") == []
    _visits().to_parquet(ws / "visits.parquet")
    assert [r.loaded.written for r in fs.materialize()] == [2, 2, 2]  # restored: the run a clean one would be


@pytest.fixture
def redis_ws(ws: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[tuple[Path, Any]]:
    """The workspace with its online store in Redis, under a namespace of its own."""
    client = redis_client()  # skips (or fails) when Redis does not answer
    namespace = f"test-{uuid.uuid4().hex[:12]}"
    monkeypatch.setenv("SHIPYARD_ONLINE_URL", REDIS_URL)
    monkeypatch.setenv("SHIPYARD_ONLINE_NAMESPACE", namespace)
    close_all()
    yield ws, client
    for key in client.scan_iter(match="shipyard:test-*"):
        if namespace in key.decode():
            client.delete(key)
    client.close()


def dump(client: Any, namespace: str) -> dict[str, Any]:
    """Every key of a namespace (without its prefix) with its value."""
    prefix = f"shipyard:{namespace}:"
    found: dict[str, Any] = {}
    for key in client.scan_iter(match=f"{prefix}*"):
        found[key.decode()[len(prefix):]] = (sorted(client.smembers(key)) if client.type(key) == b"set"
                                             else client.get(key))
    return found


def test_an_unreachable_redis_loads_nothing_and_says_where(redis_ws: tuple[Path, Any],
                                                           monkeypatch: pytest.MonkeyPatch,
                                                           capsys: pytest.CaptureFixture[str]) -> None:
    url = f"redis://127.0.0.1:{free_port()}/0"  # nothing listens there
    monkeypatch.setenv("SHIPYARD_ONLINE_URL", url)
    close_all()
    err = " ".join(fails(capsys, "features", "materialize").split())
    assert f"The online store at {url} cannot be reached" in err
    assert events("feature_view.materialize") == []


def test_redis_failing_between_two_views_keeps_the_first_and_a_rerun_ends_as_a_clean_run(
        redis_ws: tuple[Path, Any], monkeypatch: pytest.MonkeyPatch) -> None:
    import redis.client
    import redis.exceptions

    _, client = redis_ws
    original = redis.client.Pipeline.execute
    commits: list[int] = []

    def lost_on_the_second_view(self: Any, *args: Any, **kwargs: Any) -> Any:
        if self.explicit_transaction:  # a view's load: rows and watermark in one MULTI/EXEC
            commits.append(1)
            if len(commits) == 2:
                raise redis.exceptions.ConnectionError("connection reset by peer")
        return original(self, *args, **kwargs)

    with monkeypatch.context() as patch:
        patch.setattr(redis.client.Pipeline, "execute", lost_on_the_second_view)
        with pytest.raises(BackendError, match="cannot be reached: connection reset by peer"):
            fs.materialize()
    # views load in name order, each in its own transaction: accounts committed, ratios and visits did not
    assert watermarks() == {"accounts@1": T0 + DAY}
    assert [e.object_id for e in events("feature_view.materialize")] == ["accounts@1"]
    again = fs.materialize()
    assert [(r.view.version_id, r.changed) for r in again] == [("accounts@1", False), ("ratios@1", True),
                                                               ("visits@1", True)]
    namespace = open_context().workspace.settings.online.namespace
    clean = f"test-{uuid.uuid4().hex[:12]}"
    monkeypatch.setenv("SHIPYARD_ONLINE_NAMESPACE", clean)
    close_all()
    fs.materialize()
    assert dump(client, namespace) == dump(client, clean) != {}


# -- missing cells in a CSV source --------------------------------------------------------------------------


def test_empty_cells_of_a_csv_source_are_nulls_as_in_parquet(workspace: Path) -> None:
    (workspace / "notes.csv").write_text("customer,ts,note\nalice,2026-03-01T00:00:00,\n,2026-03-01T00:00:00,x\n")
    fs.apply([fs.FeatureView("notes", entities=["customer"], source="notes.csv", timestamp="ts",
                             features={"note": "string"})])
    got = fs.get_historical(pd.DataFrame({"customer": ["alice", ""], "event_timestamp": [T0 + DAY] * 2}),
                            ["notes:note"])
    assert got["note"].isna().tolist() == [True, True]
    [load] = fs.materialize()
    assert (load.rows_read, load.rows_skipped) == (2, 1)
