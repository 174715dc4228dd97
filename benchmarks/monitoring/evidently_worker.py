"""Evidently side of the monitoring benchmark (peers' virtualenv): Evidently 0.7's DataDriftPreset with the
column types declared, on the Parquet files the Shipyard worker generated.

    drift --folder F --repeats R

Times ``Dataset.from_pandas`` for both sides plus ``Report([DataDriftPreset()]).run(...)`` (the Parquet load
apart). Evidently's own defaults pick the methods: for a reference above 1,000 rows, the Wasserstein distance
normed by the reference's standard deviation for numeric columns (more than 5 distinct values) and the
Jensen-Shannon distance for categorical ones, both drifting at a score >= 0.1 (evidently/legacy/calculations/
stattests/registry.py, wasserstein_distance_norm.py, jensenshannon.py). Prints one ``BENCH_RESULT {json}`` line.
"""

from __future__ import annotations

import argparse
import statistics
import sys
from pathlib import Path
from typing import Any

from _shared import WARMUP_ROWS, emit, library_versions, load_spec, peak_mb, read_parquet, timed

#: Evidently's display names of the default methods -> the names Shipyard gives them.
METHODS = {"Wasserstein distance (normed)": "wasserstein", "Jensen-Shannon distance": "jensenshannon"}


def run_report(reference: Any, current: Any, spec: dict[str, Any]) -> tuple[float, Any]:
    """(seconds spent in Dataset.from_pandas, the snapshot of the DataDriftPreset report)."""
    from evidently import DataDefinition, Dataset, Report
    from evidently.presets import DataDriftPreset

    definition = DataDefinition(numerical_columns=spec["numeric"], categorical_columns=spec["categorical"])
    dataset_s, (ref, cur) = timed(lambda: (Dataset.from_pandas(reference, data_definition=definition),
                                           Dataset.from_pandas(current, data_definition=definition)))
    return dataset_s, Report([DataDriftPreset()]).run(current_data=cur, reference_data=ref)


def verdicts(snapshot: Any) -> tuple[dict[str, dict[str, Any]], dict[str, Any]]:
    """Per column: method, score, threshold and verdict (score >= threshold, the rule of both default
    methods); and DriftedColumnsCount's value (count and share of drifted columns, by Evidently itself)."""
    columns: dict[str, dict[str, Any]] = {}
    counted: dict[str, Any] = {}
    for metric in snapshot.dict()["metrics"]:
        config = metric["config"]
        if config["type"].endswith(":ValueDrift"):
            score, threshold = float(metric["value"]), float(config["threshold"])
            columns[config["column"]] = {"method": METHODS.get(config["method"], config["method"]), "score": score,
                                         "threshold": threshold, "drifted": score >= threshold}
        elif config["type"].endswith(":DriftedColumnsCount"):
            counted = {"count": metric["value"]["count"], "share": metric["value"]["share"],
                       "drift_share": config.get("drift_share", 0.5)}
    return columns, counted


def cmd_drift(args: argparse.Namespace) -> dict[str, Any]:
    import evidently

    folder = Path(args.folder)
    spec = load_spec(folder)
    load_s, (reference, current) = timed(lambda: (read_parquet(folder / "reference.parquet"),
                                                  read_parquet(folder / "current.parquet")))
    after_load = peak_mb()
    run_report(reference.head(WARMUP_ROWS), current.head(WARMUP_ROWS), spec)  # imports, off the clock
    timings, dataset_timings, snapshot = [], [], None
    for _ in range(args.repeats):
        seconds, (dataset_s, snapshot) = timed(lambda: run_report(reference, current, spec))
        timings.append(seconds)
        dataset_timings.append(dataset_s)
    assert snapshot is not None
    columns, counted = verdicts(snapshot)
    return {"version": evidently.__version__, "rows": len(reference), "load_seconds": load_s,
            "seconds": statistics.median(timings), "timings": timings,
            "dataset_seconds": statistics.median(dataset_timings), "peak_mb_after_load": after_load,
            "peak_mb": peak_mb(), "libraries": library_versions(), "drifted_columns_count": counted,
            "dataset_drifted": counted["share"] >= counted["drift_share"] if counted else None, "columns": columns}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = parser.add_subparsers(dest="command", required=True)
    p = sub.add_parser("drift")
    p.add_argument("--folder", required=True)
    p.add_argument("--repeats", type=int, default=1)
    args = parser.parse_args(argv)
    emit({"drift": cmd_drift}[args.command](args))
    return 0


if __name__ == "__main__":
    sys.exit(main())
