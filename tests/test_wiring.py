"""The DVC wiring cannot drift from the code: every stage depends on its code manifest, which is
exactly the source files its script runs with their hashes; the modules import no cycle; and every
output dvc.yaml declares is named in paths.py."""

from __future__ import annotations

import ast
import hashlib
import inspect
import re
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from prunebench import paths, sources

from helpers import ROOT

DVC = yaml.safe_load((ROOT / "dvc.yaml").read_text())["stages"]
STAGES = [name for name in DVC if name != "check"]


@pytest.mark.parametrize("name", STAGES)
def test_a_stage_depends_on_its_code_manifest_and_on_no_code_file_directly(name):
    stage = DVC[name]
    assert stage["cmd"].split()[1] == f"stages/{name}.py"
    assert paths.code_manifest(name).as_posix() in stage["deps"]
    assert not [dep for dep in stage["deps"] if dep.startswith(("src/", "stages/"))]


def test_the_check_stage_writes_every_stage_manifest_and_reruns_on_any_code_change():
    check = DVC["check"]
    assert {"src/prunebench", "stages"} <= set(check["deps"])
    assert set(check["outs"]) == {paths.PARAMS_OK.as_posix(), paths.MODEL_CHECK.as_posix()} | {
        paths.code_manifest(s).as_posix() for s in STAGES
    }
    assert {p.stem for p in (ROOT / "stages").glob("*.py")} == {"check", *STAGES}


@pytest.mark.parametrize("name", STAGES)
def test_a_manifest_holds_exactly_the_files_the_stage_runs_with_their_hashes(name):
    script = ROOT / "stages" / f"{name}.py"
    manifest = sources.manifest(script)
    files = {ROOT / ("src/" + path if path.startswith("prunebench/") else path) for path in manifest}
    assert files == set(sources.closure(script))
    assert all(
        manifest[path]
        == hashlib.sha256((ROOT / ("src/" + path if path.startswith("prunebench/") else path)).read_bytes()).hexdigest()
        for path in manifest
    )


