"""Every example in the README and docs/ runs as written, and every CLI command is documented.

Each page of docs/ runs as one session in a fresh folder: its ```python blocks, in order, as one script
(later blocks use what earlier ones defined) and each ```bash block with `bash -euo pipefail`, every
command having to succeed. A page's setup (SETUPS below) makes what its prose says is there: the files
it names, the runs whose ids it shows. Blocks of other languages (yaml, toml, text) are configuration or
output, not run. Two markers, HTML comments on the line before a block, change how it is used:
`<!-- file: PATH -->` saves the block to PATH (relative to the page's folder) for later blocks to use,
and `<!-- not run: REASON -->` leaves it out, which is kept for what cannot run on a test machine."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import textwrap
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest


ROOT = Path(__file__).resolve().parent.parent
README = (ROOT / "README.md").read_text()


def _blocks(text: str, language: str) -> list[str]:
    return re.findall(rf"```{language}\n(.*?)```", text, flags=re.S)


def _section(text: str, heading: str) -> str:
    return text.split(f"\n{heading}\n", 1)[1].split("\n## ", 1)[0]


def _tour() -> str:
    return _section(README, "## A tour")


def _shell(command: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}"}
    return subprocess.run(command, shell=True, cwd=cwd, env=env, capture_output=True, text=True, timeout=120)


def test_readme_tour_runs(tmp_path: Path) -> None:
    tour = _tour()
    [init, data, *shell_blocks] = _blocks(tour, "bash")
    [python_block] = _blocks(tour, "python")
    assert _shell(init.strip(), tmp_path).returncode == 0
    for command in data.strip().splitlines():
        result = _shell(command, tmp_path)
        assert result.returncode == 0, f"{command}\n{result.stderr}"
    script = tmp_path / "tour.py"
    script.write_text(python_block)
    ran = subprocess.run([sys.executable, str(script)], cwd=tmp_path, capture_output=True, text=True, timeout=120)
    assert ran.returncode == 0, ran.stderr
    assert ran.stdout.startswith("rf-depth-6 0.86")
    assert ran.stdout.strip().splitlines()[-1].startswith("[")  # the champion candidate predicted
    commands = [line for block in shell_blocks for line in block.splitlines() if line.strip()]
    assert len(commands) >= 4
    for command in commands:
        result = _shell(command, tmp_path)
        assert result.returncode == 0, f"{command}\n{result.stderr}"
    listing = _shell(
        'shipyard runs list --filter "metrics.auc > 0.85" --order-by "metrics.auc DESC" --json', tmp_path
    )
    assert '"rf-depth-6"' in listing.stdout and '"rf-depth-3"' not in listing.stdout
    assert (tmp_path / "cards" / "wine" / "2" / "card.html").is_file()


def test_documented_config_example_runs(workspace: Path) -> None:
    text = (ROOT / "docs" / "workspace.md").read_text()
    [command] = [line for block in _blocks(text, "bash") for line in block.splitlines() if "config show" in line]
    result = _shell(command + " --json", workspace)
    assert result.returncode == 0, result.stderr
    assert '"flush_max_points": 100' in result.stdout and '"busy_timeout_ms": 5000' in result.stdout


def _commands() -> list[str]:
    import typer

    from shipyard.cli.main import app

    found: list[str] = []

    def walk(group: object, prefix: str) -> None:
        for name, command in group.commands.items():  # type: ignore[attr-defined]
            if hasattr(command, "commands"):
                walk(command, f"{prefix}{name} ")
            else:
                found.append(prefix + name)

    walk(typer.main.get_command(app), "")
    return sorted(found)


def test_every_command_is_in_the_readme_and_the_docs() -> None:
    docs = "".join(p.read_text() for p in (ROOT / "docs").glob("*.md"))
    commands = _commands()
    assert "runs list" in commands and "data validate" in commands and "lineage export" in commands
    assert [c for c in commands if f"shipyard {c}" not in docs] == []
    assert [c for c in commands if f"shipyard {c}" not in README] == []


def test_models_doc_flavor_example_runs_and_prints_what_it_shows(tmp_path: Path) -> None:
    section = _section((ROOT / "docs" / "models.md").read_text(), "## Writing a flavor")
    [example] = _blocks(section, "python")
    [shown] = _blocks(section, "text")
    script = tmp_path / "flavor_example.py"
    script.write_text(example)
    ran = subprocess.run([sys.executable, str(script)], cwd=tmp_path, capture_output=True, text=True, timeout=120)
    assert ran.returncode == 0, ran.stderr
    printed = ran.stdout.splitlines()
    assert printed[0] == shown.splitlines()[0] == "The flavor 'scorecard': 15 checks passed, 2 skipped"
    assert [line for line in shown.splitlines() if line not in printed] == []


def test_every_flavor_check_is_documented() -> None:
    from shipyard.testing import flavor_checks

    section = _section((ROOT / "docs" / "models.md").read_text(), "## Writing a flavor")
    rows = [line.split("|")[1].strip() for line in section.splitlines() if line.startswith("| `")]
    assert rows == [f"`{name}`" for name in flavor_checks()]


# ---- every example of every page ------------------------------------------------------------------

RUN_LANGUAGES = ("python", "bash")
FENCE = re.compile(r"^```(\w*)\n(.*?)^```$", re.S | re.M)
MARKER = re.compile(r"^<!-- (not run|file): (.+?) -->$")
#: Blocks left out, with the reason next to each: keep this short.
MOST_NOT_RUN = 3


@dataclass(frozen=True)
class Example:
    doc: str
    line: int
    language: str
    text: str
    not_run: str | None = None  # the reason given
    file: str | None = None  # where the block is saved instead of run

    @property
    def where(self) -> str:
        return f"{self.doc}:{self.line}"

    @property
    def runs(self) -> bool:
        return self.language in RUN_LANGUAGES and self.not_run is None


def examples(path: Path) -> list[Example]:
    """The fenced blocks of a page, with the marker on the line before each, if any."""
    text = path.read_text()
    found = []
    for match in FENCE.finditer(text):
        before = text[: match.start()].rstrip("\n").rsplit("\n", 1)[-1]
        marker = MARKER.match(before)
        kind, value = marker.groups() if marker else (None, None)
        found.append(Example(str(path.relative_to(ROOT)), text.count("\n", 0, match.start()) + 1, match.group(1),
                             match.group(2), value if kind == "not run" else None, value if kind == "file" else None))
    return found


PRELUDE = """\
import subprocess as _subprocess
import sys as _sys
from pathlib import Path as _Path


