"""The comparison in words and tables: mean ± std per method, and the Markdown report."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from prunebench.results import flatten


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
    rows = [["base model", "–", "0", "–", _pm(first.base_accuracy_mean, first.base_accuracy_std, 100), "–",
             f"{first.base_macs_sparse_mean:,.0f}", "1.00×", f"{first.base_nonzeros_mean:,.0f}",
             f"{first.base_latency_ms_mean:.3f}", "1.00×"]]
    rows += [[r.method, r.unit, f"{r.pruned_sparsity_mean:.3f}",
              _pm(r.pruned_accuracy_mean, r.pruned_accuracy_std, 100),
              _pm(r.finetuned_accuracy_mean, r.finetuned_accuracy_std, 100),
              _pm(r.accuracy_change_mean, r.accuracy_change_std, 100), f"{r.finetuned_macs_sparse_mean:,.0f}",
              f"{r.macs_reduction_mean:.2f}×", f"{r.finetuned_nonzeros_mean:,.0f}",
              f"{r.finetuned_latency_ms_mean:.3f}", f"{r.speedup_mean:.2f}×"] for r in summary.itertuples()]
    columns = ["method", "unit", "sparsity", "acc. pruned %", "acc. fine-tuned %", "Δ vs base (pp)", "MACs (sparse)",
               "MACs ↓", "nonzero params", "latency ms", "speed-up"]
    return markdown(pd.DataFrame(rows, columns=columns))


def markdown(frame: pd.DataFrame) -> str:
    """A table as Markdown, its cells as given (no re-formatting of numbers)."""
    return frame.to_markdown(index=False, disable_numparse=True)


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
        f"{params['device']} (batch {params['measure']['latency_batch']}, the median pass of at least "
        f"{params['measure']['min_run_time']:g} s of passes) and varies between runs.", "",
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
                 markdown(pd.DataFrame([(m, k, f"{v:.3f}") for m, values in diagnostics.items()
                                        for k, v in values.items()], columns=["method", "diagnostic", "value"])), ""]
    if deployed:
        text += ["## Retention schedule: the deployed models", "",
                 "Chosen per seed among the iterations, on the validation split (never the test split); "
                 "the per-iteration results are in `plots/methods/<method>/iterations.csv`. These methods "
                 "retrain after every iteration (`schedule.retrain`), so their accuracy after pruning "
                 "includes that retraining, unlike a one-shot method's; the table above compares the "
                 "last iteration, where the removed fraction of units first reaches `ratio`.", "",
                 markdown(pd.DataFrame([(m, seed, c["iteration"], f"{c['val_accuracy']:.4f}", f"{c['params']:,}",
                                         c["units_kept"], f"`{c['model']}`", c["rule"])
                                        for m, seeds in deployed.items() for seed, c in seeds.items()],
                                       columns=["method", "seed", "iteration", "validation accuracy", "parameters",
                                                "units kept", "model", "rule"])), ""]
    text += [f"![{p.parent.name + ' ' + p.stem if p.parent.parent.name == 'methods' else p.stem}]({Path('..') / p})"
             for p in plots]
    return "\n".join(text) + "\n"


def diagnostics_means(diagnostics: dict[str, dict]) -> dict[str, float]:
    """A method's diagnostics (per seed, nested) as dotted names → mean over seeds."""
    per_seed = [flatten(d) for d in diagnostics.values()]
    return {k: float(np.mean([d[k] for d in per_seed])) for k in (per_seed[0] if per_seed else {})}


def layer_ratio_table(ratios: dict[str, dict[str, dict[str, float]]]) -> str:
    """Markdown: achieved fraction removed per layer (columns) for each method (rows), mean over seeds."""
    frame = pd.DataFrame({method: pd.DataFrame(per_seed).mean(axis=1) for method, per_seed in ratios.items()}).T
    return frame.rename_axis("method").map(lambda v: f"{v:.2f}").reset_index().pipe(markdown)
