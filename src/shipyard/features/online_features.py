"""Online features by name: "view:feature" references resolved to registered view versions (their entities and
TTLs) and read from the workspace's online store in one round trip, with a status per value.

`OnlineReader` is the reusable form for serving: it keeps the online store open and the resolved views cached,
and answers a list of entity dicts with plain Python lists of dicts, without pandas. `get_online` answers with
DataFrames and reads through the same reader."""

from __future__ import annotations

import datetime as dt
import json
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, NamedTuple

from shipyard.context import Context
from shipyard.errors import NotFoundError, ValidationError, did_you_mean
from shipyard.features import registry
from shipyard.features.codec import decode_value, encode_key
from shipyard.features.historical import parse_features
from shipyard.features.online import OnlineStore, _instant_ns, _known, online_store
from shipyard.features.online_lookup import (
    _STATUSES,
    EXPIRED,
    MISSING,
    PRESENT,
    OnlineFeatures,
    Wanted,
    _check_request,
    _typed,
    lookup,
)
from shipyard.features.registry import RegisteredView, get_view
from shipyard.features.views import TYPES

if TYPE_CHECKING:
    import pandas as pd

#: Seconds a reader trusts the views it resolved by name only (NAME, the latest version) before looking again;
#: a version registered by this process is seen at once, one registered by another process within this time.
RECHECK_SECONDS = 1.0

# Declared feature types as plain Python values; timestamps stay pandas Timestamps (UTC), as decoded.
def _float(value: Any) -> float | None:
    number = float(value)
    return None if number != number else number  # NaN is a null float, as pandas has it


_PLAIN: dict[str, Callable[[Any], Any]] = {"float64": _float, "float32": _float, "int64": int, "int32": int,
                                           "bool": bool, "string": str}


class OnlineRows(NamedTuple):
    """The answer of `OnlineReader.get`, one entry per entity row asked for. `values[i]` maps the entity columns
    (as given) then each feature column to its value in the declared type as a plain Python value (float, int,
    bool, str; timestamps as UTC pandas Timestamps), None where the value is null (NaN too) or not present.
    `statuses[i]` maps each feature column to "present", "missing" (no row for the entity) or "expired" (a row
    exists but is not valid at the request time under the view's TTL)."""

    values: list[dict[str, Any]]
    statuses: list[dict[str, str]]


@dataclass(frozen=True)
class _Plan:
    """A validated request: the reads per view, each feature's output column and declared type."""

    reads: list[Wanted]
    entities: list[str]
    # (column in lookup's full-name form "view:feature", output column, declared type), grouped by view
    columns: list[tuple[str, str, str]]
    outputs: list[str]  # output columns in the order the references were given


class _Slow(Exception):
    """The request is not the common shape (or is wrong): the DataFrame path answers it, or names the error."""


