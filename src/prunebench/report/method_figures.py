"""Figures of one method's run, drawn by the compare stage from the tables the prune stage wrote
(plots/methods/<key>/): the method's own diagnostics and the retention schedule. What every
method has (per-layer cost, weights) is drawn for all methods at once (`figures`)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
from matplotlib import pyplot as plt
from matplotlib.ticker import MaxNLocator

from prunebench.layouts import FIDELITY_TABLE, counts
from prunebench.report.figures import save_figure


def plot_fidelity(rows: list[dict], path: str | Path) -> Path:
    """Each Taylor order's estimate against the exact loss change, with Spearman's ρ."""
    frame = pd.DataFrame(rows)
    fig, axes = plt.subplots(1, 3, figsize=(13, 4), sharey=True)
    for ax, order in zip(axes, (1, 2, 3)):
        rho = frame[f"order{order}"].corr(frame["exact"], method="spearman")
        ax.scatter(frame[f"order{order}"], frame["exact"], s=8, alpha=0.6)
        low, high = frame[["exact", f"order{order}"]].min().min(), frame[["exact", f"order{order}"]].max().max()
        ax.plot([low, high], [low, high], "k--", linewidth=0.8)
        ax.set(xlabel=f"order-{order} Taylor estimate of ΔL", title=f"order {order}: Spearman ρ = {rho:.3f}")
    axes[0].set_ylabel("exact ΔL (channel zeroed)")
    return save_figure(fig, path)


def plot_gradient_flow(rows: list[dict], path: str | Path) -> Path:
    """Per-channel gradient norms of each layer's output (box) and their mean (line)."""
    frame = pd.DataFrame(rows)
    layers = list(dict.fromkeys(frame["layer"]))
    fig, ax = plt.subplots(figsize=(1.5 + 1.2 * len(layers), 4))
    ax.boxplot([frame.loc[frame["layer"] == layer, "gradient_norm"] for layer in layers], tick_labels=layers)
    ax.plot(
        range(1, len(layers) + 1),
        [frame.loc[frame["layer"] == layer, "gradient_norm"].mean() for layer in layers],
        "o-",
        label="mean",
    )
    ax.set(ylabel="‖∂L/∂(channel output)‖", title="Gradient flow per layer (calibration batches)")
    ax.legend()
    return save_figure(fig, path)


def plot_spectrum(rows: list[dict], path: str | Path) -> Path:
    """The top Hessian eigenvalues found (per block and seed)."""
    frame = pd.DataFrame(rows)
    fig, ax = plt.subplots(figsize=(7, 4))
    for (block, seed), group in frame.groupby(["block", "seed"], sort=False):
        ax.plot(group["index"] + 1, group["eigenvalue"], marker="o", label=f"{block}, seed {seed}")
    ax.set(
        xlabel="eigenpair (largest |λ| first)",
        ylabel="eigenvalue λ",
        yscale="symlog",
        title="Hessian spectrum (top eigenvalues)",
    )
    ax.legend(fontsize="small", ncol=2)
    return save_figure(fig, path)


def plot_eigenvector_distribution(rows: list[dict], path: str | Path) -> Path:
    """Histogram of the magnitudes of the weights' components in the dominant eigenvectors."""
    frame = pd.DataFrame(rows).groupby("log10_magnitude", sort=True)["count"].sum()
    fig, ax = plt.subplots(figsize=(7, 4))
    width = float(np.diff(frame.index).min()) if len(frame) > 1 else 1.0
    ax.bar(frame.index, frame.to_numpy(), width=width, align="edge")
    ax.set(xlabel="log10 |eigenvector component|", ylabel="count (all seeds)", title="Eigenvector component magnitudes")
    return save_figure(fig, path)


def plot_retention(rows: list[dict], path: str | Path) -> Path:
    """Units each layer keeps per iteration of the retention schedule, and the share of all units."""
    frame = pd.DataFrame(rows).set_index("iteration")
    fig, (units, share) = plt.subplots(1, 2, figsize=(11, 4))
    styles = ["-", "--", ":", "-."]  # layers of the same size have the same counts: keep each visible
    for i, layer in enumerate(counts(rows[0])):
        units.plot(
            frame.index, frame[layer], marker="os^vD"[i % 5], linestyle=styles[i % 4], fillstyle="none", label=layer
        )
    units.set(xlabel="iteration", ylabel="units kept", title="Units kept per layer: max(1, round(h·q^t))")
    for ax in (units, share):
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    units.legend(fontsize="small")
    share.plot(frame.index, frame["kept_percent"], marker="o")
    share.set(xlabel="iteration", ylabel="units kept (% of all)", title="All prunable units kept", ylim=(0, 105))
    return save_figure(fig, path)


