"""`shipyard ci`: data validation, the standard pipeline and the gates, as one pass/fail check with a
Markdown report fit for a pull-request comment. Nothing is promoted."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from shipyard.context import Context
from shipyard.errors import ShipyardError

WORKFLOW = """\
# Runs Shipyard's model CI on every pull request: data validation, training, gates.
name: model-ci
on: [pull_request]
jobs:
  shipyard:
    runs-on: ubuntu-latest
    steps:
      - uses: actions/checkout@v4
      - uses: actions/setup-python@v5
        with: {python-version: "3.11"}
      - run: pip install "shipyard-mlops[sklearn]"
      - run: shipyard ci --report shipyard-report.md
      - if: always()
        run: cat shipyard-report.md >> "$GITHUB_STEP_SUMMARY"
"""


@dataclass
class CiResult:
    ok: bool
    markdown: str
    outcome: dict[str, Any]


def run_ci(ctx: Context, *, executor: str | None = None) -> CiResult:
    from shipyard.pipelines.lifecycle import run_standard
    from shipyard.pipelines.runner import PipelineFailed

    lines = ["# Shipyard model CI", ""]
    try:
        result = run_standard(ctx, executor=executor, promote=False)
    except PipelineFailed as exc:
        lines += [f"**Blocked** at step `{exc.step}`:", "", "```", str(exc).split("\n")[0], "```"]
        lines += _validation(ctx)
        return CiResult(False, "\n".join(lines) + "\n", {"failed_step": exc.step})
    except ShipyardError as exc:
        lines += ["**Blocked**: the pipeline could not start.", "", "```", str(exc), "```"]
        return CiResult(False, "\n".join(lines) + "\n", {})
    outcome = result.value()
    lines += _validation(ctx)
    lines += _comparison(ctx, outcome["version"])
    gates = outcome.get("gates") or {}
    blocked = [g for g, s in gates.items() if s == "FAIL"]
    lines += ["## Gates", "", "| gate | status |", "|---|---|"]
    lines += [f"| {g} | {'❌ ' if s == 'FAIL' else ''}{s} |" for g, s in gates.items()] or ["| (none configured) | |"]
    verdict = f"**Blocked**: gate(s) {', '.join(blocked)} failed." if blocked else f"**Passed**: {outcome['version']} may be promoted."
    lines[2:2] = [verdict, ""]
    return CiResult(not blocked, "\n".join(lines) + "\n", outcome)


def _validation(ctx: Context) -> list[str]:
    from shipyard.data.checks import latest_validation
    from shipyard.data.versions import get_version
    from shipyard.pipelines.lifecycle import lifecycle_spec

    version = get_version(ctx, lifecycle_spec(ctx).data.dataset).version_id
    check = latest_validation(ctx, version)
    lines = ["## Data", ""]
    if check is None:
        return lines + [f"`{version}` was not validated (no schema contract).", ""]
    lines.append(f"`{version}`: {check['errors']} error(s), {check['warnings']} warning(s).")
    anomalies = check["report"].get("anomalies", [])
    if anomalies:
        lines += ["", "| severity | kind | column | message |", "|---|---|---|---|"]
        lines += [f"| {a['severity']} | {a['kind']} | {a.get('column') or ''} | {a['message']} |" for a in anomalies[:20]]
    return lines + [""]


def _comparison(ctx: Context, ref: str) -> list[str]:
    from shipyard.errors import NotFoundError
    from shipyard.models.registry import get_model_version

    version = get_model_version(ctx, ref)
    try:
        champion: Any = get_model_version(ctx, f"{version.model}@champion")
    except NotFoundError:
        champion = None
    lines = ["## Metrics", "", f"| metric | {version.version_id} | champion {champion.version_id if champion else '(none)'} |",
             "|---|---|---|"]
    for metric, value in sorted(version.metrics.items()):
        other = champion.metrics.get(metric) if champion else None
        lines.append(f"| {metric} | {value:.4g} | {'' if other is None else f'{other:.4g}'} |")
    return lines + [""]
