"""The online store: the latest feature values per entity key, written by materialisation and read by the
serving path. One interface (`OnlineStore`) with two backends, SQLite (a file in the workspace) and Redis,
and the read that applies the TTL rule of `shipyard.features.timing` exactly as the offline join does.

Values are kept per (view, version, entity key): a new version of a view starts empty, so values computed
by an older definition are never served for a newer one. Each stored row keeps its event time and created
time; a write replaces a row only with one at least as recent by (event time, created time), so loads
arriving out of order never move a value backwards."""

from __future__ import annotations

import datetime as dt
import math
import re
from abc import ABC, abstractmethod
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field, replace
from typing import TYPE_CHECKING, Any

from shipyard.errors import ConflictError, NotFoundError, ValidationError, did_you_mean
from shipyard.features.codec import (
    NO_CREATED,
    decode_values,
    encode_key,
    entity_keys,
    key_kind,
    utc_ns,
    value_encoder,
)
from shipyard.features.timing import live, to_utc

if TYPE_CHECKING:
    import pandas as pd

    from shipyard.context import Context

#: An entity key: one whole number or string per entity column of the view.
Key = tuple[int | str, ...]

PRESENT = "present"
MISSING = "missing"
EXPIRED = "expired"
_STATUSES = [PRESENT, MISSING, EXPIRED]

_NAME = re.compile(r"[A-Za-z0-9_.-]{1,200}")


@dataclass(frozen=True)
class ViewInfo:
    """What the store knows of one (view, version): its entity columns and their key kinds ("int" or "str";
    None until a row fixes it), the features written so far, and the materialisation watermark (UTC ns)."""

    view: str
    version: str
    entities: tuple[str, ...]
    key_kinds: tuple[str | None, ...]
    features: tuple[str, ...] = ()
    watermark_ns: int | None = None

    @property
    def watermark(self) -> pd.Timestamp | None:
        import pandas as pd

        return None if self.watermark_ns is None else pd.Timestamp(self.watermark_ns, tz="UTC")

    def to_json(self) -> dict[str, Any]:
        return {"entities": list(self.entities), "key_kinds": list(self.key_kinds), "features": list(self.features),
                "watermark_ns": self.watermark_ns}

    @classmethod
    def from_json(cls, view: str, version: str, data: Mapping[str, Any]) -> ViewInfo:
        return cls(view, version, tuple(data["entities"]), tuple(data["key_kinds"]), tuple(data["features"]),
                   data["watermark_ns"])


@dataclass(frozen=True)
class StoredRow:
    """One entity's current values: event time and created time (UTC ns; created None when not given)."""

    event_ns: int
    created_ns: int | None
    values: dict[str, Any]

    @property
    def event_time(self) -> pd.Timestamp:
        import pandas as pd

        return pd.Timestamp(self.event_ns, tz="UTC")


@dataclass(frozen=True)
class EncodedRow:
    """A row as the backends store it: the entity key as text, its order fields and its values as JSON."""

    key: str
    event_ns: int
    created_ns: int  # NO_CREATED when the frame had no created time
    payload: str


#: Called inside a backend's write transaction with the stored info (None for a new view version);
#: returns the info to store, or raises to abandon the write.
InfoCheck = Callable[[ViewInfo | None], ViewInfo]