def plot_retention_distribution(rows: list[dict], path: str | Path) -> Path:
    """How the kept units are spread over the layers at each iteration (stacked counts)."""
    frame = pd.DataFrame(rows).set_index("iteration")
    fig, ax = plt.subplots(figsize=(max(7.0, 2.5 + 0.4 * len(frame)), 4))
    bottom = np.zeros(len(frame))
    for layer in counts(rows[0]):
        ax.bar(frame.index, frame[layer], bottom=bottom, label=layer)
        bottom += frame[layer].to_numpy()
    ax.set(xlabel="iteration", ylabel="units kept", title="Distribution of the kept units across layers")
    ax.legend(fontsize="small", loc="upper left", bbox_to_anchor=(1.01, 1))
    return save_figure(fig, path)


def plot_iterations(rows: list[dict], metric: str, path: str | Path) -> Path:
    """Validation `metric` after each iteration's retraining, per seed, against the units kept;
    the deployed iteration of each seed is circled."""
    frame = pd.DataFrame(rows)
    fig, ax = plt.subplots(figsize=(7, 4.5))
    for seed, group in frame.groupby("seed"):
        (line,) = ax.plot(group["iteration"], group[f"val_{metric}"], marker=".", label=f"seed {seed}")
        chosen = group[group["deployed"]]
        ax.plot(
            chosen["iteration"], chosen[f"val_{metric}"], "o", markersize=12, fillstyle="none", color=line.get_color()
        )
    first = frame[frame["seed"] == frame["seed"].iloc[0]]
    ax.set_xticks(first["iteration"], [f"{t}\n{u}" for t, u in zip(first["iteration"], first["units_kept"])])
    ax.set(
        xlabel="iteration\nunits kept",
        ylabel=f"validation {metric}",
        title=f"Validation {metric} across iterations (circled: deployed)",
    )
    ax.legend(fontsize="small")
    return save_figure(fig, path)


def plot_criteria_fidelity(rows: list[dict], path: str | Path) -> Path:
    """Each criterion's Spearman ρ with the exact loss change against the seconds its scoring took
    (mean over seeds): filled, over all units; hollow, the median within a layer, joined by a line.
    Criteria with the same scores (l1_channel and l1_channel_global) share one point and label."""
    frame = pd.DataFrame(rows)
    if "refused" in frame:
        frame = frame[frame["refused"].isna()]
    means = frame.groupby("criterion", sort=False)[["rho_global", "rho_layer_median", "seconds"]].mean()
    same = means.round({"rho_global": 9, "rho_layer_median": 9}).groupby(
        ["rho_global", "rho_layer_median"], dropna=False
    )
    points = pd.DataFrame(
        [
            {
                "label": "\n= ".join(group.index),
                "rho_global": group["rho_global"].iloc[0],
                "rho_layer_median": group["rho_layer_median"].iloc[0],
                "seconds": means.loc[group.index, "seconds"].median(),
            }
            for _, group in same
        ]
    ).sort_values("seconds")
    fig, ax = plt.subplots(figsize=(9, 5.5))
    ax.vlines(points["seconds"], points["rho_global"], points["rho_layer_median"], colors="grey", linewidth=0.6)
    ax.scatter(points["seconds"], points["rho_global"], label="ρ over all units (global ranking)")
    ax.scatter(
        points["seconds"], points["rho_layer_median"], facecolors="none", edgecolors="C1", label="ρ per layer (median)"
    )
    for i, row in enumerate(points.itertuples()):  # labels alternate above and below: neighbours are often close
        ax.annotate(
            row.label,
            (row.seconds, row.rho_global),
            textcoords="offset points",
            xytext=(5, 6 if i % 2 else -12),
            fontsize=8,
        )
    ax.axhline(0, color="grey", linewidth=0.6)
    ax.set(
        xscale="log",
        xlabel="scoring time (s, log scale)",
        ylabel="Spearman ρ with the exact ΔL",
        title="Fidelity to the exact loss change against cost",
        ylim=(-1.05, 1.05),
    )
    ax.legend(fontsize="small", loc="lower right")
    return save_figure(fig, path)


TABLE_PLOTS = {
    "fidelity": plot_fidelity,
    FIDELITY_TABLE: plot_criteria_fidelity,
    "gradient_flow": plot_gradient_flow,
    "spectrum": plot_spectrum,
    "eigenvector_distribution": plot_eigenvector_distribution,
}
