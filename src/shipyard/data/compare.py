"""Differences between two dataset versions: files, schema, rows and column statistics."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any

from shipyard.context import Context
from shipyard.data.profile import iso_time
from shipyard.data.versions import get_version, manifest
from shipyard.data.workspace_files import load_arrow
from shipyard.errors import ValidationError, did_you_mean

STATS = ("null_count", "distinct_count", "min", "max", "mean", "std")


@dataclass
class VersionDiff:
    base: str
    other: str
    files_added: list[str] = field(default_factory=list)
    files_removed: list[str] = field(default_factory=list)
    files_changed: list[str] = field(default_factory=list)
    columns_added: list[str] = field(default_factory=list)
    columns_removed: list[str] = field(default_factory=list)
    type_changes: dict[str, tuple[str, str]] = field(default_factory=dict)
    row_count: tuple[int | None, int | None] | None = None
    key: list[str] | None = None
    rows_added: int | None = None
    rows_removed: int | None = None
    stat_shifts: dict[str, dict[str, tuple[Any, Any]]] = field(default_factory=dict)

    @property
    def identical(self) -> bool:
        return not (self.files_added or self.files_removed or self.files_changed)

    def to_dict(self) -> dict[str, Any]:
        return {**asdict(self), "identical": self.identical}


def diff_versions(ctx: Context, ref_a: str, ref_b: str, *, key: list[str] | None = None) -> VersionDiff:
    """What changed from `ref_a` to `ref_b`. Rows added and removed are counted by the key columns
    (`key`, else those declared when the versions were added), which have no statistic shifts; a
    timestamp column's shifts are ISO 8601 text."""
    a, b = get_version(ctx, ref_a), get_version(ctx, ref_b)
    result = VersionDiff(base=a.version_id, other=b.version_id)
    files_a = {e.path: e.digest for e in manifest(ctx, a)}
    files_b = {e.path: e.digest for e in manifest(ctx, b)}
    result.files_added = sorted(set(files_b) - set(files_a))
    result.files_removed = sorted(set(files_a) - set(files_b))
    result.files_changed = sorted(p for p in set(files_a) & set(files_b) if files_a[p] != files_b[p])
    if a.kind != "table" or b.kind != "table":
        return result
    types_a = {c["name"]: c["type"] for c in a.table_schema or []}
    types_b = {c["name"]: c["type"] for c in b.table_schema or []}
    result.columns_added = [c for c in types_b if c not in types_a]
    result.columns_removed = [c for c in types_a if c not in types_b]
    result.type_changes = {c: (types_a[c], types_b[c]) for c in types_a if c in types_b and types_a[c] != types_b[c]}
    result.row_count = (a.row_count, b.row_count)
    if key:
        for column in key:
            if column not in types_a or column not in types_b:
                where = " and ".join(v.version_id for v, t in ((a, types_a), (b, types_b)) if column not in t)
                known = sorted(set(types_a) & set(types_b))
                raise ValidationError(
                    f"Key column {column!r} is not in {where}.{did_you_mean(column, known)} "
                    f"Columns of both: {', '.join(known) or 'none'}.", column=column,
                )
    key = key or b.key_columns or a.key_columns
    if key and all(k in types_a and k in types_b for k in key):
        result.key = list(key)
        keys_a = _keys(load_arrow(ctx, a, columns=list(key)))
        keys_b = _keys(load_arrow(ctx, b, columns=list(key)))
        result.rows_added = len(keys_b - keys_a)
        result.rows_removed = len(keys_a - keys_b)
    cols_a = (a.profile or {}).get("columns", {})
    cols_b = (b.profile or {}).get("columns", {})
    keys = set(key or ())
    for column in types_a:
        if column not in cols_b or column not in cols_a or column in keys:
            continue  # key values are identifiers: their statistics shift with every new row, meaning nothing
        shifts = {s: (cols_a[column].get(s), cols_b[column].get(s)) for s in STATS}
        changed = {s: v for s, v in shifts.items() if v[0] != v[1] and v != (None, None)}
        if changed:
            timestamps = cols_a[column].get("kind") == "timestamp" and cols_b[column].get("kind") == "timestamp"
            result.stat_shifts[column] = {s: _shown(s, v) for s, v in changed.items()} if timestamps else changed
    return result


def _shown(stat: str, pair: tuple[Any, Any]) -> tuple[Any, Any]:
    """A timestamp column's statistics for people: instants as ISO 8601 text, its spread as a duration
    (profiles hold both as seconds)."""
    if stat in ("min", "max", "mean"):
        return iso_time(pair[0]), iso_time(pair[1])
    if stat == "std":
        return _duration(pair[0]), _duration(pair[1])
    return pair


def _duration(seconds: float | None) -> str | None:
    if seconds is None:
        return None
    for unit, size in (("days", 86_400), ("hours", 3_600), ("minutes", 60)):
        if abs(seconds) >= size:
            return f"{seconds / size:.3g} {unit}"
    return f"{seconds:.3g} seconds"


def _keys(table: Any) -> set[tuple[Any, ...]]:
    columns = [table.column(i).to_pylist() for i in range(table.num_columns)]
    return set(zip(*columns, strict=True))
