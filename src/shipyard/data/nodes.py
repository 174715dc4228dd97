"""Turning what a user types (credit@3, a run id or prefix, run:ID, credit/2 or models:/credit@champion)
into a lineage node."""

from __future__ import annotations

from shipyard.context import Context
from shipyard.data.lineage import Node
from shipyard.errors import ValidationError


def resolve_node(ctx: Context, text: str) -> Node:
    from shipyard.data.versions import get_version
    from shipyard.tracking.runs import resolve_run_id

    if not isinstance(text, str) or not text.strip():
        raise ValidationError("Name an object: a dataset version like credit@3, a model version like credit/2, or a run id.")
    text = text.strip()
    kind, sep, rest = text.partition(":")
    if sep and kind == "run":
        return Node("run", resolve_run_id(ctx, rest))
    if sep and kind == "dataset":
        return Node("dataset_version", get_version(ctx, rest).version_id)
    if text.startswith("models:/") or "/" in text:
        from shipyard.models.registry import get_model_version

        return Node("model_version", get_model_version(ctx, text).version_id)
    if "@" in text:
        return Node("dataset_version", get_version(ctx, text).version_id)
    return Node("run", resolve_run_id(ctx, text))
