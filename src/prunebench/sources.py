"""Which source files a stage runs: its script and the prunebench modules it imports, transitively.

One rule for what makes a result stale: the check stage writes each stage's manifest (every file
of that closure with the hash of its content, `manifest`), each stage depends on its manifest in
dvc.yaml, so DVC re-runs exactly the stages whose code changed; and the resume caches outside DVC
(checkpoints/) are fingerprinted with the same manifest. One dependency per stage instead of its
files keeps dvc.lock small, which DVC re-reads and rewrites after every stage.

Imports are read from the source (ast), at any depth (an import inside a function still runs);
imports under `if TYPE_CHECKING:` never run and are left out.
"""

from __future__ import annotations

import ast
import hashlib
import importlib.util
from functools import cache
from pathlib import Path
from typing import TYPE_CHECKING

from prunebench import repository

if TYPE_CHECKING:
    from prunebench.params import Model

PACKAGE = "prunebench"
SOURCE = Path(__file__).resolve().parent  # src/prunebench


def module_file(name: str) -> Path | None:
    """The file of a prunebench module (`prunebench.pruning.methods` → methods/__init__.py), if it exists."""
    if name != PACKAGE and not name.startswith(PACKAGE + "."):
        return None
    path = SOURCE.joinpath(*name.split(".")[1:])
    for candidate in (path / "__init__.py", path.with_suffix(".py")):
        if candidate.is_file():
            return candidate
    return None


def _runtime_nodes(tree: ast.AST):
    """Every node but those under `if TYPE_CHECKING:`."""
    todo = [tree]
    while todo:
        node = todo.pop()
        yield node
        for child in ast.iter_child_nodes(node):
            if isinstance(child, ast.If) and "TYPE_CHECKING" in ast.unparse(child.test):
                todo += child.orelse
                continue
            todo.append(child)


@cache
def imports(path: Path) -> frozenset[str]:
    """The prunebench modules a file names in its imports."""
    found: set[str] = set()
    for node in _runtime_nodes(ast.parse(path.read_text(), str(path))):
        if _imports_all(node) and path.name == "__init__.py":  # registry.import_all(__name__)
            package = _module_name(path)
            found |= {f"{package}.{sibling.stem}" for sibling in path.parent.glob("*.py") if sibling != path}
            continue
        if isinstance(node, ast.Import):
            names = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names = [node.module] + [f"{node.module}.{alias.name}" for alias in node.names]
        else:
            continue
        found |= {name for name in names if module_file(name) is not None}
    return frozenset(found)


def _imports_all(node: ast.AST) -> bool:
    """A call of `import_all` (`prunebench.registry`)."""
    return isinstance(node, ast.Call) and getattr(node.func, "id", getattr(node.func, "attr", None)) == "import_all"


def _module_name(path: Path) -> str:
    """The dotted name of a prunebench file (a package's `__init__.py`: the package's)."""
    parts = path.relative_to(SOURCE).with_suffix("").parts
    return ".".join((PACKAGE, *(parts[:-1] if parts[-1] == "__init__" else parts)))


def _with_packages(names: frozenset[str]) -> set[str]:
    """Importing a module runs the __init__ of every package above it."""
    return {".".join(name.split(".")[:i]) for name in names for i in range(1, name.count(".") + 2)}


def graph() -> dict[str, frozenset[str]]:
    """Every prunebench module and the prunebench modules it names in its imports (an import
    cycle is a cycle here; a package running its submodules' __init__ is not)."""
    modules = {}
    for path in sorted(SOURCE.rglob("*.py")):
        name = _module_name(path)
        modules[name] = imports(path) - {name}
    return modules


def closure(script: str | Path) -> list[Path]:
    """The script and every prunebench module file it runs, sorted."""
    script = Path(script).resolve()
    seen: set[str] = set()
    todo = _with_packages(imports(script))
    while todo:
        name = todo.pop()
        if name not in seen:
            seen.add(name)
            todo |= _with_packages(imports(module_file(name))) - seen
    return sorted({script} | {file for name in seen if (file := module_file(name)) is not None})


def user_module(model_name: str) -> Path | None:
    """The file of the user's model factory (`model.name: package.module:function`), looked up
    from the repository root without importing it; None for a registry model."""
    if ":" not in model_name:
        return None
    with repository.on_path():
        found = importlib.util.find_spec(model_name.partition(":")[0])
    return Path(found.origin).resolve() if found is not None and found.origin else None


def manifest(script: str | Path, model: Model | None = None) -> dict[str, str]:
    """Every file the stage script runs, named from the package's parent folder (src/ in a
    checkout: "prunebench/..."; "stages/..." for the script), with the SHA-256 of its content.
    Files that params.yaml's `model` section names count too: the user's model factory for a stage
    that builds models, the checkpoint or weights file for the stage that loads it (named from the
    repository root)."""
    script = Path(script).resolve()
    files = closure(script)
    names = {
        path: (f"stages/{path.name}" if path == script else path.relative_to(SOURCE.parent).as_posix())
        for path in files
    }
    factory = user_module(model.name) if model else None
    if factory is not None and module_file("prunebench.training.models") in files:
        names[factory] = _from_root(factory)
    if model and model.name.startswith("hf:") and module_file("prunebench.training.models") in files:
        names |= _named(Path(model.name[3:]) / "config.json")  # a Hugging Face model's architecture
    if model and module_file("prunebench.training.pretrained") in files:
        for start in (model.checkpoint, model.weights):  # timm's weights are a local file, hf's a directory
            if start:
                names |= _named(Path(start))
    return {
        names[path]: hashlib.sha256(path.read_bytes()).hexdigest() for path in sorted(names, key=lambda p: names[p])
    }


def _named(path: Path) -> dict[Path, str]:
    """A file, or every file of a directory, by its name from the repository root; nothing for a
    path that is neither (torchvision's weights are a name, not a file)."""
    files = sorted(p for p in path.iterdir() if p.is_file()) if path.is_dir() else [path] if path.is_file() else []
    return {file.resolve(): _from_root(file.resolve()) for file in files}


def _from_root(path: Path) -> str:
    return path.relative_to(Path.cwd()).as_posix() if path.is_relative_to(Path.cwd()) else path.as_posix()
