"""The lineage graph: edges between the objects of every building block (dataset versions, runs, model
versions, and the kinds later blocks register: deployments, prediction batches, monitor reports, ...).

Functions take the caller's connection, so an edge commits in the same transaction as the object it
describes; `record_edge` is the audited write for an edge on its own."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from sqlalchemy import Connection, select

from shipyard.errors import ValidationError
from shipyard.store.db import insert_or_ignore, now_ms
from shipyard.store.tables import lineage_edges

if TYPE_CHECKING:
    from shipyard.store.db import MetadataStore

#: Node kinds, registered by the building blocks that own them (see register_kind).
KINDS: dict[str, str] = {}
RELATIONS = ("input", "output", "derived")


def register_kind(kind: str, description: str) -> str:
    """Declare a kind of lineage node (a building block does so for the objects it owns)."""
    KINDS.setdefault(kind, description)
    return kind


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


def check_edge(src: Node, dst: Node, relation: str) -> None:
    for node in (src, dst):
        if node.kind not in KINDS:
            raise ValidationError(
                f"Unknown lineage node kind {node.kind!r}; known kinds: {', '.join(sorted(KINDS))}.", kind=node.kind
            )
    if relation not in RELATIONS:
        raise ValidationError(f"Unknown lineage relation {relation!r}; use one of {', '.join(RELATIONS)}.")


def add_edges(conn: Connection, edges: Iterable[tuple[Node, Node, str]]) -> None:
    """Record src → dst edges (idempotent) inside the caller's transaction."""
    rows = []
    for src, dst, relation in edges:
        check_edge(src, dst, relation)
        rows.append({"src_kind": src.kind, "src_id": src.id, "dst_kind": dst.kind, "dst_id": dst.id,
                     "relation": relation, "created": now_ms()})
    if rows:
        conn.execute(insert_or_ignore(conn, lineage_edges, ["src_kind", "src_id", "dst_kind", "dst_id", "relation"]),
                     rows)


def record_edge(store: MetadataStore, actor: str, src: Node, dst: Node, relation: str) -> None:
    """Record one edge in its own audited transaction."""
    check_edge(src, dst, relation)
    payload = {"src": str(src), "dst": str(dst), "relation": relation}
    with store.mutation(actor, "lineage.add_edge", dst.kind, dst.id, payload) as conn:
        add_edges(conn, [(src, dst, relation)])


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


def first_source(conn: Connection, dst: Node, kind: str, relation: str) -> str | None:
    """The id of the first recorded `kind` node with an edge `relation` into `dst` (e.g. a run's input)."""
    c = lineage_edges.c
    return conn.execute(
        select(c.src_id).where(c.dst_kind == dst.kind, c.dst_id == dst.id, c.src_kind == kind, c.relation == relation)
        .order_by(c.id).limit(1)
    ).scalar()


def walk(conn: Connection, node: Node, *, upstream: bool, max_depth: int = 50) -> Tree:
    """The tree of everything upstream (what `node` came from) or downstream (what it fed)."""
    root = Tree(node)
    seen = {node}
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


def all_edges(conn: Connection) -> list[Any]:
    return list(conn.execute(select(lineage_edges).order_by(lineage_edges.c.id)))

