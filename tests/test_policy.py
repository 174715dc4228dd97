"""shipyard.yaml has one home: parsed once per change of the file, validated per section on first use,
every section's errors translated the same way (file and line, key path, value, the closest key), and a
digest that changes with meaning only."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from shipyard.context import open_context
from shipyard.errors import ConfigError
from shipyard.policy import SECTIONS, Policy, register_section
from shipyard.policy.document import read_document

GATES = """
gates:
  credit:
    evaluation:
      dataset: credit@latest
      target: default
      thresholds:
        roc_auc: {min: 0.7}
governance:
  credit:
    reviews: [ethical]
"""


def _write(path: Path, text: str) -> None:
    path.write_text(text)
    stat = path.stat()  # make sure a rewrite within the same clock tick still looks changed
    os.utime(path, ns=(stat.st_atime_ns, stat.st_mtime_ns + 1_000_000))


def test_the_file_is_parsed_once_per_change(workspace: Path) -> None:
    spec = workspace / "shipyard.yaml"
    _write(spec, spec.read_text() + GATES)
    first = read_document(spec)
    assert read_document(spec) is first  # unchanged: the same parsed document
    policy = Policy(workspace)
    spec_one = policy.gates("credit")
    assert policy.gates("credit") is spec_one  # validated once
    _write(spec, spec.read_text().replace("min: 0.7", "min: 0.8"))
    assert read_document(spec) is not first
    changed = policy.gates("credit")
    assert changed is not None and changed.evaluation is not None
    assert changed.evaluation.thresholds["roc_auc"].min == 0.8


def test_the_digest_changes_with_meaning_not_with_formatting(workspace: Path) -> None:
    spec = workspace / "shipyard.yaml"
    _write(spec, spec.read_text() + GATES)
    policy = Policy(workspace)
    digest, gates = policy.digest, policy.gates_digest("credit")
    _write(spec, "# a comment\n" + spec.read_text().replace("{min: 0.7}", "\n          min: 0.7"))
    assert (policy.digest, policy.gates_digest("credit")) == (digest, gates)
    _write(spec, spec.read_text().replace("reviews: [ethical]", "reviews: [ethical, security]"))
    assert policy.digest != digest and policy.gates_digest("credit") == gates  # governance is not gate policy
    assert policy.governance("credit").reviews == ["ethical", "security"]


@pytest.mark.parametrize(
    ("edit", "expected", "pointed"),
    [
        (("roc_auc: {min: 0.7}", "roc_acu: {min: 0.7}"),
         "shipyard.yaml line 10: unknown metric gates.credit.evaluation.thresholds.roc_acu. Did you mean 'roc_auc'?",
         "          roc_acu: {min: 0.7}\n          ^"),
        (("target: default", "target: [default]"),
         "shipyard.yaml line 8: gates.credit.evaluation.target = ['default']: Input should be a valid string.",
         "        target: [default]\n        ^"),
        (("reviews: [ethical]", "reveiws: [ethical]"),
         "shipyard.yaml line 13: unknown key governance.credit.reveiws (value ['ethical']). Did you mean 'reviews'?",
         "      reveiws: [ethical]\n      ^"),
    ],
    ids=["gates-unknown-metric", "gates-bad-type", "governance-unknown-key"],
)
def test_every_section_reports_the_line_the_key_path_and_the_fix(
    workspace: Path, edit: tuple[str, str], expected: str, pointed: str
) -> None:
    spec = workspace / "shipyard.yaml"
    _write(spec, "store:\n  url: sqlite:///.shipyard/shipyard.db\n" + GATES.replace(*edit))
    policy = open_context().policy
    with pytest.raises(ConfigError) as caught:
        policy.gates("credit")
        policy.governance("credit")
    message = str(caught.value)
    assert expected in message and pointed in message, message


def test_a_section_that_is_not_a_mapping_is_named_with_its_line(workspace: Path) -> None:
    spec = workspace / "shipyard.yaml"
    _write(spec, spec.read_text() + "gates: [credit]\n")
    with pytest.raises(ConfigError, match=r"shipyard.yaml line \d+: 'gates' must be a mapping of model names"):
        open_context().policy.gates("credit")


def test_sections_are_registered_and_unknown_ones_suggest_the_closest(workspace: Path) -> None:
    spec = workspace / "shipyard.yaml"
    _write(spec, spec.read_text() + "gatse:\n  credit: {}\n")
    with pytest.raises(ConfigError, match="Unknown section in shipyard.yaml 'gatse'. Did you mean 'gates'?"):
        open_context()
    register_section("alerts", "where alerts go")
    try:
        _write(spec, spec.read_text().replace("gatse:", "alerts:"))
        assert open_context().policy.section("alerts") == {"credit": {}}
    finally:
        SECTIONS.pop("alerts")


def test_runs_record_the_digest_of_the_policy_they_started_under(workspace: Path) -> None:
    import shipyard

    spec = workspace / "shipyard.yaml"
    with shipyard.start_run("before") as before:
        pass
    _write(spec, spec.read_text() + GATES)
    with shipyard.start_run("after") as after:
        pass
    first, second = shipyard.get_run(before.run_id), shipyard.get_run(after.run_id)
    assert second.policy_digest == Policy(workspace).digest
    assert first.policy_digest != second.policy_digest


def test_the_retrain_section_validates_and_names_the_fix(tmp_path: Path) -> None:
    from shipyard.errors import ConfigError
    from shipyard.policy import Policy
    from shipyard.policy.retrain import declared_retraining, retrain_spec

    (tmp_path / "shipyard.yaml").write_text(
        "retrain:\n  credit-api: {monitor: credit-api, triggers: [data_drift, performance], cooldown: 2h, "
        "max_per_day: 2, approval: true}\n  broken: {triggers: [drfit]}\n")
    document = Policy(tmp_path).document()
    spec = retrain_spec(document, "credit-api")
    assert spec is not None and (spec.triggers, spec.cooldown, spec.max_per_day, spec.approval, spec.data) == (
        ["data_drift", "performance"], 7200.0, 2, True, "latest")
    assert retrain_spec(document, "other") is None and declared_retraining(document) == ["broken", "credit-api"]
    with pytest.raises(ConfigError, match=r"shipyard.yaml line 3: retrain.broken: unknown alert rule .drfit. in triggers"):
        retrain_spec(document, "broken")