class OnlineStore(ABC):
    """The latest feature values per entity key, for many views, read in one round trip per call."""

    url: str

    # -- the backend's part: one transaction to write, one round trip to read --------------------------

    @abstractmethod
    def _commit(self, view: str, version: str, check: InfoCheck, rows: Iterable[EncodedRow]) -> int:
        """In one transaction: read the view version's info and pass it to `check`; upsert `rows` (each only
        over a row older by (event_ns, created_ns), ties going to the new one); store the info `check` gave.
        Returns how many rows took effect. On any error nothing is kept."""

    @abstractmethod
    def _fetch(self, views: Sequence[tuple[str, str]], keys: Sequence[tuple[str, str, str]]
               ) -> tuple[dict[tuple[str, str], ViewInfo], dict[tuple[str, str, str], tuple[int, int, str]]]:
        """In one round trip: the info of each of `views` that exists, and (event_ns, created_ns, payload) of
        each (view, version, key) that exists."""

    @abstractmethod
    def views(self) -> list[ViewInfo]:
        """Every (view, version) the store holds values or a watermark for."""

    @abstractmethod
    def _drop(self, view: str, version: str | None) -> int:
        """Delete one version's rows and info (every version when None); returns the rows deleted."""

    @abstractmethod
    def clear(self) -> None:
        """Delete everything this store holds (for Redis: every key of its namespace)."""

    @abstractmethod
    def close(self) -> None:
        """Release connections."""

    def __enter__(self) -> OnlineStore:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.url!r})"

    # -- the interface ---------------------------------------------------------------------------------

    def write(self, view: str, version: int | str, entities: Sequence[str], frame: pd.DataFrame, *,
              timestamp: str = "event_timestamp", created_timestamp: str | None = None) -> int:
        """Upsert the rows of `frame` (entity columns, `timestamp`, optional `created_timestamp`, and the
        features in every other column), keeping per entity key only the latest row by (event time, created
        time, then row order). A stored row that is more recent is kept. Returns how many rows took effect."""
        return self._write(view, version, entities, frame, timestamp, created_timestamp, lambda info: info)

    def read(self, requests: Sequence[tuple[str, int | str, Key]]) -> list[StoredRow | None]:
        """The stored row of each (view, version, entity key), None where there is none; one round trip."""
        views: list[tuple[str, str]] = []
        wanted: list[tuple[str, str, str, tuple[str, ...]]] = []
        for view, version, key in requests:
            name = (_name(view, "view"), _version(version))
            views.append(name)
            wanted.append((*name, *_request_key(key)))
        infos, found = self._fetch(list(dict.fromkeys(views)), list(dict.fromkeys(w[:3] for w in wanted)))
        rows: list[StoredRow | None] = []
        for view, version, text, kinds in wanted:
            _check_key(_known(infos, view, version, self), kinds, text)
            hit = found.get((view, version, text))
            rows.append(None if hit is None else _stored(*hit))
        return rows

    def info(self, view: str, version: int | str) -> ViewInfo | None:
        """What the store knows of a view version, or None when nothing was written for it."""
        name = (_name(view, "view"), _version(version))
        return self._fetch([name], [])[0].get(name)

    def watermark(self, view: str, version: int | str) -> pd.Timestamp | None:
        """The event time up to which the view version was materialised, or None."""
        info = self.info(view, version)
        return None if info is None else info.watermark

    def set_watermark(self, view: str, version: int | str, at: Any) -> None:
        """Move the watermark (back, to reload from an earlier time; None to reload everything)."""
        view, version = _name(view, "view"), _version(version)
        ns = None if at is None else _instant_ns(at, "the watermark")

        def check(info: ViewInfo | None) -> ViewInfo:
            if info is None:
                raise NotFoundError(f"Nothing was written to the online store for view '{view}' version {version}, "
                                    "so it has no watermark to set. Materialise it first.", view=view, version=version)
            return replace(info, watermark_ns=ns)

        self._commit(view, version, check, ())

    def drop(self, view: str, version: int | str | None = None) -> int:
        """Delete a view's values and watermark (one version, or all of them); returns the rows deleted."""
        return self._drop(_name(view, "view"), None if version is None else _version(version))

    # -- shared by write and materialisation -----------------------------------------------------------

    def _write(self, view: str, version: int | str, entities: Sequence[str], frame: pd.DataFrame, timestamp: str,
               created_timestamp: str | None, then: Callable[[ViewInfo], ViewInfo]) -> int:
        view, version = _name(view, "view"), _version(version)
        prepared = _prepare(view, entities, frame, timestamp, created_timestamp)

        def check(info: ViewInfo | None) -> ViewInfo:
            merged = _merge_info(info, view, version, prepared)
            return then(merged)

        return self._commit(view, version, check, prepared.rows())


# -- preparing a frame for a write ---------------------------------------------------------------------


@dataclass
class _Prepared:
    entities: tuple[str, ...]
    kinds: tuple[str | None, ...]
    features: tuple[str, ...]
    keys: list[str]
    event_ns: list[int]
    created_ns: list[int]
    encoders: list[Callable[[int], Any]] = field(default_factory=list)

    def rows(self) -> Iterator[EncodedRow]:
        import json

        names = self.features
        for i, key in enumerate(self.keys):
            values = {name: encode(i) for name, encode in zip(names, self.encoders, strict=True)}
            yield EncodedRow(key, self.event_ns[i], self.created_ns[i],
                             json.dumps(values, separators=(",", ":"), ensure_ascii=False))


