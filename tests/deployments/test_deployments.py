"""Deployments: every change a revision (audited, in the lineage), aliases resolved once, rollback, delete,
the cheap read servers poll; on SQLite and PostgreSQL."""

from __future__ import annotations

from pathlib import Path

import pytest

import shipyard
from shipyard import deployments
from shipyard.deployments import strategies  # noqa: F401 - deployments.strategies in the threads
from shipyard.context import open_context
from shipyard.deployments.revisions import current_revision, resolve_routes
from shipyard.errors import ConflictError
from shipyard.store.lineage import Node, neighbours


def _routes(name: str) -> list[tuple[str, str, int]]:
    _, routes = current_revision(open_context(), name)
    return [(r.role, r.version_id, r.weight) for r in routes]


def test_create_canary_promote_rollback_each_a_revision(backend_models: Path) -> None:
    from shipyard.gates.promotion import promote

    ctx = open_context()
    promote(ctx, "credit/1", "champion")
    first = deployments.create("web", "credit@champion")
    assert (first.revision, first.strategy) == (1, "single")
    assert _routes("web") == [("primary", "credit/1", 100)]

    promote(ctx, "credit/2", "champion")  # the alias moves; the deployment does not
    assert _routes("web") == [("primary", "credit/1", 100)]
    assert current_revision(ctx, "web")[0] == 1

    second = deployments.canary("web", "credit/2", 10, sticky_by="X-Customer")
    assert (second.revision, second.strategy, second.sticky_by) == (2, "canary", "X-Customer")
    assert _routes("web") == [("primary", "credit/1", 90), ("canary", "credit/2", 10)]
    assert resolve_routes(ctx, "web") == ["credit/1", "credit/2"]
    assert deployments.canary("web", "credit/2", 50).sticky_by == "X-Customer"  # a step keeps the key
    assert deployments.promote("web").revision == 4
    assert _routes("web") == [("primary", "credit/2", 100)]

    back = deployments.rollback("web")
    assert (back.revision, back.restores) == (5, 3)
    assert _routes("web") == [("primary", "credit/1", 50), ("canary", "credit/2", 50)]
    assert deployments.rollback("web").restores == 2  # rolling back again goes one more step back
    assert deployments.rollback("web").restores == 1
    assert _routes("web") == [("primary", "credit/1", 100)]
    with pytest.raises(ConflictError, match="no earlier revision"):
        deployments.rollback("web")

    revisions = deployments.history("web")
    assert [r.revision for r in revisions] == [7, 6, 5, 4, 3, 2, 1]
    assert revisions[-1].reason == "created serving credit/1"
    events = shipyard.audit_log(object_id="web")
    actions = [e.action for e in events]
    assert actions.count("deployment.rollback") == 3 and "deployment.create" in actions
    assert {e.payload["revision"] for e in events} == set(range(1, 8))
    with ctx.store.read() as conn:
        into_second = {n.id for n, _ in neighbours(conn, Node("deployment_revision", "web/2"), upstream=True)}
        from_two = {n.id for n, _ in neighbours(conn, Node("model_version", "credit/2"), upstream=False)}
    assert into_second == {"credit/1", "credit/2"}
    assert {"web/2", "web/3", "web/4", "web/5", "web/6"} <= from_two and "web/1" not in from_two


def test_shadow_then_its_canary_then_an_ab_test(backend_models: Path) -> None:
    deployments.create("web", "credit/1")
    assert deployments.shadow("web", "credit/4").strategy == "shadow"  # a shadow may take a failing version
    assert _routes("web") == [("primary", "credit/1", 100), ("shadow", "credit/4", 0)]
    assert deployments.shadow("web", "credit/2").revision == 3  # replaced
    assert deployments.shadow("web", "credit/2").revision == 3  # the same again: nothing to do
    assert deployments.canary("web", "credit/2", 20).strategy == "canary"  # the shadow graduates
    assert _routes("web") == [("primary", "credit/1", 80), ("canary", "credit/2", 20)]
    deployments.canary("web", "credit/2", 100)  # 100 promotes
    assert _routes("web") == [("primary", "credit/2", 100)]
    deployments.ab("web", {"a": ("credit/2", 60), "b": ("credit/3", 40)}, sticky_by="customer_id")
    assert _routes("web") == [("variant", "credit/2", 60), ("variant", "credit/3", 40)]
    deployments.ab("web", {"a": ("credit/2", 50), "b": ("credit/3", 50)})
    assert deployments.promote("web", variant="b").routes[0].version_id == "credit/3"
    assert [d.name for d in deployments.list()] == ["web"]


def test_delete_keeps_the_history_and_a_new_deployment_starts_afresh(models: Path) -> None:
    deployments.create("web", "credit/1")
    deployments.canary("web", "credit/2", 10)
    gone = deployments.delete("web")
    assert (gone.revision, gone.strategy, gone.routes) == (3, "deleted", [])
    assert current_revision(open_context(), "web") == (3, [])  # a polling server sees it gone
    assert shipyard.models.archive("credit/2").status == "archived"  # no longer routed
    assert deployments.list() == [] and [d.name for d in deployments.list(include_deleted=True)] == ["web"]
    with pytest.raises(shipyard.NotFoundError, match="was deleted"):
        deployments.status("web")
    again = deployments.create("web", "credit/3")
    assert again.revision == 4  # numbers go on, so a server never mistakes the new one for an old revision
    with pytest.raises(ConflictError, match="no earlier revision"):
        deployments.rollback("web")
    assert len(deployments.history("web")) == 4


def test_the_polling_read_is_one_indexed_query(models: Path) -> None:
    from sqlalchemy import event

    deployments.create("web", "credit/1")
    ctx = open_context()
    statements: list[str] = []
    listener = lambda *args: statements.append(args[2])  # noqa: E731
    event.listen(ctx.store.engine, "before_cursor_execute", listener)
    try:
        assert current_revision(ctx, "web")[0] == 1
    finally:
        event.remove(ctx.store.engine, "before_cursor_execute", listener)
    selects = [s for s in statements if s.lstrip().upper().startswith("SELECT")]
    assert len(selects) == 1, statements


def test_two_changes_at_once_are_serialised_and_the_loser_sees_the_winner(backend_models: Path) -> None:
    import threading

    barrier = threading.Barrier(2)
    outcomes: list[object] = []

    def create(version: int) -> None:
        ctx = open_context()
        barrier.wait()
        try:
            outcomes.append(deployments.strategies.create(ctx, "web", f"credit/{version}").revision)
        except ConflictError as exc:
            outcomes.append(exc.message)

    threads = [threading.Thread(target=create, args=(v,)) for v in (1, 2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert sorted(outcomes, key=str)[0] == 1 and "exists (revision 1, single" in str(sorted(outcomes, key=str)[1])
    assert len(deployments.history("web")) == 1
