"""The comparison's figures as PNG files (matplotlib, no display): the trade-off curves over the
operating points, faceted by family, with the winners and ties; the differences to the best;
measured speed-up against MACs; where each method spends the budget; training curves and layer
sensitivity. Every method keeps its look (`palette`) in every figure. No label is written on the
data, so nothing overlaps."""

from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
from matplotlib.lines import Line2D  # noqa: E402
from matplotlib.ticker import FixedLocator, FuncFormatter, LogLocator  # noqa: E402

from prunebench.files import save_with  # noqa: E402
from prunebench.report.markdown import WINNER_PHASES, standing  # noqa: E402
from prunebench.report.palette import FAMILIES, Look  # noqa: E402
from prunebench.task import IMAGES, Task, of_columns  # noqa: E402


def save_figure(fig: plt.Figure, path: str | Path) -> Path:
    save_with(path, lambda tmp: fig.savefig(tmp, format="png", dpi=110, bbox_inches="tight"))
    plt.close(fig)
    return Path(path)


def _log2_axis(axis) -> None:
    axis.set_major_locator(LogLocator(base=2))
    axis.set_major_formatter(FuncFormatter(lambda v, _: f"{v:g}×"))


def pareto(points: pd.DataFrame, x: str, y: str, higher: bool = True) -> pd.DataFrame:
    """The points no other point beats on both `x` and `y` (larger `x` is better; larger `y` too,
    or smaller where not `higher`), by `x`."""
    sign = 1 if higher else -1
    ordered = points.assign(_y=sign * points[y]).sort_values([x, "_y"], ascending=[False, False])
    front = ordered[ordered["_y"] > ordered["_y"].cummax().shift(fill_value=-np.inf)]
    return front.drop(columns="_y").sort_values(x)


def metric_label(task: Task, where: str = "test") -> str:
    """An axis label of the task's metric: "test accuracy (%)", "test perplexity"."""
    return f"{where} {task.metric}" + (f" ({task.unit})" if task.unit else "")


def standings(winners: pd.DataFrame, phase: str) -> dict[tuple[str, float], str]:
    """(method, ratio) → "best" or "tied" in `phase` (the methods worse than the best are left out)."""
    rows = winners[(winners["phase"] == phase) & winners["tied"]]
    return {(r.method, r.ratio): standing(r) for r in rows.itertuples()}


def plot_tradeoff(
    summary: pd.DataFrame,
    winners: pd.DataFrame,
    looks: dict[str, Look],
    budget: str,
    base_value: float,
    path: str | Path,
    task: Task = IMAGES,
) -> Path:
    """The task's metric against the reduction of the budget (log₂), a column per family and a row per
    phase: mean over seeds with a ± std band; stars mark the best method at each budget, rings
    the methods tied with it, and the lines of methods that win or tie somewhere are drawn
    boldest; hollow markers miss their target; the black steps are the Pareto front over every
    method and point, the same in every panel of a row."""
    families = [f for f in FAMILIES if any(look.family == f for look in looks.values())]
    phases = list(WINNER_PHASES.items())[::-1]  # after pruning, then after fine-tuning
    fig, axes = plt.subplots(
        len(phases), len(families), figsize=(4.6 * len(families) + 0.6, 4.2 * len(phases)), sharex=True, sharey="row"
    )
    axes = np.asarray(axes).reshape(len(phases), len(families))
    for row, (phase, title) in enumerate(phases):
        column = f"{phase}_{task.metric}_mean"
        marks = standings(winners, phase)
        front = pareto(summary[summary["reached"]], "reduction_mean", column, task.higher_is_better)
        for ax, fam in zip(axes[row], families):
            for method in [m for m, look in looks.items() if look.family == fam]:
                _tradeoff_line(ax, summary[summary["method"] == method], phase, looks[method], marks, method, task)
            ax.axhline(base_value * task.scale, color="black", linestyle=":", linewidth=1)
            ax.step(
                front["reduction_mean"],
                front[column] * task.scale,
                where="post",
                color="black",
                linewidth=1.1,
                alpha=0.6,
            )
            ax.set_xscale("log", base=2)
            _log2_axis(ax.xaxis)
            ax.set_title(f"{FAMILIES[fam].label}: {title}", fontsize="medium")
            ax.grid(alpha=0.3)
        axes[row][0].set_ylabel(metric_label(task))
    key = [
        Line2D([], [], color="black", marker="*", markersize=13, linestyle="none", label="best at this budget"),
        Line2D([], [], color="black", marker="o", markersize=10, fillstyle="none", linestyle="none", label="tied"),
        Line2D([], [], color="black", linewidth=1.1, alpha=0.6, label="Pareto front, every method"),
        Line2D([], [], color="black", linestyle=":", linewidth=1, label="base model"),
    ]
    for i, ax in enumerate(axes[-1]):
        ax.set_xlabel(f"{budget} reduction (achieved, mean over seeds)")
        handles, _ = ax.get_legend_handles_labels()
        ax.legend(
            handles=handles + (key if i == len(families) - 1 else []),
            loc="upper center",
            bbox_to_anchor=(0.5, -0.16),
            ncol=2,
            fontsize="small",
            frameon=False,
        )
    fig.tight_layout()
    return save_figure(fig, path)


