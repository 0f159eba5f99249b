"""Tables and plots of the comparison: per-seed results → mean ± std per method → Markdown + PNG."""

from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402

from prunebench.io import save_with  # noqa: E402
from prunebench.tracking import flatten  # noqa: E402

PHASES = ("base", "pruned", "finetuned")


def result_rows(method: str, base: dict, pruned: dict, finetuned: dict) -> list[dict]:
    """One row per seed of one method: the three models' metrics side by side, and the ratios
    users compare on (all against the same seed's base model)."""
    rows = []
    for seed in pruned["seeds"]:
        row = {"method": method, "implementation": pruned["method"], "unit": pruned["unit"],
               "ratio": pruned["ratio"], "seed": int(seed)}
        for phase, metrics in zip(PHASES, (base, pruned, finetuned)):
            row |= {f"{phase}_{k}": v for k, v in metrics["seeds"][seed].items()}
        row["macs_reduction"] = row["base_macs_sparse"] / row["finetuned_macs_sparse"]
        row["params_reduction"] = row["base_nonzeros"] / row["finetuned_nonzeros"]
        row["speedup"] = row["base_latency_ms"] / row["finetuned_latency_ms"]
        row["accuracy_change"] = row["finetuned_accuracy"] - row["base_accuracy"]
        rows.append(row)
    return rows


def summarize(results: pd.DataFrame) -> pd.DataFrame:
    """Mean and standard deviation over seeds of every numeric column, one row per method."""
    numeric = results.drop(columns=["seed"]).select_dtypes("number").columns
    grouped = results.groupby("method", sort=False)
    summary = grouped[list(numeric)].agg(["mean", "std"])
    summary.columns = [f"{col}_{stat}" for col, stat in summary.columns]
    summary.insert(0, "unit", grouped["unit"].first())
    summary.insert(1, "seeds", grouped.size())
    return summary.reset_index()


def _pm(mean: float, std: float, scale: float = 1.0, digits: int = 1) -> str:
    std = 0.0 if pd.isna(std) else std
    return f"{mean * scale:.{digits}f} ± {std * scale:.{digits}f}"


def table(summary: pd.DataFrame) -> str:
    """The comparison as a Markdown table (accuracy in %, mean ± std over seeds)."""
    first = summary.iloc[0]
    head = ("| method | unit | sparsity | acc. pruned % | acc. fine-tuned % | Δ vs base (pp) "
            "| MACs (sparse) | MACs ↓ | nonzero params | latency ms | speed-up |")
    lines = [head, "|" + "---|" * (head.count("|") - 1)]
    lines.append(f"| base model | – | 0 | – | {_pm(first.base_accuracy_mean, first.base_accuracy_std, 100)} | – "
                 f"| {first.base_macs_sparse_mean:,.0f} | 1.00× | {first.base_nonzeros_mean:,.0f} "
                 f"| {first.base_latency_ms_mean:.3f} | 1.00× |")
    for r in summary.itertuples():
        lines.append(
            f"| {r.method} | {r.unit} | {r.pruned_sparsity_mean:.3f} "
            f"| {_pm(r.pruned_accuracy_mean, r.pruned_accuracy_std, 100)} "
            f"| {_pm(r.finetuned_accuracy_mean, r.finetuned_accuracy_std, 100)} "
            f"| {_pm(r.accuracy_change_mean, r.accuracy_change_std, 100)} "
            f"| {r.finetuned_macs_sparse_mean:,.0f} | {r.macs_reduction_mean:.2f}× | {r.finetuned_nonzeros_mean:,.0f} "
            f"| {r.finetuned_latency_ms_mean:.3f} | {r.speedup_mean:.2f}× |")
    return "\n".join(lines)