def _prepare(view: str, entities: Sequence[str], frame: pd.DataFrame, timestamp: str,
             created_timestamp: str | None) -> _Prepared:
    import numpy as np
    import pandas as pd

    if not isinstance(frame, pd.DataFrame):
        raise ValidationError(f"Rows for view '{view}' must be a pandas DataFrame, got {type(frame).__name__}.")
    entities = _entity_names(entities, view)
    needed = [*entities, timestamp] + ([created_timestamp] if created_timestamp else [])
    for column in needed:
        _require_column(frame, column, f"the rows for view '{view}'")
    if len(set(map(str, frame.columns))) != frame.shape[1]:
        raise ValidationError(f"The rows for view '{view}' have repeated column names: make them unique.")
    features = tuple(str(c) for c in frame.columns if c not in needed)
    if not features:
        raise ValidationError(f"The rows for view '{view}' hold no feature columns besides {', '.join(needed)}.")
    event = to_utc(frame[timestamp].reset_index(drop=True), f"{view}.{timestamp}")
    if event.isna().any():
        raise ValidationError(f"{view}.{timestamp} has {int(event.isna().sum())} empty event times: every row needs "
                              "one.", column=timestamp)
    event_ns = utc_ns(event)
    if created_timestamp:
        created = to_utc(frame[created_timestamp].reset_index(drop=True), f"{view}.{created_timestamp}")
        created_ns = np.where(created.isna().to_numpy(), NO_CREATED, utc_ns(created))
    else:
        created_ns = np.full(len(frame), NO_CREATED, dtype=np.int64)
    keyed = frame.reset_index(drop=True)
    columns, kinds = entity_keys(keyed, entities, f"view '{view}'")
    keys = [encode_key(k) for k in zip(*columns, strict=True)] if len(keyed) else []
    # The latest row per key: order by (event, created, row), keep each key's last.
    order = np.lexsort((np.arange(len(keyed)), created_ns, event_ns))
    latest: dict[str, int] = {}
    for i in order.tolist():
        latest[keys[i]] = i
    chosen = sorted(latest.values())
    picked = keyed.iloc[chosen].reset_index(drop=True)
    encoders = [value_encoder(picked[name], f"{view}.{name}") for name in features]
    return _Prepared(entities, kinds, features, [keys[i] for i in chosen],
                     [int(event_ns[i]) for i in chosen], [int(created_ns[i]) for i in chosen], encoders)


def _merge_info(info: ViewInfo | None, view: str, version: str, prepared: _Prepared) -> ViewInfo:
    if info is None:
        return ViewInfo(view, version, prepared.entities, prepared.kinds, prepared.features)
    if info.entities != prepared.entities:
        raise ValidationError(f"View '{view}' version {version} is keyed by {', '.join(info.entities)} in the online "
                              f"store; these rows are keyed by {', '.join(prepared.entities)}. Keep the entity columns "
                              "of a version, or register a new version.", view=view, version=version)
    kinds = []
    for column, known, given in zip(info.entities, info.key_kinds, prepared.kinds, strict=True):
        if known and given and known != given:
            raise ValidationError(f"{view}.{column} holds {_kind_words(known)} in the online store; these rows give "
                                  f"{_kind_words(given)}. Convert the column (for example .astype({known})) so the "
                                  "keys match.", view=view, column=column)
        kinds.append(known or given)
    features = info.features + tuple(f for f in prepared.features if f not in info.features)
    return replace(info, key_kinds=tuple(kinds), features=features)


# -- reading with the TTL rule -------------------------------------------------------------------------


@dataclass(frozen=True)
class Wanted:
    """Features asked for from one view version: its entity columns, the feature names and its TTL (seconds;
    None: values never expire)."""

    view: str
    version: int | str
    entities: Sequence[str]
    features: Sequence[str]
    ttl_seconds: float | None = None


