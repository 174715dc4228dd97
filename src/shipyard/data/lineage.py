"""The lineage graph: edges between dataset versions, runs and (later) models and deployments."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import Connection, or_, select

from shipyard.context import Context
from shipyard.errors import ValidationError
from shipyard.store.db import now_ms
from shipyard.store.tables import lineage_edges

KINDS = ("dataset_version", "run", "model_version", "deployment")
RELATIONS = ("input", "output", "derived")


@dataclass(frozen=True)
class Node:
    kind: str
    id: str

    def __str__(self) -> str:
        return f"{self.kind}:{self.id}"


@dataclass
class Tree:
    node: Node
    relation: str | None = None  # how this node relates to its parent in the tree
    children: list[Tree] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        return {"kind": self.node.kind, "id": self.node.id, "relation": self.relation,
                "children": [c.to_dict() for c in self.children]}


def add_edge(ctx: Context, src: Node, dst: Node, relation: str) -> None:
    """Record src → dst (idempotent), audited."""
    if src.kind not in KINDS or dst.kind not in KINDS:
        raise ValidationError(f"Lineage nodes are one of {', '.join(KINDS)}; got {src.kind} → {dst.kind}.")
    if relation not in RELATIONS:
        raise ValidationError(f"Unknown lineage relation {relation!r}; use one of {', '.join(RELATIONS)}.")
    payload = {"src": str(src), "dst": str(dst), "relation": relation}
    with ctx.store.mutation(ctx.actor, "lineage.add_edge", dst.kind, dst.id, payload) as conn:
        stmt = ctx.store.insert_or_ignore(lineage_edges, ["src_kind", "src_id", "dst_kind", "dst_id", "relation"])
        conn.execute(stmt, {"src_kind": src.kind, "src_id": src.id, "dst_kind": dst.kind, "dst_id": dst.id,
                            "relation": relation, "created": now_ms()})


def neighbours(conn: Connection, node: Node, *, upstream: bool) -> list[tuple[Node, str]]:
    c = lineage_edges.c
    if upstream:
        rows = conn.execute(
            select(c.src_kind, c.src_id, c.relation).where(c.dst_kind == node.kind, c.dst_id == node.id).order_by(c.id)
        )
    else:
        rows = conn.execute(
            select(c.dst_kind, c.dst_id, c.relation).where(c.src_kind == node.kind, c.src_id == node.id).order_by(c.id)
        )
    return [(Node(kind, id_), relation) for kind, id_, relation in rows]


def walk(ctx: Context, node: Node, *, upstream: bool, max_depth: int = 50) -> Tree:
    """The tree of everything upstream (what `node` came from) or downstream (what it fed)."""
    root = Tree(node)
    seen = {node}
    with ctx.store.read() as conn:
        frontier = [(root, 0)]
        while frontier:
            tree, depth = frontier.pop()
            if depth >= max_depth:
                continue
            for other, relation in neighbours(conn, tree.node, upstream=upstream):
                child = Tree(other, relation)
                tree.children.append(child)
                if other not in seen:  # a node reached twice is shown, not expanded again
                    seen.add(other)
                    frontier.append((child, depth + 1))
    return root


def edges_touching(conn: Connection, kind: str, ids: list[str]) -> list[Any]:
    c = lineage_edges.c
    return list(
        conn.execute(
            select(lineage_edges).where(
                or_((c.src_kind == kind) & c.src_id.in_(ids), (c.dst_kind == kind) & c.dst_id.in_(ids))
            ).order_by(c.id)
        )
    )
