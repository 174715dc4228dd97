"""Data of the features benchmark, and the check of both tools' answers (project virtualenv).

    generate --folder F --feature-rows N --label-rows M
        F/features.parquet: N rows, 20 per customer (customer_id, event_ts, created_ts, f1, f2, f3), in random
        order, about 5% of them a later correction of the row before (same event_ts, later created_ts);
        F/labels.parquet: M entity rows (customer_id, event_timestamp, label, case), unique per
        (customer_id, event_timestamp); F/spec.json.
    compare --folder F
        both tools' retrieved training sets and online values against a reference computed here with
        pandas.merge_asof under the documented rule, and against each other.

The data ends an hour before it is generated, so that the online reads, made minutes later, see the latest
value of most customers within the TTL.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from _shared import (CREATED_TS, ENTITY, EVENT_TS, FEATURES, FEATURES_FILE, LABEL_TS, LABELS_FILE, SPEC_FILE,
                     TTL_SECONDS, VIEW, emit, timed)

PER_ENTITY = 20
DAYS = 90
FIRST_ID = 1_000
#: Share of feature rows that repeat the previous row's event time with a later created time.
TIE_SHARE = 0.05
#: Planted label rows (share of all): exactly at a feature row's event time, exactly a TTL after it, one second
#: past that, and for customers the feature table does not know.
CASES = {"at_event": 0.02, "at_ttl_edge": 0.02, "past_ttl_edge": 0.01, "unknown_entity": 0.01}


def utc(seconds: np.ndarray) -> pd.Series:
    return pd.Series(pd.to_datetime(seconds, unit="s", utc=True)).astype("datetime64[us, UTC]")


def cmd_generate(args: argparse.Namespace) -> dict[str, Any]:
    folder = Path(args.folder)
    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(args.seed)
    entities = max(1, args.feature_rows // PER_ENTITY)
    end = int(time.time()) - 3_600
    start = end - DAYS * 86_400
    ids = np.arange(FIRST_ID, FIRST_ID + entities, dtype=np.int64)

    event = start + np.sort(rng.integers(0, DAYS * 86_400, size=(entities, PER_ENTITY)), axis=1)
    created = event + rng.integers(0, 3_600, size=event.shape)
    tie = rng.random(event.shape) < TIE_SHARE
    tie[:, 0] = False
    for j in range(1, PER_ENTITY):  # a correction: the same event time as the row before, created later
        t = tie[:, j]
        event[t, j] = event[t, j - 1]
        created[t, j] = created[t, j - 1] + rng.integers(1, 600, size=int(t.sum()))
    n = entities * PER_ENTITY
    order = rng.permutation(n)
    features = pd.DataFrame({
        ENTITY: np.repeat(ids, PER_ENTITY)[order],
        EVENT_TS: utc(event.reshape(-1)[order]),
        CREATED_TS: utc(created.reshape(-1)[order]),
        "f1": rng.normal(size=n),
        "f2": rng.gamma(2.0, 3.0, size=n),
        "f3": rng.integers(0, 1_000, size=n, dtype=np.int64),
    })
    features.to_parquet(folder / FEATURES_FILE, index=False)

    want = args.label_rows
    m = int(want * 1.05) + 10
    case = np.full(m, "random", dtype=object)
    cut = 0
    for name, share in CASES.items():
        k = int(round(m * share))
        case[cut:cut + k] = name
        cut += k
    rows = rng.integers(0, n, size=m)  # a random feature row to plant the edge cases on
    row_entity, row_event = np.repeat(ids, PER_ENTITY)[rows], event.reshape(-1)[rows]
    label_id = np.where(case == "random", rng.choice(ids, size=m), row_entity)
    label_id = np.where(case == "unknown_entity", FIRST_ID + entities + rng.integers(0, 1_000_000, size=m),
                        label_id)
    ts = rng.integers(start - 3 * 86_400, end + 10 * 86_400, size=m)
    ts = np.where(case == "at_event", row_event, ts)
    ts = np.where(case == "at_ttl_edge", row_event + TTL_SECONDS, ts)
    ts = np.where(case == "past_ttl_edge", row_event + TTL_SECONDS + 1, ts)
    labels = pd.DataFrame({ENTITY: label_id.astype(np.int64), LABEL_TS: utc(ts),
                           "label": rng.integers(0, 2, size=m), "case": case})
    labels = labels.drop_duplicates([ENTITY, LABEL_TS]).sample(frac=1.0, random_state=args.seed)
    labels = labels.head(want).reset_index(drop=True)
    labels["case"] = labels["case"].astype(str)
    labels.to_parquet(folder / LABELS_FILE, index=False)

    spec = {"feature_rows": n, "label_rows": len(labels), "entities": entities, "per_entity": PER_ENTITY,
            "first_id": FIRST_ID, "start": start, "end": end, "ttl_seconds": TTL_SECONDS,
            "tie_rows": int(tie.sum()), "cases": labels["case"].value_counts().to_dict(), "view": VIEW,
            "features": FEATURES}
    (folder / SPEC_FILE).write_text(json.dumps(spec, indent=2))
    return spec


def epoch_us(values: pd.Series) -> np.ndarray:
    """UTC timestamps as integer microseconds (naive values taken as UTC)."""
    s = pd.to_datetime(values, utc=True)
    return s.dt.tz_convert("UTC").dt.tz_localize(None).astype("datetime64[us]").to_numpy().astype(np.int64)


def stamped(features: pd.DataFrame) -> pd.DataFrame:
    return features.assign(_event=epoch_us(features[EVENT_TS]), _created=epoch_us(features[CREATED_TS]))


def feature_column(frame: pd.DataFrame, name: str) -> str:
    """The column holding feature `name` in a tool's answer: `f1`, `customer_stats:f1` or `customer_stats__f1`."""
    for candidate in (name, f"{VIEW}:{name}", f"{VIEW}__{name}"):
        if candidate in frame.columns:
            return candidate
    raise KeyError(f"no column for feature {name!r} in {list(frame.columns)}")


