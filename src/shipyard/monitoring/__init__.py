"""Monitoring: what a served model sees and how it does, against what it was trained on — data and prediction
drift, performance on feedback with concept-drift detectors, operational health — as stored reports and alerts.

Monitors are declared under `monitor:` in shipyard.yaml; these functions work on the workspace found from the
current folder (or `workspace=`):

    shipyard.monitoring.run("credit-watch")            # compute, store and judge a report now
    shipyard.monitoring.report("credit-watch")         # the newest stored report, as a dict
    shipyard.monitoring.list_alerts(state="firing")

The engines are usable on their own: `shipyard.monitoring.drift.dataset_drift(reference, current)` compares two
tables column by column, `shipyard.monitoring.performance.performance(joined)` scores logged predictions against
their feedback with confidence intervals."""

from __future__ import annotations

import os
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from shipyard.context import Context
    from shipyard.monitoring.alerts import Alert
    from shipyard.monitoring.monitors import MonitorRun

PathLike = str | os.PathLike[str]


def _ctx(workspace: PathLike | None) -> Context:
    from shipyard.context import open_context

    return open_context(workspace)


def run(name: str, *, workspace: PathLike | None = None) -> MonitorRun:
    """Run monitor NAME now: its report (stored), its findings, and the alerts it sent."""
    from shipyard.monitoring.monitors import run_monitor

    return run_monitor(_ctx(workspace), name)


def report(name: str, report_id: int | None = None, *, workspace: PathLike | None = None) -> dict[str, Any]:
    """A stored report of monitor NAME (default: the newest)."""
    from shipyard.monitoring.monitors import get_report

    return get_report(_ctx(workspace), name, report_id)


def list_alerts(monitor: str | None = None, state: str | None = None, *,
                workspace: PathLike | None = None) -> list[Alert]:
    """Alerts (episodes of a rule breached), newest first; `state` firing or resolved."""
    from shipyard.monitoring.alerts import alerts

    return alerts(_ctx(workspace), monitor, state)
