"""MkDocs hooks: the pages that are generated, never hand-copied.

- `params.md`: the marker `<!-- params reference -->` becomes a table per section of params.yaml,
  from its declaration (`prunebench.params`): every key, what it may be, its meaning, and its value
  in the shipped params.yaml.
- `methods/<name>.md`: one page per registered method, from its module's and class's docstrings
  and its knobs (`Knobs`: default, what it may be, the comment beside the field), with the
  params.yaml entries that run it.
"""

from __future__ import annotations

import dataclasses
import inspect
import re
import sys
from pathlib import Path
from typing import Any

import yaml

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "src"))

MARKER = "<!-- params reference -->"


def _cell(value: Any) -> str:
    text = "null" if value is None else yaml.safe_dump(value, default_flow_style=True).strip().removesuffix("...")
    return "`" + text.strip().replace("|", "\\|") + "`"


def params_reference() -> str:
    """A table per section of the declaration, in params.yaml's order."""
    from prunebench import params

    shipped = yaml.safe_load((ROOT / "params.yaml").read_text())
    out: list[str] = []

    def section(cls: type, prefix: str, values: dict[str, Any]) -> None:
        rows, nested = [], []
        for f in params.declared(cls):
            if "section" in f.metadata and f.metadata["section"] is not None:
                nested.append((f, f.metadata["section"]))
                continue
            allowed = f.metadata["check"].allowed if "check" in f.metadata else "run name → the method's knobs"
            value = f"{len(values[f.name])} entries: *Methods*" if f.name == "methods" else _cell(values.get(f.name))
            meaning = f.metadata.get("doc", "").replace("|", "/")
            rows.append(f"| `{prefix}{f.name}` | {allowed.replace('|', '/')} | {meaning} | {value} |")
        if rows:
            title = prefix.rstrip(".") or "top level"
            doc = (
                " ".join((cls.__doc__ or "").split())
                if prefix and not (cls.__doc__ or "").startswith(cls.__name__)
                else ""
            )
            out.extend([f"### `{title}`", "", *([doc, ""] if doc else [])])
            out.extend(["| key | may be | meaning | in params.yaml |", "|---|---|---|---|"])
            out.extend(rows)
            out.append("")
        for f, sub in nested:
            section(sub, f"{prefix}{f.name}.", values.get(f.name) or {})

    section(params.Params, "", shipped)
    out += [
        "`model` takes every other key as an argument of the model's factory (e.g. `width` for `cnn`); "
        "`methods.<key>` takes `method`, `schedule` and the method's knobs (its page under *Methods*).",
        "",
    ]
    return "\n".join(out)


def _knob_comments(cls: type) -> dict[str, str]:
    """The comment beside each knob's field in the source of `cls` and its bases."""
    found: dict[str, str] = {}
    for klass in reversed(cls.__mro__):
        if not dataclasses.is_dataclass(klass) or klass is object:
            continue
        try:
            source = inspect.getsource(klass)
        except (OSError, TypeError):
            continue
        above = ""  # a comment on the lines before a field speaks of it
        for line in source.splitlines():
            if match := re.match(r"\s+#\s*(.*)$", line):
                above = f"{above} {match.group(1)}".strip()
            elif match := re.match(r"\s+(\w+):.*=\s*knob\(.*?\)\s*(?:#\s*(.*))?$", line):
                found[match.group(1)] = match.group(2) or above or found.get(match.group(1), "")
                above = ""
            else:
                above = ""
    return found


def method_page(name: str, cls: type, entries: dict[str, Any]) -> str:
    """One method's page."""
    from prunebench.allowed import checks

    module = sys.modules[cls.__module__]
    knobs = checks(cls.Knobs)
    comments = _knob_comments(cls.Knobs)
    defaults = {f.name: f.default for f in dataclasses.fields(cls.Knobs)}
    used = [key for key, entry in entries.items() if (entry or {}).get("method", key) == name]
    lines = [
        f"# {name}",
        "",
        f"`{cls.__module__}.{cls.__name__}`: unit **{cls.unit}**, scope {cls.scope}, schedule {cls.schedule}"
        + (f", groups it scores: {', '.join(cls.kinds)}" if cls.unit == "channel" else "")
        + ".",
        "",
        inspect.cleandoc(module.__doc__ or ""),
        "",
    ]
    if cls.__doc__ and cls.__doc__ != module.__doc__ and not cls.__doc__.startswith(cls.__name__ + "("):
        lines += [inspect.cleandoc(cls.__doc__), ""]
    if knobs:
        lines += ["## Knobs", "", "| knob | default | may be | meaning |", "|---|---|---|---|"]
        lines += [
            f"| `{knob}` | {_cell(defaults[knob])} | {check.allowed} | {comments.get(knob, '')} |"
            for knob, check in knobs.items()
        ]
        lines.append("")
    lines += [
        "## In params.yaml",
        "",
        ("The shipped params.yaml runs it as " + ", ".join(f"`{key}`" for key in used) + ".")
        if used
        else f"Not in the shipped params.yaml: add `{name}: {{}}` under `methods`.",
        "",
    ]
    return "\n".join(lines)


def on_config(config: Any) -> Any:
    """The method pages in the navigation, after the methods' overview, in the registry's order."""
    from prunebench.pruning.methods import METHODS

    for entry in config["nav"]:
        if isinstance(entry, dict) and "Methods" in entry:
            entry["Methods"] += [{name: f"methods/{name}.md"} for name in METHODS]
    return config


def on_files(files: Any, config: Any) -> Any:
    from mkdocs.structure.files import File

    from prunebench.pruning.methods import METHODS

    entries = yaml.safe_load((ROOT / "params.yaml").read_text())["methods"]
    for name, cls in METHODS.items():
        files.append(File.generated(config, f"methods/{name}.md", content=method_page(name, cls, entries)))
    return files


def on_page_markdown(markdown: str, page: Any, config: Any, files: Any) -> str:
    return markdown.replace(MARKER, params_reference()) if MARKER in markdown else markdown
