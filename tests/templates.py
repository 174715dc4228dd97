"""Workspaces prepared once and copied for each test: an expensive setup (training, registering, gating) is built
a single time per session, and every test gets a copy of its own to change as it likes."""

from __future__ import annotations

import os
import shutil
from collections.abc import Callable
from pathlib import Path

import pytest

#: Variables the tests keep (tests/conftest.py's _isolated_env): the services they may use.
KEPT = ("SHIPYARD_REQUIRE_SERVICES", "SHIPYARD_TEST_POSTGRES_URL")
#: Where these point elsewhere, a workspace's store or artifacts are not its own files and cannot be copied.
ELSEWHERE = ("SHIPYARD_STORE_URL", "SHIPYARD_ARTIFACTS_URL")


def prepare(root: Path, build: Callable[[Path], object]) -> Path:
    """A new workspace at `root` made by `build(workspace)` as the tests' `workspace` fixture would see it (the
    current folder, no SHIPYARD_ variables but the services', user "tester"); closed, so its files are complete."""
    import shipyard
    from shipyard.context import close_all

    with pytest.MonkeyPatch.context() as patch:
        for name in [n for n in os.environ if n.startswith("SHIPYARD_") and n not in KEPT]:
            patch.delenv(name)
        patch.setenv("SHIPYARD_USER", "tester")
        workspace = shipyard.init_workspace(root)
        patch.chdir(workspace)
        build(workspace)
        close_all()  # SQLite's files are checkpointed before anyone copies them
    return workspace


def copy_into(template: Path, workspace: Path, build: Callable[[Path], object]) -> Path:
    """The test's fresh `workspace` (the current folder) replaced by a copy of `template`; built in place by `build`
    instead when the environment puts its store or artifacts elsewhere (the template's would not be the test's)."""
    from shipyard.context import close_all

    if any(os.environ.get(name) for name in ELSEWHERE):
        build(workspace)
        return workspace
    close_all()
    shutil.rmtree(workspace)
    shutil.copytree(template, workspace)
    os.chdir(workspace)  # the current folder (the `workspace` fixture's) was the one removed
    return workspace
