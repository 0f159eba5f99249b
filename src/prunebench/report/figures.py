"""The comparison's figures as PNG files (matplotlib, no display): the trade-off curves over the
operating points, measured speed-up against MACs, training curves and layer sensitivity.
Legends sit outside the axes and no label is written on the data, so nothing overlaps."""

from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
from matplotlib.ticker import FuncFormatter, LogLocator  # noqa: E402

from prunebench.io import save_with  # noqa: E402

MARKERS = "os^vDP*Xhp<>"


def save_figure(fig: plt.Figure, path: str | Path) -> Path:
    save_with(path, lambda tmp: fig.savefig(tmp, format="png", dpi=110, bbox_inches="tight"))
    plt.close(fig)
    return Path(path)


def styles(methods: list[str]) -> dict[str, dict]:
    """A colour, marker and line style per method, distinct for up to 20 × 12 methods."""
    colours = plt.get_cmap("tab20").colors  # type: ignore[attr-defined]  # a ListedColormap
    return {
        m: {"color": colours[i % 20], "marker": MARKERS[i % len(MARKERS)], "linestyle": "-" if i < 10 else "--"}
        for i, m in enumerate(methods)
    }


def _log2_axis(axis) -> None:
    axis.set_major_locator(LogLocator(base=2))
    axis.set_major_formatter(FuncFormatter(lambda v, _: f"{v:g}×"))


def pareto(points: pd.DataFrame, x: str, y: str) -> pd.DataFrame:
    """The points no other point beats on both `x` and `y` (larger is better on both), by `x`."""
    ordered = points.sort_values([x, y], ascending=[False, False])
    front = ordered[ordered[y] > ordered[y].cummax().shift(fill_value=-np.inf)]
    return front.sort_values(x)


def plot_tradeoff(summary: pd.DataFrame, budget: str, base_accuracy: float, path: str | Path) -> Path:
    """Accuracy against the reduction of the budget (log₂), per method: mean over seeds with a
    ± std band, after pruning (BatchNorm recalibrated) and after fine-tuning; hollow markers miss
    their target; the black steps are the Pareto front over every method and point."""
    methods = list(dict.fromkeys(summary["method"]))
    look = styles(methods)
    fig, axes = plt.subplots(1, 2, figsize=(14, 5.5), sharex=True)
    for ax, phase, title in (
        (axes[0], "recalibrated", "after pruning (BatchNorm recalibrated)"),
        (axes[1], "finetuned", "after fine-tuning"),
    ):
        for method in methods:
            rows = summary[summary["method"] == method].sort_values("reduction_mean")
            x, mean = rows["reduction_mean"], rows[f"{phase}_accuracy_mean"] * 100
            std = rows[f"{phase}_accuracy_std"].fillna(0) * 100
            style = look[method]
            ax.plot(x, mean, color=style["color"], linestyle=style["linestyle"], label=method)
            ax.fill_between(x, mean - std, mean + std, color=style["color"], alpha=0.12, linewidth=0)
            for reached, face in ((True, style["color"]), (False, "none")):
                chosen = rows["reached"] == reached
                ax.scatter(
                    x[chosen],
                    mean[chosen],
                    marker=style["marker"],
                    facecolors=face,
                    edgecolors=style["color"],
                    s=28,
                    zorder=3,
                )
        ax.axhline(base_accuracy * 100, color="black", linestyle=":", linewidth=1, label="base model")
        front = pareto(summary[summary["reached"]], "reduction_mean", f"{phase}_accuracy_mean")
        ax.step(
            front["reduction_mean"],
            front[f"{phase}_accuracy_mean"] * 100,
            where="post",
            color="black",
            linewidth=1.2,
            alpha=0.7,
            label="Pareto front",
        )
        ax.set_xscale("log", base=2)
        _log2_axis(ax.xaxis)
        ax.set(xlabel=f"{budget} reduction (achieved, mean over seeds)", ylabel="test accuracy (%)", title=title)
        ax.grid(alpha=0.3)
    axes[1].legend(loc="upper left", bbox_to_anchor=(1.01, 1), fontsize="small")
    return save_figure(fig, path)


def plot_speedup(summary: pd.DataFrame, path: str | Path) -> Path:
    """Measured latency speed-up against the MACs reduction, per method: structured pruning
    follows the diagonal at best; masks keep dense kernels, so unstructured pruning stays at 1×."""
    methods = list(dict.fromkeys(summary["method"]))
    look = styles(methods)
    fig, ax = plt.subplots(figsize=(8, 5.5))
    for method in methods:
        rows = summary[summary["method"] == method].sort_values("macs_reduction_mean")
        style = look[method]
        ax.plot(
            rows["macs_reduction_mean"],
            rows["speedup_mean"],
            marker=style["marker"],
            color=style["color"],
            linestyle=style["linestyle"],
            markersize=5,
            label=method,
        )
    top = max(summary["macs_reduction_mean"].max(), 2)
    ax.plot([1, top], [1, top], color="black", linestyle=":", linewidth=1, label="speed-up = MACs reduction")
    ax.set_xscale("log", base=2)
    ax.set_yscale("log", base=2)
    _log2_axis(ax.xaxis)
    _log2_axis(ax.yaxis)
    ax.set(
        xlabel="MACs reduction (sparsity-aware)",
        ylabel="measured latency speed-up",
        title="What the MACs buy: measured speed-up",
    )
    ax.grid(alpha=0.3)
    ax.legend(loc="upper left", bbox_to_anchor=(1.01, 1), fontsize="small")
    return save_figure(fig, path)