class OnlineReader:
    """Reads online features for serving: `get(features, rows, at=None)` takes references ("view:feature",
    "view@2:feature") and entity rows (a list of dicts of entity keys, or one dict) and returns `OnlineRows`
    (`values, statuses = reader.get(...)`), judged at `at` (a time, or one per row; default now) under each view's
    TTL, in one round trip to the online store. Results are those of `get_online`, as plain Python structures.

    The reader keeps the workspace's online store open (SQLite: one connection per thread) and caches the
    registered views it resolved. Pinned versions (NAME@V) never change; views named without a version are
    resolved again after this process registers any view version, and otherwise after `recheck_seconds`
    (versions registered by other processes). Safe to share between threads. `close()` closes the store."""

    def __init__(self, ctx: Context, *, recheck_seconds: float = RECHECK_SECONDS) -> None:
        self.ctx = ctx
        self.recheck_seconds = recheck_seconds
        self._store: OnlineStore | None = None
        self._lock = threading.Lock()
        self._views: dict[str, RegisteredView] = {}
        self._plans: dict[tuple[Any, ...], _Plan] = {}
        self._stamp: tuple[int, float] = (registry.registrations(), time.monotonic())

    @property
    def store(self) -> OnlineStore:
        """The workspace's online store, opened on first use and kept open."""
        if self._store is None:
            with self._lock:
                if self._store is None:
                    self._store = online_store(self.ctx)
        return self._store

    def close(self) -> None:
        with self._lock:
            store, self._store = self._store, None
        if store is not None:
            store.close()

    def get(self, features: Sequence[str] | str, rows: Sequence[Mapping[str, Any]] | Mapping[str, Any], at: Any = None,
            *, full_names: bool = False) -> OnlineRows:
        """Each feature for each entity row, as plain Python lists of dicts (see `OnlineRows`). Columns are named
        as get_historical names them (the feature; VIEW__FEATURE with `full_names`)."""
        rows = [rows] if isinstance(rows, Mapping) else rows
        plan = self.plan(features, full_names)
        try:
            return self._read(plan, rows, at)
        except _Slow:
            return _as_rows(self._frames(plan, rows, at))

    def frames(self, features: Sequence[str] | str, entity_rows: pd.DataFrame | Sequence[Mapping[str, Any]], *,
               at: Any = None, full_names: bool = False) -> OnlineFeatures:
        """`get` answered as DataFrames (`get_online`'s `OnlineFeatures`)."""
        plan = self.plan(features, full_names)
        if isinstance(entity_rows, Sequence) and not isinstance(entity_rows, str | bytes):
            try:
                result = self._read(plan, entity_rows, at)
                return OnlineFeatures(build=lambda: _to_frames(plan, result))
            except _Slow:
                pass
        return self._frames(plan, entity_rows, at)

    def plan(self, features: Sequence[str] | str, full_names: bool) -> _Plan:
        """The validated request for these references, cached until the views are resolved again."""
        try:
            key = ((features,) if isinstance(features, str) else tuple(features), full_names)
            hash(key)
        except TypeError:
            return self._resolve(features, full_names)
        self._refresh()
        plan = self._plans.get(key)
        if plan is None:
            plan = self._resolve(features, full_names)
            self._plans[key] = plan
        return plan

    def _refresh(self) -> None:
        count, checked = self._stamp
        now = time.monotonic()
        if count != registry.registrations() or now - checked >= self.recheck_seconds:
            with self._lock:
                self._stamp = (registry.registrations(), now)
                self._plans = {}
                self._views = {ref: view for ref, view in self._views.items() if "@" in ref}

    def _view(self, ref: str) -> RegisteredView:
        view = self._views.get(ref)
        if view is None:
            view = get_view(self.ctx, ref)
            self._views[ref] = view
        return view

    def _resolve(self, features: Sequence[str] | str, full_names: bool) -> _Plan:
        refs = parse_features(features)
        groups: dict[str, list[str]] = {}
        for ref in refs:
            groups.setdefault(ref.view, []).append(ref.feature)
        views: dict[str, RegisteredView] = {}
        for name, wanted in groups.items():
            view = self._view(name)
            for feature in wanted:
                if feature not in view.features:
                    raise NotFoundError(
                        f"Feature view {view.version_id} has no feature '{feature}'."
                        f"{did_you_mean(feature, view.features)} Its features: {', '.join(view.features)}.",
                        view=view.version_id, feature=feature)
            views[name] = view
        by_store: dict[tuple[str, int], str] = {}
        for name, view in views.items():
            key = (view.name, view.version)
            if key in by_store:
                raise ValidationError(f"'{by_store[key]}' and '{name}' are the same view version, {view.version_id}: "
                                      "name it one way.", view=view.version_id)
            by_store[key] = name
        names = [view.name for view in views.values()]
        twice = sorted({n for n in names if names.count(n) > 1})
        if twice:
            raise ValidationError(f"Features of two versions of view '{twice[0]}' are asked for in one read; the "
                                  "online store is read per view name, so read each version separately.",
                                  view=twice[0])
        outputs = {str(ref): (f"{ref.view}__{ref.feature}" if full_names else ref.feature) for ref in refs}
        columns = list(outputs.values())
        keys = {e for view in views.values() for e in view.entities}
        repeated = sorted({c for c in columns if columns.count(c) > 1 or c in keys})
        if repeated:
            raise ValidationError(f"More than one column would be named '{repeated[0]}': pass full_names=True "
                                  "(columns VIEW__FEATURE).")
        reads = [Wanted(view.name, view.version, view.entities, groups[name], view.ttl_seconds)
                 for name, view in views.items()]
        by_ref = {str(ref): ref for ref in refs}
        named = [(f"{views[ref.view].name}:{ref.feature}", outputs[text], views[ref.view].features[ref.feature])
                 for text, ref in by_ref.items()]
        order = {f"{w.view}:{f}": i for i, w in enumerate(reads) for f in w.features}
        named.sort(key=lambda c: order[c[0]])
        entities = list(dict.fromkeys(e for w in reads for e in w.entities))
        return _Plan(reads, entities, named, columns)

    def _frames(self, plan: _Plan, entity_rows: Any, at: Any) -> OnlineFeatures:
        found = lookup(self.store, plan.reads, entity_rows, at=at, full_names=True)
        renamed = {full: out for full, out, _ in plan.columns}
        values = found.values.rename(columns=renamed)
        for _, column, kind in plan.columns:
            values[column] = values[column].astype(TYPES[kind])
        status = found.status.rename(columns=renamed)[plan.outputs]
        return OnlineFeatures(values, status)

    def _read(self, plan: _Plan, rows: Sequence[Mapping[str, Any]], at: Any) -> OnlineRows:
        if not isinstance(rows, Sequence) or not rows or not all(isinstance(r, Mapping) for r in rows):
            raise _Slow
        count = len(rows)
        at_ns = _times(at, count)
        keys_per_view: list[tuple[list[str], tuple[str, ...]]] = []
        for w in plan.reads:
            columns: list[list[Any]] = []
            kinds: list[str] = []
            for entity in w.entities:
                try:
                    column = [r[entity] for r in rows]
                except KeyError:
                    raise _Slow from None
                types = {type(v) for v in column}
                if types == {int}:
                    kinds.append("int")
                elif types == {str}:
                    kinds.append("str")
                else:  # numpy ints, floats, None, mixed kinds: converted or refused by the DataFrame path
                    raise _Slow
                columns.append(column)
            keys_per_view.append(([encode_key(k) for k in zip(*columns, strict=True)], tuple(kinds)))
        views = list(dict.fromkeys((w.view, str(w.version)) for w in plan.reads))
        fetch = list(dict.fromkeys((w.view, str(w.version), k) for w, (keys, _) in zip(plan.reads, keys_per_view,
                                                                                         strict=True) for k in keys))
        infos, found = self.store._fetch(views, fetch)

        values: list[dict[str, Any]] = [{e: r[e] for e in plan.entities} for r in rows]
        statuses: list[dict[str, str]] = [{} for _ in rows]
        named = iter(plan.columns)
        for w, (keys, given) in zip(plan.reads, keys_per_view, strict=True):
            version = str(w.version)
            info = _known(infos, w.view, version, self.store)
            _check_request(info, tuple(w.entities), given, w.features)
            ttl_ns = None if w.ttl_seconds is None else int(round(w.ttl_seconds * 1e9))
            outs = [next(named) for _ in w.features]
            for i, key in enumerate(keys):
                hit = found.get((w.view, version, key))
                row, status = values[i], statuses[i]
                if hit is None or hit[0] > at_ns[i] or (ttl_ns is not None and at_ns[i] - hit[0] > ttl_ns):
                    state = MISSING if hit is None else EXPIRED
                    for (_, out, _), _ in zip(outs, w.features, strict=True):
                        row[out] = None
                        status[out] = state
                    continue
                decoded = json.loads(hit[2])
                for (_, out, kind), name in zip(outs, w.features, strict=True):
                    value = decoded.get(name)
                    if type(value) is dict or type(value) is list:
                        value = decode_value(value)
                    convert = _PLAIN.get(kind)
                    row[out] = convert(value) if value is not None and convert is not None else value
                    status[out] = PRESENT
        order = plan.outputs
        return OnlineRows(values, [{c: s[c] for c in order} for s in statuses])