def reference_historical(features: pd.DataFrame, labels: pd.DataFrame) -> pd.DataFrame:
    """The documented rule: per label row, the feature row of its customer with the latest event time not after
    the label's time (ties: the latest created time), if no older than the TTL (inclusive); otherwise nulls."""
    f = stamped(features)
    f["_tied"] = f.groupby([ENTITY, "_event"])["_event"].transform("size") > 1
    f = f.sort_values([ENTITY, "_event", "_created"]).drop_duplicates([ENTITY, "_event"], keep="last")
    f = f.sort_values("_event")
    lab = labels[[ENTITY, LABEL_TS]].assign(_at=epoch_us(labels[LABEL_TS])).sort_values("_at")
    joined = pd.merge_asof(lab, f[[ENTITY, "_event", "_tied", *FEATURES]], left_on="_at", right_on="_event", by=ENTITY,
                           direction="backward", allow_exact_matches=True)
    expired = (joined["_at"] - joined["_event"]) > TTL_SECONDS * 1_000_000
    out = joined[[ENTITY, "_at"]].copy()
    out["_age"] = joined["_at"] - joined["_event"]  # of the latest row not after the label, expired or not
    out["_tied"] = joined["_tied"].fillna(False).astype(bool) & ~expired
    for name in FEATURES:
        out[name] = joined[name].astype("float64").where(~expired)
    return out


def keyed(frame: pd.DataFrame, ts_column: str) -> pd.DataFrame:
    out = pd.DataFrame({ENTITY: frame[ENTITY].astype(np.int64).to_numpy(), "_at": epoch_us(frame[ts_column])})
    for name in FEATURES:
        out[name] = pd.to_numeric(frame[feature_column(frame, name)], errors="coerce").astype("float64").to_numpy()
    return out