def _grid(count: int, width: float = 3.4, height: float = 2.6):
    """A grid of small panels, four across, the spare ones hidden."""
    rows = -(-count // 4)
    fig, axes = plt.subplots(rows, min(4, count), figsize=(width * min(4, count), height * rows + 0.6), squeeze=False)
    for ax in axes.flat[count:]:
        ax.set_visible(False)
    return fig, axes.flat


def plot_layers(layers: pd.DataFrame, path: str | Path) -> Path:
    """Where each method spends the budget: per layer, the share of its MACs (sparsity-aware) kept
    at each point, mean over seeds; a panel per method."""
    methods = list(dict.fromkeys(layers["method"]))
    names = list(dict.fromkeys(layers["layer"]))
    ratios = sorted(layers["ratio"].unique())
    mean = layers.groupby(["method", "ratio", "layer"])[["base_macs", "pruned_macs"]].mean()
    colours = plt.get_cmap("viridis")(np.linspace(0, 0.9, len(ratios)))
    fig, axes = _grid(len(methods))
    x, width = np.arange(len(names)), 0.8 / len(ratios)
    for ax, method in zip(axes, methods):
        for i, ratio in enumerate(ratios):
            at = mean.loc[(method, ratio)].reindex(names)
            ax.bar(
                x - 0.4 + width * (i + 0.5),
                at["pruned_macs"] / at["base_macs"],
                width=width,
                color=colours[i],
                label=f"ratio {ratio:g}",
            )
        ax.set_xticks(x, names, rotation=45, ha="right", fontsize="x-small")
        ax.set(title=method, ylim=(0, 1.05))
        ax.tick_params(axis="y", labelsize="x-small")
    fig.suptitle("Share of each layer's MACs kept (sparsity-aware), per point")
    handles, labels = axes[0].get_legend_handles_labels()
    fig.tight_layout(rect=(0, 0.04, 1, 1))
    fig.legend(handles, labels, loc="lower center", ncol=len(labels), fontsize="small")
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


def plot_curves(curves: pd.DataFrame, by: str, path: str | Path, title: str, panels: str | None = None) -> Path:
    """Validation accuracy per epoch, one line per value of `by` (mean over seeds), one panel per
    value of `panels` (e.g. each operating point)."""
    groups = list(curves.groupby(panels, sort=True)) if panels else [(None, curves)]
    names = list(dict.fromkeys(curves[by].astype(str)))
    look = styles(names)
    fig, axes = plt.subplots(1, len(groups), figsize=(3.6 * len(groups) + 1.5, 3.8), sharey=True, squeeze=False)
    for ax, (panel, frame) in zip(axes[0], groups):
        for name, group in frame.groupby(frame[by].astype(str), sort=False):
            mean = group.groupby("epoch")["val_accuracy"].mean()
            style = look[name]
            ax.plot(mean.index, mean * 100, color=style["color"], linestyle=style["linestyle"], label=name)
        ax.set(xlabel="epoch", title=title if panel is None else f"{title}: {panels} {panel:g}")
        ax.grid(alpha=0.3)
    axes[0][0].set_ylabel("validation accuracy (%)")
    axes[0][-1].legend(loc="upper left", bbox_to_anchor=(1.01, 1), fontsize="small")
    return save_figure(fig, path)


def _sensitivity(rows: list[dict], kind: str) -> pd.DataFrame:
    """Accuracy per layer × ratio of one kind, mean over seeds (layers in network order)."""
    frame = pd.DataFrame(rows)
    frame = frame[frame["kind"] == kind]
    return frame.pivot_table(index="layer", columns="ratio", values="accuracy", sort=False)


def plot_sensitivity(rows: list[dict], path: str | Path) -> Path:
    """Validation accuracy of each layer pruned alone by magnitude, against the ratio."""
    table = _sensitivity(rows, "unstructured")
    fig, ax = plt.subplots(figsize=(7, 4.5))
    for layer, accuracy in table.iterrows():
        ax.plot(table.columns, accuracy * 100, marker=".", label=layer)
    ax.set(
        xlabel="fraction of the layer's weights removed (magnitude)",
        ylabel="validation accuracy (%)",
        title="Layer sensitivity, unstructured (mean over seeds)",
    )
    ax.legend(loc="upper left", bbox_to_anchor=(1.01, 1), fontsize="small")
    return save_figure(fig, path)


def plot_sensitivity_heatmap(rows: list[dict], path: str | Path) -> Path:
    """Accuracy drop when one channel group loses its weakest filters: groups × ratios."""
    table = _sensitivity(rows, "structured")
    drop = (table[[0.0]].to_numpy() - table) * 100
    fig, ax = plt.subplots(figsize=(1.0 + 0.75 * len(drop.columns), 1.2 + 0.5 * len(drop)))
    image = ax.imshow(drop.to_numpy(), cmap="Reds", vmin=0, aspect="auto")
    for (i, j), value in np.ndenumerate(drop.to_numpy()):
        ax.text(j, i, f"{value:.0f}", ha="center", va="center", fontsize="small")
    ax.set_xticks(range(len(drop.columns)), [f"{r:g}" for r in drop.columns])
    ax.set_yticks(range(len(drop)), drop.index)
    ax.set(
        xlabel="fraction of the group's channels removed (filter L1)",
        title="Accuracy drop (pp), structured (mean over seeds)",
    )
    fig.colorbar(image, ax=ax)
    return save_figure(fig, path)
