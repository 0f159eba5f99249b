"""The DVC wiring cannot drift from the code: every stage's deps are exactly the source files its
script runs, the modules import no cycle, and every output dvc.yaml declares is named in paths.py."""

from __future__ import annotations

import ast
import inspect
from pathlib import Path

import pytest
import yaml

from prunebench import code, paths

from helpers import ROOT

DVC = yaml.safe_load((ROOT / "dvc.yaml").read_text())["stages"]


def stage_body(stage: dict) -> dict:
    """A stage's definition (a foreach stage's template)."""
    return stage.get("do", stage)


def code_deps(stage: dict) -> set[Path]:
    """The source files a stage's deps cover (a folder covers every .py file below it)."""
    covered = set()
    for dep in stage["deps"]:
        path = ROOT / dep
        if dep.startswith(("src/", "stages/")):
            covered |= set(path.rglob("*.py")) if path.is_dir() else {path}
    return covered


@pytest.mark.parametrize("name", list(DVC))
def test_a_stage_depends_on_exactly_the_code_it_runs(name):
    stage = stage_body(DVC[name])
    script = ROOT / stage["cmd"].split()[1]
    runs = set(code.closure(script))
    declared = code_deps(stage)
    missing = sorted(p.relative_to(ROOT).as_posix() for p in runs - declared)
    assert not missing, f"{name}: dvc.yaml misses deps on {missing}"
    assert not declared - runs, f"{name}: dvc.yaml deps on code it never imports: " \
                                f"{sorted(p.relative_to(ROOT) for p in declared - runs)}"


def test_the_closure_follows_imports_inside_functions_and_packages(tmp_path):
    script = tmp_path / "stage.py"
    script.write_text("def run():\n    from prunebench.methods.lamp import Lamp\n")
    files = {p.relative_to(ROOT).as_posix() for p in code.closure(script) if p != script}
    # the package __init__ files run too, and methods/__init__ imports every method
    assert {"src/prunebench/__init__.py", "src/prunebench/methods/__init__.py", "src/prunebench/methods/lamp.py",
            "src/prunebench/methods/taylor.py", "src/prunebench/criteria.py"} <= files
    assert "src/prunebench/report.py" not in files
    typing_only = tmp_path / "typing_only.py"
    typing_only.write_text("from typing import TYPE_CHECKING\nif TYPE_CHECKING:\n    from prunebench import report\n")
    assert code.closure(typing_only) == [typing_only.resolve()]  # never runs


def test_the_modules_import_no_cycle():
    graph = code.graph()
    done: set[str] = set()

    def visit(module: str, path: list[str]) -> None:
        for imported in sorted(graph.get(module, ())):
            assert imported not in path, "import cycle: " + " → ".join(path[path.index(imported):] + [imported])
            if imported not in done:
                visit(imported, path + [imported])
        done.add(module)

    for module in graph:
        visit(module, [module])
    assert "prunebench.sensitivity" not in graph["prunebench.methods.sensitivity_guided"]


def test_no_test_module_imports_another():
    for path in (ROOT / "tests").glob("*.py"):
        for node in ast.walk(ast.parse(path.read_text())):
            names = [a.name for a in node.names] if isinstance(node, ast.Import) else \
                [node.module] if isinstance(node, ast.ImportFrom) and node.module else []
            assert not any(n.split(".")[0].startswith(("test_", "conftest")) for n in names), path.name


def named_paths() -> set[str]:
    """Every path paths.py names: its constants, and its functions of one method ("${key}")."""
    named = set()
    for value in vars(paths).values():
        if isinstance(value, Path):
            named.add(value.as_posix())
        elif inspect.isfunction(value) and list(inspect.signature(value).parameters) == ["method"]:
            named.add(value("${key}").as_posix())
    return named


def test_every_output_dvc_declares_is_named_in_paths():
    declared = {out for stage in DVC.values() for kind in ("outs", "metrics")
                for out in stage_body(stage).get(kind, [])}
    assert declared and not declared - named_paths(), sorted(declared - named_paths())
