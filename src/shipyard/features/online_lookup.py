"""Reading online features for entity rows with the TTL rule of `shipyard.features.timing`, exactly as the
offline join applies it: a value is present when its row exists and is valid at the request time, expired when
its row exists but is not (too old, or from after the request), missing when there is no row. Expired and
missing values are null."""

from __future__ import annotations

import datetime as dt
import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from shipyard.errors import ValidationError, did_you_mean
from shipyard.features.codec import decode_values, encode_key, entity_keys, utc_ns
from shipyard.features.online import (
    OnlineStore,
    ViewInfo,
    _entity_names,
    _instant_ns,
    _kind_words,
    _known,
    _name,
    _require_column,
    _version,
)
from shipyard.features.timing import live, to_utc

if TYPE_CHECKING:
    import pandas as pd

PRESENT = "present"
MISSING = "missing"
EXPIRED = "expired"
_STATUSES = [PRESENT, MISSING, EXPIRED]


@dataclass(frozen=True)
class Wanted:
    """Features asked for from one view version: its entity columns, the feature names and its TTL (seconds;
    None: values never expire)."""

    view: str
    version: int | str
    entities: Sequence[str]
    features: Sequence[str]
    ttl_seconds: float | None = None


class OnlineFeatures:
    """The result of `lookup`: one row per entity row asked for, with its index. `values` holds the entity
    columns then the features (null where not present); `status` has the same feature columns, each value
    (categorical) `present`, `missing` (no row for the entity) or `expired` (a row exists, but is not valid at
    the request time under the TTL). Either may be given as a function that builds the pair, called on first
    use of `values` or `status`."""

    def __init__(self, values: pd.DataFrame | None = None, status: pd.DataFrame | None = None, *,
                 build: Callable[[], tuple[pd.DataFrame, pd.DataFrame]] | None = None) -> None:
        if build is None and (values is None or status is None):
            raise ValueError("OnlineFeatures takes values and status, or build.")
        self._frames = None if build is not None else (values, status)
        self._build = build

    def _pair(self) -> tuple[pd.DataFrame, pd.DataFrame]:
        if self._frames is None:
            assert self._build is not None
            self._frames = self._build()
            self._build = None
        return self._frames

    @property
    def values(self) -> pd.DataFrame:
        return self._pair()[0]

    @property
    def status(self) -> pd.DataFrame:
        return self._pair()[1]

    def __repr__(self) -> str:
        return f"OnlineFeatures(values={self.values!r}, status={self.status!r})"


def lookup(store: OnlineStore, wanted: Sequence[Wanted], entity_rows: pd.DataFrame | Sequence[Mapping[str, Any]],
           at: Any = None, *, full_names: bool = False) -> OnlineFeatures:
    """Fetch the features of every view in `wanted` for each of `entity_rows` in one round trip, and judge each
    value with the TTL rule at `at` (a time, or one per entity row; default now, UTC; naive times are UTC).

    Feature columns are named by the feature; with `full_names` (needed when two views give the same name)
    "view:feature"."""
    import numpy as np
    import pandas as pd

    wanted = list(wanted)
    if not wanted:
        raise ValidationError("lookup needs at least one view in `wanted`.")
    requested = [(_name(w.view, "view"), _version(w.version), _entity_names(w.entities, w.view)) for w in wanted]
    rows = _entity_frame(entity_rows, [e for _, _, entities in requested for e in entities])
    count = len(rows)
    at_ns = _request_times(at, count)
    columns: list[str] = []
    for w in wanted:
        if isinstance(w.features, str) or not w.features:
            raise ValidationError(f"Give the features of view '{w.view}' as a non-empty list of names, got "
                                  f"{w.features!r}.")
        if w.ttl_seconds is not None and (not isinstance(w.ttl_seconds, int | float) or not w.ttl_seconds >= 0
                                          or math.isinf(w.ttl_seconds)):
            raise ValidationError(f"The TTL of view '{w.view}' must be a number of seconds >= 0 (or None for no "
                                  f"expiry), got {w.ttl_seconds!r}.")
        columns += [f"{w.view}:{f}" if full_names else str(f) for f in w.features]
    entity_columns = {e for _, _, entities in requested for e in entities}
    repeated = sorted({c for c in columns if columns.count(c) > 1 or c in entity_columns})
    if repeated:
        hint = "" if full_names else " Pass full_names=True to name the columns view:feature."
        raise ValidationError(f"More than one column would be named {', '.join(repeated)}.{hint}")

    keys_per_view: list[tuple[list[str], tuple[str | None, ...]]] = []
    for view, _, entities in requested:
        key_columns, kinds = entity_keys(rows, entities, f"the entity rows for view '{view}'")
        keys_per_view.append(([encode_key(k) for k in zip(*key_columns, strict=True)] if count else [], kinds))
    views = list(dict.fromkeys((v, n) for v, n, _ in requested))
    fetch = list(dict.fromkeys((v, n, k) for (v, n, _), (keys, _) in zip(requested, keys_per_view, strict=True)
                               for k in keys))
    infos, found = store._fetch(views, fetch)

    values: dict[str, Any] = {e: rows[e].to_numpy() for e in dict.fromkeys(e for _, _, es in requested for e in es)}
    status: dict[str, Any] = {}
    for w, (view, version, entities), (keys, kinds) in zip(wanted, requested, keys_per_view, strict=True):
        info = _known(infos, view, version, store)
        _check_request(info, entities, kinds, w.features)
        hits = [found.get((view, version, k)) for k in keys]
        event = np.array([h[0] if h is not None else 0 for h in hits], dtype=np.int64)
        here = np.array([h is not None for h in hits], dtype=bool)
        valid = here & live(event.astype("datetime64[ns]"), at_ns.astype("datetime64[ns]"), w.ttl_seconds)
        decoded = [decode_values(h[2]) if ok and h is not None else None
                   for h, ok in zip(hits, valid.tolist(), strict=True)]
        state = pd.Categorical.from_codes(np.where(valid, 0, np.where(here, 2, 1)), categories=_STATUSES)
        for name in w.features:
            column = f"{view}:{name}" if full_names else str(name)
            values[column] = _typed([d.get(name) if d is not None else None for d in decoded])
            status[column] = state
    return OnlineFeatures(pd.DataFrame(values, index=rows.index),
                          pd.DataFrame(status, index=rows.index, columns=columns))