@dataclass(frozen=True)
class OnlineFeatures:
    """The result of `lookup`: one row per entity row asked for, with its index. `values` holds the entity columns then the
    features (null where not present); `status` has the same feature columns, each value (categorical) `present`,
    `missing` (no row for the entity) or `expired` (a row exists, but is not valid at the request time under
    the TTL)."""

    values: pd.DataFrame
    status: pd.DataFrame


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
    repeated = sorted({c for c in columns if columns.count(c) > 1})
    if repeated:
        hint = "" if full_names else " Pass full_names=True to name the columns view:feature."
        raise ValidationError(f"More than one feature would be named {', '.join(repeated)}.{hint}")

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
    return OnlineFeatures(pd.DataFrame(values, index=rows.index), pd.DataFrame(status, index=rows.index, columns=columns))


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


# -- materialisation -----------------------------------------------------------------------------------


@dataclass(frozen=True)
class Materialized:
    """What one materialisation did: the rows in its window, the rows that took effect, and the watermark
    before and after (UTC; None when there is none)."""

    view: str
    version: str
    rows_in_window: int
    written: int
    watermark_before: pd.Timestamp | None
    watermark_after: pd.Timestamp | None


def materialize_frame(store: OnlineStore, view: str, version: int | str, entities: Sequence[str],
                      frame: pd.DataFrame, *, timestamp: str = "event_timestamp",
                      created_timestamp: str | None = None, start: Any = None, end: Any = None) -> Materialized:
    """Load the rows of `frame` whose event time is in (watermark, end] — (start, end] when the view version has
    no watermark yet; no bound where None — keeping the latest per entity key, and advance the watermark to
    `end` (or, without `end`, to the latest event time loaded) in the same transaction as the rows, so an
    interrupted load leaves the old state or the new one. Another load moving the watermark in between is a
    ConflictError; run it again."""
    import pandas as pd

    view, version = _name(view, "view"), _version(version)
    _require_column(frame, timestamp, f"the rows for view '{view}'")
    before = store.info(view, version)
    before_ns = before.watermark_ns if before is not None else None
    lower = before_ns if before_ns is not None else (None if start is None else _instant_ns(start, "start"))
    upper = None if end is None else _instant_ns(end, "end")
    event = pd.Series(utc_ns(to_utc(frame[timestamp].reset_index(drop=True), f"{view}.{timestamp}")))
    mask = pd.Series(True, index=event.index)
    if lower is not None:
        mask &= event > lower
    if upper is not None:
        mask &= event <= upper
    window = frame.reset_index(drop=True)[mask.to_numpy()]
    after_ns = upper if upper is not None else (int(event[mask].max()) if len(window) else before_ns)
    if before_ns is not None and after_ns is not None and after_ns < before_ns:
        after_ns = before_ns  # a window ending behind the watermark loads nothing new and keeps it
    if not len(window) and after_ns == before_ns:
        return Materialized(view, version, 0, 0, _ts(before_ns), _ts(before_ns))

    def advance(info: ViewInfo) -> ViewInfo:
        if info.watermark_ns != before_ns:
            raise ConflictError(f"Another load moved the watermark of view '{view}' version {version} from "
                                f"{_ts(before_ns)} to {info.watermark} while this one ran; run it again.",
                                view=view, version=version)
        return replace(info, watermark_ns=after_ns)

    written = store._write(view, version, entities, window, timestamp, created_timestamp, advance)
    return Materialized(view, version, len(window), written, _ts(before_ns), _ts(after_ns))


# -- opening a store -----------------------------------------------------------------------------------


def open_online_store(url: str, *, namespace: str = "default", root: Any = None) -> OnlineStore:
    """The online store a URL names: sqlite:///path (relative to `root`, the workspace folder) or
    redis://host:port/db, whose keys start with shipyard:NAMESPACE:."""
    if url.startswith("sqlite:///"):
        from pathlib import Path

        from shipyard.config import resolve_store_url
        from shipyard.features.online_sqlite import SQLiteOnlineStore

        resolved = resolve_store_url(url, Path(root)) if root is not None else url
        return SQLiteOnlineStore(resolved[len("sqlite:///"):])
    if url.startswith(("redis://", "rediss://", "unix://")):
        from shipyard.features.online_redis import RedisOnlineStore

        return RedisOnlineStore(url, namespace=namespace)
    raise ValidationError(f"Unknown online store URL {url!r}: expected sqlite:///path or redis://host:port/db.")


