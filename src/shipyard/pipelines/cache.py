"""Cache keys of steps: SHA-256 over the step's code (and the code it declares it depends on), its
parameters by content, the digests of its inputs and the environment. A step is skipped when a successful
earlier run has the same key and its outputs are still stored, intact; every decision says why."""

from __future__ import annotations

import hashlib
import inspect
import json
import platform
import textwrap
from dataclasses import dataclass, field
from typing import Any

from shipyard.errors import ValidationError
from shipyard.pipelines.fingerprints import Fingerprint
from shipyard.pipelines.steps import Step
from shipyard.tracking.validation import MAX_TAG_VALUE


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


# What the key covers, and how; key parts recorded under another format cannot be compared.
KEY_FORMAT = 2


@dataclass(frozen=True)
class KeyParts:
    code: str
    params: dict[str, Fingerprint]  # the step's literal arguments, by content
    inputs: dict[str, str]  # argument name → digest of the upstream output
    env: str
    # Why runs with this very key were not reused (their outputs corrupt or gone), found while looking
    # for a hit; the miss reason is then theirs.
    rejected: list[str] = field(default_factory=list, compare=False)

    @property
    def cacheable(self) -> bool:
        """False when a parameter could not be hashed (allowed only for a step whose caching is off)."""
        return all(p.kind != "unhashed" for p in self.params.values())

    def key(self) -> str:
        if not self.cacheable:
            unhashed = ", ".join(k for k, p in self.params.items() if p.kind == "unhashed")
            raise ValidationError(f"No cache key: parameter(s) {unhashed} could not be hashed by content.")
        body = json.dumps({"format": KEY_FORMAT, "code": self.code, "inputs": self.inputs, "env": self.env,
                           "params": {k: [p.kind, p.sha256] for k, p in self.params.items()}}, sort_keys=True)
        return hashlib.sha256(body.encode()).hexdigest()

    def record(self, limit: int = MAX_TAG_VALUE) -> str:
        """The parts as JSON for the step run's tag, at most LIMIT characters: small JSON parameters as
        themselves, others by kind, size and SHA-256. When that is too long the largest inline values are
        recorded by digest too, and past that the inputs and the parameters each by one digest of the group:
        nothing is cut, and a later miss still says what changed (by name while the names fit)."""
        inline = {k for k, p in self.params.items() if p.inline}
        while True:
            text = json.dumps({
                "format": KEY_FORMAT, "code": self.code, "inputs": self.inputs, "env": self.env,
                "params": {k: p.value for k, p in self.params.items() if k in inline},
                "hashed": {k: p.record() for k, p in self.params.items() if k not in inline},
            }, sort_keys=True)
            if len(text) <= limit:
                return text
            if not inline:  # too many inputs or parameters to name one by one: each group by one digest
                return json.dumps({
                    "format": KEY_FORMAT, "code": self.code, "env": self.env,
                    "inputs_digest": _group_digest(self.inputs), "inputs_count": len(self.inputs),
                    "params_digest": _group_digest(self._param_identities()), "params_count": len(self.params),
                }, sort_keys=True)
            inline.remove(max(inline, key=lambda k: (len(json.dumps(self.params[k].value)), k)))

    def _param_identities(self) -> dict[str, list[str]]:
        return {k: [p.kind, p.sha256] for k, p in self.params.items()}


def _group_digest(values: dict[str, Any]) -> str:
    return hashlib.sha256(json.dumps(values, sort_keys=True).encode()).hexdigest()


def recorded_params(before: dict[str, Any]) -> dict[str, Fingerprint]:
    """The parameters of recorded key parts, inline ones re-hashed so that both forms compare."""
    found = {k: Fingerprint.from_record(v, inline=True) for k, v in (before.get("params") or {}).items()}
    found.update({k: Fingerprint.from_record(v, inline=False) for k, v in (before.get("hashed") or {}).items()})
    return found


def describe_miss(now: KeyParts, before: dict[str, Any] | None, limit: int = MAX_TAG_VALUE) -> str:
    """Why a step is not a cache hit, against its latest earlier run; at most LIMIT characters."""
    if now.rejected:  # a run with this very key exists: nothing changed but its outputs
        return _fit("; ".join(now.rejected), limit, f"the cached outputs of {len(now.rejected)} run(s) "
                    "with this key are corrupt or missing (too many to list here)")
    if before is None:
        return "first run of this step"
    if before.get("format") != KEY_FORMAT:
        return "first run since the cache key changed format (parameters are now hashed by content)"
    reasons: list[str] = []
    if before.get("code") != now.code:
        reasons.append("code changed")
    if "inputs_digest" in before:  # recorded by group: a change is known, not which member changed
        if before.get("params_digest") != _group_digest(now._param_identities()):
            reasons.append(f"params changed (among {len(now.params)}, too many to name one by one)")
        if before.get("inputs_digest") != _group_digest(now.inputs):
            reasons.append(f"input data changed (among {len(now.inputs)} inputs, too many to name one by one)")
        if before.get("env") != now.env:
            reasons.append("environment changed")
        return "; ".join(reasons) or "the earlier run with the same code, params, inputs and environment did not finish"
    old_params = recorded_params(before)
    changed = [k for k in sorted(set(old_params) | set(now.params))
               if _identity(old_params.get(k)) != _identity(now.params.get(k))]
    if changed:
        reasons.append("params changed: " + ", ".join(
            f"{k}: {_shown(old_params.get(k))} → {_shown(now.params.get(k))}" for k in changed))
    old_inputs = before.get("inputs") or {}
    moved = [k for k in sorted(set(old_inputs) | set(now.inputs)) if old_inputs.get(k) != now.inputs.get(k)]
    if moved:
        reasons.append("input data changed: " + ", ".join(moved))
    if before.get("env") != now.env:
        reasons.append("environment changed")
    if not reasons:
        return "the earlier run with the same code, params, inputs and environment did not finish"
    names = f"params changed: {', '.join(changed)} (values in the runs' shipyard.key_parts tags)"
    brief = [names if r.startswith("params changed") else r for r in reasons]
    return _fit("; ".join(reasons), limit, "; ".join(brief),
                f"{len(reasons)} part(s) of the cache key changed, {len(changed)} parameter(s) among them "
                "(too many to list here: compare the runs' shipyard.key_parts tags)")


def _fit(text: str, limit: int, *shorter: str) -> str:
    """TEXT, or the first shorter telling that fits in LIMIT characters; each says what it leaves out."""
    for candidate in (text, *shorter):
        if len(candidate) <= limit:
            return candidate
    return "the reasons are too long to record: compare the runs' shipyard.key_parts tags"


def _identity(p: Fingerprint | None) -> tuple[str, str] | None:
    return None if p is None else (p.kind, p.sha256)


def _shown(p: Fingerprint | None) -> str:
    return "absent" if p is None else p.shown()