def _times(at: Any, count: int) -> list[int]:
    if at is None:
        return [time.time_ns()] * count
    import numpy as np

    if isinstance(at, dt.datetime | dt.date | str | np.datetime64):
        return [_instant_ns(at, "the request time `at`")] * count
    raise _Slow  # one time per row: the DataFrame path checks and converts them


def _to_frames(plan: _Plan, result: OnlineRows) -> tuple[pd.DataFrame, pd.DataFrame]:
    """The DataFrames `lookup` and `get_online` give, built from a plain answer."""
    import numpy as np
    import pandas as pd

    given = pd.DataFrame([{e: v[e] for e in plan.entities} for v in result.values])
    data: dict[str, Any] = {e: given[e].to_numpy() for e in plan.entities}
    for _, column, _ in plan.columns:
        data[column] = _typed([v[column] for v in result.values])
    values = pd.DataFrame(data, index=given.index)
    for _, column, kind in plan.columns:
        values[column] = values[column].astype(TYPES[kind])
    codes = {PRESENT: 0, MISSING: 1, EXPIRED: 2}
    kind = pd.CategoricalDtype(_STATUSES)
    status = {c: pd.Categorical.from_codes(np.array([codes[s[c]] for s in result.statuses]), dtype=kind)
              for c in plan.outputs}
    return values, pd.DataFrame(status, index=given.index, columns=plan.outputs)


