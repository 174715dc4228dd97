"""The lineage graph across building blocks: turning what a user types (credit@3, credit, a run id or
prefix, run:ID, dataset:credit@3, credit/2, credit@champion, models:/credit@champion) into a node, and
walking from it."""

from __future__ import annotations

from collections.abc import Callable

from shipyard.context import Context
from shipyard.data.versions import get_version, list_datasets
from shipyard.errors import NotFoundError, ValidationError, did_you_mean
from shipyard.models.registry import get_model_version, list_models
from shipyard.store.lineage import Node, Tree
from shipyard.store.lineage import walk as walk_edges
from shipyard.tracking.runs import resolve_run_id

FORMS = ("a dataset version (credit@3, or credit for its latest), a model version (credit/2, credit@champion, "
         "models:/credit/2), or a run (its id, a unique prefix, or run:ID)")


def resolve_node(ctx: Context, text: str) -> Node:
    """The node `text` names. A form that fits several kinds of object (a bare name, NAME@latest) must
    name exactly one that exists; when several exist, the error lists each one's unambiguous form."""
    if not isinstance(text, str) or not text.strip():
        raise ValidationError(f"Name an object, got {text!r}: {FORMS}.")
    text = text.strip()
    prefix, sep, rest = text.partition(":")
    if sep and prefix in _EXPLICIT:
        return _EXPLICIT[prefix](ctx, rest)
    if text.startswith("models:/") or "/" in text:
        return _model(ctx, text)
    readings = [_dataset, _model] + ([] if "@" in text else [_run])
    found: list[Node] = []
    missing: list[NotFoundError] = []
    malformed: list[ValidationError] = []
    for read in readings:
        try:
            found.append(read(ctx, text))
        except NotFoundError as exc:  # the form fits, but nothing by that name
            missing.append(exc)
        except ValidationError as exc:  # not this kind's form (credit@champion is no dataset version)
            if read is _run:
                raise  # a run id prefix that matches several runs
            malformed.append(exc)
    if len(found) == 1:
        return found[0]
    if found:
        candidates = [_explicit(node) for node in found]
        raise ValidationError(
            f"'{text}' is ambiguous: it names {' and '.join(candidates)}. Use one of those forms.",
            candidates=candidates,
        )
    if len(missing) == 1:
        raise missing[0]
    # The object exists, only not that version or alias: that error says what does exist.
    for absent in missing:
        if "version" in absent.fields or "alias" in absent.fields:
            raise absent
    if missing:
        names = [d["name"] for d in list_datasets(ctx)] + [m["name"] for m in list_models(ctx)]
        name = text.partition("@")[0]
        raise NotFoundError(
            f"Nothing in the lineage graph is called '{text}': no dataset, model or run by that name."
            f"{did_you_mean(name, names)} Name {FORMS}.", ref=text,
        )
    if len(malformed) == 1:
        raise malformed[0]
    raise ValidationError(f"'{text}' is not a reference Shipyard knows. Name {FORMS}.", ref=text)


def _dataset(ctx: Context, ref: str) -> Node:
    return Node("dataset_version", get_version(ctx, ref).version_id)


def _model(ctx: Context, ref: str) -> Node:
    return Node("model_version", get_model_version(ctx, ref).version_id)


def _run(ctx: Context, ref: str) -> Node:
    return Node("run", resolve_run_id(ctx, ref))


_EXPLICIT: dict[str, Callable[[Context, str], Node]] = {"run": _run, "dataset": _dataset, "model": _model}


def _explicit(node: Node) -> str:
    if node.kind == "dataset_version":
        return f"dataset:{node.id}"
    if node.kind == "model_version":
        return f"models:/{node.id}"
    return f"{node.kind}:{node.id}"


def walk(ctx: Context, node: Node, *, upstream: bool, max_depth: int = 50) -> Tree:
    """Everything upstream of `node` (what it came from) or downstream (what it fed), as a tree."""
    with ctx.store.read() as conn:
        return walk_edges(conn, node, upstream=upstream, max_depth=max_depth)
