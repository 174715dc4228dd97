"""The per-call context: audit events carry the caller given explicitly, also through pipeline steps run
on worker threads; process-wide stores are shared; errors have a stable code and one JSON shape."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

import shipyard
from shipyard.context import open_context, open_stores
from shipyard.errors import (
    BackendError,
    ConfigError,
    ConflictError,
    FilterSyntaxError,
    GateFailed,
    IntegrityError,
    NotFoundError,
    ShipyardError,
    ValidationError,
    WorkspaceNotFoundError,
)
from shipyard.pipelines.runner import run_pipeline
from shipyard.tracking import runs


def test_an_explicit_actor_is_recorded_instead_of_the_environment_user(workspace: Path) -> None:
    ctx = open_context(actor="alice")  # SHIPYARD_USER is "tester" in the tests
    record = runs.create_run(ctx, name="by-alice")
    [event] = shipyard.audit_log(action="run.create", limit=1)
    assert (event.actor, record.user) == ("alice", "alice")
    runs.log_params(ctx.acting_as("bob"), record.run_id, {"a": 1})
    [event] = shipyard.audit_log(action="run.log_params", limit=1)
    assert event.actor == "bob"
    assert open_context().actor == "tester"


def test_pipeline_steps_act_for_whoever_started_the_pipeline(workspace: Path) -> None:
    @shipyard.step(cache=False)
    def write() -> str:
        with shipyard.start_run("inside-a-step") as run:  # a fresh context, opened inside the step
            return run.run_id

    @shipyard.pipeline
    def flow() -> Any:
        return write()

    result = run_pipeline(open_context(actor="scheduler"), flow, {})
    inner = result.output("write")
    assert shipyard.get_run(inner).user == "scheduler"
    assert {e.actor for e in shipyard.audit_log(object_id=inner)} == {"scheduler"}
    assert shipyard.get_run(result.run_id).user == "scheduler"


def test_contexts_share_the_process_wide_stores(workspace: Path) -> None:
    first, second = open_context(actor="a"), open_context(actor="b")
    assert first.stores is second.stores is open_stores(first.workspace)
    assert first.store is second.store and first.blobs is second.blobs


@pytest.mark.parametrize("actor", ["", "   ", "x" * 251, 42])
def test_a_bad_actor_is_refused(workspace: Path, actor: Any) -> None:
    with pytest.raises(ValidationError, match="Invalid actor"):
        open_context(actor=actor)


def test_every_error_class_has_a_stable_code_a_status_and_one_json_shape() -> None:
    classes = [ShipyardError, ConfigError, WorkspaceNotFoundError, NotFoundError, ValidationError, FilterSyntaxError,
               ConflictError, GateFailed, IntegrityError, BackendError]
    codes = [cls.code for cls in classes]
    assert len(set(codes)) == len(codes)
    assert {cls.status_code for cls in classes} >= {400, 404, 409, 422, 500, 503}
    error = NotFoundError("No model 'x'.", model="x")
    assert error.to_dict() == {"error": {"code": "not_found", "message": "No model 'x'.", "status": 404, "model": "x"}}
    parsed = FilterSyntaxError("unexpected end", "metrics.a >", 11)
    assert parsed.to_dict()["error"]["position"] == 11 and parsed.code == "filter_syntax"


def test_errors_raised_by_services_carry_structured_fields(workspace: Path) -> None:
    with pytest.raises(NotFoundError) as caught:
        shipyard.models.get("credit@champion")
    assert caught.value.fields == {"model": "credit"}