def differences(a: pd.DataFrame, b: pd.DataFrame, on: list[str]) -> pd.DataFrame:
    """Rows of `a` and `b` joined on `on` whose features differ (NaN equals NaN), with both sides' values."""
    m = a.merge(b, on=on, how="inner", suffixes=("_a", "_b"))
    differ = np.zeros(len(m), dtype=bool)
    for name in FEATURES:
        x, y = m[f"{name}_a"].to_numpy(), m[f"{name}_b"].to_numpy()
        differ |= ~((x == y) | (np.isnan(x) & np.isnan(y)))
    return m[differ]


def which_rows(diff: pd.DataFrame, f: pd.DataFrame) -> dict[str, int]:
    """For answers with another value than the rule's: the feature row the tool took (found by customer and
    f1, a continuous random value) against the rule's, by event and created time."""
    rows = f[[ENTITY, "f1", "_event", "_created"]]
    a = diff.merge(rows.rename(columns={"f1": "f1_a", "_event": "ev_a", "_created": "cr_a"}), on=[ENTITY, "f1_a"],
                   how="left")
    a = a.merge(rows.rename(columns={"f1": "f1_b", "_event": "ev_b", "_created": "cr_b"}), on=[ENTITY, "f1_b"],
                how="left")
    same = a["ev_a"] == a["ev_b"]
    return {"same event time, earlier created time": int((same & (a["cr_a"] < a["cr_b"])).sum()),
            "same event time, later created time": int((same & (a["cr_a"] > a["cr_b"])).sum()),
            "an older event time": int((a["ev_a"] < a["ev_b"]).sum()),
            "a newer event time": int((a["ev_a"] > a["ev_b"]).sum()),
            "not found": int(a["ev_a"].isna().sum())}


def compare_historical(tool: pd.DataFrame, ref: pd.DataFrame, cases: pd.DataFrame, f: pd.DataFrame
                       ) -> dict[str, Any]:
    """Rows missing from or extra in the tool's answer, and rows whose values differ from the reference, broken
    down by the planted case and by kind (a value where the reference has none, none where it has one, two
    different values; for the last, which feature row the tool took instead)."""
    key = [ENTITY, "_at"]
    dup = int(tool.duplicated(key).sum())
    ref_keys = ref[key].merge(cases, on=key, how="left")
    present = ref_keys.merge(tool[key].drop_duplicates(), on=key, how="left", indicator=True)
    missing = present[present["_merge"] == "left_only"]
    extra = tool[key].drop_duplicates().merge(ref[key], on=key, how="left", indicator=True)
    diff = differences(tool, ref, key).merge(cases, on=key, how="left")
    tool_null = diff[[f"{n}_a" for n in FEATURES]].isna().all(axis=1)
    ref_null = diff[[f"{n}_b" for n in FEATURES]].isna().all(axis=1)
    kinds = {"value where the rule gives none": int((~tool_null & ref_null).sum()),
             "none where the rule gives a value": int((tool_null & ~ref_null).sum()),
             "another value": int((~tool_null & ~ref_null).sum())}
    other = diff[~tool_null & ~ref_null]
    missing_by_case = missing["case"].value_counts().to_dict()
    # The bounds of the rule: a row exactly as old as the label (age 0), exactly a TTL old, one second more.
    got = ref[key + ["_age"]].merge(tool, on=key, how="left")
    has_value = got[list(FEATURES)].notna().any(axis=1)
    bounds = {}
    for name, age in (("age 0", 0), ("age = TTL", TTL_SECONDS * 1_000_000),
                      ("age = TTL + 1 s", (TTL_SECONDS + 1) * 1_000_000)):
        at = got["_age"] == age
        bounds[name] = {"rows": int(at.sum()), "with_values": int((at & has_value).sum())}
    # Why rows are missing: does the rule give them a value, or nulls?
    missing_vals = missing.merge(ref, on=key, how="left")
    missing_null = int(missing_vals[list(FEATURES)].isna().all(axis=1).sum())
    return {"rows": len(tool), "duplicate_rows": dup, "missing_rows": len(missing),
            "missing_rows_null_by_rule": missing_null, "missing_by_case": missing_by_case, "bounds": bounds,
            "extra_rows": int((extra["_merge"] == "left_only").sum()), "mismatches": len(diff),
            "mismatch_kinds": kinds, "other_value_rows": which_rows(other, f),
            "tied_mismatches": int(diff["_tied"].sum()),
            "mismatches_by_case": diff["case"].value_counts().to_dict(),
            "examples": json.loads(diff.head(5).to_json(orient="records"))}


