"""`shipyard monitor compare`: drift between two tables (dataset versions or files), column by column."""

from __future__ import annotations

from typing import TYPE_CHECKING, Annotated, Optional

import typer

from shipyard.cli.output import console, print_json, table
from shipyard.cli.workspace import context

if TYPE_CHECKING:
    import pandas as pd

    from shipyard.context import Context

app = typer.Typer(help="Monitoring: drift between data, column by column.", no_args_is_help=True)


@app.command("compare")
def compare(
    reference: Annotated[str, typer.Argument(help="The reference: a dataset version (credit@1) or a table file.")],
    current: Annotated[str, typer.Argument(help="The current data: a dataset version (credit@2) or a table file.")],
    column: Annotated[Optional[list[str]], typer.Option(
        "--column", "-c", help="Compare only these columns (repeatable); default: the reference's.")] = None,
    method: Annotated[Optional[list[str]], typer.Option(
        "--method", help="COLUMN=METHOD (ks, chisquare, ztest, wasserstein, jensenshannon, psi, hellinger); "
                         "repeatable.")] = None,
    correction: Annotated[Optional[str], typer.Option(
        "--correction", help="Adjust the tests' p-values across columns: bonferroni or bh.")] = None,
    share: Annotated[float, typer.Option("--share", help="Share of drifted columns that makes the table drift.")]
    = 0.5,
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON for scripts.")] = False,
) -> None:
    """Compare two tables column by column with the test or distance each column's type and the reference's
    size call for. Exit code 3 when the table drifted."""
    from shipyard.errors import ValidationError
    from shipyard.monitoring.drift import dataset_drift

    methods: dict[str, str] = {}
    for given in method or []:
        name, sep, chosen = given.partition("=")
        if not sep or not name or not chosen:
            raise ValidationError(f"--method {given!r} is not COLUMN=METHOD, e.g. --method income=psi.",
                                  method=given)
        methods[name] = chosen
    ctx = context()
    report = dataset_drift(_table(ctx, reference), _table(ctx, current), columns=column, methods=methods,
                           correction=correction, share=share)
    if as_json:
        print_json({"reference": reference, "current": current, **report.to_dict()})
    else:
        fmt = lambda v: "-" if v is None else f"{v:.4g}"  # noqa: E731
        rows = [[c.column, c.kind, c.method, fmt(c.score), ("p < " if c.is_test else "≥ ") + f"{c.threshold:g}",
                 {True: "DRIFT", False: "ok", None: "-"}[c.drifted], c.note or ""] for c in report.columns]
        console().print(table(f"{current} against {reference}",
                              ["column", "kind", "method", "score", "drift when", "", "note"], rows))
        verdict = {True: "DRIFTED", False: "no drift", None: "nothing could be judged"}[report.drifted]
        console().print(f"  {verdict}: {len(report.drifted_columns)} of {report.checked} columns drifted"
                        + (f" ({', '.join(report.drifted_columns)})" if report.drifted_columns else "")
                        + (f"; p-values corrected ({correction})" if correction else ""))
    if report.drifted:
        raise typer.Exit(3)


def _table(ctx: Context, ref: str) -> pd.DataFrame:
    """A dataset version (NAME@V) or a table file, as a DataFrame."""
    from pathlib import Path

    from shipyard.data.formats import read_table

    if "@" in ref and not Path(ref).exists():
        import shipyard

        return shipyard.data.load(ref, workspace=ctx.workspace.root)
    return read_table(Path(ref)).to_pandas()