def _tradeoff_line(ax, rows: pd.DataFrame, phase: str, look: Look, marks: dict, method: str, task: Task) -> None:
    """One method's curve in one panel of the trade-off figure."""
    rows = rows.sort_values("reduction_mean")
    x, mean = rows["reduction_mean"], rows[f"{phase}_{task.metric}_mean"] * task.scale
    std = rows[f"{phase}_{task.metric}_std"].fillna(0) * task.scale
    standing = [marks.get((method, r)) for r in rows["ratio"]]
    weight = 2.8 if "best" in standing else 1.7 if "tied" in standing else 0.9
    ax.plot(x, mean, color=look.colour, linestyle=look.linestyle, linewidth=weight, label=method, zorder=2 + weight)
    ax.fill_between(x, mean - std, mean + std, color=look.colour, alpha=0.08, linewidth=0)
    for reached, face in ((True, look.colour), (False, "none")):
        chosen = rows["reached"] == reached
        ax.scatter(x[chosen], mean[chosen], marker=look.marker, facecolors=face, edgecolors=look.colour, s=22, zorder=5)
    for xi, yi, mark in zip(x, mean, standing):
        if mark == "best":
            ax.scatter(xi, yi, marker="*", s=260, color=look.colour, edgecolors="black", linewidths=0.9, zorder=7)
        elif mark == "tied":
            ax.scatter(xi, yi, marker="o", s=110, facecolors="none", edgecolors=look.colour, linewidths=1.6, zorder=6)