def _check_request(info: ViewInfo, entities: tuple[str, ...], kinds: tuple[str | None, ...],
                   features: Sequence[str]) -> None:
    view, version = info.view, info.version
    if info.entities != entities:
        raise ValidationError(f"View '{view}' version {version} is keyed by {', '.join(info.entities)}; the "
                              f"request names {', '.join(entities)}.", view=view, version=version)
    for column, known, given in zip(entities, info.key_kinds, kinds, strict=True):
        if known and given and known != given:
            raise ValidationError(f"View '{view}' version {version} is keyed by {column} holding "
                                  f"{_kind_words(known)}; the entity rows give {_kind_words(given)}. Convert "
                                  f"{column} (for example .astype({known})).", view=view, column=column)
    for name in features:
        if name not in info.features:
            raise ValidationError(f"View '{view}' version {version} has no feature '{name}' in the online store."
                                  f"{did_you_mean(str(name), info.features)} Features: {', '.join(info.features)}.",
                                  view=view, feature=name)


def _typed(values: list[Any]) -> Any:
    """A feature column in the dtype its values share, nulls (None) standing for missing and expired values as
    the offline join gives them: timestamps as datetime64[ns, UTC], numbers as int64 (float64 with nulls),
    booleans as bool when none is null; anything else as objects."""
    import numpy as np
    import pandas as pd

    present = [v for v in values if v is not None]
    complete = len(present) == len(values)
    if present and all(isinstance(v, pd.Timestamp) for v in present):
        return pd.DatetimeIndex(values, tz="UTC").array
    if present and all(isinstance(v, int | float) and not isinstance(v, bool) for v in present):
        whole = complete and all(isinstance(v, int) for v in present)
        return np.array([np.nan if v is None else v for v in values], dtype=np.int64 if whole else np.float64)
    if present and complete and all(isinstance(v, bool) for v in present):
        return np.array(values, dtype=bool)
    column = np.empty(len(values), dtype=object)
    column[:] = values
    return column


def _entity_frame(entity_rows: Any, names: list[str]) -> pd.DataFrame:
    import pandas as pd

    if isinstance(entity_rows, pd.DataFrame):
        frame = entity_rows
    elif isinstance(entity_rows, Sequence) and not isinstance(entity_rows, str | bytes) and all(
            isinstance(r, Mapping) for r in entity_rows):
        frame = pd.DataFrame(list(entity_rows), columns=list(dict.fromkeys(names))) if not entity_rows \
            else pd.DataFrame(list(entity_rows))
    else:
        raise ValidationError(f"Entity rows must be a DataFrame or a list of dicts of entity keys, got "
                              f"{type(entity_rows).__name__}.")
    for name in dict.fromkeys(names):
        _require_column(frame, name, "the entity rows")
    return frame


def _request_times(at: Any, count: int) -> Any:
    import numpy as np
    import pandas as pd

    if at is None:
        return np.full(count, pd.Timestamp.now(tz="UTC").value, dtype=np.int64)
    if isinstance(at, dt.datetime | dt.date | pd.Timestamp | str | np.datetime64):
        return np.full(count, _instant_ns(at, "the request time `at`"), dtype=np.int64)
    times = to_utc(pd.Series(list(at)) if not isinstance(at, pd.Series) else at.reset_index(drop=True),
                   "the request time `at`")
    if len(times) != count:
        raise ValidationError(f"`at` gives {len(times)} request times for {count} entity rows: give one time, or "
                              "one per row.")
    if times.isna().any():
        raise ValidationError("`at` has empty request times: give a time for every row.")
    return utc_ns(times)


