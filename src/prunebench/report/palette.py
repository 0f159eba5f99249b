"""One look per method in every figure: the PNGs, the `dvc plots` views and the report.

Methods fall into three families by what they prune and how: weights masked in one shot,
channels physically removed in one shot, and the retention schedule (prune and retrain, a run
of iterations). Hue and line style say the family; within it, each method gets its own shade,
alternating dark and light so that neighbours differ. The looks follow the order of the methods
in params.yaml, so a method keeps its colour in every figure of a run; the CSVs behind the `dvc
plots` views carry each method's family; the Vega-Lite templates get the colours as an explicit
scale (`fill_templates`), since Vega-Lite cannot take a scale's range from a data field inside
facets and layers.
"""

from __future__ import annotations

import colorsys
import json
from dataclasses import dataclass
from pathlib import Path

import pandas as pd

from prunebench.files import write_text


@dataclass(frozen=True)
class Family:
    label: str
    hue: float  # degrees
    linestyle: str  # matplotlib


FAMILIES = {
    "weight": Family("weights, masked", 215, "-"),
    "channel": Family("channels, removed", 22, "--"),
    "retention": Family("retention schedule", 135, "-."),
}
MARKERS = "os^vDP*Xhp<>"


@dataclass(frozen=True)
class Look:
    colour: str  # #rrggbb
    family: str  # a key of FAMILIES
    linestyle: str
    marker: str


def family(unit: str, schedule: str) -> str:
    """A method's family from its results' `unit` and `schedule` columns."""
    return "retention" if schedule == "retention" else unit


def shade(hue: float, index: int, count: int) -> str:
    """The index-th of `count` shades of one hue: hue spread ±18°, lightness alternating."""
    spread = 0.0 if count == 1 else (index / (count - 1) - 0.5) * 36
    lightness = 0.42 if count == 1 else (0.30, 0.52, 0.40, 0.62)[index % 4]
    r, g, b = colorsys.hls_to_rgb(((hue + spread) % 360) / 360, lightness, 0.78)
    return f"#{round(r * 255):02x}{round(g * 255):02x}{round(b * 255):02x}"


def looks(results: pd.DataFrame) -> dict[str, Look]:
    """Each method's look, from rows with `method`, `unit` and `schedule` columns, methods in
    the order they first appear (that of params.yaml)."""
    first = results.drop_duplicates("method")
    families = {r.method: family(r.unit, r.schedule) for r in first.itertuples()}
    members = {f: [m for m, g in families.items() if g == f] for f in FAMILIES}
    return {
        m: Look(
            shade(FAMILIES[f].hue, members[f].index(m), len(members[f])),
            f,
            FAMILIES[f].linestyle,
            MARKERS[members[f].index(m) % len(MARKERS)],
        )
        for m, f in families.items()
    }


def columns(frame: pd.DataFrame, looks: dict[str, Look]) -> pd.DataFrame:
    """`frame` with each row's method's family (its label), for the dvc plots templates."""
    return frame.assign(family=frame["method"].map(lambda m: FAMILIES[looks[m].family].label))


PLACEHOLDERS = ('"<METHOD_COLOURS>"', '"<METHOD_ORDER>"')  # where a template's colour scale and method order go
METRIC = "<TASK_METRIC>"  # where a template names the task's metric column (accuracy, perplexity)


def vega_scale(looks: dict[str, Look]) -> dict[str, list[str]]:
    """The methods' colour scale for Vega-Lite: the domain family by family, in params.yaml's order."""
    ordered = sorted(looks, key=lambda m: list(FAMILIES).index(looks[m].family))
    return {"domain": ordered, "range": [looks[m].colour for m in ordered]}


def fill_templates(source: Path, target: Path, looks: dict[str, Look], metric: str) -> list[Path]:
    """Write each template of `source` that has a method colour scale (or order) to `target`,
    filled with these methods' colours (and order) and the task's `metric`; DVC reads them there
    (dvc.yaml names them)."""
    scale = vega_scale(looks)
    values = dict(zip(PLACEHOLDERS, (json.dumps(scale), json.dumps(scale["domain"])))) | {METRIC: metric}
    written = []
    for template in sorted(source.glob("*.json")):
        text = template.read_text()
        if any(placeholder in text for placeholder in PLACEHOLDERS):
            for placeholder, value in values.items():
                text = text.replace(placeholder, value)
            write_text(target / template.name, text)
            written.append(target / template.name)
    return written
