"""Feast side of the features benchmark (peers' virtualenv): a feature repository in a folder of its own with
the local file offline store (Dask over the Parquet FileSource) and the SQLite online store.

    setup --folder F --repo R            write R/feature_store.yaml and apply the entity and feature view
    historical --folder F --repo R       time get_historical_features(labels, refs).to_df()
    materialize --folder F --repo R      time materialize(start, end) of the whole table into SQLite
    online --folder F --repo R --reads N time get_online_features for 1 and for 100 customers, N reads each

Each command prints one ``BENCH_RESULT {json}`` line; memory is measured around the timed call (_shared.measured: the
resident set before it, and its peak while it ran).
"""

from __future__ import annotations

import argparse
import datetime as dt
import sqlite3
import sys
import time
from pathlib import Path
from typing import Any

from _shared import (CREATED_TS, ENTITY, EVENT_TS, FEATURES, FEATURES_FILE, LABEL_TS, LABELS_FILE, PROBE_BATCH,
                     TTL_SECONDS, VIEW, WARMUP_LABELS, emit, feature_refs, load_spec,
                     measured, peak_mb, probe_ids, time_reads, timed)

PROJECT = "bench"
CONFIG = """project: {project}
provider: local
registry: {repo}/registry.db
online_store:
  type: sqlite
  path: {repo}/online.db
offline_store:
  type: file
entity_key_serialization_version: 3
"""


def definitions(folder: Path) -> list[Any]:
    from feast import Entity, FeatureView, Field, FileSource, ValueType
    from feast.types import Float64, Int64

    types = {"float64": Float64, "int64": Int64}
    customer = Entity(name="customer", join_keys=[ENTITY], value_type=ValueType.INT64)
    source = FileSource(path=str(folder / FEATURES_FILE), timestamp_field=EVENT_TS,
                        created_timestamp_column=CREATED_TS)
    view = FeatureView(name=VIEW, entities=[customer], ttl=dt.timedelta(seconds=TTL_SECONDS),
                       schema=[Field(name=n, dtype=types[t]) for n, t in FEATURES.items()], online=True,
                       source=source)
    return [customer, view]


def open_store(repo: Path) -> Any:
    from feast import FeatureStore

    return FeatureStore(repo_path=str(repo))


def cmd_setup(args: argparse.Namespace) -> dict[str, Any]:
    import feast

    repo = Path(args.repo)
    repo.mkdir(parents=True, exist_ok=True)
    (repo / "feature_store.yaml").write_text(CONFIG.format(project=PROJECT, repo=repo))
    seconds, _ = timed(lambda: open_store(repo).apply(definitions(Path(args.folder))))
    return {"version": feast.__version__, "apply_seconds": seconds}


def labels(folder: Path) -> Any:
    import pandas as pd

    return pd.read_parquet(folder / LABELS_FILE, columns=[ENTITY, LABEL_TS, "label"])


def cmd_historical(args: argparse.Namespace) -> dict[str, Any]:
    import dask
    import feast

    folder = Path(args.folder)
    store = open_store(Path(args.repo))
    load_s, entity_df = timed(lambda: labels(folder))
    refs = feature_refs()
    store.get_historical_features(entity_df=entity_df.head(WARMUP_LABELS), features=refs).to_df()  # off the clock
    seconds, result, memory = measured(
        lambda: store.get_historical_features(entity_df=entity_df, features=refs).to_df())
    result.to_parquet(folder / "feast_historical.parquet", index=False)
    return {"version": feast.__version__, "dask": dask.__version__, "label_rows": len(entity_df),
            "rows": len(result), "load_seconds": load_s, "seconds": seconds, **memory,
            "columns": list(result.columns)}


def online_rows(repo: Path) -> int:
    """Customers with a row in the SQLite online store (Feast keeps one row per customer and feature)."""
    with sqlite3.connect(repo / "online.db") as db:
        return int(db.execute(f'SELECT COUNT(DISTINCT entity_key) FROM "{PROJECT}_{VIEW}"').fetchone()[0])


def cmd_materialize(args: argparse.Namespace) -> dict[str, Any]:
    spec = load_spec(Path(args.folder))
    repo = Path(args.repo)
    store = open_store(repo)
    start = dt.datetime.fromtimestamp(spec["start"] - 1, dt.timezone.utc)
    end = dt.datetime.now(dt.timezone.utc)
    # Off the clock: imports and a first read of the source, over a window before any data (writes nothing).
    store.materialize(start - dt.timedelta(days=2), start - dt.timedelta(days=1))
    seconds, _, memory = measured(lambda: store.materialize(start, end))
    return {"source_rows": spec["feature_rows"], "entities": spec["entities"], "entities_written": online_rows(repo),
            "seconds": seconds, **memory}


def cmd_online(args: argparse.Namespace) -> dict[str, Any]:
    import pandas as pd

    folder = Path(args.folder)
    spec = load_spec(folder)
    store = open_store(Path(args.repo))
    refs = feature_refs()

    def read(ids: list[int]) -> dict[str, Any]:
        return store.get_online_features(features=refs, entity_rows=[{ENTITY: i} for i in ids]).to_dict()

    out = time_reads(spec, read, args.reads)
    frames = []
    probes = probe_ids(spec)
    for i in range(0, len(probes), PROBE_BATCH):
        read_at = time.time()
        frames.append(pd.DataFrame(read(probes[i:i + PROBE_BATCH])).assign(read_at=read_at))
    pd.concat(frames, ignore_index=True).to_parquet(folder / "feast_online.parquet", index=False)
    return {"latency": out, "peak_mb": peak_mb()}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = parser.add_subparsers(dest="command", required=True)
    for name in ("setup", "historical", "materialize", "online"):
        p = sub.add_parser(name)
        p.add_argument("--folder", required=True)
        p.add_argument("--repo", required=True)
        p.add_argument("--reads", type=int, default=1_000)
    args = parser.parse_args(argv)
    commands = {"setup": cmd_setup, "historical": cmd_historical, "materialize": cmd_materialize,
                "online": cmd_online}
    emit(commands[args.command](args))
    return 0


if __name__ == "__main__":
    sys.exit(main())
