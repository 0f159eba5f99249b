"""Issue 25: one look per method in every figure and dvc plots view; the faceted trade-off with its
winners and ties; the difference-to-best forest; the per-layer heatmap."""

from __future__ import annotations

import colorsys
import json
from pathlib import Path

import matplotlib.colors
import numpy as np
import pandas as pd
import pytest

from prunebench import paths
from prunebench.report import figures, markdown, palette, plot_tables
from prunebench.stages import compare

from helpers import ROOT

METHODS = [  # (method, unit, schedule), in params.yaml's order: the families interleaved on purpose
    ("magnitude", "weight", "steps"),
    ("l1_channel", "channel", "steps"),
    ("lamp", "weight", "steps"),
    ("interval_adjoint", "channel", "retention"),
    ("taylor2", "channel", "steps"),
    ("random", "weight", "steps"),
]
RATIOS = (0.5, 0.75)


@pytest.fixture(scope="module")
def results() -> pd.DataFrame:
    """Two seeds of every method at two points; lamp is best at 0.5, magnitude tied with it."""
    accuracy = {"magnitude": 0.9, "l1_channel": 0.7, "lamp": 0.91, "interval_adjoint": 0.8, "taylor2": 0.6}
    rows = []
    for method, unit, schedule in METHODS:
        for ratio in RATIOS:
            for seed in (0, 1):
                value = accuracy.get(method, 0.1) - ratio / 10 + seed / 100
                rows.append(
                    {
                        "method": method,
                        "unit": unit,
                        "schedule": schedule,
                        "ratio": ratio,
                        "seed": seed,
                        "reached": True,
                        "reduction": 1 / (1 - ratio),
                        "macs_reduction": 1 / (1 - ratio),
                        "speedup": 1.0 if unit == "weight" else 1.5,
                        "ort_speedup": 1.0 if unit == "weight" else 1.7,
                        "ort_b1_speedup": 1.0 if unit == "weight" else 1.2,
                        "pruned_accuracy": value - 0.2,
                        "recalibrated_accuracy": value - 0.1,
                        "finetuned_accuracy": value,
                        "finetuned_loss": 1 - value,
                        "cost.pruning_seconds": 0.1,
                        "cost.retrain_seconds": 0.0,
                        "base_accuracy": 0.95,
                    }
                )
    return pd.DataFrame(rows)


@pytest.fixture(scope="module")
def tables(results) -> compare.Tables:
    winners = []
    for phase in markdown.WINNER_PHASES:
        for ratio in RATIOS:
            at = results[results["ratio"] == ratio].groupby("method", sort=False)[f"{phase}_accuracy"].mean()
            best = at.max()
            for method, value in at.sort_values(ascending=False).items():
                difference = best - value
                tied = difference < 0.02  # magnitude ties lamp; everyone else is worse
                winners.append(
                    {
                        "phase": phase,
                        "ratio": ratio,
                        "target_reduction": 1 / (1 - ratio),
                        "method": method,
                        "accuracy": value,
                        "difference": difference,
                        "low": difference - 0.015 if difference else 0.0,  # the best: no interval (stats.rank)
                        "high": difference + 0.015 if difference else 0.0,
                        "tied": tied,
                    }
                )
    return compare.Tables(markdown.summarize(results), pd.DataFrame(winners), palette.looks(results))


def hue(colour: str) -> float:
    return colorsys.rgb_to_hls(*matplotlib.colors.to_rgb(colour))[0] * 360


def test_every_method_has_its_own_colour_in_its_family_hue(results):
    looks = palette.looks(results)
    assert list(looks) == [m for m, _, _ in METHODS]
    assert len({look.colour for look in looks.values()}) == len(METHODS)
    families = {m: palette.family(u, s) for m, u, s in METHODS}
    for method, look in looks.items():
        assert look.family == families[method]
        distance = abs((hue(look.colour) - palette.FAMILIES[look.family].hue + 180) % 360 - 180)
        assert distance <= 18.5, (method, look.colour)
        assert look.linestyle == palette.FAMILIES[look.family].linestyle
    assert palette.looks(results.iloc[::-1]) != looks  # the order of params.yaml decides the shades
    assert palette.looks(results) == looks  # and nothing else: the same run, the same looks