def _bash(where, text):
    print(f"--- {where}", flush=True)
    done = _subprocess.run(["bash", "-euxo", "pipefail", "-c", text])
    if done.returncode != 0:
        _sys.exit(f"{where}: a command of this block exited {done.returncode}")


def _save(path, text):
    _Path(path).parent.mkdir(parents=True, exist_ok=True)
    _Path(path).write_text(text)
"""


def page_script(blocks: list[Example]) -> str:
    """One script running a page's examples in order (python inline, bash through `_bash`)."""
    parts = [PRELUDE]
    for block in blocks:
        if block.file:
            parts.append(f"_save({block.file!r}, {block.text!r})")
        elif block.runs and block.language == "python":
            parts.append(f"print({'--- ' + block.where!r}, flush=True)\n{block.text}")
        elif block.runs:
            parts.append(f"_bash({block.where!r}, {block.text!r})")
    return "\n\n".join(parts) + "\n"


def run_page(doc: str, folder: Path, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    script = folder.parent / f"{Path(doc).stem}-examples.py"
    script.write_text(page_script(examples(ROOT / doc)))
    environment = {"EDITOR": "true", **os.environ, **(env or {}),  # a setup may choose the editor
                   "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}"}
    return subprocess.run([sys.executable, str(script)], cwd=folder, env=environment, capture_output=True,
                          text=True, timeout=600)


# -- what each page's prose says is there before its first example --------------------------------------

#: Run ids the pages show (a run id or its prefix); the setups make runs with these ids.
RUN_IDS = ("3f2a9c0e4b7d4c21a9e8f0d6c5b4a392", "8be01d7f2c9a4e3b8d6f1a0c9e7b5d24")


@pytest.fixture
def fixed_run_ids(monkeypatch: pytest.MonkeyPatch) -> Callable[[], None]:
    """Calling it makes the next runs take the ids of RUN_IDS, in order."""
    from shipyard.tracking import runs

    def use() -> None:
        ids = iter(RUN_IDS)
        monkeypatch.setattr(runs, "new_run_id", lambda: next(ids))

    return use


def _workspace(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    import shipyard

    root = shipyard.init_workspace(tmp_path / "ws")
    monkeypatch.chdir(root)
    return root


def _credit_files(root: Path) -> None:
    from shipyard.synthetic import credit

    (root / "data" / "images").mkdir(parents=True)
    credit(1000, seed=0).to_csv(root / "data" / "credit.csv", index=False)
    credit(1000, seed=1, start="2026-04-01", days=30).to_csv(root / "data" / "credit-april.csv", index=False)
    for i in range(3):
        (root / "data" / "images" / f"scan-{i}.png").write_bytes(bytes([i]) * 100)
    (root / "model.bin").write_bytes(b"\x00weights" * 10)
    credit(1000, seed=0).dropna().to_parquet(root / "clean.parquet")


#: The edit the data page asks for (`$EDITOR schemas/credit.yaml`): a loan may be larger than any seen in
#: March, so its maximum goes (application ids, the key, were given no range).
RELAX_CONTRACT = """\
import sys

import yaml

path = sys.argv[1]
contract = yaml.safe_load(open(path))
assert "max" not in contract["columns"]["application_id"], "the key's columns get no range"
contract["columns"]["loan_amount"].pop("max")
yaml.safe_dump(contract, open(path, "w"), sort_keys=False)
"""


def setup_data(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, fixed_run_ids: Callable[[], None]) -> Path:
    import shipyard

    root = _workspace(tmp_path, monkeypatch)
    _credit_files(root)
    (tmp_path / "relax_contract.py").write_text(RELAX_CONTRACT)
    monkeypatch.setenv("EDITOR", f"{sys.executable} {tmp_path / 'relax_contract.py'}")
    fixed_run_ids()
    with shipyard.start_run("evaluate", experiment="credit"):  # the run the page names by its prefix
        pass
    return root


def setup_tracking(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, fixed_run_ids: Callable[[], None]) -> Path:
    import shipyard

    root = _workspace(tmp_path, monkeypatch)
    (root / "report.html").write_text("<h1>Report</h1>")
    fixed_run_ids()
    for depth in (4, 8):  # the two runs the page shows by their ids' prefixes
        with shipyard.start_run(f"rf-depth-{depth}", experiment="credit") as run:
            run.log_params({"model": "rf", "max_depth": depth})
            for step in range(5):
                run.log_metric("loss", 1.0 / (step + depth), step=step)
            run.log_metrics({"auc": 0.85 + depth / 100})
            run.log_artifact(b'{"threshold": 0.5}', name="config.json")
    return root


def setup_audit(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, fixed_run_ids: Callable[[], None]) -> Path:
    import shipyard

    root = _workspace(tmp_path, monkeypatch)
    monkeypatch.setenv("SHIPYARD_USER", "ana")
    fixed_run_ids()
    with shipyard.start_run("baseline", experiment="credit") as run:
        run.log_metric("auc", 0.9)
    return root


def setup_models(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, fixed_run_ids: Callable[[], None]) -> Path:
    """A registry with credit/1 to credit/3 (credit/3 the champion), the data they were trained on, and
    the gates and governance the page declares in shipyard.yaml."""
    from sklearn.linear_model import LogisticRegression

    import shipyard
    from shipyard.synthetic import credit

    root = _workspace(tmp_path, monkeypatch)
    train, holdout = credit(3000, seed=0), credit(1500, seed=7)
    shipyard.data.add("credit-train", train, key=["application_id"])
    shipyard.data.add("credit-holdout", holdout, key=["application_id"])
    for columns in (["income"], ["income", "age"], ["income", "age", "debt_ratio"]):
        model = LogisticRegression(max_iter=1000).fit(train[columns], train["default"])
        shipyard.models.register("credit", model, input_example=train[columns].head())
    from shipyard.context import open_context
    from shipyard.gates.promotion import promote

    promote(open_context(), "credit/3", "champion", reason="the best of the first three", no_gates=True)
    text = (ROOT / "docs" / "models.md").read_text()
    [gates] = _blocks(_section(text, "## Gates"), "yaml")
    [governance] = [b for b in _blocks(_section(text, "## Promotion and reviews"), "yaml") if "governance:" in b]
    # The page's budgets are examples; the test leaves out the timing (tests/gates measures it).
    gates = re.sub(r"\n    infrastructure:\n(      .*\n)+", "\n", gates)
    (root / "shipyard.yaml").write_text((root / "shipyard.yaml").read_text() + gates + governance)
    return root


def setup_deployments(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, fixed_run_ids: Callable[[], None]) -> Path:
    """credit/1 to credit/4 with the page's gates run (credit/4 fails them), credit/1 the champion, and the
    page's deploy section in shipyard.yaml."""
    from sklearn.linear_model import LogisticRegression

    import shipyard
    from shipyard.context import open_context
    from shipyard.gates.gating import run_gates
    from shipyard.gates.promotion import promote
    from shipyard.synthetic import credit

    root = _workspace(tmp_path, monkeypatch)
    train = credit(3000, seed=0)
    shipyard.data.add("credit-holdout", credit(1500, seed=7), key=["application_id"])
    text = (ROOT / "docs" / "deployments.md").read_text()
    declared = [b for b in _blocks(text, "yaml") if b.startswith(("gates:", "deploy:"))]
    (root / "shipyard.yaml").write_text((root / "shipyard.yaml").read_text() + "".join(declared))
    columns = ["income", "age", "debt_ratio"]
    for target in ("default", "default", "default", "shuffled"):
        labels = train["default"].sample(frac=1, random_state=0).to_numpy() if target == "shuffled" else train[target]
        model = LogisticRegression(max_iter=1000).fit(train[columns], labels)
        shipyard.models.register("credit", model, input_example=train[columns].head())
    ctx = open_context()
    for version in range(1, 5):
        run_gates(ctx, f"credit/{version}")
    promote(ctx, "credit/1", "champion")
    return root


def setup_empty(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, fixed_run_ids: Callable[[], None]) -> Path:
    folder = tmp_path / "project"
    folder.mkdir()
    return folder


Setup = Callable[[Path, pytest.MonkeyPatch, Callable[[], None]], Path]
SETUPS: dict[str, Setup] = {
    "docs/audit.md": setup_audit,
    "docs/data.md": setup_data,
    "docs/deployments.md": setup_deployments,
    "docs/models.md": setup_models,
    "docs/pipelines.md": setup_empty,  # the page starts with `shipyard init`
    "docs/tracking.md": setup_tracking,
}


class _Collector:
    """An OpenLineage HTTP endpoint on loopback, for the page that exports to one."""

    def __init__(self) -> None:
        self.events: list[Any] = []
        events = self.events

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:  # noqa: N802 - the name http.server calls
                events.append(json.loads(self.rfile.read(int(self.headers["Content-Length"]))))
                self.send_response(201)
                self.end_headers()

            def log_message(self, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_port}"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def collector() -> Iterator[_Collector]:
    server = _Collector()
    yield server
    server.close()


PAGES = sorted(str(p.relative_to(ROOT)) for p in (ROOT / "docs").glob("*.md")
               if any(e.runs or e.file for e in examples(p)))


@pytest.mark.parametrize("doc", PAGES)
def test_every_example_of_the_page_runs(doc: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                        fixed_run_ids: Callable[[], None], collector: _Collector) -> None:
    from shipyard.context import close_all

    folder = SETUPS.get(doc, lambda t, m, f: _workspace(t, m))(tmp_path, monkeypatch, fixed_run_ids)
    close_all()
    from tests.services import free_port

    ran = run_page(doc, folder, {"OPENLINEAGE_URL": collector.url, "PORT": str(free_port())})
    assert ran.returncode == 0, f"{doc}: {ran.stderr[-4000:]}\n--- stdout\n{ran.stdout[-4000:]}"
    assert "Traceback" not in ran.stdout + ran.stderr
    CHECKS.get(doc, lambda folder, out, collector: None)(folder, ran.stdout, collector)


# -- what the examples say they do, checked after a page ran ------------------------------------------

def check_pipelines(folder: Path, out: str, collector: _Collector) -> None:
    import shipyard

    assert "'accuracy'" in out and "train miss first run of this step" in out  # `python pipelines/training.py`
    ran = shipyard.search_runs("tags.shipyard.kind = 'pipeline' and name = 'training'", workspace=folder)
    # the script, `pipeline run` and `pipeline run --until`: once each, nothing on import
    assert len(ran) == 3
    assert (folder / "pipeline.yaml").is_file()


def check_data(folder: Path, out: str, collector: _Collector) -> None:
    events = [json.loads(line) for line in (folder / "lineage.jsonl").read_text().splitlines()]
    assert any(e["job"]["name"] == "default.score" and e["inputs"] for e in events)
    assert collector.events == events  # `--url` sent what `-o` wrote
    assert (folder / "restored" / "credit.csv").is_file() and (folder / "report.html").is_file()


def check_tracking(folder: Path, out: str, collector: _Collector) -> None:
    assert json.loads((folder / "out" / "config.json").read_text()) == {"threshold": 0.5}


def check_models(folder: Path, out: str, collector: _Collector) -> None:
    import shipyard

    assert shipyard.models.get("models:/credit@champion", workspace=folder).version == 4
    assert shipyard.models.get("credit/2", workspace=folder).status == "archived"
    assert (folder / "cards" / "credit" / "4" / "card.html").is_file() and (folder / "readiness.html").is_file()


def check_deployments(folder: Path, out: str, collector: _Collector) -> None:
    import shipyard

    assert "refused (exit 3)" in out  # the canary of a version that failed its gates
    revisions = shipyard.deployments.history("credit-api", workspace=folder)
    assert [r.revision for r in revisions][:3] == [15, 14, 13]
    timed_out = [r for r in revisions if r.analysis and r.analysis.get("decision") == "rollback"]
    assert "exit code 3" in out and len(timed_out) == 1  # the automated canary with no traffic: rolled back
    assert timed_out[0].analysis["reasons"][0].startswith("no decision within 2 s")
    assert revisions[0].analysis is not None and revisions[0].analysis["decision"] == "advance"
    assert [(r.role, r.version_id, r.weight) for r in revisions[0].routes] == [
        ("primary", "credit/3", 50), ("canary", "credit/2", 50)]
    assert revisions[-1].routes[0].version_id == "credit/1"  # credit@champion, resolved when created


CHECKS: dict[str, Callable[[Path, str, _Collector], None]] = {
    "docs/data.md": check_data,
    "docs/deployments.md": check_deployments,
    "docs/models.md": check_models,
    "docs/pipelines.md": check_pipelines,
    "docs/tracking.md": check_tracking,
}


def test_every_example_is_run_or_says_why_not() -> None:
    pages = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
    found = [e for page in pages for e in examples(page)]
    assert len(found) > 40 and {e.language for e in found} >= {"python", "bash", "yaml", "text"}
    assert [e.where for e in found if e.language in RUN_LANGUAGES and not (e.runs or e.file or e.not_run)] == []
    left_out = [e for e in found if e.not_run]
    assert all(len(e.not_run or "") > 20 for e in left_out) and len(left_out) <= MOST_NOT_RUN
    # the README runs as its tour (test_readme_tour_runs); every other page as a whole (above)
    tour = _tour()
    assert [e.where for e in examples(ROOT / "README.md") if e.runs and e.text not in tour] == []
    assert PAGES == sorted(str(p.relative_to(ROOT)) for p in (ROOT / "docs").glob("*.md")
                           if any(e.runs for e in examples(p)))
    assert set(SETUPS) | set(CHECKS) <= set(PAGES)
