"""The `shipyard` entry point: global options, error handling, and the command groups."""

from __future__ import annotations

import errno
import sys
from typing import Annotated, Any, Optional

import typer
from rich.text import Text
from typer.core import TyperGroup
from typer.exceptions import TyperException

from shipyard.cli.output import err_console, state
from shipyard.errors import ShipyardError

#: The exit status of an error Shipyard did not expect (a bug, or a library error it did not translate):
#: distinct from 1 (an error explained by its message) and 2 (a usage error). EX_SOFTWARE of sysexits.h.
EXIT_UNEXPECTED = 70
DEBUG_FLAG = "--debug"
_PATH_ERRORS = {errno.ENOENT, errno.EISDIR, errno.ENOTDIR, errno.EACCES, errno.EPERM, errno.EEXIST, errno.EROFS,
                errno.ENOSPC, errno.ENAMETOOLONG}


class ShipyardGroup(TyperGroup):
    """The root command: `--debug` anywhere on the line; a ShipyardError becomes one message on stderr
    and its exit status (3 when a gate or a review blocked the outcome, else 1); any other exception one
    line pointing at its traceback, and EXIT_UNEXPECTED."""

    def parse_args(self, ctx: Any, args: list[str]) -> list[str]:
        # Subcommands do not know --debug: lift it out wherever it is (before a `--`) to the front.
        state.argv = list(args)
        end = args.index("--") if "--" in args else len(args)
        if DEBUG_FLAG in args[:end]:
            args = [DEBUG_FLAG] + [a for a in args[:end] if a != DEBUG_FLAG] + args[end:]
        return super().parse_args(ctx, args)

    def invoke(self, ctx: Any) -> Any:
        try:
            return super().invoke(ctx)
        except ShipyardError as exc:
            raise _explained(exc, str(exc)) from None
        except typer.BadParameter as exc:
            _name_the_value(exc)
            raise
        except (typer.Exit, typer.Abort, TyperException, EOFError, BrokenPipeError):
            raise  # exits, usage errors and Ctrl-D: click reports them
        except OSError as exc:
            if exc.filename is None or exc.errno not in _PATH_ERRORS:
                raise _unexpected(exc) from None
            # A path given on the command line that cannot be read or written: the user's to fix.
            raise _explained(exc, f"{exc.strerror}: {exc.filename}. Check that the path exists (or its folder "
                                  "does) and that you may use it.") from None
        except Exception as exc:  # noqa: BLE001 - the last line of defence: never a bare traceback
            raise _unexpected(exc) from None


def _name_the_value(exc: typer.BadParameter) -> None:
    """Typer's conversion errors say what was expected but not what was given: add the value."""
    cause = exc.__cause__
    errors = getattr(cause, "errors", None)
    if callable(errors):
        values = [e["input"] for e in errors() if "input" in e]
        if values and not isinstance(values[0], (dict, list, tuple)):
            exc.message = f"{exc.message} (got {values[0]!r})"


def _explained(exc: BaseException, message: str) -> typer.Exit:
    if state.debug:
        _print_traceback(exc)
        # A pipeline step's own traceback, from the thread or worker where the step ran.
        original = getattr(exc, "original_traceback", None)
        if original:
            sys.stderr.write(f"\nThe step's traceback:\n{original.rstrip()}\n\n")
    err_console().print(Text.assemble(("Error: ", "bold red"), message))
    return typer.Exit(exc.exit_code if isinstance(exc, ShipyardError) else 1)


def _unexpected(exc: BaseException) -> typer.Exit:
    report_unexpected(exc)
    return typer.Exit(EXIT_UNEXPECTED)


def report_unexpected(exc: BaseException) -> None:
    """One line for the user; the traceback goes to a log file (and to stderr with --debug)."""
    if state.debug:
        _print_traceback(exc)
    log = _write_crash_log(exc)
    summary = f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__
    where = f"the traceback is in {log}" if log else "no log file could be written"
    hint = "" if state.debug else " (or run again with --debug to print it)"
    err_console().print(Text.assemble(
        ("Unexpected error: ", "bold red"), f"{summary.splitlines()[0]}. Shipyard did not expect this (a bug, or an "
        f"error it does not explain yet); {where}{hint}. Please report it with that file.",
    ))


def _print_traceback(exc: BaseException) -> None:
    import traceback

    traceback.print_exception(exc, file=sys.stderr)


