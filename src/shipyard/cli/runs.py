"""`shipyard runs list|show|compare|delete|restore`."""

from __future__ import annotations

from collections import Counter
from typing import Annotated, Optional

import typer
from rich.text import Text

from shipyard.cli.output import cell, console, duration, print_json, table, when
from shipyard.cli.workspace import context
from shipyard.errors import ValidationError

app = typer.Typer(help="Tracked runs: list, inspect, compare, delete.", no_args_is_help=True)

JsonFlag = Annotated[bool, typer.Option("--json", help="Print JSON for scripts.")]


@app.command("list")
def list_runs(
    filter: Annotated[Optional[str], typer.Option("--filter", "-f", help="e.g. \"metrics.auc > 0.9 and params.model = 'rf'\"")] = None,
    order_by: Annotated[Optional[list[str]], typer.Option("--order-by", "-o", help="e.g. 'metrics.auc DESC' (repeatable)")] = None,
    experiment: Annotated[Optional[str], typer.Option("--experiment", "-e")] = None,
    limit: Annotated[int, typer.Option("--limit", "-n", help="Rows per page.")] = 50,
    page_token: Annotated[Optional[str], typer.Option("--page-token", help="From the previous page.")] = None,
    deleted: Annotated[bool, typer.Option("--deleted", help="Include deleted runs.")] = False,
    all_runs: Annotated[bool, typer.Option("--all", "-a", help="Also nested runs, e.g. a pipeline's step runs.")] = False,
    as_json: JsonFlag = False,
) -> None:
    """List top-level runs, newest first, optionally filtered and ordered (--all: nested runs too; a
    filter on parent_id finds them as well); a run whose process died is `lost`."""
    from shipyard.tracking.search import MAX_RESULTS, search_runs

    if not 1 <= limit <= MAX_RESULTS:
        raise ValidationError(f"--limit must be from 1 to {MAX_RESULTS} runs per page, got {limit}.")
    page = search_runs(
        context(), filter, order_by, max_results=limit, page_token=page_token,
        experiment=experiment, include_deleted=deleted, top_level=not all_runs,
    )
    if as_json:
        print_json({"runs": [r.to_dict() for r in page], "next_page_token": page.next_page_token})
        return
    metric_keys = [k for k, _ in Counter(k for r in page for k in r.metrics).most_common(6)]
    rows = [
        [r.run_id[:8], r.name, r.experiment, r.status, when(r.start_time), duration(r.start_time, r.end_time)]
        + [r.metrics.get(k) for k in metric_keys]
        for r in page
    ]
    out = console()
    out.print(table(None, ["run", "name", "experiment", "status", "started", "took", *metric_keys], rows))
    if page.next_page_token:
        out.print(f"More runs: --page-token {page.next_page_token}")
    elif not rows:
        out.print("No runs match." if filter else "No runs yet. Start one with shipyard.start_run() in Python.")


