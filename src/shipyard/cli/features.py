"""`shipyard features list|show|apply|get|materialize|skew`."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Optional

import typer
from rich.text import Text

from shipyard.cli.output import console, print_json, table, when
from shipyard.cli.workspace import context

app = typer.Typer(help="The feature store: feature views, their versions, point-in-time training sets, the online "
                       "store.", no_args_is_help=True)

JsonFlag = Annotated[bool, typer.Option("--json", help="Print JSON for scripts.")]


@app.command("list")
def list_(as_json: JsonFlag = False) -> None:
    """List feature views with their latest versions."""
    from shipyard.features.registry import list_views

    found = list_views(context())
    if as_json:
        print_json(found)
        return
    rows = [[v["name"], v["versions"], v["latest"]["version_id"], ", ".join(v["latest"]["entities"]),
             v["latest"]["source"], len(v["latest"]["features"]), v["latest"]["ttl"], when(v["latest"]["created"])]
            for v in found]
    console().print(table(None, ["view", "versions", "latest", "entities", "source", "features", "ttl", "applied"],
                          rows))
    if not rows:
        console().print("No feature views yet. Register some with `shipyard features apply MODULE`.")


@app.command("show")
def show(ref: Annotated[str, typer.Argument(help="NAME (its latest version) or NAME@VERSION.")],
         as_json: JsonFlag = False) -> None:
    """One feature view version: its definition, and the versions of the view."""
    from shipyard.features.registry import get_view, list_versions

    ctx = context()
    view = get_view(ctx, ref)
    versions = list_versions(ctx, view.name)
    if as_json:
        print_json({**view.to_dict(), "versions": [v.version for v in versions]})
        return
    d = view.definition
    out = console()
    out.print(Text.assemble((view.version_id, "bold"), f"  applied {when(view.created)} by {view.created_by}"))
    if d["description"]:
        out.print(f"  {d['description']}")
    out.print(f"  entities   {', '.join(view.entities)}")
    out.print(f"  timestamp  {d['timestamp']}" + (f"  (created: {d['created_timestamp']})" if d["created_timestamp"]
                                                   else ""))
    out.print(f"  source     {d['source']}")
    out.print(f"  ttl        {view.to_dict()['ttl']}")
    if d["transform"]:
        out.print(f"  transform  {d['transform']['qualname']} in {d['transform']['file'] or d['transform']['module']}")
    out.print(f"  versions   {', '.join(str(v.version) for v in versions)}")
    out.print(table("features", ["feature", "type"], [[k, t] for k, t in view.features.items()]))


@app.command("apply")
def apply(
    module: Annotated[str, typer.Argument(help="A Python file (features/views.py) or a module (features.views) "
                                                "whose top-level FeatureView objects are registered.")],
    as_json: JsonFlag = False,
) -> None:
    """Register the feature views of MODULE: a new version of each whose definition changed."""
    from shipyard.features.loading import load_views
    from shipyard.features.registry import apply as register

    ctx = context()
    results = register(ctx, load_views(module))
    if as_json:
        print_json([r.to_dict() for r in results])
        return
    for r in results:
        what = "registered" if r.created else "unchanged"
        console().print(f"{r.view.version_id}: {what}")


@app.command("get")
def get(
    entities: Annotated[str, typer.Option("--entities", help="The entity rows: a .csv or .parquet file, or a dataset "
                                                             "version (labels@2), with the entity keys and a "
                                                             "timestamp column; with --online also JSON, e.g. "
                                                             "'[{\"customer_id\": 1}]'.")],
    features: Annotated[list[str], typer.Option("--features", help="VIEW:FEATURE[,FEATURE…] (repeatable), e.g. "
                                                                   "customer_stats:spend_30d,orders_30d.")],
    output: Annotated[Optional[str], typer.Option("--output", "-o", help="Write the training set here (.parquet "
                                                                         "or .csv).")] = None,
    timestamp: Annotated[str, typer.Option("--timestamp", help="The entity rows' time column.")] = "event_timestamp",
    save_as: Annotated[Optional[str], typer.Option("--save-as", help="Also version it as this dataset, with "
                                                                     "lineage.")] = None,
    full_names: Annotated[bool, typer.Option("--full-names", help="Name the columns VIEW__FEATURE.")] = False,
    online: Annotated[bool, typer.Option("--online", help="Read the online store instead: each feature's current "
                                                           "value and status (present, missing, expired).")] = False,
    at: Annotated[Optional[str], typer.Option("--at", help="With --online: the request time (default now; naive "
                                                            "times are UTC).")] = None,
    as_json: JsonFlag = False,
) -> None:
    """Build a point-in-time-correct training set (each feature as it was at each entity row's time), or with
    --online read the features' current values from the online store."""
    from shipyard.errors import ValidationError
    from shipyard.features.historical import historical
    from shipyard.features.training import build

    if online:
        if save_as is not None:
            raise ValidationError("--save-as versions a training set; with --online use --output or --json.")
        _get_online(entities, features, output, at, full_names, as_json)
        return
    if at is not None:
        raise ValidationError(f"--at {at} is the request time of an --online read; a training set takes each "
                              "entity row's time from its --timestamp column.")
    if output is None and save_as is None:
        raise ValidationError("Say where the training set goes: --output FILE (.parquet or .csv), --save-as NAME, "
                              "or both.")
    target = _output_path(output) if output is not None else None
    ctx = context()
    frame_or_ref = _entities(entities)
    summary: dict[str, object] = {}
    if save_as is not None:
        built = build(ctx, save_as, frame_or_ref, features, timestamp=timestamp, full_names=full_names)
        frame, matched = built.frame, built.matched
        summary["dataset_version"] = built.version.version_id
        summary["created"] = built.created
    else:
        found = historical(ctx, frame_or_ref, features, timestamp=timestamp, full_names=full_names)
        frame, matched = found.frame, found.matched
    if target is not None:
        target.parent.mkdir(parents=True, exist_ok=True)
        if target.suffix.lower() == ".csv":
            frame.to_csv(target, index=False)
        else:
            frame.to_parquet(target, index=False)
        summary["output"] = str(target)
    summary.update({"rows": len(frame), "columns": [str(c) for c in frame.columns], "matched": matched})
    if as_json:
        print_json(summary)
        return
    got = ", ".join(f"{c} {n}/{len(frame)}" for c, n in matched.items())
    where = " and ".join(str(x) for x in (summary.get("output"), summary.get("dataset_version")) if x)
    console().print(f"{len(frame)} rows with {len(matched)} feature(s) to {where} (rows with a value: {got})")


def _get_online(entities: str, features: list[str], output: str | None, at: str | None, full_names: bool,
                as_json: bool) -> None:
    from shipyard.features.online_features import get_online

    target = _output_path(output) if output is not None else None
    found = get_online(context(), features, _online_entities(entities), at=at, full_names=full_names)
    values, status = found.values, found.status
    if target is not None:
        target.parent.mkdir(parents=True, exist_ok=True)
        both = values.copy()
        for column in status.columns:
            both[f"{column}__status"] = status[column].astype(str).to_numpy()
        if target.suffix.lower() == ".csv":
            both.to_csv(target, index=False)
        else:
            both.to_parquet(target, index=False)
    keys = [c for c in values.columns if c not in status.columns]
    rows: list[dict[str, dict[str, object]]] = [
        {"entities": {k: _plain(values[k].iloc[i]) for k in keys},
         "values": {c: _plain(values[c].iloc[i]) for c in status.columns},
         "status": {c: str(status[c].iloc[i]) for c in status.columns}} for i in range(len(values))]
    if as_json:
        print_json({"rows": rows, **({"output": str(target)} if target is not None else {})})
        return
    header = [*keys, *status.columns]
    shown = [[*r["entities"].values(), *(f"{r['values'][c]}" if r["status"][c] == "present" else f"({r['status'][c]})"
                                         for c in status.columns)] for r in rows]
    console().print(table(None, header, shown))
    if target is not None:
        console().print(f"{len(rows)} rows with {len(status.columns)} feature(s) and their statuses to {target}")


def _online_entities(entities: str) -> object:
    """Entity rows given as JSON (a list of objects, or one object), else as for a training set."""
    import json

    import pandas as pd

    from shipyard.errors import ValidationError

    text = entities.strip()
    if text.startswith(("[", "{")):
        try:
            parsed = json.loads(text)
        except json.JSONDecodeError as exc:
            raise ValidationError(f"--entities {entities}: not valid JSON ({exc.msg} at character {exc.pos}). Give "
                                  "a list of objects of entity keys, e.g. '[{\"customer_id\": 1}]'.") from None
        parsed = [parsed] if isinstance(parsed, dict) else parsed
        if not isinstance(parsed, list) or not all(isinstance(r, dict) for r in parsed):
            raise ValidationError(f"--entities {entities}: give a list of objects of entity keys, e.g. "
                                  "'[{\"customer_id\": 1}]'.")
        return parsed
    found = _entities(entities)
    if isinstance(found, str):
        from shipyard.data.versions import get_version
        from shipyard.data.workspace_files import load_arrow

        return load_arrow(context(), get_version(context(), found)).to_pandas()
    assert isinstance(found, pd.DataFrame)
    return found


def _plain(value: object) -> object:
    """A cell as JSON takes it: numpy scalars as numbers, nulls as None, timestamps as ISO text."""
    import pandas as pd

    from shipyard.errors import plain

    if value is None or (not isinstance(value, list | tuple) and pd.isna(value)):
        return None
    if isinstance(value, pd.Timestamp):
        return value.isoformat()
    return plain(value)


@app.command("materialize")
def materialize(
    views: Annotated[Optional[list[str]], typer.Argument(help="Views to load: NAME (its latest version) or "
                                                             "NAME@VERSION; every registered view when none.")] = None,
    start: Annotated[Optional[str], typer.Option("--start", help="On a view version's first load, take only rows "
                                                                 "after this time (naive: UTC).")] = None,
    end: Annotated[Optional[str], typer.Option("--end", help="Load rows up to this time and move the watermark to "
                                                             "it (default: the latest event time).")] = None,
    as_json: JsonFlag = False,
) -> None:
    """Load the views' new source rows (after each version's watermark) into the online store."""
    from shipyard.features.materialization import materialize as load

    loads = load(context(), views or None, start=start, end=end)
    if as_json:
        print_json([r.to_dict() for r in loads])
        return
    rows = []
    for r in loads:
        d = r.to_dict()
        rows.append([d["view"], d["rows_read"], d["rows_in_window"], d["written"], d["watermark"] or "-",
                     "loaded" if d["changed"] else "nothing new"])
    console().print(table(None, ["view", "rows read", "in window", "written", "watermark", ""], rows))
    if not rows:
        console().print("No feature views yet. Register some with `shipyard features apply MODULE`.")


#: Served values differ from the offline recomputation: the same code as `monitor run` with a breached rule.
EXIT_SKEW = 3


@app.command("skew")
def skew(
    view: Annotated[str, typer.Argument(help="The feature view: NAME (any of its versions) or NAME@VERSION.")],
    model: Annotated[Optional[str], typer.Option("--model", help="Only this model version's requests (NAME/V); "
                                                                 "default every model trained through the view.")]
    = None,
    since: Annotated[Optional[str], typer.Option("--since", help="Requests logged from then on: a time (naive: UTC) "
                                                                 "or a span back from now (30m, 1h).")] = None,
    limit: Annotated[Optional[int], typer.Option("--limit", help="The newest N logged rows per model version.")]
    = None,
    as_json: JsonFlag = False,
) -> None:
    """Compare the feature values served (from the prediction log) with an offline recomputation for the same
    entity keys and request times, per feature. Exit code 3 when any differ."""
    from shipyard.serving.skew import feature_skew

    report = feature_skew(context(), view, model=model, since=_since(since), limit=limit)
    if as_json:
        print_json(report.to_dict())
    else:
        out = console()
        rows = [[f.feature, f.compared, f.matches, f.mismatches, f.served_null, f.offline_null]
                for f in report.features]
        out.print(table(f"{report.view}: {report.rows} served rows of {', '.join(report.models)}",
                        ["feature", "compared", "match", "differ", "served null", "offline null"], rows))
        for f in report.features:
            for e in f.examples:
                out.print(f"  {f.feature} {e['key']} at {e['at']}: served {e['served']!r}, offline {e['offline']!r}",
                          markup=False)
        out.print(f"{report.differing} served value(s) differ from the offline recomputation." if report.differing
                  else "Every served value matches the offline recomputation.")
    if report.differing:
        raise typer.Exit(EXIT_SKEW)


def _since(since: str | None) -> float | None:
    """--since as unix seconds: a span back from now (1h) or a time (naive: UTC)."""
    import time

    import pandas as pd

    from shipyard.errors import ValidationError
    from shipyard.policy.deploy import duration_seconds

    if since is None:
        return None
    try:
        return time.time() - duration_seconds(since, "--since")
    except ValidationError:
        pass
    try:
        stamp = pd.Timestamp(since)
    except (ValueError, TypeError):
        raise ValidationError(f"Invalid --since {since!r}: give a time (2026-03-01T12:00) or a span back from now "
                              "(30m, 1h).", value=since) from None
    if pd.isna(stamp):
        raise ValidationError(f"Invalid --since {since!r}: give a time (2026-03-01T12:00) or a span back from now "
                              "(30m, 1h).", value=since)
    return float((stamp if stamp.tzinfo else stamp.tz_localize("UTC")).timestamp())


def _output_path(output: str) -> Path:
    from shipyard.errors import ValidationError

    target = Path(output)
    if target.suffix.lower() not in (".parquet", ".csv"):
        raise ValidationError(f"--output {output}: write a .parquet or a .csv file.")
    for parent in target.parents:
        if parent.exists():
            if not parent.is_dir():
                raise ValidationError(f"--output {output}: {parent} is a file, not a folder.")
            break
    return target


def _entities(entities: str) -> object:
    """A table file read into a DataFrame, else the text itself (a dataset version)."""
    from shipyard.data import formats

    path = Path(entities)
    if formats.table_format(path) is None and not path.exists():
        return entities
    from shipyard.errors import NotFoundError

    if not path.is_file():
        raise NotFoundError(f"--entities {entities}: no such file. Give a .csv or .parquet file, or a dataset "
                            "version (NAME@V).", path=entities)
    return formats.read_table(path).to_pandas()