def test_the_check_stage_writes_the_manifests(tmp_path):
    (tmp_path / "params.yaml").write_text((ROOT / "params.yaml").read_text())
    done = subprocess.run([sys.executable, str(ROOT / "stages/check.py")], cwd=tmp_path, capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    for name in STAGES:
        assert yaml.safe_load((tmp_path / paths.code_manifest(name)).read_text()) == sources.manifest(
            ROOT / "stages" / f"{name}.py"
        )
    assert "prunebench/pruning/methods/taylor.py" in sources.manifest(ROOT / "stages/prune.py")
    # editing a method spares finetune
    assert "prunebench/pruning/methods/taylor.py" not in sources.manifest(ROOT / "stages/finetune.py")
    assert "prunebench/report/figures.py" not in sources.manifest(ROOT / "stages/prune.py")


def test_the_closure_follows_imports_inside_functions_and_packages(tmp_path):
    script = tmp_path / "stage.py"
    script.write_text("def run():\n    from prunebench.pruning.methods.lamp import Lamp\n")
    files = {p.relative_to(ROOT).as_posix() for p in sources.closure(script) if p != script}
    # the package __init__ files run too, and methods/__init__ imports every method
    assert {
        "src/prunebench/__init__.py",
        "src/prunebench/pruning/__init__.py",
        "src/prunebench/pruning/methods/__init__.py",
        "src/prunebench/pruning/methods/lamp.py",
        "src/prunebench/pruning/methods/taylor.py",
        "src/prunebench/pruning/criteria.py",
    } <= files
    assert "src/prunebench/report/markdown.py" not in files
    typing_only = tmp_path / "typing_only.py"
    typing_only.write_text(
        "from typing import TYPE_CHECKING\nif TYPE_CHECKING:\n    from prunebench.report import stats\n"
    )
    assert sources.closure(typing_only) == [typing_only.resolve()]  # never runs


def test_the_modules_import_no_cycle():
    graph = sources.graph()
    done: set[str] = set()

    def visit(module: str, path: list[str]) -> None:
        for imported in sorted(graph.get(module, ())):
            assert imported not in path, "import cycle: " + " → ".join(path[path.index(imported) :] + [imported])
            if imported not in done:
                visit(imported, path + [imported])
        done.add(module)

    for module in graph:
        visit(module, [module])
    assert "prunebench.stages.sensitivity" not in graph["prunebench.pruning.methods.sensitivity_guided"]


def test_no_test_module_imports_another():
    for path in (ROOT / "tests").glob("*.py"):
        for node in ast.walk(ast.parse(path.read_text())):
            names = (
                [a.name for a in node.names]
                if isinstance(node, ast.Import)
                else [node.module]
                if isinstance(node, ast.ImportFrom) and node.module
                else []
            )
            assert not any(n.split(".")[0].startswith(("test_", "conftest")) for n in names), path.name


def named_paths() -> set[str]:
    """Every path paths.py names: its constants, its functions of one method ("${item.method}"), and the
    stages' code manifests."""
    named = {paths.code_manifest(stage).as_posix() for stage in STAGES}
    for value in vars(paths).values():
        if isinstance(value, Path):
            named.add(value.as_posix())
        elif inspect.isfunction(value) and list(inspect.signature(value).parameters) == ["method"]:
            named.add(value("${item.method}").as_posix())
    return named


def test_every_output_dvc_declares_is_named_in_paths():
    declared = {out for stage in DVC.values() for kind in ("outs", "metrics") for out in stage.get(kind, [])}
    assert declared and not declared - named_paths(), sorted(declared - named_paths())


def test_no_plot_title_breaks_the_page_dvc_writes():
    """DVC names each plot's div after its title and calls vegaEmbed('#<id>'): a quote in a title
    ends that string, and the plot stays blank (found with benchmarks/offline_plots.py)."""
    titles = [
        next(iter(entry)) if isinstance(entry, dict) else entry
        for entry in yaml.safe_load((ROOT / "dvc.yaml").read_text())["plots"]
    ]
    assert titles and not [t for t in titles if "'" in t or '"' in t or "\\" in t]


def test_the_compare_stage_depends_on_each_template_it_fills_and_the_plots_use_the_filled_ones():
    from prunebench.report.palette import PLACEHOLDERS

    coloured = {
        t.name
        for t in (ROOT / paths.PLOT_TEMPLATES).glob("*.json")
        if any(placeholder in t.read_text() for placeholder in PLACEHOLDERS)
    }
    deps = {Path(d).name for d in DVC["compare"]["deps"] if Path(d).parent == paths.PLOT_TEMPLATES}
    assert coloured and deps == coloured
    used = {
        body["template"]
        for entry in yaml.safe_load((ROOT / "dvc.yaml").read_text())["plots"]
        if isinstance(entry, dict)
        for body in entry.values()
    }
    assert {t for t in used if "/" in t} == {str(paths.COLOURED_TEMPLATES / name) for name in coloured}
    assert all((ROOT / paths.PLOT_TEMPLATES / f"{t}.json").exists() for t in used if "/" not in t)


def test_dvc_parses_its_yaml_with_the_c_parser():
    """DVC reads params.yaml and dvc.lock several times per stage; ruamel.yaml's pure-Python parser
    made `dvc exp save` take twice as long (pyproject.toml pins ruamel.yaml.clib)."""
    from dvc.utils.serialize._yaml import parse_yaml
    from ruamel.yaml import YAML
    from ruamel.yaml.main import CParser

    assert CParser is not None and YAML(typ="safe").Parser is CParser
    assert parse_yaml("a: [1, 2]", "x.yaml") == {"a": [1, 2]}


def test_the_layout_picture_names_every_module():
    """docs/architecture.md's layout picture is how a newcomer finds a module: a module it leaves
    out is one nobody will find (the picture lists each file by name under its package)."""
    page = (ROOT / "docs/architecture.md").read_text()
    picture = page[page.index("## Layout") : page.index("## The layers")]
    source = ROOT / "src" / "prunebench"
    missing = [
        path.relative_to(source).as_posix()
        for path in sorted(source.rglob("*.py"))
        if path.name != "__init__.py" and path.name not in picture
    ]
    packages = [
        path.relative_to(source).as_posix() + "/" for path in source.iterdir() if (path / "__init__.py").exists()
    ]
    assert not missing and all(package.split("/")[-2] + "/" in picture for package in packages), missing


# docs/architecture.md, "The layers": each may import only from itself and the layers before it
LAYERS = ("plumbing", "execution", "training", "report", "pruning", "deploy", "schema", "stages", "cli")


def layer_of(module: str) -> int:
    parts = module.split(".")
    name = parts[1] if len(parts) > 1 else "plumbing"
    return LAYERS.index(name) if name in LAYERS else 0


def upward_imports(graph: dict[str, frozenset[str]]) -> list[str]:
    return [
        f"{module} → {imported}"
        for module, imports in sorted(graph.items())
        for imported in sorted(imports)
        if layer_of(imported) > layer_of(module)
    ]


def test_the_imports_follow_the_layers_and_an_upward_import_fails_this_test():
    graph = sources.graph()
    assert {m.split(".")[1] for m in graph if m.count(".") >= 2} <= set(LAYERS)  # every package has a layer
    assert upward_imports(graph) == []
    upward = dict(graph) | {"prunebench.training.loops": graph["prunebench.training.loops"] | {"prunebench.pruning"}}
    assert upward_imports(upward) == ["prunebench.training.loops → prunebench.pruning"]
    page = (ROOT / "docs/architecture.md").read_text()
    assert " ← ".join(LAYERS[1:]) in page


def test_the_commit_message_hook_wants_a_short_subject_and_a_blank_line():
    import importlib.util

    spec = importlib.util.spec_from_file_location("commit_msg", ROOT / ".ci/commit_msg.py")
    hook = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(hook)
    assert hook.problem("Heads pruned by hand\n\nThe detail, as long as it needs.\n") is None
    assert "73 characters" in hook.problem("x" * 73)
    assert "second line" in hook.problem("A subject\nno blank line")
    assert "empty" in hook.problem("# only a comment\n")
    config = yaml.safe_load((ROOT / ".pre-commit-config.yaml").read_text())
    hooks = {h["id"]: h for repo in config["repos"] for h in repo["hooks"]}
    assert hooks["commit-message"]["stages"] == ["commit-msg"] and "commit-msg" in config["default_install_hook_types"]
    schema = re.compile(hooks["params-schema"]["files"])
    for watched in ("training/models/vit.py", "training/data.py", "pruning/methods/taylor.py", "registry.py"):
        assert schema.match(f"src/prunebench/{watched}"), watched
