"""Every command, driven with bad input, answers with one message naming the bad value: never a traceback.

The commands are read from the CLI itself, so a new command fails `test_every_command_has_bad_input`
until it gets its cases here."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import typer.main
from sklearn.linear_model import LogisticRegression

import shipyard
from shipyard.cli.main import EXIT_UNEXPECTED, app
from tests.cli.helpers import cli


def command_paths() -> set[str]:
    """Every runnable command of the CLI, as 'group sub command'."""
    found: set[str] = set()

    def walk(command: object, path: list[str]) -> None:
        children = getattr(command, "commands", None)
        if children is None:
            found.add(" ".join(path))
            return
        for name, child in children.items():
            walk(child, [*path, name])

    walk(typer.main.get_command(app), [])
    return found


# Each case: the arguments (after `shipyard`) and a fragment the message must contain, usually the bad
# value itself. {run} is a run id of the prepared workspace, {tmp} its scratch folder, {missing} a
# folder that does not exist.
CASES: dict[str, list[tuple[list[str], str]]] = {
    "init": [
        (["init", "{tmp}/new", "--ci", "gitlab"], "'gitlab'"),
        (["init", "{tmp}/a-file.txt"], "a-file.txt"),
        (["init", "{tmp}/fresh", "--target", "y"], "--from and --target"),
    ],
    "config show": [
        (["-C", "{missing}", "config", "show"], "{missing}"),
        (["--set", "store.url", "config", "show"], "'store.url'"),
        (["--set", "tracking.heartbeat_seconds=soon", "config", "show"], "soon"),
    ],
    "readiness": [(["readiness", "credit/9"], "no version 9"), (["readiness", "credit/x"], "'x'")],
    "run": [(["run", "--executor", "bogus://host"], "bogus://host")],
    "serve": [(["serve", "credit/9"], "no version 9"), (["serve", "credit/1", "--port", "70000"], "70000"),
              (["serve", "credit@nosuch"], "nosuch")],
    "ci": [(["ci", "--executor", "bogus://host"], "bogus://host")],
    "predict": [
        (["predict", "credit/9", "--input", "credit@2", "--output", "{tmp}/o.parquet"], "no version 9"),
        (["predict", "credit/1", "--input", "nope@1", "--output", "{tmp}/o.parquet"], "'nope'"),
        (["predict", "credit/1", "--input", "{tmp}/missing.csv", "--output", "{tmp}/o.parquet"], "missing.csv"),
        (["predict", "credit/1", "--input", "{tmp}/dupes.csv", "--output", "{tmp}/o.parquet"], "'amount' (2 times)"),
        (["predict", "credit/1", "--input", "docs@1", "--output", "{tmp}/o.parquet"], "docs@1"),
        (["predict", "credit/1", "--input", "credit@2", "--output", "{tmp}/o.csv"], "o.csv"),
        (["predict", "credit/1", "--input", "credit@2", "--output", "{tmp}/a-file.txt/o.parquet"], "a-file.txt"),
        (["predict", "credit/1", "--input", "credit@2", "--output", "{tmp}/o.parquet", "--executor", "bogus://host"],
         "bogus://host"),
        (["predict", "credit/1", "--input", "credit@2", "--output", "{tmp}/o.parquet", "--chunk-rows", "0"], "0"),
        (["predict", "credit/1", "--input", "credit@2", "--output", "{tmp}/o.parquet", "--keep", "idd"], "'idd'"),
    ],
    "data add": [
        (["data", "add", "bad name!", "{tmp}/ok.csv"], "'bad name!'"),
        (["data", "add", "more", "{tmp}/missing.csv"], "missing.csv"),
        (["data", "add", "more", "{tmp}/dupes.csv"], "'amount' (2 times)"),
        (["data", "add", "more", "{tmp}/latin1.csv"], "not UTF-8"),
        (["data", "add", "more", "{tmp}/latin1-header.csv"], "line 1: it is not UTF-8"),
        (["data", "add", "more", "{tmp}/utf16-no-bom.csv"], "UTF-16LE"),
        (["data", "add", "more", "{tmp}/ok.csv", "--kind", "tabel"], "'tabel'"),
        (["data", "add", "more", "{tmp}/ok.csv", "--key", "idd"], "'idd'"),
        (["data", "add", "more", "{tmp}/ok.csv", "--parent", "credit@9"], "no version 9"),
        (["data", "add", "more", ""], "''"),
    ],
    "data list": [(["-C", "{missing}", "data", "list"], "{missing}")],
    "data log": [(["data", "log", "nope"], "'nope'")],
    "data show": [(["data", "show", "credit@9"], "no version 9"), (["data", "show", "credit@x"], "'x'")],
    "data status": [(["data", "status", "docs", "{tmp}/missing"], "missing")],
    "data diff": [
        (["data", "diff", "credit@1", "credit@9"], "no version 9"),
        (["data", "diff", "credit@1", "credit@2", "--key", "idd"], "'idd'"),
    ],
    "data checkout": [
        (["data", "checkout", "credit@9", "{tmp}/out"], "no version 9"),
        (["data", "checkout", "docs@1", "{tmp}/a-file.txt"], "a-file.txt"),
    ],
    "data gc": [(["data", "gc", "--grace", "-1"], "-1")],
    "data validate": [
        (["data", "validate", "credit@1", "--schema", "{tmp}/missing.yaml"], "missing.yaml"),
        (["data", "validate", "credit@2", "--reference", "credit@9"], "no version 9"),
        (["data", "validate", "credit@2", "--html", "{tmp}/a-file.txt/report.html"], "a-file.txt"),
    ],
    "data schema infer": [
        (["data", "schema", "infer", "nope@1"], "'nope'"),
        (["data", "schema", "infer", "credit@1", "--key", "idd"], "idd"),
    ],
    "features list": [(["-C", "{missing}", "features", "list"], "{missing}")],
    "features show": [(["features", "show", "nope"], "'nope'"), (["features", "show", "nope@x"], "'x'"),
                      (["features", "show", "bad name!"], "'bad name!'")],
    "features apply": [(["features", "apply", "{tmp}/missing.py"], "missing.py"),
                       (["features", "apply", "nosuch_views"], "nosuch_views"),
                       (["features", "apply", "{tmp}/ok.csv"], "ok.csv")],
    "features get": [
        (["features", "get", "--entities", "{tmp}/ok.csv", "--features", "nope:x", "-o", "{tmp}/t.parquet"], "'nope'"),
        (["features", "get", "--entities", "{tmp}/ok.csv", "--features", "justaname", "-o", "{tmp}/t.parquet"],
         "'justaname'"),
        (["features", "get", "--entities", "{tmp}/ok.csv", "--features", "v:x", "-o", "{tmp}/t.txt"], "t.txt"),
        (["features", "get", "--entities", "{tmp}/ok.csv", "--features", "v:x"], "--output"),
        (["features", "get", "--entities", "{tmp}/missing.csv", "--features", "v:x", "-o", "{tmp}/t.csv"],
         "missing.csv"),
        (["features", "get", "--entities", "credit@9", "--features", "v:x", "-o", "{tmp}/t.csv"], "no version 9"),
        (["features", "get", "--entities", "credit@1", "--features", "v:x", "--save-as", "bad name!"], "'bad name!'"),
        (["features", "get", "--entities", "{tmp}/ok.csv", "--features", "v:x", "--at", "2026-01-01", "-o",
          "{tmp}/t.csv"], "--at 2026-01-01"),
        (["features", "get", "--online", "--entities", "[{{id: 1}}]", "--features", "v:x"], "[{{id: 1}}]: not valid JSON"),
        (["features", "get", "--online", "--entities", "[1, 2]", "--features", "v:x"], "[1, 2]"),
        (["features", "get", "--online", "--entities", '[{{"id": 1}}]', "--features", "nope:x"], "'nope'"),
        (["features", "get", "--online", "--entities", '[{{"id": 1}}]', "--features", "v:x", "--at", "soon"], "'soon'"),
    ],
    "features skew": [(["features", "skew", "nope"], "'nope'"), (["features", "skew", "bad name!"], "'bad name!'"),
                      (["features", "skew", "v", "--since", "soon"], "'soon'"),
                      (["features", "skew", "v", "--limit", "0"], "limit 0")],
    "features materialize": [
        (["features", "materialize", "nope"], "'nope'"),
        (["features", "materialize", "bad name!"], "'bad name!'"),
        (["features", "materialize", "nope@x"], "'x'"),
        (["features", "materialize", "--start", "2026-02-01", "--end", "2026-01-01"], "--start 2026-02-01 is after"),
        (["features", "materialize", "--end", "soon"], "'soon'"),
    ],
    "models list": [(["-C", "{missing}", "models", "list"], "{missing}")],
    "models versions": [(["models", "versions", "nope"], "'nope'"), (["models", "versions", "bad name!"], "'bad name!'")],
    "models show": [(["models", "show", "credit/9"], "no version 9"), (["models", "show", "credit@champoin"], "'champoin'")],
    "models register": [
        (["models", "register", "credit", "--run", "deadbeef"], "'deadbeef'"),
        (["models", "register", "credit", "--run", "{run}", "--path", "models/nope"], "models/nope"),
    ],
    "models archive": [(["models", "archive", "credit/x"], "'x'")],
    "models gate": [(["models", "gate", "credit/9"], "no version 9"), (["models", "gate", "credit/1", "--only", "nosuch"], "nosuch")],
    "models waive": [(["models", "waive", "credit/1", "--gate", "nosuch", "--reason", "known and accepted"], "nosuch")],
    "models promote": [
        (["models", "promote", "credit/9"], "no version 9"),
        (["models", "promote", "credit/1", "--alias", "Bad Alias"], "'Bad Alias'"),
    ],
    "models card": [(["models", "card", "credit/9"], "no version 9"), (["models", "card", "credit/1", "--out", "{tmp}/a-file.txt"], "a-file.txt")],
    "models alias set": [(["models", "alias", "set", "credit/1", "Bad!"], "'Bad!'")],
    "models alias delete": [(["models", "alias", "delete", "credit", "nosuch"], "'nosuch'")],
    "models alias history": [(["models", "alias", "history", "nope"], "'nope'")],
    "review request": [(["review", "request", "credit/1", "--kind", "Bad Kind"], "'Bad Kind'")],
    "review approve": [(["review", "approve", "credit/1", "--kind", "ethical"], "No open ethical review")],
    "review reject": [(["review", "reject", "credit/9", "--kind", "ethical"], "no version 9")],
    "review list": [(["review", "list", "nope"], "'nope'"), (["review", "list", "credit/9"], "no version 9")],
    "pipeline run": [
        (["pipeline", "run", "nosuchmodule:pipe"], "nosuchmodule"),
        (["pipeline", "run", "{tmp}/missing.py:pipe"], "missing.py"),
        (["pipeline", "run", "justaname"], "justaname"),
    ],
    "pipeline compile": [(["pipeline", "compile", "x:y", "--target", "argo"], "'argo'")],
    "lineage show": [
        (["lineage", "show", "nope@1"], "'nope'"),
        (["lineage", "show", ""], "''"),
        (["lineage", "show", "credit@champoin"], "'champoin'"),
    ],
    "lineage export": [(["lineage", "export", "--format", "dot"], "'dot'")],
    "runs list": [
        (["runs", "list", "--filter", "metrics.auc >"], "metrics.auc >"),
        (["runs", "list", "--page-token", "garbage"], "'garbage'"),
        (["runs", "list", "--limit", "0"], "0"),
        (["runs", "list", "--limit", "many"], "'many'"),
    ],
    "runs show": [
        (["runs", "show", "nope"], "'nope'"),
        (["runs", "show", "{run}", "--history", "auc", "--max-points", "1"], "got 1"),
        (["runs", "show", "{run}", "--max-points", "5"], "--history"),
    ],
    "runs compare": [(["runs", "compare", "{run}"], "at least two"), (["runs", "compare", "{run}", "nope"], "'nope'")],
    "runs delete": [(["runs", "delete", "nope"], "'nope'"), (["runs", "delete", "{run}", "--purge"], "--yes")],
    "runs restore": [(["runs", "restore", "nope"], "'nope'")],
    "audit log": [(["audit", "log", "--limit", "0"], "0")],
    "audit head": [(["-C", "{missing}", "audit", "head"], "{missing}")],
    "audit verify": [(["audit", "verify", "--expect", "garbage"], "garbage")],
    "artifacts get": [
        (["artifacts", "get", "{run}", "nope.json"], "'nope.json'"),
        (["artifacts", "get", "nope", "config.json"], "'nope'"),
        (["artifacts", "get", "{run}", "config.json", "{tmp}/a-file.txt/x"], "a-file.txt"),
    ],
    "artifacts gc": [(["artifacts", "gc", "--grace", "-5"], "-5")],
    "monitor compare": [
        (["monitor", "compare", "credit@1", "nope@1"], "'nope'"),
        (["monitor", "compare", "{tmp}/missing.csv", "credit@1"], "missing.csv"),
        (["monitor", "compare", "credit@1", "credit@2", "--method", "amount"], "'amount'"),
        (["monitor", "compare", "credit@1", "credit@2", "--method", "amount=energy"], "'energy'"),
        (["monitor", "compare", "credit@1", "credit@2", "--correction", "holm"], "'holm'"),
        (["monitor", "compare", "credit@1", "credit@2", "--column", "nope"], "'nope'"),
        (["monitor", "compare", "credit@1", "credit@2", "--share", "0"], "0"),
    ],
    "monitor run": [(["monitor", "run", "nope"], "No monitor 'nope'")],
    "doctor": [(["doctor", "credt"], "'credt'. Did you mean 'credit'"), (["doctor", "credit/9"], "no version 9"),
               (["doctor", "credit@nosuch"], "nosuch"), (["doctor", "credit/1", "--window", "soon"], "'soon'"),
               (["doctor", "credit/1", "--rows", "0"], "rows 0"), (["doctor"], "Name what to examine")],
    "monitor report": [(["monitor", "report", "nope"], "No monitor 'nope'"),
                       (["monitor", "report", "nope", "--format", "pdf"], "'pdf'"),
                       (["monitor", "report", "nope", "--id", "x"], "'x'")],
    "monitor list": [(["-C", "{missing}", "monitor", "list"], "{missing}")],
    "monitor alerts": [(["monitor", "alerts", "--state", "burning"], "'burning'"),
                       (["monitor", "alerts", "--monitor", "bad name!"], "'bad name!'")],
    "monitor ack": [(["monitor", "ack", "999"], "999"), (["monitor", "ack", "one"], "'one'")],
    "monitor silence": [(["monitor", "silence", "nope", "--for", "1h"], "No monitor 'nope'"),
                        (["monitor", "silence", "nope", "--for", "soon"], "'soon'"),
                        (["monitor", "silence", "nope"], "--for")],
    "monitor unsilence": [(["monitor", "unsilence", "999"], "999")],
    "monitor silences": [(["monitor", "silences", "--monitor", "bad name!"], "'bad name!'")],
    "watch status": [(["-C", "{missing}", "watch", "status"], "{missing}")],
    "watch history": [(["watch", "history", "--limit", "0"], "--limit 0"),
                      (["watch", "history", "--limit", "many"], "'many'")],
    "monitor export": [(["monitor", "export", "--output", "{tmp}/a-file.txt/x"], "a-file.txt")],
    "deploy export": [
        (["deploy", "export", "credit/9", "--out", "{tmp}/k8s"], "no version 9"),
        (["deploy", "export", "credit/1", "--out", "{tmp}/k8s", "--namespace", "Bad_Name"], "Bad_Name"),
        (["deploy", "export", "credit/1", "--out", "{tmp}/a-file.txt"], "a-file.txt"),
        (["deploy", "export", "credit/1", "--out", "{tmp}/k8s", "--registry", "cloud"], "cloud"),
    ],
    "deploy create": [
        (["deploy", "create", "web", "--model", "credit/9"], "no version 9"),
        (["deploy", "create", "bad name!", "--model", "credit/1"], "'bad name!'"),
        (["deploy", "create", "web", "--model", "credit/1"], "gate 'evaluation' has not run"),
    ],
    "deploy canary": [
        (["deploy", "canary", "web", "--model", "credit/1", "--percent", "150"], "percent 150"),
        (["deploy", "canary", "web", "--model", "credit/1", "--percent", "0"], "percent 0"),
        (["deploy", "canary", "web", "--model", "credit/1", "--percent", "ten"], "'ten'"),
        (["deploy", "canary", "nope", "--model", "credit/1", "--percent", "10"], "'nope'"),
        (["deploy", "canary", "nope", "--model", "credit/1", "--percent", "10", "--sticky-by", "bad key!"],
         "'bad key!'"),
    ],
    "deploy shadow": [
        (["deploy", "shadow", "nope", "--model", "credit/1"], "'nope'"),
        (["deploy", "shadow", "nope"], "--off"),
        (["deploy", "shadow", "nope", "--off"], "'nope'"),
    ],
    "deploy ab": [
        (["deploy", "ab", "nope", "--variant", "a=credit/1:50", "--variant", "b=credit/1:40"], "sum to 90"),
        (["deploy", "ab", "nope", "--variant", "a-credit/1"], "'a-credit/1'"),
        (["deploy", "ab", "nope", "--variant", "a=credit/1:50", "--variant", "a=credit/1:50"], "'a' is given twice"),
    ],
    "deploy promote": [(["deploy", "promote", "nope"], "'nope'")],
    "deploy rollback": [(["deploy", "rollback", "nope"], "'nope'")],
    "deploy status": [(["deploy", "status", "nope"], "'nope'"), (["deploy", "status", "bad name!"], "'bad name!'")],
    "deploy history": [(["deploy", "history", "nope"], "'nope'")],
    "deploy compare": [(["deploy", "compare", "nope"], "'nope'"), (["deploy", "compare", "bad name!"], "'bad name!'")],
    "deploy report": [(["deploy", "report", "nope"], "'nope'")],
    "deploy list": [(["-C", "{missing}", "deploy", "list"], "{missing}")],
    "deploy delete": [(["deploy", "delete", "nope"], "'nope'")],
    "deploy apply": [(["deploy", "apply", "nope"], "deploy.nope")],
    "feedback record": [
        (["feedback", "record", "credt", "r-1", "yes"], "'credt'"),
        (["feedback", "record", "credit", "r-1", "yes", "--row", "-1"], "-1"),
        (["feedback", "record", "credit", "--file", "{tmp}/a-file.txt"], "a-file.txt"),
        (["feedback", "record", "credit", "--file", "{tmp}/missing.csv"], "missing.csv"),
        (["feedback", "record", "credit", "--file", "{tmp}/ok.csv"], "no column 'request_id'"),
        (["feedback", "record", "credit", "r-1"], "REQUEST_ID and VALUE"),
        (["feedback", "record", "credit", "r-1", "null"], "is null"),
    ],
    "feedback report": [(["feedback", "report", "nope"], "'nope'"), (["feedback", "report", "bad name!"], "'bad name!'")],
}


SPEC = """
data:
  dataset: credit
  target: label
