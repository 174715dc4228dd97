"""Feature view definitions: checked when made, with errors naming the bad value, and a fingerprint that
follows what decides the values (keys, timestamps, source, features, TTL, the transform's code) and nothing else."""

from __future__ import annotations

import datetime as dt
from typing import Any

import pandas as pd
import pytest

from shipyard.errors import ValidationError
from shipyard.features import FeatureView
from shipyard.features.views import format_ttl, parse_ttl


def view(**changes: Any) -> FeatureView:
    args: dict[str, Any] = {"entities": ["customer_id"], "source": "transactions",
                            "features": {"spend": "float64", "orders": "int64"}, "ttl": "30d"}
    args.update(changes)
    return FeatureView(changes.pop("name", "stats"), **{k: v for k, v in args.items() if k != "name"})


def add_one(df: pd.DataFrame) -> pd.DataFrame:
    return df.assign(spend=df["spend"] + 1)


def add_one_reformatted(df: pd.DataFrame) -> pd.DataFrame:
    # a comment, and other spacing: the same code
    return df.assign(spend = df["spend"]  +  1)


def add_two(df: pd.DataFrame) -> pd.DataFrame:
    return df.assign(spend=df["spend"] + 2)


@pytest.mark.parametrize(("text", "seconds"), [
    ("30d", 30 * 86400), ("12h", 43200), ("90m", 5400), ("45s", 45), ("1d12h", 129600), ("0.5h", 1800),
    (dt.timedelta(hours=2), 7200), (60, 60), (2.5, 2.5), (0, 0), (None, None),
])
def test_ttl_forms(text: Any, seconds: float | None) -> None:
    assert parse_ttl(text) == seconds


@pytest.mark.parametrize("bad", ["30", "30x", "d", "", "-1d", "1d garbage", -5, True, [1], float("nan")])
def test_bad_ttls_are_refused_naming_the_value(bad: Any) -> None:
    with pytest.raises(ValidationError, match="TTL"):
        parse_ttl(bad)


def test_ttl_formatting() -> None:
    assert [format_ttl(s) for s in (86400 * 30, 7200, 5400, 45, 1.5, None)] == ["30d", "2h", "90m", "45s", "1.5s",
                                                                                 "never"]


@pytest.mark.parametrize(("changes", "fragment"), [
    ({"name": "bad name!"}, "'bad name!'"),
    ({"name": "1stats"}, "'1stats'"),
    ({"entities": []}, "entities must be a non-empty list"),
    ({"entities": "customer_id"}, "entities must be a non-empty list"),
    ({"entities": ["a,b"]}, "'a,b'"),
    ({"features": {}}, "features must map"),
    ({"features": {"spend": "float"}}, "unknown type 'float'. Did you mean 'float64'?"),
    ({"features": {"a:b": "float64"}}, "'a:b'"),
    ({"features": {"customer_id": "int64"}}, "'customer_id' for more than one role"),
    ({"timestamp": "spend", "features": {"spend": "float64"}}, "'spend' for more than one role"),
    ({"source": " "}, "source must name a dataset"),
    ({"ttl": "3 weeks"}, "'3 weeks'"),
    ({"transform": "not a function"}, "transform must be a function"),
    ({"created_timestamp": ""}, "created timestamp column"),
])
def test_bad_definitions_are_refused_when_made(changes: dict[str, Any], fragment: str) -> None:
    with pytest.raises(ValidationError) as caught:
        view(**changes)
    assert fragment in str(caught.value)


def test_the_fingerprint_follows_what_decides_the_values() -> None:
    base = view(transform=add_one)
    assert view(transform=add_one).fingerprint == base.fingerprint
    assert view(transform=add_one, description="other words").fingerprint == base.fingerprint
    assert view(transform=add_one, features={"orders": "int64", "spend": "float64"}).fingerprint == base.fingerprint
    assert view(transform=add_one, ttl="720h").fingerprint == base.fingerprint  # the same duration
    assert view(transform=add_one_reformatted).fingerprint == base.fingerprint  # formatting and comments
    changed = [view(transform=add_two), view(), view(transform=add_one, ttl="29d"),
               view(transform=add_one, source="transactions@2"), view(transform=add_one, entities=["account_id"]),
               view(transform=add_one, timestamp="ts"), view(transform=add_one, created_timestamp="written"),
               view(transform=add_one, features={"spend": "float32", "orders": "int64"})]
    assert len({v.fingerprint for v in changed} | {base.fingerprint}) == len(changed) + 1


def test_the_definition_keeps_where_the_transform_lives() -> None:
    made = view(transform=add_one).definition()
    assert made["transform"]["module"] == __name__ and made["transform"]["qualname"] == "add_one"
    assert made["transform"]["file"] == __file__ and made["ttl_seconds"] == 30 * 86400
    assert made["entities"] == ["customer_id"] and made["source"] == "transactions"


def test_importing_the_feature_store_loads_nothing_heavy() -> None:
    import json
    import subprocess
    import sys

    probe = "import json, sys\nimport shipyard.features\nprint(json.dumps(sorted(sys.modules)))"
    loaded = set(json.loads(subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True,
                                           check=True).stdout))
    assert [m for m in ("pandas", "numpy", "pyarrow", "duckdb", "sqlalchemy") if m in loaded] == []