def plot_differences(
    winners: pd.DataFrame, looks: dict[str, Look], budget: str, path: str | Path, task: Task = IMAGES
) -> Path:
    """The report's statistics as a picture: at each budget (a column) and phase (a row), every
    method's difference to the best in the task's metric with its paired-bootstrap interval, worse
    to the left, on a symmetric log axis (linear within 2 pp, or 2 of perplexity). Methods tied with
    the best (interval containing 0) are drawn in their colour; the others in grey."""
    scale = task.scale
    phases = list(WINNER_PHASES.items())
    points = sorted(winners["ratio"].unique())
    methods = list(looks)
    fig, axes = plt.subplots(
        len(phases),
        len(points),
        figsize=(2.5 * len(points) + 2.2, 0.24 * len(methods) * len(phases) + 1.6),
        sharey=True,
        squeeze=False,
    )
    y = {m: i for i, m in enumerate(methods)}
    for row, (phase, title) in enumerate(phases):
        for ax, ratio in zip(axes[row], points):
            at = winners[(winners["phase"] == phase) & (winners["ratio"] == ratio)]
            for r in at.itertuples():
                colour = looks[r.method].colour if r.tied else "#9a9a9a"
                low, high = -r.high * scale, -r.low * scale  # the interval of −difference: worse to the left
                ax.plot([low, high], [y[r.method]] * 2, color=colour, linewidth=2.2 if r.tied else 1.2)
                best = standing(r) == "best"
                ax.scatter(
                    -r.difference * scale,
                    y[r.method],
                    marker="*" if best else "o",
                    s=150 if best else 30,
                    color=colour if r.tied else "white",
                    edgecolors="black" if best else colour,
                    zorder=3,
                )
            ax.axvline(0, color="black", linewidth=0.8)
            ax.set_xscale("symlog", linthresh=2)  # ties are within a few pp: linear there, logarithmic beyond
            ax.xaxis.set_major_locator(FixedLocator([-50, -10, -2, -1, 0, 1, 2]))
            ax.set_xlim(-winners["high"].max() * scale * 1.3, max(-winners["low"].min() * scale, 1) * 1.5)
            ax.xaxis.set_major_formatter(FuncFormatter(lambda v, _: f"{v:g}"))
            ax.set_title(f"{title.split(' (')[0]}, {budget} {1 / (1 - ratio):g}×", fontsize="small")
            ax.grid(axis="x", alpha=0.3)
            ax.tick_params(labelsize="x-small")
        axes[row][0].set_yticks(range(len(methods)), methods, fontsize="x-small")
        for label in axes[row][0].get_yticklabels():
            label.set_color(looks[label.get_text()].colour)
    axes[0][0].invert_yaxis()
    for ax in axes[-1]:
        axis = "accuracy − best (pp; log beyond 2)" if task.percent else "best − perplexity (log beyond 2)"
        ax.set_xlabel(axis, fontsize="small")
    fig.suptitle(
        "Difference to the best at each budget, with its paired 95 % interval: coloured = tied with the best, "
        "grey = worse; missing = target not reached",
        fontsize="small",
    )
    fig.tight_layout()
    return save_figure(fig, path)


SPEEDUPS = {
    "speedup": "PyTorch eager, batch {batch}",
    "ort_speedup": "ONNX Runtime, batch {batch}",
    "ort_b1_speedup": "ONNX Runtime, batch 1",
}  # results columns: the deploy stage's speed-ups over the base model, one thread


def plot_speedup(summary: pd.DataFrame, looks: dict[str, Look], batch: int, path: str | Path) -> Path:
    """Measured speed-up against the MACs reduction, per method, in PyTorch and in ONNX Runtime:
    structured pruning follows the diagonal at best; masks keep dense kernels, so unstructured
    pruning stays at 1×."""
    fig, axes = plt.subplots(1, len(SPEEDUPS), figsize=(5.2 * len(SPEEDUPS) + 2, 4.8), sharex=True, sharey=True)
    top = max(summary["macs_reduction_mean"].max(), 2)
    for ax, (column, title) in zip(axes, SPEEDUPS.items()):
        for method, look in looks.items():
            rows = summary[summary["method"] == method].sort_values("macs_reduction_mean")
            ax.plot(
                rows["macs_reduction_mean"],
                rows[f"{column}_mean"],
                marker=look.marker,
                color=look.colour,
                linestyle=look.linestyle,
                markersize=5,
                label=method,
            )
        ax.plot([1, top], [1, top], color="black", linestyle=":", linewidth=1, label="speed-up = MACs reduction")
        ax.set_xscale("log", base=2)
        ax.set_yscale("log", base=2)
        _log2_axis(ax.xaxis)
        _log2_axis(ax.yaxis)
        ax.set(xlabel="MACs reduction (sparsity-aware)", title=title.format(batch=batch))
        ax.grid(alpha=0.3)
    axes[0].set_ylabel("measured speed-up over the base model")
    axes[-1].legend(loc="upper left", bbox_to_anchor=(1.01, 1), fontsize="small")
    fig.suptitle("What the MACs buy: measured speed-up, each point's models timed side by side")
    return save_figure(fig, path)