def online_store(ctx: Context) -> OnlineStore:
    """The workspace's online store (setting online.url); Redis keys are namespaced by online.namespace, or by
    the metadata store's id, so workspaces sharing a store share their online values and no others."""
    settings = ctx.workspace.settings.online
    namespace = settings.namespace
    if namespace is None and not settings.url.startswith("sqlite"):
        from shipyard.store.identity import store_id

        with ctx.store.read() as conn:
            namespace = store_id(conn)
    return open_online_store(settings.url, namespace=namespace or "default", root=ctx.workspace.root)


# -- small helpers -------------------------------------------------------------------------------------


def _name(value: Any, what: str) -> str:
    if not isinstance(value, str) or not _NAME.fullmatch(value):
        raise ValidationError(f"Invalid {what} name {value!r}: use 1-200 letters, digits, '_', '.' or '-'.")
    return value


def _version(value: Any) -> str:
    if isinstance(value, bool) or not isinstance(value, int | str) or not _NAME.fullmatch(str(value)):
        raise ValidationError(f"Invalid view version {value!r}: give a version number or name.")
    return str(value)


def _entity_names(entities: Any, view: str) -> tuple[str, ...]:
    if isinstance(entities, str) or not isinstance(entities, Sequence) or not entities \
            or not all(isinstance(e, str) and e for e in entities) or len(set(entities)) != len(entities):
        raise ValidationError(f"The entity columns of view '{view}' must be a non-empty list of distinct column "
                              f"names, got {entities!r}.")
    return tuple(entities)


def _require_column(frame: pd.DataFrame, column: str, where: str) -> None:
    if column not in frame.columns:
        names = [str(c) for c in frame.columns]
        raise ValidationError(f"No column '{column}' in {where}.{did_you_mean(column, names)} Columns: "
                              f"{', '.join(names) or 'none'}.", column=column)


def _request_key(key: Any) -> tuple[str, tuple[str, ...]]:
    if not isinstance(key, tuple) or not key:
        raise ValidationError(f"An entity key must be a tuple of whole numbers or strings, got {key!r}.")
    kinds = tuple(key_kind(v) for v in key)
    return encode_key([v if kind == "str" else int(v) for v, kind in zip(key, kinds, strict=True)]), kinds


def _check_key(info: ViewInfo, kinds: tuple[str, ...], key: str) -> None:
    if len(kinds) != len(info.entities):
        raise ValidationError(f"View '{info.view}' version {info.version} is keyed by {', '.join(info.entities)}: "
                              f"give {len(info.entities)} key values, got {key}.", view=info.view)
    for column, known, given in zip(info.entities, info.key_kinds, kinds, strict=True):
        if known and known != given:
            raise ValidationError(f"View '{info.view}' version {info.version} is keyed by {column} holding "
                                  f"{_kind_words(known)}; the key {key} gives {_kind_words(given)}.",
                                  view=info.view, column=column)


def _known(infos: Mapping[tuple[str, str], ViewInfo], view: str, version: str, store: OnlineStore) -> ViewInfo:
    info = infos.get((view, version))
    if info is None:
        held = sorted({f"{i.view} version {i.version}" for i in store.views()})
        raise NotFoundError(f"The online store {store.url} holds nothing for view '{view}' version {version}: "
                            f"materialise it first. It holds: {', '.join(held) or 'nothing'}.",
                            view=view, version=version)
    return info


def _kind_words(kind: str) -> str:
    return {"int": "whole numbers (int)", "str": "strings (str)"}.get(kind, kind)


def _stored(event_ns: int, created_ns: int, payload: str) -> StoredRow:
    return StoredRow(event_ns, None if created_ns == NO_CREATED else created_ns, decode_values(payload))


def _instant_ns(value: Any, what: str) -> int:
    import pandas as pd

    try:
        stamp = pd.Timestamp(value)
    except (TypeError, ValueError) as exc:
        raise ValidationError(f"{what} must be a timestamp, got {value!r}: {exc}.") from None
    if stamp is pd.NaT:
        raise ValidationError(f"{what} must be a timestamp, got {value!r}.")
    # The rule of to_utc for one value: naive is UTC, aware is converted.
    stamp = stamp.tz_localize("UTC") if stamp.tzinfo is None else stamp.tz_convert("UTC")
    return int(stamp.as_unit("ns").value)


def _ts(ns: int | None) -> pd.Timestamp | None:
    import pandas as pd

    return None if ns is None else pd.Timestamp(ns, tz="UTC")