@pytest.fixture
def drawn(monkeypatch) -> list:
    """The matplotlib figures the figure functions draw, kept open instead of saved."""
    kept: list = []
    monkeypatch.setattr(figures, "save_figure", lambda fig, path: kept.append(fig) or Path(path))
    return kept


def line_colours(fig) -> dict[str, str]:
    """Each labelled line of a figure: its label → its colour."""
    return {
        line.get_label(): matplotlib.colors.to_hex(line.get_color())
        for ax in fig.axes
        for line in ax.get_lines()
        if not line.get_label().startswith("_")
    }


def test_the_figures_draw_every_method_in_its_colour(results, tables, drawn, tmp_path):
    looks = tables.looks
    figures.plot_tradeoff(tables.summary, tables.winners, looks, "macs", 0.95, tmp_path / "t.png")
    figures.plot_speedup(tables.summary, looks, 64, tmp_path / "s.png")
    curves = results[["method", "ratio", "seed"]].assign(epoch=1, val_accuracy=0.5)
    figures.plot_curves(curves, "method", tmp_path / "c.png", "fine-tuning", panels="ratio", looks=looks)
    for fig in drawn:
        drawn_colours = line_colours(fig)
        assert {m for m in drawn_colours if m in looks} == set(looks)
        assert all(drawn_colours[m] == looks[m].colour for m in looks)


def test_the_trade_off_has_a_panel_per_family_and_marks_the_best_and_the_ties(tables, drawn, tmp_path):
    figures.plot_tradeoff(tables.summary, tables.winners, tables.looks, "macs", 0.95, tmp_path / "t.png")
    (fig,) = drawn
    titles = [ax.get_title() for ax in fig.axes]
    assert len(titles) == 6 and all(any(f.label in t for t in titles) for f in palette.FAMILIES.values())
    weights = next(ax for ax in fig.axes if ax.get_title().startswith("weights") and "fine-tuning" in ax.get_title())
    widths = {line.get_label(): line.get_linewidth() for line in weights.get_lines()}
    assert widths["lamp"] > widths["magnitude"] > widths["random"]  # best, tied, worse
    stars = [c for c in weights.collections if len(c.get_sizes()) and c.get_sizes()[0] == 260]
    assert len(stars) == 2  # lamp is best at both points
    lamp = tables.summary[tables.summary["method"] == "lamp"].sort_values("ratio")
    assert sorted(float(c.get_offsets()[0][1]) for c in stars) == pytest.approx(
        sorted(lamp["finetuned_accuracy_mean"] * 100)
    )


def test_the_forest_colours_the_ties_and_greys_the_rest(tables, drawn, tmp_path):
    figures.plot_differences(tables.winners, tables.looks, "macs", tmp_path / "d.png")
    (fig,) = drawn
    panel = fig.axes[0]  # after fine-tuning, the first point
    looks = tables.looks
    horizontal = [line for line in panel.get_lines() if line.get_ydata()[0] == line.get_ydata()[-1]]
    intervals = {round(float(line.get_ydata()[0])): line.get_xdata() for line in horizontal}
    colours = {matplotlib.colors.to_hex(line.get_color()) for line in horizontal}
    assert colours == {looks["lamp"].colour, looks["magnitude"].colour, "#9a9a9a"}  # best, tied, the rest
    row = list(looks).index("magnitude")
    winners = tables.winners
    magnitude = winners[(winners["method"] == "magnitude") & (winners["phase"] == "finetuned")].iloc[0]
    assert list(intervals[row]) == pytest.approx([-magnitude["high"] * 100, -magnitude["low"] * 100])


def test_the_layer_heatmap_is_methods_by_layers_of_macs_kept(tables, drawn, tmp_path):
    layers = pd.DataFrame(
        [
            {"method": m, "ratio": r, "seed": s, "layer": f"layer{i}", "base_macs": 100.0, "pruned_macs": 10.0 * i + s}
            for m, _, _ in METHODS
            for r in RATIOS
            for s in (0, 1)
            for i in range(57)  # a ResNet-56's layers
        ]
    )
    figures.plot_layers(layers, tables.looks, 0.5, tmp_path / "l.png")
    (fig,) = drawn
    image = fig.axes[0].get_images()[0].get_array()
    assert image.shape == (len(METHODS), 57)
    assert image[2, 3] == pytest.approx(0.305)  # (30 + 31) / 2 of 100
    width, height = fig.get_size_inches()
    assert width <= 13 and height <= 4  # one screen


