"""Cache keys by content: parameters hashed through their output serialisation (never repr), large ones
kept out of tags without cutting anything, corrupt cached outputs reported and replaced."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest

import shipyard
from shipyard.errors import ValidationError
from shipyard.pipelines.fingerprints import fingerprint
from shipyard.pipelines.runner import PipelineResult
from shipyard.pipelines.steps import step

SRC = str(Path(shipyard.__file__).resolve().parents[1])


@step
def measure(values: Any, label: str = "") -> float:
    if isinstance(values, pd.DataFrame):
        return float(values.to_numpy().sum())
    return float(np.asarray(values).sum())


@shipyard.pipeline
def measuring(values: Any = 0, label: str = "") -> Any:
    return measure(values, label)


@step
def length(text: str, extra: int = 0) -> int:
    return len(text) + extra


@shipyard.pipeline
def lengths(text: str = "", extra: int = 0) -> Any:
    return length(text, extra)


def _step(result: PipelineResult, name: str) -> tuple[str, str]:
    return result.steps[name].cache, result.steps[name].reason


def test_arrays_that_differ_only_in_the_middle_miss_the_cache(workspace: Path) -> None:
    before = np.zeros(10_000)
    after = before.copy()
    after[5_000] = 1.0  # numpy's repr shows the first and last three elements only
    assert repr(before) == repr(after)
    assert _step(measuring.run({"values": before}), "measure")[0] == "miss"
    second = measuring.run({"values": after})
    cache, reason = _step(second, "measure")
    assert cache == "miss" and reason.startswith("params changed: values: numpy.ndarray of 80,128 bytes")
    assert second.value() == 1.0
    assert _step(measuring.run({"values": after.copy()}), "measure")[0] == "hit"


def test_frames_that_differ_only_in_the_middle_miss_the_cache(workspace: Path) -> None:
    before = pd.DataFrame({"a": np.arange(10_000), "b": ["x"] * 10_000})
    after = before.copy()
    after.loc[5_000, "a"] = -1
    assert repr(before) == repr(after)
    measuring.run({"values": before[["a"]]})
    second = measuring.run({"values": after[["a"]]})
    cache, reason = _step(second, "measure")
    assert cache == "miss" and reason.startswith("params changed: values: pandas.DataFrame of ")
    assert second.value() == float(after["a"].sum())
    assert _step(measuring.run({"values": after[["a"]].copy()}), "measure")[0] == "hit"


FINGERPRINTS = """
import json, sys
import numpy as np, pandas as pd
from shipyard.pipelines.fingerprints import fingerprint
frame = pd.DataFrame({"a": np.arange(50), "b": [f"r{i}" for i in range(50)],
                      "c": pd.Categorical(["x", "y"] * 25)}, index=pd.Index(np.arange(50) * 2, name="row"))
values = {"frame": frame, "array": np.linspace(0, 1, 7), "tuple": (1, "a", None),
          "set": {"pear", "apple", "fig"}, "keys": {1: "a", 2.5: "b"}}
