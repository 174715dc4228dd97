"""`shipyard data add|list|log|show|status|diff|checkout|gc|schema infer|validate`."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Annotated, Any, Optional

import typer
from rich.text import Text

from shipyard.cli.output import cell, console, print_json, table, when, write_file
from shipyard.cli.workspace import context

app = typer.Typer(help="Versioned datasets: snapshots, status, diffs, validation.", no_args_is_help=True)
schema_app = typer.Typer(help="Schema contracts of datasets.", no_args_is_help=True)
app.add_typer(schema_app, name="schema")

JsonFlag = Annotated[bool, typer.Option("--json", help="Print JSON for scripts.")]


def _size(nbytes: int | None) -> str:
    if nbytes is None:
        return "-"
    value = float(nbytes)
    for unit in ("B", "KiB", "MiB", "GiB"):
        if value < 1024 or unit == "GiB":
            return f"{value:.0f} {unit}" if unit == "B" else f"{value:.1f} {unit}"
        value /= 1024
    return f"{nbytes} B"


@app.command("add")
def add(
    name: Annotated[str, typer.Argument(help="Dataset name, e.g. credit.")],
    path: Annotated[str, typer.Argument(help="A file, a folder, or a table (.csv, .parquet, .jsonl).")],
    message: Annotated[Optional[str], typer.Option("--message", "-m", help="What changed.")] = None,
    kind: Annotated[str, typer.Option("--kind", help="auto, files or table.")] = "auto",
    key: Annotated[Optional[list[str]], typer.Option("--key", help="Key column of a table (repeatable).")] = None,
    parent: Annotated[Optional[list[str]], typer.Option("--parent", help="Version this one derives from (repeatable).")] = None,
    as_json: JsonFlag = False,
) -> None:
    """Snapshot PATH as the next version of dataset NAME (nothing new if it is unchanged)."""
    from shipyard.data.versions import add_version

    ctx = context()
    progress, update = _progress(not as_json)
    try:
        result = add_version(ctx, name, path, message=message, kind=kind, key=key, parents=parent or [], progress=update)
    finally:
        if progress is not None:
            progress.stop()
    if as_json:
        print_json(result.to_dict())
        return
    v = result.version
    if not result.created:
        console().print(f"{name}: unchanged since {v.version_id}; no new version.")
        return
    rows = f", {v.row_count} rows" if v.row_count is not None else ""
    console().print(
        f"Added {v.version_id}: {v.kind}, {v.file_count} file(s), {_size(v.total_bytes)}{rows} "
        f"({result.files_read} read, {result.files_total - result.files_read} from the stat cache, {result.seconds:.2f}s)"
    )


def _progress(enabled: bool) -> tuple[Any, Any]:
    """A progress bar for long adds, on a terminal only."""
    if not enabled or not sys.stderr.isatty():
        return None, None
    from rich.progress import BarColumn, DownloadColumn, Progress, TimeRemainingColumn, TransferSpeedColumn

    from shipyard.cli.output import err_console

    bar = Progress("hashing", BarColumn(), DownloadColumn(), TransferSpeedColumn(), TimeRemainingColumn(),
                   console=err_console(), transient=True)
    task = bar.add_task("add", total=None)
    started = [False]

    def update(done: int, total: int) -> None:
        if not started[0] and total > 64 << 20:  # only worth showing for large adds
            bar.start()
            started[0] = True
        bar.update(task, completed=done, total=total)

    return bar, update


@app.command("list")
def list_(as_json: JsonFlag = False) -> None:
    """List datasets with their latest versions."""
    from shipyard.data.versions import list_datasets

    found = list_datasets(context())
    if as_json:
        print_json(found)
        return
    rows = [[d["name"], d["versions"], d["latest"]["version_id"], d["latest"]["kind"], d["latest"]["file_count"],
             _size(d["latest"]["total_bytes"]), d["latest"]["row_count"], when(d["latest"]["created"])] for d in found]
    console().print(table(None, ["dataset", "versions", "latest", "kind", "files", "size", "rows", "added"], rows))
    if not rows:
        console().print("No datasets yet. Add one with `shipyard data add NAME PATH`.")


@app.command("log")
def log(name: Annotated[str, typer.Argument(help="Dataset name.")], as_json: JsonFlag = False) -> None:
    """The versions of one dataset, newest first."""
    from shipyard.data.versions import list_versions

    found = list_versions(context(), name)
    if as_json:
        print_json([v.to_dict(with_profile=False) for v in found])
        return
    rows = [[v.version_id, when(v.created), v.created_by, v.kind, v.file_count, _size(v.total_bytes), v.row_count,
             v.message or ""] for v in found]
    console().print(table(None, ["version", "added", "by", "kind", "files", "size", "rows", "message"], rows))


@app.command("show")
def show(ref: Annotated[str, typer.Argument(help="NAME@VERSION, e.g. credit@2.")], as_json: JsonFlag = False) -> None:
    """One version: where it came from, its schema, row count and profile summary."""
    from shipyard.data.versions import get_version

    v = get_version(context(), ref)
    if as_json:
        print_json(v.to_dict())
        return
    out = console()
    out.print(Text.assemble((v.version_id, "bold"), f"  {v.kind}, {v.file_count} file(s), {_size(v.total_bytes)}"))
    out.print(f"  added    {when(v.created)} by {v.created_by}")
    out.print(f"  source   {v.source}")
    if v.message:
        out.print(f"  message  {v.message}")
    out.print(f"  content  sha256 {v.manifest_digest}")
    if v.row_count is not None:
        out.print(f"  rows     {v.row_count}" + (f"   key: {', '.join(v.key_columns)}" if v.key_columns else ""))
    if v.profile:
        from shipyard.data.profile import profile_summary

        summary = profile_summary(v.profile)
        columns = list(summary[0]) if summary else []
        out.print(table("profile", columns, [[row.get(c) for c in columns] for row in summary]))


@app.command("status")
def status(
    name: Annotated[str, typer.Argument(help="Dataset name.")],
    path: Annotated[str, typer.Argument(help="The folder or file to compare with the latest version.")],
    as_json: JsonFlag = False,
) -> None:
    """What changed in PATH since the latest version (unchanged files are not re-read)."""
    from shipyard.data.workspace_files import status as folder_status

    report = folder_status(context(), name, path)
    if as_json:
        print_json(report.to_dict())
        return
    out = console()
    base = report.base or "no version yet"
    if report.clean:
        out.print(f"{name}: {path} matches {base} ({report.unchanged} files).")
        return
    out.print(f"{name}: {path} differs from {base}:")
    for label, paths, style in (("added", report.added, "green"), ("modified", report.modified, "yellow"),
                                ("removed", report.removed, "red")):
        for p in paths:
            out.print(Text(f"  {label:<9}{p}", style=style))
    out.print(f"  {report.unchanged} unchanged; {report.files_read} file(s) read.")


@app.command("diff")
def diff(
    a: Annotated[str, typer.Argument(help="Base version, e.g. credit@1.")],
    b: Annotated[str, typer.Argument(help="Other version, e.g. credit@2.")],
    key: Annotated[Optional[list[str]], typer.Option("--key", help="Key column to count added/removed rows.")] = None,
    as_json: JsonFlag = False,
) -> None:
    """Files added, removed and changed; for tables also schema, rows and statistic shifts."""
    from shipyard.data.compare import diff_versions

    d = diff_versions(context(), a, b, key=key)
    if as_json:
        print_json(d.to_dict())
        return
    out = console()
    out.print(Text(f"{d.base} → {d.other}", style="bold"))
    if d.identical:
        out.print("  identical content")
    for label, items in (("files added", d.files_added), ("files removed", d.files_removed),
                         ("files changed", d.files_changed), ("columns added", d.columns_added),
                         ("columns removed", d.columns_removed)):
        if items:
            shown = ", ".join(items[:20]) + (f" … (+{len(items) - 20})" if len(items) > 20 else "")
            out.print(f"  {label}: {shown}")
    for column, (old, new) in d.type_changes.items():
        out.print(f"  type of {column}: {old} → {new}")
    if d.row_count:
        out.print(f"  rows: {d.row_count[0]} → {d.row_count[1]}")
    if d.key:
        out.print(f"  by key {', '.join(d.key)}: {d.rows_added} rows added, {d.rows_removed} removed")
    rows = [[column, stat, cell(old), cell(new)] for column, stats in d.stat_shifts.items()
            for stat, (old, new) in stats.items()]
    if rows:
        out.print(table("statistic shifts", ["column", "statistic", d.base, d.other], rows))


@app.command("checkout")
def checkout(
    ref: Annotated[str, typer.Argument(help="NAME@VERSION.")],
    dest: Annotated[str, typer.Argument(help="Folder to write the files into.")],
    force: Annotated[bool, typer.Option("--force", help="Overwrite files that exist.")] = False,
) -> None:
    """Write a version's files into DEST, each verified against its digest."""
    from shipyard.data.workspace_files import checkout as write_files

    written = write_files(context(), ref, dest, force=force)
    console().print(f"Checked out {len(written)} file(s) of {ref} into {Path(dest).resolve()}")


