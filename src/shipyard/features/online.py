"""The online store: the latest feature values per entity key, written by materialisation and read by the
serving path. One interface (`OnlineStore`) with two backends, SQLite (a file in the workspace) and Redis,
and incremental materialisation; reading for entity rows under the TTL rule is in `online_lookup`.

Values are kept per (view, version, entity key): a new version of a view starts empty, so values computed
by an older definition are never served for a newer one. Each stored row keeps its event time and created
time; a write replaces a row only with one at least as recent by (event time, created time), so loads
arriving out of order never move a value backwards."""

from __future__ import annotations

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
from shipyard.features.timing import to_utc

if TYPE_CHECKING:
    import pandas as pd

    from shipyard.context import Context

#: An entity key: one whole number or string per entity column of the view.
Key = tuple[int | str, ...]

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