def _grid(count: int, width: float = 3.4, height: float = 2.6):
    """A grid of small panels, four across, the spare ones hidden."""
    rows = -(-count // 4)
    fig, axes = plt.subplots(rows, min(4, count), figsize=(width * min(4, count), height * rows + 0.6), squeeze=False)
    for ax in axes.flat[count:]:
        ax.set_visible(False)
    return fig, axes.flat


def plot_layers(layers: pd.DataFrame, looks: dict[str, Look], ratio: float, path: str | Path) -> Path:
    """Where each method spends the budget at one point: the share of each layer's MACs
    (sparsity-aware) kept, mean over seeds, as a methods × layers heatmap (layers in network
    order), readable on one screen for a ResNet-56's 50+ layers and every method."""
    at = layers[layers["ratio"] == ratio]
    kept = at.groupby(["method", "layer"], sort=False)[["base_macs", "pruned_macs"]].mean()
    table = (kept["pruned_macs"] / kept["base_macs"]).unstack("layer")
    table = table.reindex(index=[m for m in looks if m in table.index], columns=list(dict.fromkeys(at["layer"])))
    fig, ax = plt.subplots(figsize=(max(7.0, 2.6 + 0.17 * table.shape[1]), 1.6 + 0.27 * table.shape[0]))
    image = ax.imshow(table.to_numpy(), cmap="viridis", vmin=0, vmax=1, aspect="auto", interpolation="nearest")
    ax.set_xticks(range(table.shape[1]), table.columns, rotation=90, fontsize="x-small")
    ax.set_yticks(range(table.shape[0]), table.index, fontsize="small")
    for label in ax.get_yticklabels():
        label.set_color(looks[label.get_text()].colour)
    ax.set_title(f"Share of each layer's MACs kept (sparsity-aware) at ratio {ratio:g}, mean over seeds")
    fig.colorbar(image, ax=ax, fraction=0.025, pad=0.01, label="MACs kept")
    return save_figure(fig, path)


def plot_weights(histograms: pd.DataFrame, path: str | Path) -> Path:
    """The distribution of the nonzero prunable weights, base model and each point (first seed),
    as each model's share of its nonzero weights per bin; a panel per method."""
    methods = list(dict.fromkeys(histograms["method"]))
    fig, axes = _grid(len(methods))
    for ax, method in zip(axes, methods):
        for model, rows in histograms[histograms["method"] == method].groupby("model", sort=False):
            share = rows["count"] / max(rows["count"].sum(), 1)
            ax.stairs(
                share,
                [*rows["left"], rows["right"].iloc[-1]],
                label="base" if model == "base" else f"ratio {model}",
                fill=model == "base",
                alpha=0.35 if model == "base" else 1.0,
            )
        ax.set_title(method)
        ax.tick_params(labelsize="x-small")
    fig.suptitle("Nonzero prunable weights: base (filled) and after pruning at each point (share per bin)")
    handles, labels = axes[0].get_legend_handles_labels()
    fig.tight_layout(rect=(0, 0.04, 1, 1))
    fig.legend(handles, labels, loc="lower center", ncol=len(labels), fontsize="small")
    return save_figure(fig, path)


def plot_curves(
    curves: pd.DataFrame,
    by: str,
    path: str | Path,
    title: str,
    panels: str | None = None,
    looks: dict[str, Look] | None = None,
    task: Task = IMAGES,
) -> Path:
    """The validation metric per epoch (accuracy, or perplexity: exp of the validation loss), one
    line per value of `by` (mean over seeds), one panel per value of `panels` (e.g. each operating
    point); methods in their `looks`, other series (seeds) in matplotlib's cycle."""
    groups = list(curves.groupby(panels, sort=True)) if panels else [(None, curves)]
    fig, axes = plt.subplots(1, len(groups), figsize=(3.6 * len(groups) + 1.5, 3.8), sharey=True, squeeze=False)
    for ax, (panel, frame) in zip(axes[0], groups):
        for i, (name, group) in enumerate(frame.groupby(frame[by].astype(str), sort=False)):
            mean = _validation(group, task).groupby(group["epoch"]).mean()
            look = looks[name] if looks else None
            ax.plot(
                mean.index,
                mean * task.scale,
                color=look.colour if look else f"C{i % 10}",
                linestyle=look.linestyle if look else "-",
                label=name,
            )
        ax.set(xlabel="epoch", title=title if panel is None else f"{title}: {panels} {panel:g}")
        ax.grid(alpha=0.3)
    axes[0][0].set_ylabel(metric_label(task, "validation"))
    axes[0][-1].legend(loc="upper left", bbox_to_anchor=(1.01, 1), fontsize="small")
    return save_figure(fig, path)


def _validation(rows: pd.DataFrame, task: Task) -> pd.Series:
    """The validation metric of training-curve rows: their accuracy, or exp of their loss (perplexity)."""
    return rows["val_accuracy"] if task.percent else np.exp(rows["val_loss"])


def _sensitivity(rows: list[dict], kind: str) -> tuple[pd.DataFrame, Task]:
    """The validation metric (accuracy, or a language model's perplexity) per layer × ratio of one
    kind, mean over seeds (layers in network order), and the task it measures."""
    frame = pd.DataFrame(rows)
    task = of_columns(frame.columns)
    frame = frame[frame["kind"] == kind]
    return frame.pivot_table(index="layer", columns="ratio", values=task.metric, sort=False), task


def plot_sensitivity(rows: list[dict], path: str | Path) -> Path:
    """The validation metric of each layer pruned alone by magnitude, against the ratio."""
    table, task = _sensitivity(rows, "unstructured")
    fig, ax = plt.subplots(figsize=(7, 4.5))
    for layer, values in table.iterrows():
        ax.plot(table.columns, values * task.scale, marker=".", label=layer)
    if not task.higher_is_better:
        ax.set_yscale("log")
    ax.set(
        xlabel="fraction of the layer's weights removed (magnitude)",
        ylabel=metric_label(task, "validation"),
        title="Layer sensitivity, unstructured (mean over seeds)",
    )
    ax.legend(loc="upper left", bbox_to_anchor=(1.01, 1), fontsize="small")
    return save_figure(fig, path)


def plot_sensitivity_heatmap(rows: list[dict], path: str | Path) -> Path:
    """How much worse the metric gets when one channel group loses its weakest filters: groups ×
    ratios (accuracy drop in pp; a language model's perplexity rise)."""
    table, task = _sensitivity(rows, "structured")
    drop = (table[[0.0]].to_numpy() - table) * task.scale * (1 if task.higher_is_better else -1)
    fig, ax = plt.subplots(figsize=(1.0 + 0.75 * len(drop.columns), 1.2 + 0.5 * len(drop)))
    image = ax.imshow(drop.to_numpy(), cmap="Reds", vmin=0, aspect="auto")
    for (i, j), value in np.ndenumerate(drop.to_numpy()):
        ax.text(j, i, f"{value:.0f}" if task.percent else f"{value:.2g}", ha="center", va="center", fontsize="small")
    ax.set_xticks(range(len(drop.columns)), [f"{r:g}" for r in drop.columns])
    ax.set_yticks(range(len(drop)), drop.index)
    what = "Accuracy drop (pp)" if task.percent else "Perplexity rise"
    ax.set(
        xlabel="fraction of the group's channels removed (filter L1)",
        title=f"{what}, structured (mean over seeds)",
    )
    fig.colorbar(image, ax=ax)
    return save_figure(fig, path)