@app.command("gc")
def gc(
    grace: Annotated[float, typer.Option("--grace", help="Keep unreferenced blobs younger than this many seconds.")] = 3600.0,
    dry_run: Annotated[bool, typer.Option("--dry-run", help="Only report what would be removed.")] = False,
    as_json: JsonFlag = False,
) -> None:
    """Delete blobs no dataset version or run references (the blob store's garbage collection)."""
    from shipyard.cli.artifacts import gc as collect

    collect(grace=grace, dry_run=dry_run, as_json=as_json)


@schema_app.command("infer")
def schema_infer(
    ref: Annotated[str, typer.Argument(help="NAME@VERSION to learn the contract from.")],
    output: Annotated[Optional[str], typer.Option("--output", "-o", help="Default: schemas/NAME.yaml.")] = None,
    key: Annotated[Optional[list[str]], typer.Option("--key", help="Unique key column (repeatable).")] = None,
) -> None:
    """Infer a schema contract (types, nulls, ranges, categories, keys, row counts) as editable YAML."""
    from shipyard.data.checks import infer

    path = infer(context(), ref, output=output, key=key)
    console().print(f"Wrote the schema contract of {ref} to {path}; edit it to tighten or relax the rules.")


@app.command("validate")
def validate(
    ref: Annotated[str, typer.Argument(help="NAME@VERSION to check.")],
    schema: Annotated[Optional[str], typer.Option("--schema", help="Default: schemas/NAME.yaml.")] = None,
    reference: Annotated[Optional[str], typer.Option("--reference", help="Profile to compare with (default: the previous version).")] = None,
    html: Annotated[Optional[str], typer.Option("--html", help="Also write an HTML report here.")] = None,
    as_json: JsonFlag = False,
) -> None:
    """Check a version against its schema and a reference profile; exit 1 on an error anomaly."""
    from shipyard.data.checks import validate as check

    ctx = context()
    report, against = check(ctx, ref, schema_file=schema, reference=reference)
    if html:
        from shipyard.data.report import render_html
        from shipyard.data.versions import get_version

        version = get_version(ctx, ref)
        reference_profile = get_version(ctx, against["reference"]).profile if against["reference"] else None
        page = render_html(report, title=f"Validation of {version.version_id}", profile=version.profile,
                           reference_profile=reference_profile)
        write_file(html, page)
    if as_json:
        print_json({**against, **report.to_dict()})
    else:
        out = console()
        rows = report.summary_rows()
        if rows:
            columns = list(rows[0])
            out.print(table(f"anomalies in {against['version']}", columns, [[r[c] for c in columns] for r in rows]))
        verdict = "FAILED" if not report.ok else "passed"
        style = "bold red" if not report.ok else "green"
        out.print(Text(f"Validation {verdict}: {len(report.errors)} error(s), {len(report.warnings)} warning(s) "
                       f"(schema {against['schema']}, reference {against['reference'] or 'none'}).", style=style))
        if html:
            out.print(f"HTML report: {Path(html).resolve()}")
    if not report.ok:
        raise typer.Exit(1)
