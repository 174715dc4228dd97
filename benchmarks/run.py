#!/usr/bin/env python
"""Run Shipyard's side-by-side benchmarks against peer tools.

    .venv/bin/python benchmarks/run.py                 # every suite
    .venv/bin/python benchmarks/run.py --only tracking # one suite
    .venv/bin/python benchmarks/run.py --quick         # small counts, smoke run
    .venv/bin/python benchmarks/run.py --only features --feature-rows 100000 --label-rows 10000

Peer tools live in their own virtualenv (benchmarks/.venv-peers), created on
first use by benchmarks/setup_peers.sh. Results are printed as tables and
written to benchmarks/results/<suite>.json.

A suite is a module with ``NAME``, ``TITLE``, ``run(ctx) -> dict`` and
``render(result, console)``; register it in ``SUITES`` below.
"""

from __future__ import annotations

import argparse
import importlib
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

from common import BENCH_DIR, PEERS_PYTHON, RESULTS_DIR, Context, environment_info, write_json  # noqa: E402

# name -> module (relative to benchmarks/).
SUITES: dict[str, str] = {
    "tracking": "tracking.suite",
    "data": "data.suite",
    "registry": "registry.suite",
    "pipelines": "pipelines.suite",
    "serving": "serving.suite",
    "deployments": "deployments.suite",
    "monitoring": "monitoring.suite",
    "features": "features.suite",
}


class Console:
    """Minimal output layer: rich tables when rich is installed, plain text otherwise."""

    def __init__(self, plain: bool = False) -> None:
        self._rich = None
        if not plain:
            try:
                from rich.console import Console as RichConsole

                self._rich = RichConsole(width=max(160, RichConsole().width))
            except ImportError:
                pass

    def table(self, title: str, headers: list[str], rows: list[list[str]], right_align: set[int] = frozenset()) -> None:
        if self._rich is not None:
            from rich.table import Table

            t = Table(title=title, title_justify="left", show_lines=False)
            for i, h in enumerate(headers):
                t.add_column(h, justify="right" if i in right_align else "left", overflow="fold")
            for row in rows:
                t.add_row(*row)
            self._rich.print(t)
            return
        widths = [max(len(str(x)) for x in col) for col in zip(headers, *rows)]

        def line(cells: list[str]) -> str:
            return "  ".join(
                str(c).rjust(w) if i in right_align else str(c).ljust(w) for i, (c, w) in enumerate(zip(cells, widths))
            )

        print(f"\n{title}")
        print(line(headers))
        print("  ".join("-" * w for w in widths))
        for row in rows:
            print(line(row))

    def note(self, text: str) -> None:
        if self._rich is not None:
            self._rich.print(text, markup=False, highlight=False)
        else:
            print(text)


def ensure_peers(ctx: Context) -> None:
    """Create/verify benchmarks/.venv-peers (idempotent; fast when already set up)."""
    script = BENCH_DIR / "setup_peers.sh"
    proc = subprocess.run(["bash", str(script)], stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    if proc.returncode != 0:
        sys.stderr.write(proc.stdout)
        raise SystemExit(f"{script} failed (exit {proc.returncode})")
    ctx.log(proc.stdout.strip().splitlines()[-1] if proc.stdout.strip() else "peers: ready")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--only", action="append", choices=sorted(SUITES), help="run only this suite (repeatable)")
    parser.add_argument("--quick", action="store_true", help="small counts for a smoke run")
    parser.add_argument("--keep", action="store_true", help="keep the temporary stores for inspection")
    parser.add_argument("--tmpdir", type=Path, help="where to create the temporary stores (default: system temp)")
    parser.add_argument("--results-dir", type=Path, default=RESULTS_DIR, help="where to write <suite>.json")
    parser.add_argument("--no-setup", action="store_true", help="do not run setup_peers.sh first")
    parser.add_argument("--plain", action="store_true", help="plain-text tables even if rich is installed")
    parser.add_argument("--feature-rows", type=int, help="features suite: feature rows (default 1,000,000; "
                        "--quick 100,000)")
    parser.add_argument("--label-rows", type=int, help="features suite: label rows (default 100,000; --quick 10,000)")
    args = parser.parse_args(argv)

    params = {"feature_rows": args.feature_rows, "label_rows": args.label_rows}
    ctx = Context(quick=args.quick, keep=args.keep, tmp_base=args.tmpdir, peers_python=PEERS_PYTHON, params=params)
    if args.tmpdir:
        args.tmpdir.mkdir(parents=True, exist_ok=True)
    if not args.no_setup:
        ensure_peers(ctx)
    if not ctx.peers_python.exists():
        raise SystemExit(f"{ctx.peers_python} not found: run benchmarks/setup_peers.sh")

    console = Console(plain=args.plain)
    env = environment_info()
    ctx.log(f"environment: Python {env['python']}, {env['cpus']} CPUs, SQLite {env['sqlite']}, {env['platform']}")
    results: dict[str, Any] = {}
    for name in args.only or list(SUITES):
        suite = importlib.import_module(SUITES[name])
        ctx.log(f"== {suite.TITLE}{' [quick]' if args.quick else ''}")
        t0 = time.perf_counter()
        result = suite.run(ctx)
        result["environment"] = env
        result["elapsed_seconds"] = time.perf_counter() - t0
        results[name] = result
        out = args.results_dir / f"{name}.json"
        write_json(out, result)
        print()
        suite.render(result, console)
        console.note(f"Results: {out} (suite took {result['elapsed_seconds']:.0f} s)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
