"""Materialisation: registered feature views loaded into the workspace's online store, incrementally (a
watermark per view version), from the same source rows and transform as training sets, each load audited.

Order of a load: every view is resolved and its source read and checked before anything is written; then per
view, the rows and the watermark commit in one online-store transaction, and only after that commit is the
load's audit event (`feature_view.materialize`) recorded, so the trail never claims a load that did not happen.
A run that finds nothing new writes nothing and records no event, unless the store's watermark is not the last
recorded one (a load committed whose event then failed): that load's event is recorded then, marked unrecorded."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING, Any

from shipyard.context import Context
from shipyard.errors import BackendError, ValidationError
from shipyard.features.online import Materialized, OnlineStore, _instant_ns, materialize_frame, online_store
from shipyard.features.registry import FEATURE_VIEW, RegisteredView, get_view, list_views

if TYPE_CHECKING:
    import pandas as pd

ACTION = "feature_view.materialize"


@dataclass(frozen=True)
class ViewLoad:
    """One view version's materialisation: the source rows read (after the transform), those left out for an
    empty entity key or event time, the rows in the load's window, the rows that took effect in the store (the
    latest per entity key, when newer than what it held), and the watermark before and after (UTC)."""

    view: RegisteredView
    rows_read: int
    rows_skipped: int
    loaded: Materialized
    unrecorded: bool = False  # nothing new, but the store's watermark was not the last recorded: recorded now

    @property
    def changed(self) -> bool:
        return self.loaded.rows_in_window > 0 or self.loaded.watermark_after != self.loaded.watermark_before

    def to_dict(self) -> dict[str, Any]:
        m = self.loaded
        return {"view": self.view.version_id, "rows_read": self.rows_read, "rows_skipped": self.rows_skipped,
                "rows_in_window": m.rows_in_window, "written": m.written, "watermark_before": _iso(m.watermark_before),
                "watermark": _iso(m.watermark_after), "changed": self.changed,
                **({"unrecorded": True} if self.unrecorded else {})}


def materialize(ctx: Context, views: Sequence[str] | None = None, *, start: Any = None,
                end: Any = None) -> list[ViewLoad]:
    """Load each view (NAME: its latest version, or NAME@V; every registered view when None) into the online
    store: its source rows with event time in (watermark, end], or (start, end] on a version's first load."""
    start_ns = None if start is None else _instant_ns(start, "--start")
    end_ns = None if end is None else _instant_ns(end, "--end")
    if start_ns is not None and end_ns is not None and start_ns > end_ns:
        raise ValidationError(f"--start {start} is after --end {end}: the window (start, end] would be empty. Swap "
                              "them.", start=str(start), end=str(end))
    refs = list(dict.fromkeys(views)) if views is not None else [v["latest"]["version_id"] for v in list_views(ctx)]
    chosen = [get_view(ctx, ref) for ref in refs]
    ids = [v.version_id for v in chosen]
    repeated = sorted({i for i in ids if ids.count(i) > 1})
    if repeated:
        raise ValidationError(f"Feature view {repeated[0]} is named twice (as NAME and NAME@V): name it once.")
    frames = [_frame(ctx, view) for view in chosen]  # every source is read and checked before any write
    loads = []
    with online_store(ctx) as store:
        for view, (frame, read, skipped) in zip(chosen, frames, strict=True):
            loads.append(_load(ctx, store, view, frame, read, skipped, start, end))
    return loads


def _frame(ctx: Context, view: RegisteredView) -> tuple[pd.DataFrame, int, int]:
    """The view's source rows as the online store takes them (the declared column names), the rows read, and
    how many were left out for an empty key or event time, as the offline join leaves them out."""
    import pandas as pd

    from shipyard.features import sources

    d = view.definition
    found = sources.rows(ctx, view)
    frame = pd.DataFrame({k: found.keys[k].array for k in view.entities})
    frame[d["timestamp"]] = found.event.array  # .to_numpy() would make a Timestamp object per row
    if found.created is not None:
        frame[d["created_timestamp"]] = found.created.array
    for feature, values in found.features.items():
        frame[feature] = values.array
    usable = found.event.notna().to_numpy() & found.keys.notna().all(axis=1).to_numpy()
    frame = frame[usable].reset_index(drop=True)
    for key in view.entities:
        frame[key] = _whole_keys(view, key, frame[key])
    return frame, len(usable), int((~usable).sum())


def _whole_keys(view: RegisteredView, key: str, values: pd.Series) -> pd.Series:
    """An integer key column that became floats (it had empty keys, now left out) as integers again."""
    import pandas as pd

    if pd.api.types.is_float_dtype(values.dtype) and len(values) and (values == values.round()).all():
        return values.astype("int64")
    if pd.api.types.is_integer_dtype(values.dtype) and values.dtype != "int64":
        return values.astype("int64")
    return values


def _load(ctx: Context, store: OnlineStore, view: RegisteredView, frame: pd.DataFrame, read: int, skipped: int,
          start: Any, end: Any) -> ViewLoad:
    d = view.definition
    loaded = materialize_frame(store, view.name, view.version, view.entities, frame, timestamp=d["timestamp"],
                               created_timestamp=d["created_timestamp"], start=start, end=end)
    result = ViewLoad(view, read, skipped, loaded)
    if not result.changed:
        if _last_recorded_watermark(ctx, view) == _iso(loaded.watermark_after):
            return result
        # The store's watermark is not the last recorded one: a load committed there whose event failed.
        result = replace(result, unrecorded=True)
    payload = {**result.to_dict(), "start": _iso_arg(start), "end": _iso_arg(end),
               "store": store.url.split("://", 1)[0]}
    try:
        with ctx.store.mutation(ctx.actor, ACTION, FEATURE_VIEW, view.version_id, payload):
            pass
    except Exception as exc:  # the load is committed: say so, whatever stopped the event
        raise BackendError(
            f"Feature view {view.version_id} was loaded into the online store (watermark "
            f"{_iso(loaded.watermark_after)}, {loaded.written} rows written), but its audit event could not be "
            f"recorded: {exc}. Run `shipyard features materialize {view.version_id}` again to record it.",
            view=view.version_id,
        ) from exc
    return result


def _last_recorded_watermark(ctx: Context, view: RegisteredView) -> str | None:
    from shipyard.store.audit import list_events

    with ctx.store.read() as conn:
        last = list_events(conn, object_kind=FEATURE_VIEW, object_id=view.version_id, action=ACTION, limit=1)
    return last[0].payload.get("watermark") if last else None


def _iso(stamp: pd.Timestamp | None) -> str | None:
    return None if stamp is None else stamp.isoformat()


def _iso_arg(value: Any) -> str | None:
    import pandas as pd

    return None if value is None else pd.Timestamp(_instant_ns(value, "time"), tz="UTC").isoformat()
