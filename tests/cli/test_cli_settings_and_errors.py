"""The command line's settings, error reporting and verbatim printing, run in-process through main()."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import pytest

import shipyard

from tests.cli.helpers import SHIPYARD, cli, cli_json, fails, make_run


# -- config show --------------------------------------------------------------------------------------


def test_config_show_precedence_and_sources(
    workspace: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    (workspace / "shipyard.yaml").write_text(
        "store:\n  busy_timeout_ms: 1000\n"
        "tracking:\n  flush_interval_seconds: 5\n  flush_max_points: 10\n"
    )
    base = cli_json(capsys, "config", "show")
    assert base["root"] == str(workspace)
    assert base["settings"]["tracking"] == {"flush_interval_seconds": 5.0, "flush_max_points": 10,
                                            "heartbeat_seconds": 30.0, "lost_after_seconds": 300.0}
    assert base["settings"]["artifacts"]["url"] == ".shipyard/artifacts"
    assert base["sources"] == {
        "store.busy_timeout_ms": "shipyard.yaml",
        "tracking.flush_interval_seconds": "shipyard.yaml",
        "tracking.flush_max_points": "shipyard.yaml",
    }

    monkeypatch.setenv("SHIPYARD_TRACKING_FLUSH_MAX_POINTS", "20")
    monkeypatch.setenv("SHIPYARD_STORE_BUSY_TIMEOUT_MS", "2000")
    data = cli_json(capsys, "--set", "tracking.flush_max_points=30", "--set", "artifacts.url=blobs", "config", "show")
    assert data["settings"]["tracking"] == {"flush_interval_seconds": 5.0, "flush_max_points": 30,
                                            "heartbeat_seconds": 30.0, "lost_after_seconds": 300.0}
    assert data["settings"]["store"]["busy_timeout_ms"] == 2000
    assert data["settings"]["artifacts"]["url"] == "blobs"
    assert data["sources"] == {
        "store.busy_timeout_ms": "SHIPYARD_STORE_BUSY_TIMEOUT_MS",
        "tracking.flush_interval_seconds": "shipyard.yaml",
        "tracking.flush_max_points": "flag",
        "artifacts.url": "flag",
    }

    code, out, err = cli(capsys, "config", "show")
    assert code == 0, err
    rows = {line.split()[1]: line for line in out.splitlines() if line.startswith("│")}
    assert "SHIPYARD_TRACKING_FLUSH_MAX_POINTS" in rows["tracking.flush_max_points"]
    assert "20" in rows["tracking.flush_max_points"]
    assert "default" in rows["store.url"] and "shipyard.yaml" in rows["tracking.flush_interval_seconds"]


@pytest.mark.parametrize(
    ("spec", "env", "args", "expected"),
    [
        (None, {}, ["--set", "tracking.flush_max_points=abc"],
         ["tracking.flush_max_points = 'abc'", "(from flag)", "integer"]),
        (None, {"SHIPYARD_STORE_BUSY_TIMEOUT_MS": "-5"}, [],
         ["store.busy_timeout_ms = '-5'", "(from SHIPYARD_STORE_BUSY_TIMEOUT_MS)", "greater than or equal to 0"]),
        ("store:\n  url: mysql://x\n", {}, [],
         ["store.url = 'mysql://x'", "(from shipyard.yaml, line", "sqlite:///path"]),
        ("store:\n  ulr: sqlite:///x.db\n", {}, [],
         ["Unknown setting", "'store.ulr'", "Did you mean 'store.url'?"]),
        (None, {}, ["--set", "store.ulr=sqlite:///x.db"],
         ["Unknown setting 'store.ulr'", "Did you mean 'store.url'?"]),
        (None, {}, ["--set", "tracking.flush_max_points"], ["--set 'tracking.flush_max_points'", "KEY=VALUE"]),
        ("tracking:\n  flush_max_points: 10\n  - oops\n", {}, [], ["shipyard.yaml is not valid YAML", "line 3"]),
        ("- just\n- a list\n", {}, [], ["must hold a mapping of settings"]),
    ],
    ids=["flag", "env", "file-value", "file-unknown-key", "flag-unknown-key", "set-without-equals",
         "invalid-yaml", "yaml-not-a-mapping"],
)
def test_bad_settings_are_reported_with_key_value_and_source(
    workspace: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str],
    spec: str | None, env: dict[str, str], args: list[str], expected: list[str],
) -> None:
    if spec is not None:
        (workspace / "shipyard.yaml").write_text(spec)
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    for command in (["config", "show", "--json"], ["runs", "list"]):
        err = fails(capsys, *args, *command)
        for fragment in expected:
            assert fragment in err, (fragment, err)


# -- error reporting ----------------------------------------------------------------------------------


def test_debug_shows_a_traceback_only_when_asked(workspace: Path, capsys: pytest.CaptureFixture[str]) -> None:
    err = fails(capsys, "runs", "show", "deadbeefdeadbeef")
    assert "No run with id" in err

    code, out, err = cli(capsys, "--debug", "runs", "show", "deadbeefdeadbeef")
    assert code == 1 and out == ""
    assert "Traceback" in err and "NotFoundError" in err
    assert "No run with id 'deadbeefdeadbeef'" in err

    # The flag does not stick to later calls in the same process.
    assert "Traceback" not in fails(capsys, "runs", "show", "deadbeefdeadbeef")


@pytest.mark.parametrize("where", ["after the command", "between group and command", "at the end"])
def test_debug_works_anywhere_on_the_line(workspace: Path, capsys: pytest.CaptureFixture[str], where: str) -> None:
    args = {"after the command": ["runs", "show", "--debug", "deadbeefdeadbeef"],
            "between group and command": ["runs", "--debug", "show", "deadbeefdeadbeef"],
            "at the end": ["runs", "show", "deadbeefdeadbeef", "--debug"]}[where]
    code, out, err = cli(capsys, *args)
    assert code == 1 and out == ""
    assert "Traceback" in err and "No run with id 'deadbeefdeadbeef'" in err
    # After `--`, it is an argument like any other.
    code, out, err = cli(capsys, "runs", "show", "--", "--debug")
    assert code == 1 and "No run with id '--debug'" in err and "Traceback" not in err


def _broken_search(*args: object, **kwargs: object) -> None:
    raise KeyError("a bug")


def test_an_unexpected_error_is_one_line_pointing_at_its_traceback(
    workspace: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    from shipyard.cli.main import EXIT_UNEXPECTED
    from shipyard.tracking import search

    monkeypatch.setattr(search, "search_runs", _broken_search)
    code, out, err = cli(capsys, "runs", "list")
    assert code == EXIT_UNEXPECTED and code not in (0, 1, 2) and out == ""
    assert "Traceback" not in err and len(err.strip().splitlines()) == 1
    assert err.startswith("Unexpected error: KeyError: 'a bug'.") and "--debug" in err
    (log,) = (workspace / ".shipyard" / "logs").iterdir()
    assert str(log) in err
    text = log.read_text()
    assert text.startswith("shipyard runs list\n")
    assert "Traceback" in text and "_broken_search" in text and "KeyError: 'a bug'" in text

    code, _, err = cli(capsys, "runs", "list", "--debug")
    assert code == EXIT_UNEXPECTED and "Traceback" in err and "_broken_search" in err
    assert "Unexpected error: KeyError" in err.strip().splitlines()[-1]


def test_an_unexpected_error_outside_a_workspace_is_logged_in_the_temporary_folder(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    from shipyard.cli.main import EXIT_UNEXPECTED

    def broken() -> None:
        raise RuntimeError("no store")

    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("TMPDIR", str(tmp_path / "tmp"))
    (tmp_path / "tmp").mkdir()
    monkeypatch.setattr("tempfile.tempdir", None)
    monkeypatch.setattr("shipyard.cli.audit.context", broken)
    code, _, err = cli(capsys, "audit", "head")
    assert code == EXIT_UNEXPECTED and "Traceback" not in err
    (log,) = (tmp_path / "tmp").iterdir()
    assert str(log) in err and "RuntimeError: no store" in log.read_text()


def test_a_path_that_cannot_be_written_is_a_message(workspace: Path, capsys: pytest.CaptureFixture[str]) -> None:
    import pandas as pd

    shipyard.data.add("t", pd.DataFrame({"a": [1, 2]}))
    (workspace / "a-file").write_text("")
    err = fails(capsys, "data", "schema", "infer", "t@1", "-o", str(workspace / "a-file" / "t.yaml"))
    assert str(workspace / "a-file") in err and "Check that the path exists" in err


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["runs", "list", "--bogus"], "No such option"),
        (["runs", "show"], "Missing"),
        (["--set", "store.url=sqlite:///x.db"], "Missing command"),
    ],
    ids=["unknown-option", "missing-argument", "missing-command"],
)
def test_usage_errors_are_reported_without_a_traceback(
    workspace: Path, capsys: pytest.CaptureFixture[str], args: list[str], message: str
) -> None:
    code, out, err = cli(capsys, *args)
    assert code == 2
    assert message in err and "Traceback" not in err


def test_a_store_from_a_newer_shipyard_is_reported_without_a_traceback(
    workspace: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    import sqlite3

    from shipyard.context import close_all
    from shipyard.store.migrate import HEAD_REVISION

    run_id = make_run("before")
    close_all()  # the next command opens the store afresh, as a new process would
    database = workspace / ".shipyard" / "shipyard.db"
    with sqlite3.connect(database) as db:
        db.execute("UPDATE alembic_version SET version_num = '0999'")
    err = fails(capsys, "runs", "list")
    assert "schema revision '0999'" in err and f"the newest it knows is '{HEAD_REVISION}'" in err
    assert str(database) in err and "Upgrade Shipyard" in err
    with sqlite3.connect(database) as db:
        assert db.execute("SELECT version_num FROM alembic_version").fetchall() == [("0999",)]
        assert db.execute("SELECT run_id FROM runs").fetchall() == [(run_id,)]


def test_bare_group_prints_its_help(workspace: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code, out, err = cli(capsys, "runs")
    assert "Traceback" not in err
    assert "list" in out + err and "compare" in out + err


def test_the_installed_command(workspace: Path) -> None:
    def run(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [str(SHIPYARD), *args], capture_output=True, text=True, cwd=workspace, env=os.environ.copy(), timeout=120
        )

    version = run("--version")
    assert version.returncode == 0, version.stderr
    assert version.stdout.strip() == f"shipyard {shipyard.__version__}"

    helped = run("--help")
    assert helped.returncode == 0, helped.stderr
    for command in ("init", "config", "runs", "audit", "artifacts"):
        assert command in helped.stdout

    missing = run("runs", "show", "deadbeefdeadbeef")
    assert missing.returncode == 1 and missing.stdout == ""
    assert "No run with id 'deadbeefdeadbeef'" in missing.stderr and "Traceback" not in missing.stderr

    misused = run("runs", "list", "--bogus")
    assert misused.returncode == 2 and misused.stdout == ""
    assert "No such option" in misused.stderr and "Traceback" not in misused.stderr


# -- text that looks like console markup is printed as given ------------------------------------


def test_error_messages_with_square_brackets_are_printed_verbatim(
    workspace: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    text = "params.model = [rf]"
    err = fails(capsys, "runs", "list", "--filter", text)
    assert text in err

    err = fails(capsys, "runs", "show", "[/x]")
    assert "No run with id '[/x]'" in err

    (workspace / "shipyard.yaml").write_text("store:\n  url: [a\n")
    err = fails(capsys, "config", "show")
    assert "not valid YAML" in err and "url: [a" in err


def test_run_names_with_square_brackets_are_printed_verbatim(
    workspace: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    run_id = make_run("[baseline] rf")
    code, out, err = cli(capsys, "runs", "list")
    assert code == 0, err
    assert "[baseline] rf" in out
    code, out, err = cli(capsys, "runs", "show", run_id)
    assert code == 0, err
    assert f"Run {run_id} [baseline] rf" in out
