"""Feature views are declared in modules the tests write into their workspaces; each test forgets the ones it
imported, so a later test's `views` module is its own and not an earlier workspace's."""

from __future__ import annotations

import sys
from collections.abc import Iterator
from pathlib import Path

import pytest


@pytest.fixture(autouse=True)
def forget_workspace_modules(tmp_path_factory: pytest.TempPathFactory) -> Iterator[None]:
    before = set(sys.modules)
    yield
    root = str(tmp_path_factory.getbasetemp())
    for name in set(sys.modules) - before:
        where = getattr(sys.modules[name], "__file__", None) or ""
        if where.startswith(root):
            del sys.modules[name]
    sys.path[:] = [p for p in sys.path if not p.startswith(root)]
