"""The comparison's figures as PNG files (matplotlib, no display): accuracy, cost, trade-off,
training curves and layer sensitivity."""

from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402

from prunebench.io import save_with  # noqa: E402


def save_figure(fig: plt.Figure, path: str | Path) -> Path:
    fig.tight_layout()
    save_with(path, lambda tmp: fig.savefig(tmp, format="png", dpi=110))
    plt.close(fig)
    return Path(path)


def plot_accuracy(summary: pd.DataFrame, path: str | Path) -> Path:
    """Test accuracy and loss per method after pruning and after fine-tuning, base as a line."""
    fig, axes = plt.subplots(1, 2, figsize=(12, 0.5 * len(summary) + 1.5), sharey=True)
    y = range(len(summary))
    panels = ((axes[0], "accuracy", 100, "test accuracy (%)"), (axes[1], "loss", 1, "test loss"))
    for ax, metric, scale, label in panels:
        for offset, phase in ((-0.2, "pruned"), (0.2, "finetuned")):
            ax.barh([i + offset for i in y], summary[f"{phase}_{metric}_mean"] * scale, height=0.4,
                    xerr=summary[f"{phase}_{metric}_std"].fillna(0) * scale,
                    label=phase.replace("finetuned", "fine-tuned"))
        ax.axvline(summary[f"base_{metric}_mean"].iloc[0] * scale, color="black", linestyle="--", label="base")
        ax.set_xlabel(label)
    axes[1].set_xscale("log")
    axes[0].set_yticks(list(y), summary["method"])
    axes[1].legend(loc="upper left", bbox_to_anchor=(1.01, 1))
    return save_figure(fig, path)


def plot_tradeoff(summary: pd.DataFrame, path: str | Path) -> Path:
    """Fine-tuned accuracy against sparsity-aware MACs: up and to the left is better."""
    fig, ax = plt.subplots(figsize=(6, 4.5))
    for r in summary.itertuples():
        ax.errorbar(r.finetuned_macs_sparse_mean, r.finetuned_accuracy_mean * 100,
                    yerr=0 if pd.isna(r.finetuned_accuracy_std) else r.finetuned_accuracy_std * 100, fmt="o", capsize=3)
        ax.annotate(r.method, (r.finetuned_macs_sparse_mean, r.finetuned_accuracy_mean * 100),
                    textcoords="offset points", xytext=(5, 5))
    first = summary.iloc[0]
    ax.plot(first.base_macs_sparse_mean, first.base_accuracy_mean * 100, "k*", markersize=12, label="base")
    ax.set_xlabel("MACs per example (sparsity-aware)")
    ax.set_ylabel("test accuracy after fine-tuning (%)")
    ax.legend()
    return save_figure(fig, path)


def plot_cost(summary: pd.DataFrame, path: str | Path) -> Path:
    """MACs, nonzero parameters and measured latency per method, relative to the base model."""
    fig, axes = plt.subplots(1, 3, figsize=(12, 0.45 * len(summary) + 1.8), sharey=True)
    for ax, metric, label in zip(axes, ("macs_sparse", "nonzeros", "latency_ms"),
                                 ("MACs (sparse)", "nonzero parameters", "latency (ms)")):
        ax.barh(summary["method"], summary[f"finetuned_{metric}_mean"])
        ax.axvline(summary[f"base_{metric}_mean"].iloc[0], color="black", linestyle="--", label="base")
        ax.set_xlabel(label)
    axes[0].legend()
    return save_figure(fig, path)


def plot_curves(curves: pd.DataFrame, by: str, path: str | Path, title: str) -> Path:
    """Validation accuracy and loss per epoch, one line per value of `by` (mean over seeds)."""
    fig, (acc, loss) = plt.subplots(1, 2, figsize=(11, 4))
    for name, group in curves.groupby(by, sort=False):
        mean = group.groupby("epoch")[["val_accuracy", "val_loss"]].mean()
        acc.plot(mean.index, mean["val_accuracy"] * 100, marker=".", label=str(name))
        loss.plot(mean.index, mean["val_loss"], marker=".", label=str(name))
    acc.set(xlabel="epoch", ylabel="validation accuracy (%)", title=title)
    loss.set(xlabel="epoch", ylabel="validation loss", title=title)
    acc.legend()
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
    ax.set(xlabel="fraction of the layer's weights removed (magnitude)", ylabel="validation accuracy (%)",
           title="Layer sensitivity, unstructured (mean over seeds)")
    ax.legend(fontsize="small")
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
    ax.set(xlabel="fraction of the group's channels removed (filter L1)",
           title="Accuracy drop (pp), structured (mean over seeds)")
    fig.colorbar(image, ax=ax)
    return save_figure(fig, path)
