from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.services import MotoServer, postgres_schema

os.environ.setdefault("AWS_ACCESS_KEY_ID", "testing")
os.environ.setdefault("AWS_SECRET_ACCESS_KEY", "testing")
os.environ.setdefault("AWS_DEFAULT_REGION", "us-east-1")
os.environ["SHIPYARD_USER"] = "tester"


@pytest.fixture(autouse=True)
def _isolated_env(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    for name in list(os.environ):
        if name.startswith("SHIPYARD_") and name not in ("SHIPYARD_REQUIRE_SERVICES", "SHIPYARD_TEST_POSTGRES_URL"):
            monkeypatch.delenv(name)
    monkeypatch.setenv("SHIPYARD_USER", "tester")
    yield
    from shipyard.context import close_all
    from shipyard.tracking import fluent, liveness

    fluent._forget_open_runs()  # a failed test must not leave its runs active, or heartbeating, for the next
    liveness.forget_all()
    close_all()


@pytest.fixture
def workspace(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A fresh SQLite workspace, made the current folder."""
    import shipyard

    root = shipyard.init_workspace(tmp_path / "ws")
    monkeypatch.chdir(root)
    return root


@pytest.fixture(scope="session")
def moto() -> Iterator[MotoServer]:
    server = MotoServer()
    server.start()
    yield server
    server.stop()


@pytest.fixture(params=["sqlite", "postgres"])
def store_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    """A metadata store URL for each backend; the store contract runs against both."""
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path / 'store.db'}"
    else:
        with postgres_schema() as url:
            yield url


@pytest.fixture
def backend_workspace(store_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A workspace whose store is each backend in turn (SQLite, PostgreSQL)."""
    import shipyard

    root = shipyard.init_workspace(tmp_path / "ws")
    monkeypatch.chdir(root)
    monkeypatch.setenv("SHIPYARD_STORE_URL", store_url)
    return root