model:
  name: credit
  estimator: sklearn.linear_model.LogisticRegression
gates:
  credit:
    evaluation: {dataset: credit@latest, target: label, thresholds: {accuracy: {min: 0.0}}}
"""


@pytest.fixture(scope="module")
def prepared(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, str]]:
    """A workspace with two versions of a table, a file dataset, a run with an artifact and a model."""
    base = tmp_path_factory.mktemp("bad-input")
    root = shipyard.init_workspace(base / "ws")
    tmp = base / "scratch"
    tmp.mkdir()
    rng = np.random.default_rng(0)
    frame = pd.DataFrame({"id": range(40), "amount": rng.normal(100, 10, 40), "label": rng.integers(0, 2, 40)})
    frame.to_csv(tmp / "ok.csv", index=False)
    (tmp / "dupes.csv").write_text("id,amount,amount\n1,2,3\n")
    (tmp / "latin1.csv").write_bytes("name,city\nJosé,Zürich\n".encode("latin-1"))
    (tmp / "latin1-header.csv").write_bytes("café,city\n1,2\n".encode("latin-1"))
    (tmp / "utf16-no-bom.csv").write_bytes("a,b\n1,2\n".encode("utf-16-le"))
    (tmp / "a-file.txt").write_text("not a folder")
    (tmp / "docs").mkdir()
    (tmp / "docs" / "page.txt").write_text("a page")
    spec = root / "shipyard.yaml"
    spec.write_text(spec.read_text() + SPEC)
    cwd = Path.cwd()
    os.chdir(root)
    try:
        shipyard.data.add("credit", frame.iloc[:30], key=["id"])
        shipyard.data.add("credit", frame, key=["id"])
        shipyard.data.add("docs", tmp / "docs")
        shipyard.data.infer_schema("credit@1")
        with shipyard.start_run("train") as run:
            run.log_artifact(b"{}", name="config.json")
            x, y = frame[["amount"]], frame["label"]
            run.log_model(LogisticRegression().fit(x, y), "credit", input_example=x.head())
    finally:
        os.chdir(cwd)
        from shipyard.context import close_all

        close_all()
    yield {"root": str(root), "tmp": str(tmp), "missing": str(base / "missing"), "run": run.run_id}


def test_every_command_has_bad_input() -> None:
    commands = command_paths()
    assert not commands - set(CASES), f"Give these commands bad-input cases: {sorted(commands - set(CASES))}"
    assert not set(CASES) - commands, f"No such commands: {sorted(set(CASES) - commands)}"


@pytest.mark.parametrize(
    ("args", "fragment"),
    [case for cases in CASES.values() for case in cases],
    ids=[f"{command}-{i}" for command, cases in CASES.items() for i, _ in enumerate(cases)],
)
def test_bad_input_gets_one_message_naming_the_value(
    prepared: dict[str, str], monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str],
    args: list[str], fragment: str,
) -> None:
    monkeypatch.chdir(prepared["root"])
    argv = [a.format(**prepared) for a in args]
    code, out, err = cli(capsys, *argv)
    assert code not in (0, EXIT_UNEXPECTED), (code, out, err)
    assert "Traceback" not in out + err
    assert "Unexpected error" not in err, err
    assert fragment.format(**prepared) in out + err, err  # `ci` reports on stdout