@app.command("show")
def show(
    run_id: Annotated[str, typer.Argument(help="Run id or a unique prefix of it.")],
    history: Annotated[Optional[str], typer.Option("--history", help="Print this metric's history.")] = None,
    max_points: Annotated[Optional[int], typer.Option("--max-points", help="Downsample the history.")] = None,
    as_json: JsonFlag = False,
) -> None:
    """Show one run: params, latest metrics, tags, artifacts, code version, environment, resources."""
    from shipyard.store.db import now_ms
    from shipyard.tracking import runs

    if max_points is not None and not history:
        raise ValidationError(f"--max-points {max_points} downsamples a metric's history: add --history METRIC.")
    ctx = context()
    record = runs.get_run(ctx, run_id)
    points = runs.get_metric_history(ctx, record.run_id, history, max_points=max_points) if history else None
    if as_json:
        data = record.to_dict()
        if points is not None:
            data["history"] = {history: [p._asdict() for p in points]}
        print_json(data)
        return
    out = console()
    out.print(Text.assemble((f"Run {record.run_id}", "bold"), f" {record.name}  ({record.experiment})"))
    out.print(f"  status   {record.status}" + (" (deleted)" if record.lifecycle != "active" else ""))
    if record.status in ("running", "lost") and record.host is not None:
        ago = duration(record.heartbeat, now_ms()) + " ago" if record.heartbeat is not None else "never"
        out.print(f"  process  {record.host} pid {record.pid}, last heartbeat {ago}"
                  + ("  (lost: the process is gone or stopped sending heartbeats)" if record.status == "lost" else ""))
    out.print(f"  user     {record.user}")
    out.print(f"  started  {when(record.start_time)}   took {duration(record.start_time, record.end_time)}")
    if record.parent_id:
        out.print(f"  parent   {record.parent_id}")
    commit = record.git_commit or "-"
    out.print(f"  code     {commit}{' (dirty)' if record.git_dirty else ''}   {record.source or ''}")
    env = record.environment
    if env:
        packages = ", ".join(f"{k} {v}" for k, v in env.get("packages", {}).items())
        out.print(f"  python   {env.get('python')}   {packages}")
    if record.wall_seconds is not None:
        peak = (record.peak_memory_bytes or 0) / 2**20
        out.print(f"  used     {record.cpu_seconds:.2f} CPU s, peak {peak:.0f} MiB, {record.wall_seconds:.2f} s wall")
    for title, values in (("params", record.params), ("metrics (latest)", record.metrics), ("tags", record.tags)):
        if values:
            out.print(table(title, ["key", "value"], [[k, v] for k, v in sorted(values.items())]))
    if record.artifacts:
        rows = [[a.path, a.size, a.digest[:16]] for a in record.artifacts]
        out.print(table("artifacts", ["path", "bytes", "sha256"], rows))
    if record.error:
        out.print(Text("error:", style="red"))
        out.print(record.error)
    if points is not None:
        out.print(table(f"history of {history}", ["step", "value", "time"], [[p.step, p.value, when(p.timestamp)] for p in points]))


@app.command("compare")
def compare(
    run_ids: Annotated[list[str], typer.Argument(help="Two or more run ids (or unique prefixes).")],
    all_keys: Annotated[bool, typer.Option("--all", help="Also show keys whose values are equal.")] = False,
    as_json: JsonFlag = False,
) -> None:
    """Compare params and latest metrics of runs side by side; differing values are highlighted."""
    from shipyard.tracking import runs

    if len(run_ids) < 2:
        raise ValidationError(f"Compare needs at least two runs, got {len(run_ids)}. Example: shipyard runs compare a1b2c3 d4e5f6")
    ctx = context()
    records = [runs.get_run(ctx, r) for r in run_ids]
    rows: list[list[str | Text]] = []
    data: dict[str, dict[str, object]] = {}
    for kind in ("params", "metrics"):
        keys = sorted({k for r in records for k in getattr(r, kind)})
        for key in keys:
            values = [getattr(r, kind).get(key) for r in records]
            differs = len({repr(v) for v in values}) > 1
            data[f"{kind}.{key}"] = {r.run_id: v for r, v in zip(records, values, strict=True)}
            if differs or all_keys:
                label = Text(f"{kind}.{key}", style="yellow" if differs else "")
                rows.append([label, *(cell(v) for v in values)])
    if as_json:
        print_json({"runs": [r.run_id for r in records], "values": data})
        return
    columns = ["key"] + [f"{r.name} ({r.run_id[:8]})" for r in records]
    console().print(table("differences" if not all_keys else None, columns, rows))
    if not rows:
        console().print("The runs have the same params and metrics.")


@app.command("delete")
def delete(
    run_ids: Annotated[list[str], typer.Argument(help="Run ids (or unique prefixes).")],
    purge: Annotated[bool, typer.Option("--purge", help="Remove the rows for good (artifacts go at the next gc).")] = False,
    yes: Annotated[bool, typer.Option("--yes", "-y", help="Confirm --purge.")] = False,
) -> None:
    """Delete runs: hidden from listings and restorable, or purged with --purge --yes."""
    from shipyard.tracking import runs

    if purge and not yes:
        raise ValidationError("--purge removes runs for good; add --yes to confirm.")
    ctx = context()
    resolved = [runs.resolve_run_id(ctx, r) for r in run_ids]  # all must exist before any is deleted
    for run_id in resolved:
        runs.delete_run(ctx, run_id, purge=purge)
        console().print(f"{'Purged' if purge else 'Deleted'} run {run_id}")


@app.command("restore")
def restore(run_id: Annotated[str, typer.Argument(help="Run id (or a unique prefix).")]) -> None:
    """Bring back a deleted run."""
    from shipyard.tracking import runs

    console().print(f"Restored run {runs.restore_run(context(), run_id)}")
