"""The model commands end to end, including their errors and exit codes."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from sklearn.datasets import load_wine
from sklearn.dummy import DummyClassifier
from sklearn.ensemble import RandomForestClassifier

import shipyard
from shipyard.cli.main import main


def run(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str, str]:
    code = main(list(args))
    out, err = capsys.readouterr()
    return code, out, err


@pytest.fixture
def wine(workspace: Path) -> dict[str, object]:
    frame = load_wine(as_frame=True).frame
    frame["target"] = (frame["target"] == 0).astype(int)
    shipyard.data.add("wine-holdout", frame.sample(60, random_state=0))
    (workspace / "shipyard.yaml").write_text((workspace / "shipyard.yaml").read_text() + """
gates:
  wine:
    evaluation:
      dataset: wine-holdout@latest
      target: target
      thresholds: {accuracy: {min: 0.9}}
""")
    x, y = frame.drop(columns=["target"]), frame["target"]
    return {"x": x, "y": y}


def test_register_gate_promote_and_inspect(wine, capsys: pytest.CaptureFixture[str]) -> None:  # type: ignore[no-untyped-def]
    x, y = wine["x"], wine["y"]
    with shipyard.start_run("forest") as r:
        r.log_metric("train_accuracy", 1.0)
        r.log_model(RandomForestClassifier(n_estimators=20, random_state=0).fit(x, y), "wine", input_example=x.head())
    shipyard.models.register("wine", DummyClassifier(strategy="constant", constant=0).fit(x, y), input_example=x.head())

    code, out, _ = run(capsys, "models", "gate", "wine/1", "--json")
    assert code == 0 and json.loads(out)[0]["status"] == "PASS"
    code, out, _ = run(capsys, "models", "gate", "wine/2")
    assert code == 3 and "FAIL" in out and "accuracy" in out and "< minimum 0.9" in out  # blocked, not broken
    code, _, err = run(capsys, "models", "promote", "wine/2")
    assert code == 3 and "Refusing to promote wine/2 to 'champion'" in err and "accuracy" in err
    code, _, err = run(capsys, "models", "promote", "wine/2", "--no-gates")
    assert code == 1 and "--no-gates is for a model without gates" in err  # it never skips configured gates
    code, out, _ = run(capsys, "models", "promote", "wine/1", "--reason", "first forest")
    assert code == 0 and "Promoted wine/1 to champion (was nothing)" in out
    code, _, err = run(capsys, "models", "alias", "set", "wine/2", "champion")
    assert code == 3 and "moves only through promotion" in err
    assert run(capsys, "models", "alias", "set", "wine/2", "candidate")[0] == 0
    code, out, _ = run(capsys, "models", "alias", "history", "wine", "--json")
    assert [(m["alias"], m["to_version"], m["reason"]) for m in json.loads(out)] == [
        ("champion", 1, "first forest"), ("candidate", 2, None)]
    code, out, _ = run(capsys, "models", "list", "--json")
    assert json.loads(out)[0]["aliases"] == {"champion": 1, "candidate": 2}
    code, out, _ = run(capsys, "models", "show", "wine@champion", "--json")
    shown = json.loads(out)
    assert shown["version"] == 1 and shown["gates"]["evaluation"]["status"] == "PASS" and shown["promotion"]["allowed"]
    code, out, _ = run(capsys, "models", "show", "wine/2")
    assert "may not be promoted" in out
    code, out, _ = run(capsys, "models", "versions", "wine")
    assert out.index("wine/2") < out.index("wine/1")
    code, _, err = run(capsys, "models", "archive", "wine/1")
    assert code == 1 and "still the target of alias(es) champion" in err
    code, out, _ = run(capsys, "models", "waive", "wine/2", "--gate", "evaluation", "--reason", "baseline for comparison")
    assert code == 0 and "Waived gate 'evaluation' of wine/2 as tester" in out
    code, out, _ = run(capsys, "readiness", "wine/1", "--json")
    items = {i["name"]: i["status"] for i in json.loads(out)["items"]}
    assert items["pipeline"] == "FAIL" and items["deployment"] == "FAIL" and items["model"] == "PASS"
    assert code == 1  # an item is FAIL


def test_reviews(wine, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch) -> None:  # type: ignore[no-untyped-def]
    x, y = wine["x"], wine["y"]
    shipyard.models.register("wine", RandomForestClassifier(n_estimators=5, random_state=0).fit(x, y),
                             input_example=x.head())
    code, _, err = run(capsys, "review", "approve", "wine/1", "--kind", "ethical")
    assert code == 1 and "No open ethical review" in err
    assert run(capsys, "review", "request", "wine/1", "--kind", "ethical", "--notes", "check groups")[0] == 0
    code, _, err = run(capsys, "review", "approve", "wine/1", "--kind", "ethical")
    assert code == 1 and "cannot also decide it" in err
    monkeypatch.setenv("SHIPYARD_USER", "reviewer")
    code, out, _ = run(capsys, "review", "reject", "wine/1", "--kind", "ethical", "--notes", "gap too large")
    assert code == 0 and "ethical review of wine/1: rejected by reviewer" in out
    code, _, err = run(capsys, "review", "request", "wine/1", "--kind", "Ethical!")
    assert code == 1 and "Invalid review kind" in err


def test_review_list_shows_pending_reviews(workspace: Path, capsys: pytest.CaptureFixture[str],
                                          monkeypatch: pytest.MonkeyPatch) -> None:
    x, y = np.zeros((4, 1)), [0, 1, 0, 1]
    for name in ("iris", "iris", "wine"):
        shipyard.models.register(name, DummyClassifier().fit(x, y))
    code, out, _ = run(capsys, "review", "list")
    assert code == 0 and "No reviews" in out and "shipyard review request" in out
    for ref, kind in (("iris/1", "ethical"), ("iris/2", "ethical"), ("iris/2", "security"), ("wine/1", "ethical")):
        assert run(capsys, "review", "request", ref, "--kind", kind, "--notes", f"{kind} of {ref}")[0] == 0
    monkeypatch.setenv("SHIPYARD_USER", "reviewer")
    assert run(capsys, "review", "approve", "iris/2", "--kind", "ethical")[0] == 0

    def listed(*args: str) -> list[tuple[str, str, str]]:
        code, out, err = run(capsys, "review", "list", *args, "--json")
        assert code == 0, err
        return [(r["version_id"], r["kind"], r["status"]) for r in json.loads(out)]

    assert listed() == [("iris/1", "ethical", "requested"), ("iris/2", "ethical", "approved"),
                        ("iris/2", "security", "requested"), ("wine/1", "ethical", "requested")]
    assert listed("--pending") == [("iris/1", "ethical", "requested"), ("iris/2", "security", "requested"),
                                   ("wine/1", "ethical", "requested")]
    assert listed("iris", "--pending") == [("iris/1", "ethical", "requested"), ("iris/2", "security", "requested")]
    assert listed("iris/2") == [("iris/2", "ethical", "approved"), ("iris/2", "security", "requested")]
    assert listed("wine@latest", "--pending") == [("wine/1", "ethical", "requested")]
    code, out, _ = run(capsys, "review", "list", "iris", "--pending")
    assert code == 0 and "security of iris/2" in out and "tester" in out and "shipyard review approve" in out
    code, _, err = run(capsys, "review", "list", "irsi")
    assert code == 1 and "Did you mean 'iris'" in err


def test_bad_references(workspace: Path, capsys: pytest.CaptureFixture[str]) -> None:
    shipyard.models.register("iris", DummyClassifier().fit(np.zeros((4, 1)), [0, 1, 0, 1]))
    for args, message in [
        (["models", "show", "irsi/1"], "Did you mean 'iris'"),
        (["models", "show", "iris/7"], "Versions: iris/1"),
        (["models", "gate", "iris/1"], "No gates are configured for model 'iris'"),
        (["models", "promote", "iris/1", "--alias", "Champion!"], "Invalid alias"),
        (["models", "register", "iris", "--run", "nope"], "No run with id 'nope'"),
        (["readiness", "iris/9"], "has no version 9"),
    ]:
        code, _, err = run(capsys, *args)
        assert code == 1, args
        assert message in err, (args, err)


def test_without_gates_gate_and_promote_follow_one_rule(workspace: Path, capsys: pytest.CaptureFixture[str]) -> None:
    shipyard.models.register("iris", DummyClassifier().fit(np.zeros((4, 1)), [0, 1, 0, 1]))
    code, _, err = run(capsys, "models", "gate", "iris/1")
    assert code == 1 and "No gates are configured for model 'iris'" in err and "--no-gates" in err
    code, _, err = run(capsys, "models", "promote", "iris/1")
    assert code == 3 and "no gates are configured for 'iris'" in err and "`gates: {iris: {}}`" in err
    code, out, _ = run(capsys, "models", "show", "iris/1")
    assert "may not be promoted: no gates are configured for 'iris'" in out
    code, out, _ = run(capsys, "models", "promote", "iris/1", "--no-gates", "--alias", "challenger")
    assert code == 0 and "Promoted iris/1 to challenger" in out

    spec = workspace / "shipyard.yaml"
    spec.write_text(spec.read_text() + "gates:\n  iris: {}\n")
    code, out, _ = run(capsys, "models", "gate", "iris/1")
    assert code == 0 and "gates.iris in shipyard.yaml declares no gates" in out
    code, out, _ = run(capsys, "models", "promote", "iris/1")
    assert code == 0 and "Promoted iris/1 to champion" in out


@pytest.mark.parametrize(
    ("statuses", "strict", "code"),
    [(["PASS", "NOT YET"], False, 0), (["PASS", "NOT YET"], True, 1), (["PASS", "FAIL", "NOT YET"], False, 1),
     (["PASS"], True, 0)],
)
def test_readiness_exits_1_when_an_item_fails(workspace: Path, capsys: pytest.CaptureFixture[str],
                                              monkeypatch: pytest.MonkeyPatch, statuses: list[str], strict: bool,
                                              code: int) -> None:
    from shipyard.governance import readiness

    items = [readiness.Item(f"item{i}", "?", status) for i, status in enumerate(statuses)]  # type: ignore[arg-type]
    monkeypatch.setattr(readiness, "evaluate", lambda ctx, ref: readiness.ReadinessReport("iris/1", items))
    args = ["readiness", "iris/1", *(["--strict"] if strict else [])]
    got, out, _ = run(capsys, *args)
    assert got == code
    assert ("Not ready:" in out) == (code == 1)
    got, out, _ = run(capsys, *args, "--json")
    assert got == code and json.loads(out)["version_id"] == "iris/1"