def compare_online(tool: pd.DataFrame, f: pd.DataFrame) -> dict[str, Any]:
    """A tool's online values for the probe customers against the latest row of each (event time, then created
    time), and whether that row was within the TTL when the tool read it."""
    latest = f.sort_values(["_event", "_created"]).drop_duplicates(ENTITY, keep="last")
    got = tool[[ENTITY, *[feature_column(tool, n) for n in FEATURES], "read_at"]].copy()
    got.columns = [ENTITY, *FEATURES, "read_at"]
    m = got.merge(latest[[ENTITY, "_event", *FEATURES]], on=ENTITY, how="left", suffixes=("", "_latest"))
    stale = (m["read_at"].astype("float64") * 1e6 - m["_event"]) > TTL_SECONDS * 1e6
    same = np.ones(len(m), dtype=bool)
    got_null = np.ones(len(m), dtype=bool)
    for name in FEATURES:
        x, y = m[name].astype("float64").to_numpy(), m[f"{name}_latest"].astype("float64").to_numpy()
        same &= x == y
        got_null &= np.isnan(x)
    return {"entities": len(m), "latest_value": int(same.sum()), "null": int(got_null.sum()),
            "other": int((~same & ~got_null).sum()), "expired_at_read": int(stale.sum()),
            "latest_value_though_expired": int((same & stale).sum()),
            "null_and_expired": int((got_null & stale).sum()), "null_though_valid": int((got_null & ~stale).sum())}


def cmd_compare(args: argparse.Namespace) -> dict[str, Any]:
    folder = Path(args.folder)
    features, labels = pd.read_parquet(folder / FEATURES_FILE), pd.read_parquet(folder / LABELS_FILE)
    ref_s, ref = timed(lambda: reference_historical(features, labels))
    cases = pd.DataFrame({ENTITY: labels[ENTITY].to_numpy(), "_at": epoch_us(labels[LABEL_TS]),
                          "case": labels["case"].to_numpy()})
    ref_nulls = int(ref[list(FEATURES)].isna().all(axis=1).sum())
    f = stamped(features)
    out: dict[str, Any] = {"reference_seconds": ref_s, "label_rows": len(labels), "reference_null_rows": ref_nulls,
                           "reference_tied_rows": int(ref["_tied"].sum()),
                           "historical": {}, "online": {}}
    answers = {}
    for tool in ("feast", "shipyard"):
        path = folder / f"{tool}_historical.parquet"
        if path.exists():
            answers[tool] = keyed(pd.read_parquet(path), LABEL_TS)
            out["historical"][tool] = compare_historical(answers[tool], ref, cases, f)
        path = folder / f"{tool}_online.parquet"
        if path.exists():
            out["online"][tool] = compare_online(pd.read_parquet(path), f)
    if len(answers) == 2:
        key = [ENTITY, "_at"]
        a, b = answers["feast"].drop_duplicates(key), answers["shipyard"].drop_duplicates(key)
        keys = a[key].merge(b[key], on=key, how="outer", indicator=True)["_merge"]
        out["feast_vs_shipyard"] = {"mismatches": len(differences(a, b, key)),
                                    "only_feast": int((keys == "left_only").sum()),
                                    "only_shipyard": int((keys == "right_only").sum())}
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = parser.add_subparsers(dest="command", required=True)
    p = sub.add_parser("generate")
    p.add_argument("--folder", required=True)
    p.add_argument("--feature-rows", type=int, required=True)
    p.add_argument("--label-rows", type=int, required=True)
    p.add_argument("--seed", type=int, default=0)
    p = sub.add_parser("compare")
    p.add_argument("--folder", required=True)
    args = parser.parse_args(argv)
    emit({"generate": cmd_generate, "compare": cmd_compare}[args.command](args))
    return 0


if __name__ == "__main__":
    sys.exit(main())
