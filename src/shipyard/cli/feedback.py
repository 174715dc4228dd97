"""`shipyard feedback record|report`."""

from __future__ import annotations

from typing import Annotated, Optional

import typer

from shipyard.cli.output import console, print_json, table
from shipyard.cli.workspace import context

app = typer.Typer(help="Ground truth for logged predictions, matched to the prediction log.", no_args_is_help=True)

JsonFlag = Annotated[bool, typer.Option("--json", help="Print JSON for scripts.")]
#: Unmatched request ids printed for people (--json lists them all).
SHOWN_IDS = 20


@app.command("record")
def record(
    model: Annotated[str, typer.Argument(help="The registered model the requests were sent to.")],
    request_id: Annotated[Optional[str], typer.Argument(help="The request's X-Request-Id.")] = None,
    value: Annotated[Optional[str], typer.Argument(
        help="The true value: JSON when it is JSON (1, 2.5, true, \"yes\"), else the text.")] = None,
    row: Annotated[Optional[int], typer.Option("--row", min=0, help="Only this row of the request.")] = None,
    file: Annotated[Optional[str], typer.Option(
        "--file", help="Many at once: a .csv (request_id, value[, row]) or .jsonl file.")] = None,
    as_json: JsonFlag = False,
) -> None:
    """Record the true value for a logged request, or for many from a file (all or none are stored)."""
    from shipyard.errors import ValidationError
    from shipyard.serving.feedback import check_item, parse_value, read_feedback_file, record_feedback

    if file is not None:
        if request_id is not None or value is not None or row is not None:
            raise ValidationError("Give either --file or REQUEST_ID VALUE [--row N], not both.")
        items = read_feedback_file(file)
    else:
        if request_id is None or value is None:
            raise ValidationError("Give REQUEST_ID and VALUE (e.g. `shipyard feedback record credit 3f2a yes`), "
                                  "or --file FILE.")
        items = [check_item(request_id, parse_value(value), row, "the arguments")]
    count = record_feedback(context(), model, items)
    if as_json:
        print_json({"model": model, "recorded": count})
        return
    console().print(f"Recorded {count} feedback item{'s' if count != 1 else ''} for {model}.")


@app.command("report")
def report(
    model: Annotated[str, typer.Argument(help="The registered model.")],
    as_json: JsonFlag = False,
) -> None:
    """How much of a model's feedback matches a logged request, and the request ids that do not (yet)."""
    from shipyard.serving.feedback import feedback_report

    found = feedback_report(context(), model)
    if as_json:
        print_json(found.to_dict())
        return
    out = console()
    out.print(table(f"feedback for {model}", ["received", "matched", "unmatched"],
                    [[found.received, found.matched, found.unmatched]]))
    if found.unmatched_request_ids:
        shown = found.unmatched_request_ids[:SHOWN_IDS]
        more = len(found.unmatched_request_ids) - len(shown)
        out.print("Not in the prediction log (not logged, not sampled, or not flushed yet): "
                  + ", ".join(shown) + (f" … (+{more}; --json lists all)" if more > 0 else ""))
