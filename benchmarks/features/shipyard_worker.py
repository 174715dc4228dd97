"""Shipyard side of the features benchmark (project virtualenv, PYTHONPATH at the checkout's src, a workspace
in SHIPYARD_WORKSPACE): the same feature view, registered with ``shipyard.features.apply``, retrieved with
``get_historical``, materialised into the SQLite online store (the workspace's default) and read online as a
server would: one ``features.online_reader()`` made up front (as Feast's ``FeatureStore`` is), then per read
``reader.get(refs, rows)`` turned into a dict of columns, as Feast's ``get_online_features(...).to_dict()`` gives.

    setup --folder F                     init the workspace and apply the feature view
    historical --folder F                time get_historical(labels, refs)
    materialize --folder F               time materialize() into the online store, after a warm-up
    online --folder F --reads N          time online reads for 1 and for 100 customers, N reads each

Each command prints one ``BENCH_RESULT {json}`` line; memory is measured around the timed call (_shared.measured). While the feature
store's API is not in this checkout, each prints ``{"unavailable": reason}`` instead.
"""

from __future__ import annotations

import argparse
import datetime as dt
import inspect
import os
import sys
import time
from pathlib import Path
from typing import Any

from _shared import (CREATED_TS, ENTITY, EVENT_TS, FEATURES, FEATURES_FILE, LABEL_TS, LABELS_FILE, PROBE_BATCH,
                     TTL_SECONDS, VIEW, WARMUP_LABELS, emit, feature_refs, load_spec,
                     measured, peak_mb, probe_ids, time_reads, timed)

os.environ.setdefault("SHIPYARD_USER", "bench")
API = ("FeatureView", "apply", "get_historical", "materialize", "get_online")


def missing_api() -> str | None:
    """Why the feature store cannot be benchmarked from this checkout, or None when it can."""
    try:
        from shipyard import features
    except ImportError as exc:
        return f"shipyard.features does not import ({exc})"
    missing = [name for name in API if not hasattr(features, name)]
    return f"shipyard.features has no {', '.join(missing)} yet" if missing else None


def cmd_setup(args: argparse.Namespace) -> dict[str, Any]:
    import shipyard
    from shipyard import features

    root = shipyard.init_workspace(os.environ["SHIPYARD_WORKSPACE"])
    view = features.FeatureView(VIEW, entities=[ENTITY], timestamp=EVENT_TS, created_timestamp=CREATED_TS,
                                source=str(Path(args.folder) / FEATURES_FILE), features=dict(FEATURES),
                                ttl=f"{TTL_SECONDS // 86_400}d")
    seconds, _ = timed(lambda: features.apply([view]))
    return {"workspace": str(root), "apply_seconds": seconds}


def timestamp_argument(fn: Any) -> dict[str, str]:
    """The label rows' time column by name, for a `get_historical` that takes one (else it finds it itself)."""
    params = inspect.signature(fn).parameters
    return next(({name: LABEL_TS} for name in ("timestamp", "timestamp_column", "event_timestamp", "at")
                 if name in params), {})


def cmd_historical(args: argparse.Namespace) -> dict[str, Any]:
    import pandas as pd
    from shipyard import features

    folder = Path(args.folder)
    load_s, entity_df = timed(lambda: pd.read_parquet(folder / LABELS_FILE, columns=[ENTITY, LABEL_TS, "label"]))
    refs = feature_refs()
    extra = timestamp_argument(features.get_historical)
    features.get_historical(entity_df.head(WARMUP_LABELS), refs, **extra)  # off the clock
    seconds, result, memory = measured(lambda: features.get_historical(entity_df, refs, **extra))
    result.to_parquet(folder / "shipyard_historical.parquet", index=False)
    return {"label_rows": len(entity_df), "rows": len(result), "load_seconds": load_s, "seconds": seconds,
            **memory, "columns": [str(c) for c in result.columns]}


def cmd_materialize(args: argparse.Namespace) -> dict[str, Any]:
    from shipyard import features

    spec = load_spec(Path(args.folder))
    # Off the clock, as Feast's warm-up: imports and a first read of the source, loading a window that ends a
    # day before the data (nothing written; the watermark then stands there, and the timed load takes it all).
    before_data = dt.datetime.fromtimestamp(spec["start"] - 86_400, dt.timezone.utc)
    features.materialize(end=before_data)
    seconds, loads, memory = measured(features.materialize)
    return {"source_rows": spec["feature_rows"], "entities": spec["entities"],
            "entities_written": sum(load.loaded.written for load in loads), "seconds": seconds, **memory}


def as_frame(answer: Any) -> Any:
    import pandas as pd

    return answer if isinstance(answer, pd.DataFrame) else pd.DataFrame(answer)


def cmd_online(args: argparse.Namespace) -> dict[str, Any]:
    import pandas as pd
    from shipyard import features

    folder = Path(args.folder)
    spec = load_spec(folder)
    refs = feature_refs()

    reader = features.online_reader()

    def read(ids: list[int]) -> Any:
        values, _ = reader.get(refs, [{ENTITY: i} for i in ids])
        return {name: [row[name] for row in values] for name in (values[0] if values else {})}

    out = time_reads(spec, read, args.reads)
    frames = []
    probes = probe_ids(spec)
    for i in range(0, len(probes), PROBE_BATCH):
        read_at = time.time()
        frame = as_frame(read(probes[i:i + PROBE_BATCH]))
        if ENTITY not in frame.columns:
            frame.insert(0, ENTITY, probes[i:i + PROBE_BATCH])
        frames.append(frame.assign(read_at=read_at))
    pd.concat(frames, ignore_index=True).to_parquet(folder / "shipyard_online.parquet", index=False)
    return {"latency": out, "peak_mb": peak_mb()}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = parser.add_subparsers(dest="command", required=True)
    for name in ("setup", "historical", "materialize", "online"):
        p = sub.add_parser(name)
        p.add_argument("--folder", required=True)
        p.add_argument("--reads", type=int, default=1_000)
    args = parser.parse_args(argv)
    reason = missing_api()
    if reason is not None:
        emit({"unavailable": reason})
        return 0
    commands = {"setup": cmd_setup, "historical": cmd_historical, "materialize": cmd_materialize,
                "online": cmd_online}
    emit(commands[args.command](args))
    return 0


if __name__ == "__main__":
    sys.exit(main())