def test_the_trade_off_rows_carry_the_standings_and_a_front_per_family(results, tables):
    curve = results.assign(reduction=results["reduction"])
    rows = plot_tables.tradeoff_rows(curve, tables.summary, tables.winners, tables.looks)
    methods = rows[rows["method"] != plot_tables.FRONT]
    at = methods[(methods["ratio"] == 0.5)].drop_duplicates("method").set_index("method")
    assert at.loc["lamp", "finetuned_standing"] == "best"
    assert at.loc["magnitude", "finetuned_standing"] == "tied"
    assert at.loc["random", "finetuned_standing"] == ""
    front = rows[rows["method"] == plot_tables.FRONT]
    labels = {palette.FAMILIES[f].label for f in palette.FAMILIES}
    assert set(front["family"]) == labels
    finetuned = front[front["finetuned_accuracy"].notna()]
    assert len(finetuned) == 3 * len(finetuned.drop_duplicates("reduction"))  # the same front in each panel
    assert finetuned["recalibrated_accuracy"].isna().all()


def dvc_data(frame: pd.DataFrame) -> list[dict]:
    """Rows as `dvc plots show` gives a template: every value a string, and the revision."""
    return [
        {k: "" if pd.isna(v) else str(v) for k, v in row.items()} | {"rev": "workspace"}
        for row in frame.to_dict("records")
    ]


def test_the_dvc_plots_views_draw_every_method_in_its_colour(results, tables, tmp_path):
    import vl_convert

    written = palette.fill_templates(ROOT / paths.PLOT_TEMPLATES, tmp_path, tables.looks, "accuracy")
    assert {p.name for p in written} == {
        "tradeoff.json",
        "curves.json",
        "cost.json",
        "forest.json",
        "lines_by_method.json",
    }
    curve = results.assign(cost_seconds=0.1)
    data = {
        "tradeoff.json": (
            "reduction",
            "finetuned_accuracy",
            plot_tables.tradeoff_rows(curve, tables.summary, tables.winners, tables.looks),
        ),
        "curves.json": ("reduction", "finetuned_loss", palette.columns(curve, tables.looks)),
        "cost.json": ("cost_seconds", "finetuned_accuracy", palette.columns(curve, tables.looks)),
        "forest.json": ("method", "accuracy_minus_best", plot_tables.difference_rows(tables.winners, tables.looks)),
        "lines_by_method.json": ("ratio", "finetuned_accuracy", palette.columns(curve, tables.looks)),
    }
    for path in written:
        x, y, frame = data[path.name]
        text = path.read_text()
        assert palette.METRIC not in text
        for placeholder, value in {"<DVC_METRIC_X>": x, "<DVC_METRIC_Y>": y, "<DVC_METRIC_X_LABEL>": x}.items():
            text = text.replace(placeholder, value)
        text = text.replace("<DVC_METRIC_Y_LABEL>", y).replace("<DVC_METRIC_TITLE>", path.stem)
        spec = json.loads(text.replace('"<DVC_METRIC_DATA>"', json.dumps(dvc_data(frame))))
        scale = next(v["scale"] for v in _encodings(spec) if v.get("field") == "method" and "scale" in v)
        assert dict(zip(scale["domain"], scale["range"])) == {m: look.colour for m, look in tables.looks.items()}
        svg = vl_convert.vegalite_to_svg(spec)
        for method, look in tables.looks.items():
            assert look.colour in svg, (path.name, method)


def _encodings(spec) -> list[dict]:
    """Every channel definition anywhere in a Vega-Lite spec."""
    found = []
    if isinstance(spec, dict):
        for key, value in spec.items():
            if key == "encoding":
                found += [v for v in value.values() if isinstance(v, dict)]
            found += _encodings(value)
    elif isinstance(spec, list):
        for value in spec:
            found += _encodings(value)
    return found


def test_vega_scale_lists_the_methods_family_by_family(tables):
    scale = palette.vega_scale(tables.looks)
    assert scale["domain"] == ["magnitude", "lamp", "random", "l1_channel", "taylor2", "interval_adjoint"]
    assert np.unique(scale["range"]).size == len(METHODS)
