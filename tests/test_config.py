"""Workspace discovery and settings: defaults < shipyard.yaml < SHIPYARD_* environment < overrides,
errors that name the key, the value and the source, and paths resolved against the workspace root."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import yaml

from shipyard.config import (
    DEFAULT_SPEC,
    SPEC_FILE,
    WORKSPACE_ENV,
    current_actor,
    find_root,
    init_workspace,
    load_workspace,
    resolve_artifacts_url,
    resolve_store_url,
)
from shipyard.errors import ConfigError, WorkspaceNotFoundError
from shipyard.settings import Settings, resolve_settings, setting_keys


def write_spec(root: Path, text: str) -> Path:
    spec = root / SPEC_FILE
    spec.write_text(text)
    return spec


# -- discovery ----------------------------------------------------------------------------------------


def test_find_root_walks_up_to_the_nearest_workspace(workspace: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    deep = workspace / "a" / "b" / "c"
    deep.mkdir(parents=True)
    assert find_root(deep) == workspace
    monkeypatch.chdir(deep)
    assert find_root() == workspace
    assert load_workspace().root == workspace

    inner = init_workspace(workspace / "a" / "inner")
    (inner / "x").mkdir()
    assert find_root(inner / "x") == inner
    assert load_workspace(inner / "x").root == inner


def test_no_workspace_anywhere_up_is_a_clear_error(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    empty = tmp_path / "empty"
    empty.mkdir()
    monkeypatch.chdir(empty)
    with pytest.raises(WorkspaceNotFoundError) as caught:
        load_workspace()
    assert isinstance(caught.value, ConfigError)
    message = str(caught.value)
    assert str(empty) in message and "shipyard init" in message and WORKSPACE_ENV in message


def test_workspace_from_the_environment(workspace: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    monkeypatch.chdir(elsewhere)
    monkeypatch.setenv(WORKSPACE_ENV, str(workspace))
    assert find_root() == workspace
    assert load_workspace().root == workspace
    # An explicit start folder is not overridden by the environment.
    with pytest.raises(WorkspaceNotFoundError):
        find_root(elsewhere)

    monkeypatch.setenv(WORKSPACE_ENV, str(elsewhere))
    with pytest.raises(WorkspaceNotFoundError) as caught:
        find_root()
    message = str(caught.value)
    assert f"{WORKSPACE_ENV}={elsewhere}" in message and "not a Shipyard workspace" in message
    assert f"shipyard init {elsewhere}" in message
    assert load_workspace(workspace).root == workspace


def test_init_workspace_is_idempotent_and_refuses_files(tmp_path: Path) -> None:
    root = init_workspace(tmp_path / "new" / "ws")
    assert root == (tmp_path / "new" / "ws").resolve()
    assert (root / ".shipyard" / "artifacts").is_dir() and (root / ".shipyard" / "logs").is_dir()
    assert (root / ".shipyard" / ".gitignore").read_text() == "*\n"
    assert (root / SPEC_FILE).read_text() == DEFAULT_SPEC

    edited = "tracking:\n  flush_max_points: 7\n"
    write_spec(root, edited)
    assert init_workspace(root) == root
    assert (root / SPEC_FILE).read_text() == edited
    assert load_workspace(root).settings.tracking.flush_max_points == 7

    (tmp_path / "file").write_text("x")
    with pytest.raises(ConfigError, match="is a file"):
        init_workspace(tmp_path / "file")
    assert (tmp_path / "file").read_text() == "x"


def test_the_default_spec_shows_the_model_defaults(tmp_path: Path) -> None:
    spec = write_spec(tmp_path, DEFAULT_SPEC)
    settings, sources = resolve_settings(spec, {}, {})
    assert settings == Settings()
    shown = yaml.safe_load(DEFAULT_SPEC)
    assert set(sources) == {f"{s}.{k}" for s, values in shown.items() for k in values}
    assert set(sources.values()) == {SPEC_FILE}


def test_current_actor(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SHIPYARD_USER", "  carol ")
    assert current_actor() == "carol"
    monkeypatch.setenv("SHIPYARD_USER", "   ")
    assert current_actor().strip() and current_actor() != "   "


# -- precedence ---------------------------------------------------------------------------------------


def test_setting_keys_map_to_environment_variables() -> None:
    keys = setting_keys()
    assert keys["store.url"] == "SHIPYARD_STORE_URL"
    assert keys["tracking.flush_max_points"] == "SHIPYARD_TRACKING_FLUSH_MAX_POINTS"
    assert keys["artifacts.endpoint_url"] == "SHIPYARD_ARTIFACTS_ENDPOINT_URL"
    assert set(keys) == {
        f"{section}.{name}" for section, model in Settings().model_dump().items() for name in model
    }


def test_sources_override_each_other_in_order(tmp_path: Path) -> None:
    spec = write_spec(
        tmp_path,
        "store:\n  busy_timeout_ms: 1000\n"
        "artifacts:\n  url: s3://bucket/prefix\n  endpoint_url: http://127.0.0.1:9000\n"
        "tracking:\n  flush_interval_seconds: 5\n  flush_max_points: 10\n"
        "model:\n  anything: goes\n",  # sections of other building blocks are left to them
    )
    environ = {
        "SHIPYARD_TRACKING_FLUSH_MAX_POINTS": "20",
        "SHIPYARD_STORE_BUSY_TIMEOUT_MS": "2000",
        "SHIPYARD_USER": "dave",  # not a setting
        "SHIPYARD_WORKSPACE": "/nowhere",  # not a setting
        "HOME": "/home/dave",
    }
    settings, sources = resolve_settings(spec, environ, {"tracking.flush_max_points": "30"})
    assert settings.tracking.flush_max_points == 30
    assert settings.tracking.flush_interval_seconds == 5.0
    assert settings.store.busy_timeout_ms == 2000
    assert settings.store.url == Settings().store.url
    assert settings.artifacts.url == "s3://bucket/prefix"
    assert settings.artifacts.endpoint_url == "http://127.0.0.1:9000"
    assert sources == {
        "store.busy_timeout_ms": "SHIPYARD_STORE_BUSY_TIMEOUT_MS",
        "artifacts.url": SPEC_FILE,
        "artifacts.endpoint_url": SPEC_FILE,
        "tracking.flush_interval_seconds": SPEC_FILE,
        "tracking.flush_max_points": "flag",
    }

    without_flag, sources = resolve_settings(spec, environ, {})
    assert without_flag.tracking.flush_max_points == 20
    assert sources["tracking.flush_max_points"] == "SHIPYARD_TRACKING_FLUSH_MAX_POINTS"


def test_load_workspace_reads_the_real_environment(workspace: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    write_spec(workspace, "tracking:\n  flush_max_points: 10\n")
    monkeypatch.setenv("SHIPYARD_TRACKING_FLUSH_INTERVAL_SECONDS", "0.5")
    ws = load_workspace(overrides={"store.busy_timeout_ms": 5})
    assert ws.root == workspace and ws.state_dir == workspace / ".shipyard"
    assert ws.settings.tracking.flush_max_points == 10
    assert ws.settings.tracking.flush_interval_seconds == 0.5
    assert ws.settings.store.busy_timeout_ms == 5
    assert dict(ws.sources) == {
        "tracking.flush_max_points": SPEC_FILE,
        "tracking.flush_interval_seconds": "SHIPYARD_TRACKING_FLUSH_INTERVAL_SECONDS",
        "store.busy_timeout_ms": "flag",
    }


@pytest.mark.parametrize("text", ["", "# only comments\n", "---\n"])
def test_an_empty_spec_means_defaults(tmp_path: Path, text: str) -> None:
    settings, sources = resolve_settings(write_spec(tmp_path, text), {}, {})
    assert settings == Settings() and sources == {}
    missing, sources = resolve_settings(tmp_path / "absent.yaml", {}, {})
    assert missing == Settings() and sources == {}


def test_a_section_with_every_key_commented_out_means_defaults(tmp_path: Path) -> None:
    spec = write_spec(
        tmp_path,
        "store:\n  # url: sqlite:///.shipyard/shipyard.db\ntracking:\n  flush_max_points: 10\n",
    )
    settings, sources = resolve_settings(spec, {}, {})
    assert settings.store == Settings().store
    assert settings.tracking.flush_max_points == 10
    assert sources == {"tracking.flush_max_points": SPEC_FILE}


# -- errors -------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("spec", "environ", "overrides", "expected"),
    [
        ("", {}, {"tracking.flush_max_points": "abc"},
         ["Invalid setting tracking.flush_max_points = 'abc' (from flag)", "integer"]),
        ("", {}, {"tracking.flush_max_points": 0},
         ["tracking.flush_max_points = 0 (from flag)", "greater than or equal to 1"]),
        ("", {"SHIPYARD_STORE_BUSY_TIMEOUT_MS": "-5"}, {},
         ["Invalid setting store.busy_timeout_ms = '-5' (from SHIPYARD_STORE_BUSY_TIMEOUT_MS)"]),
        ("", {"SHIPYARD_TRACKING_FLUSH_INTERVAL_SECONDS": "inf"}, {},
         ["tracking.flush_interval_seconds = 'inf' (from SHIPYARD_TRACKING_FLUSH_INTERVAL_SECONDS)", "finite"]),
        ("", {"SHIPYARD_ARTIFACTS_URL": "ftp://host/x"}, {},
         ["artifacts.url = 'ftp://host/x' (from SHIPYARD_ARTIFACTS_URL)", "s3://bucket/prefix"]),
        ("", {"SHIPYARD_ARTIFACTS_URL": "  "}, {}, ["artifacts.url = '  ' (from SHIPYARD_ARTIFACTS_URL)"]),
        ("store:\n  url: mysql://x\n", {}, {},
         ["Invalid setting store.url = 'mysql://x' (from shipyard.yaml, line 2)", "postgresql"]),
        ("tracking:\n  flush_max_points: lots\n", {}, {},
         ["tracking.flush_max_points = 'lots' (from shipyard.yaml, line 2)"]),
        ("store:\n  ulr: sqlite:///x.db\n", {}, {},
         ["Unknown setting in shipyard.yaml 'store.ulr'.", "Did you mean 'store.url'?", "Known: "]),
        ("tracking:\n  flush_max_point: 3\n", {}, {},
         ["'tracking.flush_max_point'", "Did you mean 'tracking.flush_max_points'?"]),
        ("", {}, {"store.ulr": "sqlite:///x.db"}, ["Unknown setting 'store.ulr'.", "Did you mean 'store.url'?"]),
        ("store: sqlite:///x.db\n", {}, {}, ["'store' must be a mapping of settings", "sqlite:///x.db"]),
        ("stor:\n  url: sqlite:///x.db\n", {}, {}, ["Unknown section in shipyard.yaml 'stor'.", "Did you mean 'store'?"]),
        ("- a\n- b\n", {}, {}, ["must hold a mapping of settings, got list"]),
        ("store:\n  url: sqlite:///x.db\n bad: [\n", {}, {}, ["is not valid YAML at line 3", "Fix the file"]),
    ],
    ids=["flag-type", "flag-range", "env-range", "env-infinite", "env-protocol", "env-blank", "file-scheme",
         "file-type", "file-unknown-key", "file-unknown-key-2", "flag-unknown-key", "section-not-mapping",
         "file-unknown-section",
         "spec-not-mapping", "invalid-yaml"],
)
def test_errors_name_the_key_the_value_and_the_source(
    tmp_path: Path, spec: str, environ: dict[str, str], overrides: dict[str, Any], expected: list[str]
) -> None:
    path = write_spec(tmp_path, spec)
    with pytest.raises(ConfigError) as caught:
        resolve_settings(path, environ, overrides)
    for fragment in expected:
        assert fragment in str(caught.value), (fragment, str(caught.value))


def test_every_invalid_value_is_reported_at_once(tmp_path: Path) -> None:
    path = write_spec(tmp_path, "store:\n  url: mysql://x\n")
    with pytest.raises(ConfigError) as caught:
        resolve_settings(path, {"SHIPYARD_TRACKING_FLUSH_MAX_POINTS": "many"}, {})
    lines = str(caught.value).splitlines()
    assert len(lines) == 2
    assert any("store.url = 'mysql://x' (from shipyard.yaml, line 2)" in line for line in lines)
    assert any("(from SHIPYARD_TRACKING_FLUSH_MAX_POINTS)" in line for line in lines)


def test_load_workspace_reports_bad_environment_values(workspace: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SHIPYARD_STORE_BUSY_TIMEOUT_MS", "-5")
    with pytest.raises(ConfigError, match=r"store\.busy_timeout_ms = '-5' \(from SHIPYARD_STORE_BUSY_TIMEOUT_MS\)"):
        load_workspace()


# -- paths --------------------------------------------------------------------------------------------


def test_relative_paths_resolve_against_the_workspace_root(
    workspace: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    sub = workspace / "notebooks"
    sub.mkdir()

    default = load_workspace(workspace)
    assert default.store_url == f"sqlite:///{workspace}/.shipyard/shipyard.db"
    assert default.artifacts_url == str(workspace / ".shipyard" / "artifacts")

    write_spec(workspace, "store:\n  url: sqlite:///data/meta.db\nartifacts:\n  url: blobs\n")
    for cwd, start in ((elsewhere, workspace), (sub, None), (workspace, sub)):
        monkeypatch.chdir(cwd)
        ws = load_workspace(start)
        assert ws.store_url == f"sqlite:///{workspace}/data/meta.db"
        assert ws.artifacts_url == str(workspace / "blobs")

    monkeypatch.chdir(elsewhere)
    monkeypatch.setenv("SHIPYARD_STORE_URL", "sqlite:///../shared/meta.db")
    monkeypatch.setenv("SHIPYARD_ARTIFACTS_URL", "../shared/blobs")
    ws = load_workspace(workspace)
    assert ws.store_url == f"sqlite:///{workspace.parent}/shared/meta.db"
    assert ws.artifacts_url == str(workspace.parent / "shared" / "blobs")


@pytest.mark.parametrize(
    "url",
    ["sqlite:////abs/meta.db", "sqlite:///:memory:", "sqlite://",
     "postgresql+psycopg://user@host:5432/db"],
)
def test_absolute_and_server_store_urls_pass_through(url: str, tmp_path: Path) -> None:
    assert resolve_store_url(url, tmp_path) == url


def test_artifact_urls(tmp_path: Path) -> None:
    root = tmp_path / "ws"
    assert resolve_artifacts_url("s3://bucket/prefix", root) == "s3://bucket/prefix"
    assert resolve_artifacts_url("memory://blobs", root) == "memory://blobs"
    assert resolve_artifacts_url("/abs/blobs", root) == "/abs/blobs"
    assert resolve_artifacts_url("file:///abs/blobs", root) == "/abs/blobs"
    assert resolve_artifacts_url("~/blobs", root) == str(Path.home() / "blobs")
    assert resolve_artifacts_url("a/../blobs", root) == str(root / "blobs")
