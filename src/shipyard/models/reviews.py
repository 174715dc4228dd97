"""Reviews of model versions (an ethical review, a security review, …): requested, then approved or
rejected by someone other than the requester. Promotion can require an approved review."""

from __future__ import annotations

import re
from dataclasses import asdict, dataclass
from typing import Any, Literal

from sqlalchemy import Connection, select

from shipyard.context import Context
from shipyard.errors import ConflictError, NotFoundError, ValidationError
from shipyard.models.refs import check_model_name
from shipyard.models.registry import get_model_version
from shipyard.store.db import now_ms
from shipyard.store.tables import reviews

ReviewStatus = Literal["requested", "approved", "rejected"]
_KIND = re.compile(r"^[a-z][a-z0-9_\-]{0,63}$")


@dataclass(frozen=True)
class Review:
    version_id: str
    kind: str
    status: ReviewStatus
    requested_by: str
    requested: int
    decided_by: str | None
    decided: int | None
    notes: str | None

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def _check_kind(kind: str) -> str:
    if not isinstance(kind, str) or not _KIND.match(kind):
        raise ValidationError(f"Invalid review kind {kind!r}: use a short lowercase word such as 'ethical' or 'security'.")
    return kind


def latest_review(ctx: Context, version_id: str, kind: str) -> Review | None:
    with ctx.store.read() as conn:
        return find_review(conn, version_id, kind)


def find_review(conn: Connection, version_id: str, kind: str) -> Review | None:
    """The newest review of `kind` of a version, on the caller's connection."""
    row = conn.execute(
        select(reviews).where(reviews.c.version_id == version_id, reviews.c.kind == kind)
        .order_by(reviews.c.id.desc()).limit(1)
    ).first()
    return _review(row) if row else None


def list_reviews(ctx: Context, ref: str | None = None, *, pending: bool = False) -> list[Review]:
    """Reviews in the order they were requested: of one version (NAME/VERSION, NAME@ALIAS, models:/…),
    of every version of a model (a bare NAME), or of every model (None); `pending`: only those still
    waiting for a decision."""
    query = select(reviews).order_by(reviews.c.id)
    if ref is not None:
        if isinstance(ref, str) and "/" not in ref and "@" not in ref:
            model = get_model_version(ctx, check_model_name(ref.strip())).model  # unknown: did-you-mean
            query = query.where(reviews.c.version_id.startswith(f"{model}/", autoescape=True))
        else:
            query = query.where(reviews.c.version_id == get_model_version(ctx, ref).version_id)
    if pending:
        query = query.where(reviews.c.status == "requested")
    with ctx.store.read() as conn:
        rows = conn.execute(query).all()
    return [_review(r) for r in rows]


def request_review(ctx: Context, ref: str, kind: str, *, notes: str | None = None) -> Review:
    version = get_model_version(ctx, ref)
    _check_kind(kind)
    payload = {"kind": kind, "notes": notes}
    with ctx.store.mutation(ctx.actor, "review.request", "model_version", version.version_id, payload) as conn:
        current = find_review(conn, version.version_id, kind)
        if current is not None and current.status == "requested":
            raise ConflictError(
                f"A {kind} review of {version.version_id} is already requested by {current.requested_by}.",
                version=version.version_id, kind=kind,
            )
        conn.execute(reviews.insert(), {"version_id": version.version_id, "kind": kind, "status": "requested",
                                        "requested_by": ctx.actor, "requested": now_ms(), "notes": notes})
    review = latest_review(ctx, version.version_id, kind)
    assert review is not None
    return review


def decide_review(ctx: Context, ref: str, kind: str, *, approve: bool, notes: str | None = None) -> Review:
    version = get_model_version(ctx, ref)
    _check_kind(kind)
    status = "approved" if approve else "rejected"
    payload = {"kind": kind, "status": status, "notes": notes}
    with ctx.store.mutation(ctx.actor, f"review.{'approve' if approve else 'reject'}", "model_version",
                            version.version_id, payload) as conn:
        current = find_review(conn, version.version_id, kind)
        if current is None or current.status != "requested":
            raise NotFoundError(
                f"No open {kind} review of {version.version_id}. Request one first: "
                f"`shipyard review request {version.version_id} --kind {kind}`.", version=version.version_id, kind=kind,
            )
        if current.requested_by == ctx.actor:
            raise ConflictError(
                f"{ctx.actor} requested this {kind} review and cannot also decide it; another person must "
                "(set SHIPYARD_USER to the reviewer's name).", actor=ctx.actor,
            )
        conn.execute(
            reviews.update().where(reviews.c.version_id == version.version_id, reviews.c.kind == kind,
                                   reviews.c.status == "requested")
            .values(status=status, decided_by=ctx.actor, decided=now_ms(),
                    notes="\n".join(n for n in (current.notes, notes) if n) or None)
        )
    review = latest_review(ctx, version.version_id, kind)
    assert review is not None
    return review


def _review(row: Any) -> Review:
    return Review(row.version_id, row.kind, row.status, row.requested_by, row.requested, row.decided_by,
                  row.decided, row.notes)