print(json.dumps({k: fingerprint(v, step="s", name=k).sha256 for k, v in values.items()}))
"""


def test_equal_values_hash_equal_in_other_processes(tmp_path: Path) -> None:
    # Parquet files hold no timestamp or random id, and sets hash by their items whatever the hash seed.
    digests = []
    for seed in ("1", "2"):
        env = {**os.environ, "PYTHONHASHSEED": seed, "PYTHONPATH": SRC}
        done = subprocess.run([sys.executable, "-c", FINGERPRINTS], capture_output=True, text=True, env=env,
                              cwd=tmp_path, check=True)
        digests.append(json.loads(done.stdout))
    assert digests[0] == digests[1] and len(set(digests[0].values())) == 5


def test_values_json_would_confuse_hash_apart() -> None:
    def digest(value: Any) -> tuple[str, str]:
        found = fingerprint(value, step="s", name="p")
        return found.kind, found.sha256

    pairs = [([1, 2], (1, 2)), ({"1": "a"}, {1: "a"}), (1.0, np.float64(1.0)), (1, True), (1, 1.0),
             ("a", b"a"), ("data.csv", Path("data.csv")), (np.float32(0.5), np.float64(0.5))]
    for left, right in pairs:
        assert digest(left) != digest(right), (left, right)
    assert digest({"b": 1, "a": 2}) == digest({"a": 2, "b": 1})
    assert digest(np.arange(3)) != digest(np.arange(3).astype("int32"))


class Settings:
    def __init__(self, depth: int) -> None:
        self.depth = depth


@step
def configure(settings: Any) -> int:
    return 1


@step(cache=False)
def push(settings: Any) -> int:
    return 2


def test_a_parameter_without_a_content_hash_is_refused_before_anything_runs(workspace: Path) -> None:
    @shipyard.pipeline
    def configured() -> Any:
        return configure(Settings(3))

    with pytest.raises(ValidationError) as refused:
        configured.run()
    message = str(refused.value)
    assert "Step 'configure' takes parameter 'settings' of type tests.pipelines.test_cache.Settings" in message
    assert "output of a step" in message and "as JSON" in message and "@step(cache=False)" in message
    assert shipyard.search_runs(experiment="pipelines") == []  # refused while tracing

    @shipyard.pipeline
    def with_a_function() -> Any:
        return configure(len)

    with pytest.raises(ValidationError, match="parameter 'settings' of type builtin_function_or_method"):
        with_a_function.run()

    @shipyard.pipeline
    def uncached() -> Any:
        return push(Settings(3))

    result = uncached.run()  # caching off for the step: nothing to hash, nothing to look up
    assert _step(result, "push") == ("off", "caching is off for this step") and result.value() == 2
    run = shipyard.get_run(result.steps["push"].run_id)
    assert run.params == {"settings": "tests.pipelines.test_cache.Settings (not hashed by content)"}
    assert "shipyard.cache_key" not in run.tags


def test_a_5kb_parameter_stays_cached_and_out_of_the_tags(workspace: Path) -> None:
    # 5 kB of text whose JSON escapes make it longer still: the old tags cut the key parts to invalid
    # JSON, so the next miss forgot the previous run ("first run of this step").
    text = "é" * 2_000 + '"quoted" \\ ' * 90
    assert len(text.encode()) == 4_990
    first = lengths.run({"text": text})
    assert _step(first, "length")[0] == "miss"
    assert _step(lengths.run({"text": text}), "length")[0] == "hit"
    assert _step(lengths.run({"text": text, "extra": 1}), "length") == ("miss", "params changed: extra: 0 → 1")
    changed = lengths.run({"text": text + "!", "extra": 1})
    cache, reason = _step(changed, "length")
    assert cache == "miss" and reason.startswith("params changed: text: str of ")
    step_run = shipyard.get_run(changed.steps["length"].run_id)
    parts = json.loads(step_run.tags["shipyard.key_parts"])
    assert parts["params"] == {"extra": 1} and parts["hashed"]["text"]["size"] == len(json.dumps(text + "!"))
    assert step_run.params["text"].startswith("str, json of ") and len(step_run.params["text"]) < 200


def test_a_parameter_over_the_param_limit_runs(workspace: Path) -> None:
    text = "x" * 20_000  # the old runner logged it as a param, over the 6,000-character limit
    assert lengths.run({"text": text}).value() == 20_000
    assert _step(lengths.run({"text": text}), "length")[0] == "hit"


@step
def many(p0: str, p1: str, p2: str, p3: str, p4: str, p5: str, p6: str, p7: str, p8: str, p9: str) -> int:
    return 1


def test_key_parts_that_would_outgrow_a_tag_record_the_largest_values_by_digest(workspace: Path) -> None:
    @shipyard.pipeline
    def wide(last: str = "a") -> Any:
        return many(*[f"{i}" * 900 for i in range(9)], last)

    wide.run()
    result = wide.run({"last": "b"})
    assert _step(result, "many") == ("miss", "params changed: p9: 'a' → 'b'")
    tags = shipyard.get_run(result.steps["many"].run_id).tags
    parts = json.loads(tags["shipyard.key_parts"])
    assert len(tags["shipyard.key_parts"]) <= 8_000 and parts["params"]["p9"] == "b"
    assert parts["hashed"] and set(parts["params"]) | set(parts["hashed"]) == {f"p{i}" for i in range(10)}


def _blob_file(workspace: Path, digest: str) -> Path:
    return workspace / ".shipyard" / "artifacts" / "sha256" / digest[:2] / digest


def test_a_corrupt_cached_output_is_reported_and_run_again(workspace: Path) -> None:
    first = measuring.run({"values": [1.0, 2.0]})
    digest = first.steps["measure"].outputs[0]["digest"]
    blob = _blob_file(workspace, digest)
    blob.write_bytes(b"9.0")  # same size, other bytes
    again = measuring.run({"values": [1.0, 2.0]})
    cache, reason = _step(again, "measure")
    assert cache == "miss"
    assert reason == (f"cached outputs of run {first.steps['measure'].run_id} are corrupt: output 0 (blob {digest}) "
                      "does not match its SHA-256; the corrupt blob was removed and the step runs again")
    assert again.value() == 3.0 and blob.read_bytes() == b"3.0"  # stored anew under its digest
    assert _step(measuring.run({"values": [1.0, 2.0]}), "measure")[0] == "hit"

    blob.write_bytes(b"30.0")
    cache, reason = _step(measuring.run({"values": [1.0, 2.0]}), "measure")
    assert cache == "miss" and f"output 0 (blob {digest}) has 4 bytes instead of 3" in reason


def test_a_corrupt_outputs_listing_is_reported(workspace: Path) -> None:
    first = measuring.run({"values": [4.0]})
    run_id = first.steps["measure"].run_id
    listing = next(a.digest for a in shipyard.get_run(run_id).artifacts if a.path == "outputs.json")
    _blob_file(workspace, listing).write_bytes(b"[]")
    again = measuring.run({"values": [4.0]})
    cache, reason = _step(again, "measure")
    assert cache == "miss" and reason.startswith(f"cached outputs of run {run_id} are corrupt: its outputs.json")
    assert again.value() == 4.0


@step
def one() -> int:
    return 1


@step
def add_all(values: list[Any]) -> int:
    return sum(values)


def test_a_list_of_step_outputs_and_values_keys_each_item(workspace: Path) -> None:
    @shipyard.pipeline
    def mixed(extra: int = 5) -> Any:
        return add_all([one(), extra])

    result = mixed.run()  # the value item used to be logged as param 'values[1]', a key params refuse
    assert result.value() == 6
    assert shipyard.get_run(result.steps["add_all"].run_id).params == {"values.1": "5"}
    assert _step(mixed.run({"extra": 6}), "add_all") == ("miss", "params changed: values.1: 5 → 6")


def test_miss_reasons_fit_their_tag_and_say_what_they_leave_out() -> None:
    from shipyard.pipelines.cache import KeyParts, describe_miss

    def parts(**params: Any) -> KeyParts:
        return KeyParts("code", {k: fingerprint(v, step="s", name=k) for k, v in params.items()}, {}, "env")

    before = json.loads(parts(a="x" * 150, b=1).record())
    now = parts(a="y" * 150, b=2)
    assert describe_miss(now, before) == f"params changed: a: '{'x' * 150}' → '{'y' * 150}', b: 1 → 2"
    # a value over 200 characters is shown by type, size and digest
    assert describe_miss(parts(a="x" * 300, b=1), before).startswith(
        f"params changed: a: '{'x' * 150}' → str of 302 bytes (sha256 ")
    assert describe_miss(now, before, limit=100) == "params changed: a, b (values in the runs' shipyard.key_parts tags)"
    many = {f"a_rather_long_parameter_name_{i}": i for i in range(40)}
    assert describe_miss(parts(**many), before, limit=300) == (
        "1 part(s) of the cache key changed, 42 parameter(s) among them (too many to list here: compare the runs' "
        "shipyard.key_parts tags)")
    old_format = {"code": "code", "params": {"a": "x", "b": 1}, "inputs": {}, "env": "env"}
    assert describe_miss(now, old_format) == ("first run since the cache key changed format (parameters are now "
                                              "hashed by content)")


def test_a_step_with_a_hundred_inputs_is_cached_and_says_when_one_changed(workspace: Path) -> None:
    @shipyard.step
    def part(i: int) -> int:
        return i

    @shipyard.step
    def total(values: list[int]) -> int:
        return sum(values)

    @shipyard.pipeline
    def fan_in(last: int) -> Any:
        return total([part(i) for i in range(99)] + [part(last)])

    first = fan_in.run({"last": 99})
    assert first.value() == sum(range(100))
    again = fan_in.run({"last": 99})
    assert again.steps["total"].cache == "hit"
    changed = fan_in.run({"last": 1000})
    assert changed.value() == sum(range(99)) + 1000
    assert changed.steps["total"].reason == "input data changed (among 100 inputs, too many to name one by one)"
