"""`shipyard ci`: data validation, the standard pipeline and the gates, as one check with a Markdown report
fit for a pull-request comment. The candidate is gated without entering the registry unless asked, and
nothing is promoted; the GitHub workflow that runs it on the workspace's shared stores."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Literal

from shipyard.context import Context
from shipyard.errors import EXIT_BLOCKED, EXIT_ERROR, EXIT_OK, ShipyardError

if TYPE_CHECKING:
    from shipyard.models.records import ModelVersion

WORKFLOW = """\
# Shipyard model CI, written by `shipyard init --ci github`. On every pull request it validates the data,
# trains the candidate, evaluates it and runs its gates against the champion, and adds the report to the
# job summary. Nothing is added to the registry (unless --register is added below) and nothing is promoted.
#
# A fresh checkout has no .shipyard/ folder (it is not in git), so the job works on the workspace's shared
# stores, given as repository secrets (Settings > Secrets and variables > Actions):
#   SHIPYARD_STORE_URL               the metadata store, e.g. postgresql+psycopg://ci:PASSWORD@db.example.com:5432/shipyard
#   SHIPYARD_ARTIFACTS_URL           the artifact store, e.g. s3://ml-artifacts/shipyard
#   AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY
#                                    credentials for the artifact store
#   SHIPYARD_ARTIFACTS_ENDPOINT_URL  only for an S3-compatible store other than AWS (MinIO, Ceph)
# The first step fails, naming them, when SHIPYARD_STORE_URL or SHIPYARD_ARTIFACTS_URL is missing.
name: model-ci
on: [pull_request]
jobs:
  shipyard:
    runs-on: ubuntu-latest
    env:
      SHIPYARD_STORE_URL: ${{ secrets.SHIPYARD_STORE_URL }}
      SHIPYARD_ARTIFACTS_URL: ${{ secrets.SHIPYARD_ARTIFACTS_URL }}
      SHIPYARD_ARTIFACTS_ENDPOINT_URL: ${{ secrets.SHIPYARD_ARTIFACTS_ENDPOINT_URL }}
      AWS_ACCESS_KEY_ID: ${{ secrets.AWS_ACCESS_KEY_ID }}
      AWS_SECRET_ACCESS_KEY: ${{ secrets.AWS_SECRET_ACCESS_KEY }}
      SHIPYARD_USER: ${{ github.actor }}
    steps:
      - name: Check the shared stores are configured
        run: |
          missing=""
          for name in SHIPYARD_STORE_URL SHIPYARD_ARTIFACTS_URL; do
            if [ -z "$(printenv "$name")" ]; then missing="$missing $name"; fi
          done
          if [ -n "$missing" ]; then
            echo "::error::Missing repository secret(s):$missing. Shipyard CI runs on the workspace's" \\
              "shared stores (a fresh checkout has no .shipyard/ folder): add SHIPYARD_STORE_URL" \\
              "(e.g. postgresql+psycopg://USER:PASSWORD@HOST:5432/DB) and SHIPYARD_ARTIFACTS_URL" \\
              "(e.g. s3://BUCKET/PREFIX), with AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY," \\
              "under Settings > Secrets and variables > Actions."
            exit 1
          fi
      - uses: actions/checkout@v4
      - uses: actions/setup-python@v5
        with: {python-version: "3.11"}
      - run: pip install "shipyard-mlops[sklearn,postgres,s3]"
      - run: shipyard ci --report shipyard-report.md
      - if: always()
        run: if [ -f shipyard-report.md ]; then cat shipyard-report.md >> "$GITHUB_STEP_SUMMARY"; fi