def _as_rows(found: OnlineFeatures) -> OnlineRows:
    import pandas as pd

    values = [{k: (None if not isinstance(v, list) and pd.isna(v) else v) for k, v in row.items()}
              for row in found.values.astype(object).to_dict("records")]
    statuses = [{k: str(v) for k, v in row.items()} for row in found.status.astype(object).to_dict("records")]
    return OnlineRows(values, statuses)


_readers: dict[str, OnlineReader] = {}
_readers_lock = threading.Lock()


def online_reader(ctx: Context) -> OnlineReader:
    """The shared reader of the context's workspace: one per workspace, metadata store and online settings, so
    repeated reads reuse its open online store and resolved views."""
    root = str(ctx.workspace.root)
    settings = ctx.workspace.settings.online
    with _readers_lock:
        reader = _readers.get(root)
        if reader is None or reader.ctx.stores is not ctx.stores or reader.ctx.workspace.settings.online != settings:
            # the replaced reader is left open: whoever holds it may still read; its store closes when collected
            _readers[root] = reader = OnlineReader(ctx)
        return reader


def get_online(ctx: Context, features: Sequence[str] | str,
               entity_rows: pd.DataFrame | Sequence[Mapping[str, Any]], *, at: Any = None,
               full_names: bool = False) -> OnlineFeatures:
    """Each feature ("view:feature", "view@2:feature") for each entity row as the online store holds it at `at`
    (one time or one per row; default now), under the view's TTL: the value and its status, present, missing or
    expired. Columns are named as get_historical names them (the feature; VIEW__FEATURE with `full_names`), in
    the declared types."""
    parse_features(features)
    if isinstance(at, str | dt.datetime):  # a bad time is named before any view is looked up
        _instant_ns(at, "the request time `at`")
    return online_reader(ctx).frames(features, entity_rows, at=at, full_names=full_names)