def _write_crash_log(exc: BaseException) -> str | None:
    """Write the traceback to .shipyard/logs/ of the workspace (else the temporary folder); return its path."""
    import datetime as dt
    import os
    import shlex
    import tempfile
    import traceback
    from pathlib import Path

    stamp = dt.datetime.now().strftime("%Y%m%d-%H%M%S")
    text = f"shipyard {shlex.join(state.argv)}\n\n" + "".join(traceback.format_exception(exc))
    folders = []
    try:
        from shipyard.config import STATE_DIR, find_root

        folders.append(find_root(Path(state.workspace) if state.workspace else None) / STATE_DIR / "logs")
    except Exception:  # noqa: BLE001 - no workspace here: fall back to the temporary folder
        pass
    folders.append(Path(tempfile.gettempdir()))
    for folder in folders:
        try:
            folder.mkdir(parents=True, exist_ok=True)
            path = folder / f"shipyard-error-{stamp}-{os.getpid()}.log"
            path.write_text(text)
            return str(path)
        except OSError:
            continue
    return None


app = typer.Typer(
    cls=ShipyardGroup,
    name="shipyard",
    help="Shipyard: carry a model from raw data to a monitored production service.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)


def _version(value: bool) -> None:
    if value:
        from shipyard import __version__

        typer.echo(f"shipyard {__version__}")
        raise typer.Exit()


@app.callback()
def root(
    workspace: Annotated[
        Optional[str], typer.Option("--workspace", "-C", help="Use the workspace in this folder.")
    ] = None,
    set_: Annotated[
        Optional[list[str]],
        typer.Option("--set", help="Override a setting, e.g. --set store.url=sqlite:///x.db (repeatable)."),
    ] = None,
    debug: Annotated[bool, typer.Option(DEBUG_FLAG, help="Show tracebacks on errors (anywhere on the line).")] = False,
    version: Annotated[
        bool, typer.Option("--version", callback=_version, is_eager=True, help="Show the version and exit.")
    ] = False,
) -> None:
    state.debug = debug
    state.workspace = workspace
    state.overrides = {}
    for item in set_ or []:
        key, sep, value = item.partition("=")
        if not sep or not key.strip():
            raise ShipyardError(f"--set {item!r} must look like KEY=VALUE, e.g. --set store.url=sqlite:///x.db.")
        state.overrides[key.strip()] = value


def _register() -> None:
    from shipyard.cli import (
        artifacts, audit, data, deploy, feedback, lifecycle, lineage, models, monitor, pipelines, runs, serve,
        workspace,
    )

    workspace.register(app)
    app.add_typer(data.app, name="data")
    from shipyard.cli import features

    app.add_typer(features.app, name="features")
    app.add_typer(models.app, name="models")
    app.add_typer(models.review_app, name="review")
    app.add_typer(pipelines.app, name="pipeline")
    app.command("readiness")(models.readiness)
    app.command("run")(lifecycle.run)
    app.command("ci")(lifecycle.ci)
    from shipyard.cli import predict

    app.command("predict")(predict.predict)
    app.add_typer(lineage.app, name="lineage")
    app.add_typer(runs.app, name="runs")
    app.add_typer(audit.app, name="audit")
    app.add_typer(artifacts.app, name="artifacts")
    app.command("serve")(serve.serve)
    app.add_typer(deploy.app, name="deploy")
    app.add_typer(feedback.app, name="feedback")
    app.add_typer(monitor.app, name="monitor")
    from shipyard.cli import doctor

    app.command("doctor")(doctor.doctor)
    from shipyard.cli import watch

    app.add_typer(watch.app, name="watch")


_register()


def main(argv: list[str] | None = None) -> int:
    """Run the CLI and return its exit status: 0 done, 1 an error, 2 a usage error, 3 blocked by a gate
    (see EXIT_* in shipyard.errors), EXIT_UNEXPECTED (70) for an error Shipyard did not expect."""
    args = sys.argv[1:] if argv is None else argv
    end = args.index("--") if "--" in args else len(args)
    state.debug = DEBUG_FLAG in args[:end]
    try:
        app(args=args, prog_name="shipyard")
    except SystemExit as exc:
        code = exc.code
        return code if isinstance(code, int) else (0 if code is None else 1)
    except Exception as exc:  # noqa: BLE001 - raised outside a command (while parsing the line)
        report_unexpected(exc)
        return EXIT_UNEXPECTED
    return 0


if __name__ == "__main__":
    sys.exit(main())
