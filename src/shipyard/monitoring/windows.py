"""Windows of the prediction log: the rows a model version answered (through one deployment, or any) over the
last span of time or the last count of rows, with the features as the model saw them."""

from __future__ import annotations

import datetime as dt
import math
import time
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from shipyard.context import Context
from shipyard.errors import ValidationError

if TYPE_CHECKING:
    import pandas as pd

#: How the log stores a feature whose name is one of its own columns (see shipyard.serving.batches).
FEATURE_PREFIX = "input:"


@dataclass
class Window:
    """Logged rows of one model version, oldest first. `frame` holds every row, failed ones too (`error`)."""

    model: str
    version: int
    deployment: str | None
    kind: str  # time | count
    size: float  # seconds (time) or rows (count)
    until: float  # unix seconds: the end of the span asked for
    frame: pd.DataFrame
    features: list[str]

    @property
    def since(self) -> float | None:
        return self.until - self.size if self.kind == "time" else None

    @property
    def start(self) -> float | None:
        """When the oldest row arrived (unix seconds); None for an empty window."""
        return None if self.frame.empty else self.frame["timestamp"].iloc[0].timestamp()

    @property
    def end(self) -> float | None:
        return None if self.frame.empty else self.frame["timestamp"].iloc[-1].timestamp()

    @property
    def rows(self) -> int:
        return len(self.frame)

    @property
    def requests(self) -> int:
        return int(self.frame["request_id"].nunique()) if "request_id" in self.frame else 0

    @property
    def served(self) -> pd.DataFrame:
        """The rows that were answered (a failed prediction has no output to compare)."""
        if "error" not in self.frame.columns:
            return self.frame
        return self.frame[self.frame["error"].isna()]

    def inputs(self) -> pd.DataFrame:
        served = self.served
        return served[[c for c in self.features if c in served.columns]].reset_index(drop=True)

    def predictions(self) -> pd.Series:
        import pandas as pd

        served = self.served
        if "prediction" not in served.columns:
            return pd.Series([], dtype=float, name="prediction")
        return served["prediction"].reset_index(drop=True)

    def to_dict(self) -> dict[str, Any]:
        return {"kind": self.kind, "size": self.size if self.kind == "time" else int(self.size),
                "since": iso(self.since), "until": iso(self.until), "start": iso(self.start), "end": iso(self.end),
                "rows": self.rows, "requests": self.requests, "deployment": self.deployment}


def read_window(ctx: Context, model: str, version: int, *, deployment: str | None = None,
                last: float | None = None, rows: int | None = None, until: float | None = None,
                features: list[str] | None = None, probabilities: bool = True) -> Window:
    """The prediction log of `model`/`version` over the `last` seconds before `until` (default: now), or its
    newest `rows` rows before `until`; only requests served through `deployment` when one is named. With
    `features`, only those inputs are read (and the class probabilities only with `probabilities`)."""
    from shipyard.serving.batches import read_predictions

    if (last is None) == (rows is None):
        raise ValidationError("Give one of last (seconds, e.g. 3600) or rows (a count, e.g. 5000) for the window.")
    if last is not None and (isinstance(last, bool) or not isinstance(last, int | float) or not math.isfinite(last)
                             or last <= 0):
        raise ValidationError(f"Invalid window last={last!r}: expected a number of seconds above 0, e.g. 3600.")
    end = time.time() if until is None else float(until)
    since = end - last if last is not None else None
    columns = None
    if features is not None:  # only what a monitor looks at: the class probabilities only when asked for
        from shipyard.serving.batches import COLUMNS, DEPLOYMENT_COLUMNS

        columns = [*COLUMNS, *DEPLOYMENT_COLUMNS, "prediction", *(["probabilities"] if probabilities else []),
                   *features, *(FEATURE_PREFIX + f for f in features)]
    frame = read_predictions(ctx, model, version, since, until=end, deployment=deployment, last_rows=rows,
                             columns=columns)
    renamed = {c: c[len(FEATURE_PREFIX):] for c in frame.columns if c.startswith(FEATURE_PREFIX)}
    frame = frame.rename(columns=renamed)
    if features is None:
        from shipyard.serving.batches import DEPLOYMENT_COLUMNS, RESERVED

        features = [c for c in frame.columns if c not in RESERVED and c not in DEPLOYMENT_COLUMNS
                    or c in renamed.values()]
    return Window(model, version, deployment, "time" if last is not None else "count",
                  float(last) if last is not None else float(rows or 0), end, frame, list(features))


def iso(seconds: float | None) -> str | None:
    if seconds is None:
        return None
    return dt.datetime.fromtimestamp(seconds, dt.timezone.utc).isoformat(timespec="milliseconds").replace("+00:00", "Z")
