"""Cache keys of steps: SHA-256 over the step's code (and the code it declares it depends on), its
parameters, the digests of its inputs and the environment. A step is skipped when a successful
earlier run has the same key and its outputs are still stored; every decision says why."""

from __future__ import annotations

import hashlib
import inspect
import json
import platform
import textwrap
from dataclasses import dataclass
from typing import Any

from shipyard.pipelines.steps import Step


def code_digest(step: Step) -> str:
    parts = []
    for fn in (step.fn, *step.options.depends_on):
        target = getattr(fn, "fn", fn)  # a Step given as a dependency: its function
        try:
            source = textwrap.dedent(inspect.getsource(target))
        except (OSError, TypeError):
            source = f"{getattr(target, '__module__', '?')}.{getattr(target, '__qualname__', repr(target))}"
        parts.append(source)
    return hashlib.sha256("\n\0".join(parts).encode()).hexdigest()


def environment_digest() -> str:
    from shipyard.tracking.environment import environment

    env = environment()
    return hashlib.sha256(json.dumps([platform.python_version(), env["packages"]], sort_keys=True).encode()).hexdigest()


@dataclass(frozen=True)
class KeyParts:
    code: str
    params: dict[str, Any]  # the step's literal arguments
    inputs: dict[str, str]  # argument name → digest of the upstream output
    env: str

    def key(self) -> str:
        body = json.dumps([self.code, self.params, self.inputs, self.env], sort_keys=True, default=repr)
        return hashlib.sha256(body.encode()).hexdigest()

    def to_dict(self) -> dict[str, Any]:
        return {"code": self.code, "params": self.params, "inputs": self.inputs, "env": self.env}


def describe_miss(now: KeyParts, before: dict[str, Any] | None) -> str:
    """Why a step is not a cache hit, against its latest earlier run."""
    if before is None:
        return "first run of this step"
    reasons = []
    if before.get("code") != now.code:
        reasons.append("code changed")
    old_params = before.get("params") or {}
    changed = [f"{k}: {old_params.get(k)!r} → {now.params.get(k)!r}"
               for k in sorted(set(old_params) | set(now.params)) if old_params.get(k) != now.params.get(k)]
    if changed:
        reasons.append("params changed: " + ", ".join(changed))
    old_inputs = before.get("inputs") or {}
    moved = [k for k in sorted(set(old_inputs) | set(now.inputs)) if old_inputs.get(k) != now.inputs.get(k)]
    if moved:
        reasons.append("input data changed: " + ", ".join(moved))
    if before.get("env") != now.env:
        reasons.append("environment changed")
    return "; ".join(reasons) or "outputs of the matching run are missing from the blob store"
