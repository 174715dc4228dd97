"""The README's tour runs as written, and every CLI command is documented."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path


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


def test_pipelines_doc_example_runs(workspace: Path) -> None:
    import numpy as np
    import pandas as pd

    import shipyard

    rng = np.random.default_rng(0)
    frame = pd.DataFrame({"income": rng.normal(50, 20, 400), "age": rng.integers(18, 80, 400)})
    frame["default"] = (frame["income"] < 40).astype(int)
    shipyard.data.add("credit", frame)
    text = (ROOT / "docs" / "pipelines.md").read_text()
    [example] = _blocks(text, "python")
    script = workspace / "pipeline_example.py"
    script.write_text(example.replace('{"c": 0.5}', '{"c": 0.5, "n": 300}'))
    ran = subprocess.run([sys.executable, str(script)], cwd=workspace, capture_output=True, text=True, timeout=120)
    assert ran.returncode == 0, ran.stderr
    assert "'accuracy'" in ran.stdout and "train miss first run of this step" in ran.stdout


def test_architecture_examples_run(workspace: Path) -> None:
    text = (ROOT / "docs" / "architecture.md").read_text()
    blocks = _blocks(text, "python")
    assert len(blocks) == 2
    for block in blocks:
        script = workspace / "example.py"
        script.write_text(block)
        ran = subprocess.run([sys.executable, str(script)], cwd=workspace, capture_output=True, text=True, timeout=120)
        assert ran.returncode == 0, ran.stderr


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