"""

CiStatus = Literal["passed", "blocked", "failed"]
_EXIT = {"passed": EXIT_OK, "blocked": EXIT_BLOCKED, "failed": EXIT_ERROR}


@dataclass
class CiResult:
    """passed: the candidate may be promoted; blocked: a gate (or the lack of any) stops it; failed: a step
    failed or the pipeline could not start."""

    status: CiStatus
    markdown: str
    outcome: dict[str, Any]

    @property
    def ok(self) -> bool:
        return self.status == "passed"

    @property
    def exit_code(self) -> int:
        return _EXIT[self.status]


def run_ci(ctx: Context, *, executor: str | None = None, register: bool = False) -> CiResult:
    """Run the standard pipeline without promoting. By default the trained model is gated as a candidate
    kept with its run, and the registry is left as it was; with `register` it is registered (its gate
    results kept with the version) as `shipyard run` would, short of promotion."""
    from shipyard.pipelines.lifecycle import run_standard
    from shipyard.pipelines.runner import PipelineFailed

    try:
        result = run_standard(ctx, executor=executor, promote=False, candidate=not register)
    except PipelineFailed as exc:
        lines = [f"**Failed** at step `{exc.step}`:", "", "```", exc.message, "```", ""]
        return CiResult("failed", _report(lines + _validation(ctx)), {"failed_step": exc.step, "run_id": exc.run_id})
    except ShipyardError as exc:
        return failed_to_start(exc)
    outcome = result.value()
    model = outcome.get("model") or str(outcome["version"]).split("/", 1)[0]
    lines = _validation(ctx)
    if register:
        label = outcome["version"]
        metrics = _registered(ctx, label).metrics
        failed = _stored_failures(ctx, label)
    else:
        label = f"candidate (run {outcome['candidate_run'][:8]})"
        metrics, failed = outcome["metrics"], outcome["failed_checks"]
    champion = _champion(ctx, model)
    lines += _comparison(champion, label, metrics)
    gates: dict[str, str] = outcome.get("gates") or {}
    lines += ["## Gates", "", "| gate | status | failed checks |", "|---|---|---|"]
    lines += [f"| {g} | {'❌ ' if s == 'FAIL' else ''}{s} | {'; '.join(failed.get(g, []))} |" for g, s in gates.items()]
    if not gates:
        lines.append("| (none) | | |")
    lines.append("")
    blocked = [g for g, s in gates.items() if s == "FAIL"]
    status: CiStatus
    if blocked:
        verdict, status = f"**Blocked**: gate(s) {', '.join(blocked)} failed.", "blocked"
    elif ctx.policy.gates(model) is None:
        verdict, status = (f"**Blocked**: no gates are configured for '{model}', so it may not be promoted. Declare "
                           f"them under gates.{model} in shipyard.yaml, or `gates: {{{model}: {{}}}}` if it needs "
                           "none."), "blocked"
    elif outcome.get("unchanged"):
        verdict, status = f"**Passed**: {outcome['version']} is unchanged and already {outcome['alias']}.", "passed"
    elif register:
        verdict, status = f"**Passed**: {outcome['version']} may be promoted.", "passed"
    elif champion is not None and champion.artifact_digest == outcome.get("artifact_digest"):
        verdict, status = (f"**Passed**: the candidate is the same model as the champion, {champion.version_id}; "
                           "nothing was added to the registry."), "passed"
    else:
        verdict, status = (f"**Passed**: the candidate for '{model}' may be promoted once registered; nothing was "
                           "added to the registry (`shipyard run` registers and promotes it)."), "passed"
    return CiResult(status, _report([verdict, "", *lines]), outcome)


def failed_to_start(exc: ShipyardError) -> CiResult:
    """The report of a CI run that could not start (no workspace store, a wrong spec)."""
    return CiResult("failed", _report(["**Failed**: the pipeline could not start.", "", "```", exc.message, "```"]),
                    {})


def _report(lines: list[str]) -> str:
    return "\n".join(["# Shipyard model CI", "", *lines]).rstrip() + "\n"


def _registered(ctx: Context, ref: str) -> ModelVersion:
    from shipyard.models.registry import get_model_version

    return get_model_version(ctx, ref)


def _stored_failures(ctx: Context, ref: str) -> dict[str, list[str]]:
    from shipyard.gates.gating import latest_gates

    return {gate: [c.get("message", "") for c in stored.result.get("checks", []) if c.get("status") == "FAIL"]
            for gate, stored in latest_gates(ctx, ref).items() if stored.status == "FAIL"}


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


def _champion(ctx: Context, model: str) -> ModelVersion | None:
    from shipyard.errors import NotFoundError
    from shipyard.models.registry import get_model_version

    try:
        return get_model_version(ctx, f"{model}@champion")
    except NotFoundError:
        return None


def _comparison(champion: ModelVersion | None, label: str, metrics: dict[str, float]) -> list[str]:
    lines = ["## Metrics", "", f"| metric | {label} | champion {champion.version_id if champion else '(none)'} |",
             "|---|---|---|"]
    for metric, value in sorted(metrics.items()):
        other = champion.metrics.get(metric) if champion else None
        lines.append(f"| {metric} | {value:.4g} | {'' if other is None else f'{other:.4g}'} |")
    return lines + [""]
