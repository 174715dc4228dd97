"""Training sets: a point-in-time-correct frame versioned as a dataset, with lineage from the feature view
versions and the datasets it was made from."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from shipyard.context import Context
from shipyard.data.refs import check_dataset_name
from shipyard.data.versions import DATASET_VERSION, add_version
from shipyard.features.historical import DEFAULT_TIMESTAMP, historical
from shipyard.features.registry import FEATURE_VIEW
from shipyard.store.lineage import Node

if TYPE_CHECKING:
    import pandas as pd

    from shipyard.data.records import DatasetVersion


@dataclass
class TrainingSet:
    frame: pd.DataFrame
    version: DatasetVersion
    created: bool  # False when the frame was the dataset's latest version already
    matched: dict[str, int]

    def to_dict(self) -> dict[str, Any]:
        return {"version_id": self.version.version_id, "created": self.created, "rows": len(self.frame),
                "columns": [str(c) for c in self.frame.columns], "matched": self.matched}


def build(ctx: Context, name: str, entity_df: pd.DataFrame | str, features: Sequence[str] | str, *,
          timestamp: str = DEFAULT_TIMESTAMP, version: int | None = None, full_names: bool = False,
          message: str | None = None, allow_duplicates: bool = False) -> TrainingSet:
    check_dataset_name(name)  # before the join, which may take a while
    found = historical(ctx, entity_df, features, timestamp=timestamp, version=version, full_names=full_names,
                       allow_duplicates=allow_duplicates)
    sources = [(Node(FEATURE_VIEW, v.version_id), "input") for v in found.views]
    sources += [(Node(DATASET_VERSION, d), "input") for d in found.dataset_versions]
    added = add_version(ctx, name, found.frame, message=message, sources=sources)
    return TrainingSet(found.frame, added.version, added.created, found.matched)
