"""Printing for the CLI: rich tables for people, --json for scripts, one shape for errors."""

from __future__ import annotations

import datetime as dt
import json
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.table import Table
from rich.text import Text


@dataclass
class State:
    """Global options, set by the root callback."""

    debug: bool = False
    workspace: str | None = None
    overrides: dict[str, str] = field(default_factory=dict)
    argv: list[str] = field(default_factory=list)  # the command line, for the log of an unexpected error


state = State()


def console() -> Console:
    # Piped output (scripts, CI logs) gets a wide fixed width instead of rich's 80 columns.
    # Markup is off: run names, params and messages are user text and print verbatim; styling
    # is applied with rich Text objects.
    width = None if sys.stdout.isatty() else 200
    return Console(file=sys.stdout, soft_wrap=True, highlight=False, markup=False, width=width)


def err_console() -> Console:
    return Console(file=sys.stderr, soft_wrap=True, highlight=False, markup=False)


def write_file(path: str, text: str) -> Path:
    """Write a report the user asked for to `path`, creating its folder."""
    target = Path(path)
    target.parent.mkdir(parents=True, exist_ok=True)
    target.write_text(text)
    return target


def print_json(data: Any) -> None:
    sys.stdout.write(json.dumps(data, indent=2, default=str, allow_nan=False) + "\n")


def table(title: str | None, columns: list[str], rows: list[list[Any]]) -> Table:
    out = Table(title=title, show_lines=False, header_style="bold")
    for i, column in enumerate(columns):
        out.add_column(column, overflow="fold", no_wrap=i == 0)
    for row in rows:
        out.add_row(*[cell(v) for v in row])
    return out


def cell(value: Any) -> str | Text:
    if isinstance(value, Text):
        return value
    if value is None:
        return "-"
    if isinstance(value, float):
        return f"{value:.6g}"
    return str(value)


def when(ms: int | None) -> str:
    if ms is None:
        return "-"
    return dt.datetime.fromtimestamp(ms / 1000).strftime("%Y-%m-%d %H:%M")


def duration(start: int | None, end: int | None) -> str:
    if start is None or end is None:
        return "-"
    seconds = (end - start) / 1000
    return f"{seconds:.1f}s" if seconds < 120 else f"{seconds / 60:.1f}m"