def markdown_report(summary: pd.DataFrame, params: dict, plots: list[Path],
                    layer_ratios: dict[str, dict[str, dict[str, float]]],
                    diagnostics: dict[str, dict[str, float]], deployed: dict[str, dict[str, dict]]) -> str:
    seeds = ", ".join(map(str, params["seeds"]))
    text = [
        "# prunebench report", "",
        f"Data set `{params['data']['name']}`, model `{params['model']['name']}`, ratio {params['ratio']}, "
        f"seeds {seeds}; test split; mean ± std over seeds.", "",
        table(summary), "",
        "*Sparsity* is the achieved fraction of the base model's parameters that are zero or removed. "
        "*MACs (sparse)* count only nonzero weights: for unstructured methods the dense kernels "
        "still do all the work, so their measured latency does not drop; structured methods "
        "physically shrink the model. Latency is measured on "
        f"{params['device']} (batch {params['measure']['latency_batch']}, median of "
        f"{params['measure']['repeats']} runs) and varies between runs.", "",
    ]
    text += ["## Fraction removed per layer", "",
             "Achieved, mean over seeds; for channel methods, the fraction of the layer's weights that "
             "physical removal took away (output and input channels).", "",
             layer_ratio_table(layer_ratios), ""]
    if diagnostics:
        text += ["## Method diagnostics", "",
                 "Mean over seeds. `taylor_fidelity.orderK`: Spearman rank correlation between the "
                 "order-K Taylor estimate of each channel's loss change and the exact change "
                 "(the channel zeroed), on a sample of channels.", "",
                 "| method | diagnostic | value |", "|---|---|---|"]
        text += [f"| {m} | {k} | {v:.3f} |" for m, values in diagnostics.items() for k, v in values.items()]
        text += [""]
    if deployed:
        text += ["## Retention schedule: the deployed models", "",
                 "Chosen per seed among the iterations, on the validation split (never the test split); "
                 "the per-iteration results are in `plots/methods/<method>/iterations.csv`. These methods "
                 "retrain after every iteration (`schedule.retrain`), so their accuracy after pruning "
                 "includes that retraining, unlike a one-shot method's; the table above compares the "
                 "last iteration, where the removed fraction of units first reaches `ratio`.", "",
                 "| method | seed | iteration | validation accuracy | parameters | units kept | model | rule |",
                 "|---|---|---|---|---|---|---|---|"]
        text += [f"| {m} | {seed} | {c['iteration']} | {c['val_accuracy']:.4f} | {c['params']:,} | {c['units_kept']} "
                 f"| `{c['model']}` | {c['rule']} |" for m, seeds in deployed.items() for seed, c in seeds.items()]
        text += [""]
    text += [f"![{p.parent.name + ' ' + p.stem if p.parent.parent.name == 'methods' else p.stem}]({Path('..') / p})"
             for p in plots]
    return "\n".join(text) + "\n"


def save_figure(fig: plt.Figure, path: str | Path) -> Path:
    fig.tight_layout()
    save_with(path, lambda tmp: fig.savefig(tmp, format="png", dpi=110))
    plt.close(fig)
    return Path(path)


def plot_accuracy(summary: pd.DataFrame, path: str | Path) -> Path:
    """Test accuracy and loss per method after pruning and after fine-tuning, base as a line."""
    fig, axes = plt.subplots(1, 2, figsize=(12, 0.5 * len(summary) + 1.5), sharey=True)
    y = range(len(summary))
    for ax, metric, scale, label in ((axes[0], "accuracy", 100, "test accuracy (%)"), (axes[1], "loss", 1, "test loss")):
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


def diagnostics_means(diagnostics: dict[str, dict]) -> dict[str, float]:
    """A method's diagnostics (per seed, nested) as dotted names → mean over seeds."""
    per_seed = [flatten(d) for d in diagnostics.values()]
    return {k: float(np.mean([d[k] for d in per_seed])) for k in (per_seed[0] if per_seed else {})}


def layer_ratio_table(ratios: dict[str, dict[str, dict[str, float]]]) -> str:
    """Markdown: achieved fraction removed per layer (columns) for each method (rows), mean over seeds."""
    frame = pd.DataFrame({method: pd.DataFrame(per_seed).mean(axis=1) for method, per_seed in ratios.items()}).T
    lines = ["| method | " + " | ".join(frame.columns) + " |", "|---|" + "---|" * len(frame.columns)]
    lines += [f"| {method} | " + " | ".join(f"{v:.2f}" for v in row) + " |" for method, row in frame.iterrows()]
    return "\n".join(lines)
