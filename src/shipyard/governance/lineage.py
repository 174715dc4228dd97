"""The lineage graph across building blocks: turning what a user types (credit@3, a run id or prefix,
run:ID, dataset:credit@3, credit/2, models:/credit@champion) into a node, and walking from it."""

from __future__ import annotations

from shipyard.context import Context
from shipyard.data.versions import get_version
from shipyard.errors import ValidationError
from shipyard.models.registry import get_model_version
from shipyard.store.lineage import Node, Tree
from shipyard.store.lineage import walk as walk_edges
from shipyard.tracking.runs import resolve_run_id


def resolve_node(ctx: Context, text: str) -> Node:
    if not isinstance(text, str) or not text.strip():
        raise ValidationError("Name an object: a dataset version like credit@3, a model version like credit/2, or a run id.")
    text = text.strip()
    kind, sep, rest = text.partition(":")
    if sep and kind == "run":
        return Node("run", resolve_run_id(ctx, rest))
    if sep and kind == "dataset":
        return Node("dataset_version", get_version(ctx, rest).version_id)
    if text.startswith("models:/") or "/" in text:
        return Node("model_version", get_model_version(ctx, text).version_id)
    if "@" in text:
        return Node("dataset_version", get_version(ctx, text).version_id)
    return Node("run", resolve_run_id(ctx, text))


def walk(ctx: Context, node: Node, *, upstream: bool, max_depth: int = 50) -> Tree:
    """Everything upstream of `node` (what it came from) or downstream (what it fed), as a tree."""
    with ctx.store.read() as conn:
        return walk_edges(conn, node, upstream=upstream, max_depth=max_depth)
