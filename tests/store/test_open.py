"""A metadata store that cannot be opened says why: for SQLite the file and its folder, for a database
server the server."""

from __future__ import annotations

from pathlib import Path

import pytest

from shipyard.errors import BackendError
from shipyard.store.db import MetadataStore


def test_a_missing_sqlite_folder_is_named_not_a_server(tmp_path: Path) -> None:
    folder = tmp_path / "fresh-checkout" / ".shipyard"
    with pytest.raises(BackendError) as raised:
        MetadataStore(f"sqlite:///{folder / 'shipyard.db'}")
    message = str(raised.value)
    assert message.startswith(f"Cannot open the SQLite metadata store {folder / 'shipyard.db'}: unable to open")
    assert f"its folder {folder} does not exist" in message and "SHIPYARD_STORE_URL" in message
    assert "server" not in message
    assert raised.value.fields == {"path": str(folder / "shipyard.db")}


def test_a_file_that_is_not_a_database_is_named(tmp_path: Path) -> None:
    path = tmp_path / "shipyard.db"
    path.write_text("a folder of notes, not a database\n" * 100)
    with pytest.raises(BackendError) as raised:
        MetadataStore(f"sqlite:///{path}")
    message = str(raised.value)
    assert f"Cannot open the SQLite metadata store {path}" in message
    assert f"check that {path} is an SQLite database" in message and "server" not in message


def test_an_unreachable_server_is_still_named(tmp_path: Path) -> None:
    from tests.services import free_port

    with pytest.raises(BackendError, match="Check that the server is running"):
        MetadataStore(f"postgresql+psycopg://postgres@127.0.0.1:{free_port()}/test?connect_timeout=5")
