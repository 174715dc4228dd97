"""The `shipyard` command line, run in-process through main() (and as a real process where the
exit status and the entry point matter), against a fresh SQLite workspace."""

from __future__ import annotations

import json
import sqlite3
from pathlib import Path

import pytest

import shipyard
from tests.cli.helpers import blob_path, cli, cli_json, fails, list_ids, make_run
from tests.tampering import rewrite_chain


# -- init and workspace discovery -------------------------------------------------------------------


def test_init_creates_a_workspace_and_rerunning_keeps_it(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.chdir(tmp_path)
    code, out, err = cli(capsys, "init", "proj")
    root = (tmp_path / "proj").resolve()
    assert code == 0, err
    assert (root / "shipyard.yaml").is_file()
    assert (root / ".shipyard" / "shipyard.db").is_file()
    assert (root / ".shipyard" / "artifacts").is_dir()
    assert str(root) in out and "shipyard.db" in out

    spec = root / "shipyard.yaml"
    spec.write_text(spec.read_text() + "# edited by hand\n")
    edited = spec.read_text()
    monkeypatch.chdir(root)
    run_id = make_run("kept")
    monkeypatch.chdir(tmp_path)

    code, _, err = cli(capsys, "init", "proj")
    assert code == 0, err
    assert spec.read_text() == edited
    assert list_ids(capsys, options=("-C", "proj")) == [run_id]
    assert cli_json(capsys, "-C", "proj", "audit", "verify")["ok"] is True


def test_init_into_a_file_fails_clearly(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.chdir(tmp_path)
    (tmp_path / "notes.txt").write_text("hello")
    err = fails(capsys, "init", "notes.txt")
    assert "notes.txt" in err and "is a file" in err
    assert (tmp_path / "notes.txt").read_text() == "hello"
    assert not (tmp_path / "shipyard.yaml").exists()


def test_commands_outside_a_workspace_say_how_to_create_one(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    empty = tmp_path / "empty"
    empty.mkdir()
    monkeypatch.chdir(empty)
    err = fails(capsys, "runs", "list")
    assert "No Shipyard workspace" in err and str(empty) in err
    assert "shipyard init" in err

    plain = tmp_path / "plain"
    plain.mkdir()
    monkeypatch.setenv("SHIPYARD_WORKSPACE", str(plain))
    err = fails(capsys, "runs", "list")
    assert f"SHIPYARD_WORKSPACE={plain}" in err and "is not a Shipyard workspace" in err
    assert f"shipyard init {plain}" in err


def test_workspace_is_found_from_subfolders_env_and_flag(
    three_runs: dict[str, str], workspace: Path, tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str],
) -> None:
    everything = set(three_runs.values())
    deep = workspace / "src" / "models"
    deep.mkdir(parents=True)
    monkeypatch.chdir(deep)
    assert set(list_ids(capsys)) == everything
    assert cli_json(capsys, "config", "show")["root"] == str(workspace)

    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    monkeypatch.chdir(elsewhere)
    fails(capsys, "runs", "list")
    assert set(list_ids(capsys, options=("-C", str(workspace)))) == everything
    assert set(list_ids(capsys, options=("--workspace", str(workspace)))) == everything

    monkeypatch.setenv("SHIPYARD_WORKSPACE", str(workspace))
    assert set(list_ids(capsys)) == everything
    # An explicit -C wins over the environment.
    monkeypatch.setenv("SHIPYARD_WORKSPACE", str(elsewhere))
    assert set(list_ids(capsys, options=("-C", str(workspace)))) == everything


# -- runs list ----------------------------------------------------------------------------------------


def test_runs_list_table_and_json(three_runs: dict[str, str], capsys: pytest.CaptureFixture[str]) -> None:
    code, out, err = cli(capsys, "runs", "list")
    assert code == 0, err
    header = next(line for line in out.splitlines() if " name " in line)
    assert "auc" in header and "loss" in header
    for name, run_id in three_runs.items():
        row = next(line for line in out.splitlines() if f" {name} " in line)
        assert run_id[:8] in row and "finished" in row
    assert "0.95" in out and "More runs" not in out

    page = cli_json(capsys, "runs", "list")
    assert page["next_page_token"] is None
    by_name = {r["name"]: r for r in page["runs"]}
    assert set(by_name) == {"alpha", "beta", "gamma"}
    alpha = by_name["alpha"]
    assert alpha["run_id"] == three_runs["alpha"]
    assert alpha["metrics"] == {"auc": 0.9, "loss": 0.4}  # latest values
    assert alpha["params"] == {"model": "rf", "seed": "1"}
    assert alpha["experiment"] == "exp-a" and alpha["user"] == "tester" and alpha["status"] == "finished"
    assert by_name["beta"]["metrics"] == {"auc": 0.95}


def test_runs_list_shows_top_level_runs_unless_all(workspace: Path, capsys: pytest.CaptureFixture[str]) -> None:
    with shipyard.start_run("pipeline") as parent:
        for step in ("prepare", "train"):
            with shipyard.start_run(step, nested=True) as child:
                child.log_artifact(b"x", name=f"{step}.txt")
    assert [r["name"] for r in cli_json(capsys, "runs", "list")["runs"]] == ["pipeline"]
    every = cli_json(capsys, "runs", "list", "--all")["runs"]
    assert sorted(r["name"] for r in every) == ["pipeline", "prepare", "train"]
    assert {r["name"]: [a["path"] for a in r["artifacts"]] for r in every} == {
        "pipeline": [], "prepare": ["prepare.txt"], "train": ["train.txt"]}
    children = cli_json(capsys, "runs", "list", "--filter", f"parent_id = '{parent.run_id}'")["runs"]
    assert sorted(r["name"] for r in children) == ["prepare", "train"]
    code, out, _ = cli(capsys, "runs", "list")
    assert code == 0 and " pipeline " in out and " prepare " not in out


def test_runs_list_filter_order_and_experiment(three_runs: dict[str, str], capsys: pytest.CaptureFixture[str]) -> None:
    def names(*args: str) -> list[str]:
        return [r["name"] for r in cli_json(capsys, "runs", "list", *args)["runs"]]

    assert names("--order-by", "metrics.auc DESC") == ["beta", "alpha", "gamma"]
    assert names("-o", "metrics.auc ASC") == ["gamma", "alpha", "beta"]
    assert names("--filter", "metrics.auc > 0.75", "--order-by", "metrics.auc DESC") == ["beta", "alpha"]
    assert names("-f", "params.model = 'rf' and metrics.auc < 0.8") == ["gamma"]
    assert names("--filter", "metrics.loss is null", "-o", "name") == ["beta", "gamma"]
    assert names("--experiment", "exp-a", "-o", "name DESC") == ["gamma", "alpha"]
    assert names("--experiment", "nope") == []

    code, out, _ = cli(capsys, "runs", "list", "--filter", "metrics.auc > 2")
    assert code == 0 and "No runs match." in out


def test_runs_list_pages_through_every_run_once(workspace: Path, capsys: pytest.CaptureFixture[str]) -> None:
    created = {make_run(f"r{i}", metrics={"acc": [i / 10]}) for i in range(5)}
    seen: list[str] = []
    token: str | None = None
    pages = 0
    while True:
        args = ["--limit", "2", "-o", "metrics.acc DESC"] + (["--page-token", token] if token else [])
        page = cli_json(capsys, "runs", "list", *args)
        assert len(page["runs"]) in (1, 2)
        seen += [r["run_id"] for r in page["runs"]]
        token = page["next_page_token"]
        pages += 1
        if token is None:
            break
        assert pages < 10
    assert pages == 3
    assert len(seen) == len(set(seen)) == 5 and set(seen) == created
    accs = [cli_json(capsys, "runs", "show", r)["metrics"]["acc"] for r in seen]
    assert accs == sorted(accs, reverse=True)

    # The table prints the same token for the next page.
    code, out, _ = cli(capsys, "runs", "list", "--limit", "2", "-o", "metrics.acc DESC")
    first_token = cli_json(capsys, "runs", "list", "--limit", "2", "-o", "metrics.acc DESC")["next_page_token"]
    assert code == 0 and f"More runs: --page-token {first_token}" in out

    err = fails(capsys, "runs", "list", "--page-token", "garbage")
    assert "Invalid page token 'garbage'" in err


def test_invalid_filter_points_at_the_position(three_runs: dict[str, str], capsys: pytest.CaptureFixture[str]) -> None:
    text = "metrics.auc >> 1"
    err = fails(capsys, "runs", "list", "--filter", text)
    assert "Invalid filter at position 13" in err
    lines = err.splitlines()
    i = next(n for n, line in enumerate(lines) if line.strip() == text)
    caret = lines[i + 1]
    assert caret.strip() == "^"
    assert caret.index("^") - lines[i].index(text) == 13 == text.index(">>") + 1


# -- runs show ----------------------------------------------------------------------------------------


def test_runs_show_by_id_prefix_and_history(three_runs: dict[str, str], capsys: pytest.CaptureFixture[str]) -> None:
    alpha = three_runs["alpha"]
    full = cli_json(capsys, "runs", "show", alpha)
    assert full["run_id"] == alpha and full["name"] == "alpha"
    assert full["params"] == {"model": "rf", "seed": "1"} and full["metrics"]["auc"] == 0.9
    assert "history" not in full
    assert cli_json(capsys, "runs", "show", alpha[:8]) == full
    assert cli_json(capsys, "runs", "show", alpha[:6].upper())["run_id"] == alpha

    code, out, err = cli(capsys, "runs", "show", alpha[:8])
    assert code == 0, err
    assert f"Run {alpha} alpha" in out and "exp-a" in out
    assert "user     tester" in out
    params_rows = [line for line in out.splitlines() if "model" in line]
    assert params_rows and "rf" in params_rows[0]

    history = cli_json(capsys, "runs", "show", alpha, "--history", "auc")["history"]["auc"]
    assert [(p["step"], p["value"]) for p in history] == [(0, 0.7), (1, 0.8), (2, 0.9)]
    code, out, _ = cli(capsys, "runs", "show", alpha, "--history", "loss")
    assert code == 0 and "history of loss" in out

    err = fails(capsys, "runs", "show", alpha, "--history", "acu")
    assert "no metric 'acu'" in err and "Did you mean 'auc'" in err


def test_runs_show_history_downsampled(workspace: Path, capsys: pytest.CaptureFixture[str]) -> None:
    run_id = make_run("long", metrics={"loss": [1.0 / (i + 1) for i in range(10)]})
    data = cli_json(capsys, "runs", "show", run_id, "--history", "loss", "--max-points", "4")
    steps = [p["step"] for p in data["history"]["loss"]]
    assert len(steps) <= 4
    assert steps[0] == 0 and steps[-1] == 9 and steps == sorted(steps)
    err = fails(capsys, "runs", "show", run_id, "--history", "loss", "--max-points", "1")
    assert "max_points must be at least 2" in err


def test_runs_show_unknown_and_mistyped_ids(three_runs: dict[str, str], capsys: pytest.CaptureFixture[str]) -> None:
    err = fails(capsys, "runs", "show", "0123456789abcdef")
    assert "No run with id '0123456789abcdef'" in err

    real = three_runs["beta"]
    typo = real[:12] + ("0" if real[12] != "0" else "1") + real[13:]
    err = fails(capsys, "runs", "show", typo)
    assert f"No run with id '{typo}'" in err
    assert f"Did you mean '{real}'" in err


# -- runs compare -------------------------------------------------------------------------------------


def test_runs_compare(three_runs: dict[str, str], capsys: pytest.CaptureFixture[str]) -> None:
    alpha, beta = three_runs["alpha"], three_runs["beta"]
    data = cli_json(capsys, "runs", "compare", alpha, beta[:8])
    assert data["runs"] == [alpha, beta]
    assert data["values"]["params.model"] == {alpha: "rf", beta: "gb"}
    assert data["values"]["metrics.auc"] == {alpha: 0.9, beta: 0.95}
    assert data["values"]["metrics.loss"] == {alpha: 0.4, beta: None}
    assert data["values"]["params.seed"] == {alpha: "1", beta: "1"}

    code, out, err = cli(capsys, "runs", "compare", alpha, beta)
    assert code == 0, err
    assert f"alpha ({alpha[:8]})" in out and f"beta ({beta[:8]})" in out
    model_row = next(line for line in out.splitlines() if "params.model" in line)
    assert model_row.index("rf") < model_row.index("gb")
    assert "metrics.auc" in out and "params.seed" not in out  # equal values hidden by default

    code, out, _ = cli(capsys, "runs", "compare", alpha, beta, "--all")
    assert code == 0 and "params.seed" in out

    err = fails(capsys, "runs", "compare", alpha)
    assert "at least two runs" in err and "got 1" in err


# -- runs delete / restore ----------------------------------------------------------------------------


def test_runs_delete_restore_and_purge(three_runs: dict[str, str], workspace: Path, capsys: pytest.CaptureFixture[str]) -> None:
    alpha, beta, gamma = three_runs["alpha"], three_runs["beta"], three_runs["gamma"]

    code, out, err = cli(capsys, "runs", "delete", alpha[:8])
    assert code == 0, err
    assert f"Deleted run {alpha}" in out
    assert alpha not in list_ids(capsys)
    deleted = {r["run_id"]: r for r in cli_json(capsys, "runs", "list", "--deleted")["runs"]}
    assert deleted[alpha]["lifecycle"] == "deleted" and len(deleted) == 3
    code, out, _ = cli(capsys, "runs", "show", alpha)
    assert code == 0 and "(deleted)" in out

    code, out, err = cli(capsys, "runs", "restore", alpha)
    assert code == 0, err
    assert f"Restored run {alpha}" in out
    assert alpha in list_ids(capsys)

    err = fails(capsys, "runs", "delete", beta, "--purge")
    assert "--yes" in err
    assert cli_json(capsys, "runs", "show", beta)["lifecycle"] == "active"

    # One unknown id: nothing is deleted.
    err = fails(capsys, "runs", "delete", gamma, "feedfacefeedface")
    assert "No run with id 'feedfacefeedface'" in err
    assert set(list_ids(capsys)) == {alpha, beta, gamma}

    code, out, err = cli(capsys, "runs", "delete", beta, "--purge", "--yes")
    assert code == 0, err
    assert f"Purged run {beta}" in out
    assert "No run with id" in fails(capsys, "runs", "show", beta)
    assert beta not in list_ids(capsys, "--deleted")
    actions = [e["action"] for e in cli_json(capsys, "audit", "log", "--object", beta)]
    assert actions[0] == "run.purge"


# -- audit --------------------------------------------------------------------------------------------


def test_audit_log_filters_and_actor(workspace: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    first = make_run("first", params={"a": 1})
    monkeypatch.setenv("SHIPYARD_USER", "alice")
    second = make_run("second", params={"a": 2}, metrics={"m": [1.0]})

    events = cli_json(capsys, "audit", "log")
    seqs = [e["seq"] for e in events]
    assert seqs == sorted(seqs, reverse=True) and seqs[-1] == 1

    mine = cli_json(capsys, "audit", "log", "--actor", "alice")
    assert mine and {e["object_id"] for e in mine} == {second}
    assert [e["action"] for e in reversed(mine)] == ["run.create", "run.log_params", "run.finish"]
    assert mine[-1]["payload"]["name"] == "second"

    theirs = cli_json(capsys, "audit", "log", "--object", first)
    assert {e["actor"] for e in theirs} == {"tester"}
    assert [e["action"] for e in reversed(theirs)] == ["run.create", "run.log_params", "run.finish"]

    creates = cli_json(capsys, "audit", "log", "--action", "run.create", "--kind", "run")
    assert [(e["object_id"], e["actor"]) for e in creates] == [(second, "alice"), (first, "tester")]
    assert cli_json(capsys, "audit", "log", "--kind", "blob_store") == []
    assert len(cli_json(capsys, "audit", "log", "-n", "2")) == 2

    code, out, err = cli(capsys, "audit", "log", "--action", "run.create")
    assert code == 0, err
    row = next(line for line in out.splitlines() if f"run:{second}" in line)
    assert "alice" in row and "run.create" in row


def test_audit_verify_detects_an_edited_event(workspace: Path, capsys: pytest.CaptureFixture[str]) -> None:
    make_run("one", params={"lr": 0.1})
    code, out, err = cli(capsys, "audit", "verify")
    assert code == 0, err
    assert "intact" in out and "3 events" in out
    report = cli_json(capsys, "audit", "verify")
    assert report["ok"] is True and report["events_checked"] == 3 and report["broken_seq"] is None

    with sqlite3.connect(workspace / ".shipyard" / "shipyard.db") as db:
        changed = db.execute("""UPDATE audit_events SET payload='{"params":{"lr":"0.5"}}' WHERE seq=2""").rowcount
    assert changed == 1

    code, out, _ = cli(capsys, "audit", "verify")
    assert code == 1
    assert "BROKEN at event 2" in out
    code, out, _ = cli(capsys, "audit", "verify", "--json")
    assert code == 1
    report = json.loads(out)
    assert report["ok"] is False and report["broken_seq"] == 2 and report["events_checked"] == 1


def test_audit_head_and_verify_expect_detect_a_consistent_rewrite(
    workspace: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    make_run("one", params={"lr": 0.1})
    head = cli_json(capsys, "audit", "head")
    assert head["seq"] == 3 and len(head["hash"]) == 64 and head["expect"] == f"3:{head['hash']}"
    code, out, err = cli(capsys, "audit", "head")
    assert code == 0, err
    assert f"event 3, hash {head['hash']}" in out and "outside the database" in out
    assert f"shipyard audit verify --expect 3:{head['hash']}" in out

    make_run("two")  # a head recorded earlier stays valid while the chain grows
    for value in (head["expect"], head["hash"]):
        code, out, err = cli(capsys, "audit", "verify", "--expect", value)
        assert code == 0, err
        assert "intact" in out and f"event 3 with the expected hash {head['hash']}" in out

    rewrite_chain(f"sqlite:///{workspace / '.shipyard' / 'shipyard.db'}", 2, '{"params":{"lr":"0.5"}}')
    assert cli(capsys, "audit", "verify")[0] == 0  # a consistent rewrite passes the walk alone

    code, out, _ = cli(capsys, "audit", "verify", "--expect", head["expect"])
    assert code == 1
    assert "BROKEN at event 3" in out and head["hash"] in out
    now = cli_json(capsys, "audit", "log", "-n", "100")[-3]  # newest first; event 3 as it reads now
    assert now["seq"] == 3 and now["hash"] in out
    code, out, _ = cli(capsys, "audit", "verify", "--expect", head["hash"], "--json")
    assert code == 1
    report = json.loads(out)
    assert report["ok"] is False and report["broken_seq"] is None and report["expected_hash"] == head["hash"]


@pytest.mark.parametrize("value", ["deadbeef", "3:xyz", "3-" + "a" * 64, "a" * 65])
def test_audit_verify_rejects_a_malformed_expect(
    workspace: Path, capsys: pytest.CaptureFixture[str], value: str
) -> None:
    err = fails(capsys, "audit", "verify", "--expect", value)
    assert repr(value) in err and "64 hexadecimal characters" in err and "SEQ:HASH" in err


# -- artifacts ----------------------------------------------------------------------------------------


def test_artifacts_get_round_trip(workspace: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    data = bytes(range(256)) * 40
    run_id = make_run("with-model", artifacts={"models/model.bin": data})

    code, out, err = cli(capsys, "artifacts", "get", run_id[:8], "models/model.bin", str(tmp_path / "copy.bin"))
    assert code == 0, err
    assert (tmp_path / "copy.bin").read_bytes() == data
    assert "copy.bin" in out

    out_dir = tmp_path / "out"
    out_dir.mkdir()
    code, _, err = cli(capsys, "artifacts", "get", run_id, "models/model.bin", str(out_dir))
    assert code == 0, err
    assert (out_dir / "model.bin").read_bytes() == data

    # A destination ending with a slash is a folder, created when missing.
    code, out, err = cli(capsys, "artifacts", "get", run_id, "models/model.bin", str(tmp_path / "new") + "/")
    assert code == 0, err
    assert (tmp_path / "new" / "model.bin").read_bytes() == data and "model.bin" in out

    err = fails(capsys, "artifacts", "get", run_id, "models/model.bn", str(tmp_path))
    assert "no artifact 'models/model.bn'" in err and "Did you mean 'models/model.bin'" in err


def test_artifacts_gc_removes_only_unreferenced_blobs(workspace: Path, capsys: pytest.CaptureFixture[str]) -> None:
    doomed_data, kept_data = b"doomed model" * 100, b"kept model" * 100
    doomed = make_run("doomed", artifacts={"model.bin": doomed_data})
    kept = make_run("kept", artifacts={"model.bin": kept_data})
    doomed_blob, kept_blob = blob_path(workspace, doomed_data), blob_path(workspace, kept_data)
    assert doomed_blob.is_file() and kept_blob.is_file()

    nothing = cli_json(capsys, "artifacts", "gc", "--grace", "0")
    assert nothing["removed"] == [] and nothing["kept"] == 2

    assert cli(capsys, "runs", "delete", doomed, "--purge", "--yes")[0] == 0
    preview = cli_json(capsys, "artifacts", "gc", "--grace", "0", "--dry-run")
    assert preview["dry_run"] is True
    assert preview["removed"] == [doomed_blob.name] and preview["freed_bytes"] == len(doomed_data)
    assert doomed_blob.is_file()
    assert cli_json(capsys, "audit", "log", "--action", "blobs.gc") == []

    # A long grace period protects a freshly unreferenced blob.
    assert cli_json(capsys, "artifacts", "gc", "--dry-run")["removed"] == []

    code, out, err = cli(capsys, "artifacts", "gc", "--grace", "0")
    assert code == 0, err
    assert f"Removed 1 blobs ({len(doomed_data)} bytes)" in out and "kept 1" in out
    assert not doomed_blob.exists() and kept_blob.is_file()
    assert len(cli_json(capsys, "audit", "log", "--action", "blobs.gc")) == 1

    code, _, err = cli(capsys, "artifacts", "get", kept, "model.bin", str(workspace / "back.bin"))
    assert code == 0, err
    assert (workspace / "back.bin").read_bytes() == kept_data

    assert "--grace must be zero or more" in fails(capsys, "artifacts", "gc", "--grace", "-1")

