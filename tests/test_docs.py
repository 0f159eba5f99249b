"""The documentation is built and its tutorials run: `mkdocs build --strict` (every link resolves,
the generated pages build), and docs/contributing.md's "add a method" and "add a model family"
executed exactly as written, in a copy of the repository."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from helpers import ROOT

BLOCK = re.compile(r'^```(\w+)(?: title="([^"]+)")?\n(.*?)^```$', re.M | re.S)


def tutorial(section: str) -> list[tuple[str, str | None, str]]:
    """The fenced blocks of one `## ` section of docs/contributing.md: (language, title, body)."""
    page = (ROOT / "docs/contributing.md").read_text()
    body = page.split(f"## {section}\n", 1)[1].split("\n## ", 1)[0]
    return BLOCK.findall(body)


def merge(into: dict, changes: dict) -> dict:
    for key, value in changes.items():
        into[key] = merge(into.get(key) or {}, value) if isinstance(value, dict) and key != "methods" else value
        if key == "methods":
            into[key] = (into.get(key) or {}) | value
    return into


@pytest.fixture
def checkout(tmp_path) -> Path:
    """A copy of what git would commit."""
    files = subprocess.run(
        ["git", "ls-files", "--cached", "--others", "--exclude-standard"], cwd=ROOT, capture_output=True, text=True
    ).stdout.split()
    for name in files:
        if (ROOT / name).is_file():
            (tmp_path / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(ROOT / name, tmp_path / name)
    return tmp_path


def follow(repo: Path, section: str) -> list[str]:
    """Do what a tutorial says, in order; the output of each command."""
    outputs = []
    env = os.environ | {"PYTHONPATH": str(repo / "src"), "PATH": f"{Path(sys.executable).parent}:{os.environ['PATH']}"}
    for language, title, body in tutorial(section):
        if title == "params.yaml":
            params = merge(yaml.safe_load((repo / title).read_text()), yaml.safe_load(body))
            (repo / title).write_text(yaml.safe_dump(params, sort_keys=False))
        elif title:
            (repo / title).write_text(body)
        elif language == "sh":
            done = subprocess.run(body, shell=True, cwd=repo, env=env, capture_output=True, text=True)
            assert done.returncode == 0, done.stderr
            outputs.append(done.stdout)
    return outputs


def test_the_add_a_method_tutorial_works_as_written(checkout):
    (output,) = follow(checkout, "Add a method")
    assert "channel groups: " in output and "snip" not in output  # checked, and not refused
    assert (checkout / "src/prunebench/pruning/methods/snip.py").exists()
    check = [sys.executable, "-c", "from prunebench.pruning.methods import METHODS; print(METHODS['snip'].unit)"]
    env = os.environ | {"PYTHONPATH": str(checkout / "src")}
    assert subprocess.run(check, cwd=checkout, env=env, capture_output=True, text=True).stdout == "weight\n"
    manifest = subprocess.run(
        [sys.executable, "-c", "from prunebench import sources; print(sorted(sources.manifest('stages/prune.py')))"],
        cwd=checkout,
        env=env,
        capture_output=True,
        text=True,
    ).stdout
    assert "prunebench/pruning/methods/snip.py" in manifest  # one file: the prune stage runs it


def test_the_add_a_model_tutorial_works_as_written(checkout):
    (output,) = follow(checkout, "Add a model family")
    assert output.startswith("channel groups: ") and "refused: intra_kernel" not in output


def test_the_documentation_builds_strictly(tmp_path):
    done = subprocess.run(
        [str(Path(sys.executable).parent / "mkdocs"), "build", "--strict", "-d", str(tmp_path / "site")],
        cwd=ROOT,
        capture_output=True,
        text=True,
        env=os.environ | {"NO_MKDOCS_2_WARNING": "1"},
    )
    assert done.returncode == 0, done.stderr[-3000:]
    for page in ("methods/taylor/index.html", "params/index.html", "api/pruning/index.html"):
        assert (tmp_path / "site" / page).stat().st_size > 5000
    assert "gpus_per_job" in (tmp_path / "site/params/index.html").read_text()
