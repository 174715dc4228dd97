"""The comparison core of the skew check: feature values that were served, against an offline recomputation
(`get_historical`) for the same entity keys and request times, per feature."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import pandas as pd

    from shipyard.context import Context

#: Floats match within this relative difference (rounding in a store round trip); other types match exactly.
DEFAULT_TOLERANCE = 1e-9
#: Examples kept per feature.
EXAMPLES = 3
_AT = "__skew_at__"


@dataclass
class FeatureSkew:
    """One feature's comparison: rows compared, matches, and the three ways of differing."""

    feature: str  # the pinned reference, VIEW@V:FEATURE
    compared: int = 0
    matches: int = 0
    mismatches: int = 0  # both have a value, and they differ
    served_null: int = 0  # served null, offline has a value
    offline_null: int = 0  # served a value, offline has none
    examples: list[dict[str, Any]] = field(default_factory=list)

    @property
    def differing(self) -> int:
        return self.mismatches + self.served_null + self.offline_null

    def add(self, other: FeatureSkew) -> None:
        self.compared += other.compared
        self.matches += other.matches
        self.mismatches += other.mismatches
        self.served_null += other.served_null
        self.offline_null += other.offline_null
        self.examples = (self.examples + other.examples)[:EXAMPLES]

    def to_dict(self) -> dict[str, Any]:
        return {"feature": self.feature, "compared": self.compared, "matches": self.matches,
                "mismatches": self.mismatches, "served_null": self.served_null, "offline_null": self.offline_null,
                "examples": self.examples}


def compare(ctx: Context, refs: list[str], entities: list[str], served: pd.DataFrame, at: pd.Series,
            tolerance: float = DEFAULT_TOLERANCE) -> list[FeatureSkew]:
    """Per pinned reference (VIEW@V:FEATURE, served as column FEATURE of `served`), the served values against
    the point-in-time values for the rows' entity keys at `at` (one UTC time per row)."""
    from shipyard.features.historical import historical

    rows = served[entities].reset_index(drop=True).copy()
    rows[_AT] = at.reset_index(drop=True)
    offline = historical(ctx, rows, refs, timestamp=_AT, full_names=True, allow_duplicates=True).frame
    found = []
    for ref in refs:
        view, _, feature = ref.partition(":")
        result = FeatureSkew(ref)
        mine = served[feature].reset_index(drop=True)
        theirs = offline[f"{view}__{feature}"].reset_index(drop=True)
        for i in range(len(rows)):
            result.compared += 1
            a, b = _plain(mine.iloc[i]), _plain(theirs.iloc[i])
            kind = None
            if a is None and b is not None:
                kind, result.served_null = "served_null", result.served_null + 1
            elif a is not None and b is None:
                kind, result.offline_null = "offline_null", result.offline_null + 1
            elif a is not None and not _same(a, b, tolerance):
                kind, result.mismatches = "mismatch", result.mismatches + 1
            else:
                result.matches += 1
            if kind is not None and len(result.examples) < EXAMPLES:
                result.examples.append({"key": {k: _plain(rows[k].iloc[i]) for k in entities},
                                        "at": rows[_AT].iloc[i].isoformat(), "served": a, "offline": b,
                                        "kind": kind})
        found.append(result)
    return found


def _plain(value: Any) -> Any:
    """A plain Python value, None for any kind of null."""
    import pandas as pd

    if value is None or (not isinstance(value, (list, tuple)) and pd.isna(value)):
        return None
    if isinstance(value, pd.Timestamp):
        return value.isoformat()
    return value.item() if hasattr(value, "item") else value


def _same(a: Any, b: Any, tolerance: float) -> bool:
    if isinstance(a, float) or isinstance(b, float):
        if isinstance(a, bool) or isinstance(b, bool) or not isinstance(a, (int, float)) or \
                not isinstance(b, (int, float)):
            return False
        return abs(a - b) <= tolerance * max(abs(a), abs(b)) or a == b
    return bool(a == b)
