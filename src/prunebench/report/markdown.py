"""The comparison in words and tables: mean ± std per method and point, which method wins each
budget and which are indistinguishable from it, and the Markdown report."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from prunebench.layouts import RETENTION_RULES
from prunebench.params import Params
from prunebench.report import stats
from prunebench.task import Task, of_columns

TOLERANCE = 0.01  # a target is met when what a method keeps of the budget is within 1 % of it
WINNER_PHASES = {"finetuned": "after fine-tuning", "recalibrated": "after pruning (BatchNorm recalibrated)"}


def summarize(results: pd.DataFrame) -> pd.DataFrame:
    """Mean and standard deviation over seeds of every numeric column, one row per method × point;
    `reached` when every seed met the target."""
    numeric = [c for c in results.select_dtypes("number").columns if c not in ("seed", "ratio")]
    grouped = results.groupby(["method", "ratio"], sort=False)
    summary = grouped[numeric].agg(["mean", "std"])
    summary.columns = [f"{col}_{stat}" for col, stat in summary.columns]
    labels = (
        ("unit", grouped["unit"].first()),
        ("schedule", grouped["schedule"].first()),
        ("seeds", grouped.size()),
        ("reached", grouped["reached"].all()),
    )
    for position, (column, values) in enumerate(labels):
        summary.insert(position, column, values)
    return summary.reset_index()


def standings(
    results: pd.DataFrame, predictions: dict[str, np.ndarray], phase: str, confidence: float, resamples: int
) -> pd.DataFrame:
    """Per point, the methods that reached it, best first: the task's mean metric in `phase`, the
    difference from the best with its paired-bootstrap interval, and whether it is tied with the
    best; and the seeds a difference of `Task.resolution` would take to separate at that point."""
    task = of_columns(results.columns)
    rows = []
    for ratio, at_point in results.groupby("ratio", sort=True):
        reached = at_point.groupby("method", sort=False)["reached"].all()
        seeds = sorted(at_point["seed"].unique())
        correct = {
            m: np.stack([predictions[f"{m}/{ratio:g}/{s}/{phase}"] for s in seeds]) for m in reached.index[reached]
        }
        if not correct:
            continue
        ranked = stats.rank(correct, confidence, resamples, task)
        # the comparisons that decide: among the best and the methods tied with it (at least the runner-up)
        contenders = (
            [s.method for s in ranked if s.tied] if sum(s.tied for s in ranked) > 1 else [s.method for s in ranked[:2]]
        )
        pool = {m: correct[m] for m in contenders}
        spread, resolution = stats.seed_spread(pool, task), task.resolution(ranked[0].value)
        needed = stats.seeds_needed(spread, resolution, confidence=confidence) if len(seeds) > 1 else None
        std = at_point.groupby("method")[f"{phase}_{task.metric}"].std()
        for s in ranked:
            rows.append(
                {
                    "phase": phase,
                    "ratio": ratio,
                    "target_reduction": 1 / (1 - ratio),
                    "method": s.method,
                    task.metric: s.value,
                    f"{task.metric}_std": std[s.method],
                    "difference": s.difference,
                    "low": s.low,
                    "high": s.high,
                    "tied": s.tied,
                    task.seeds_column: needed,
                }
            )
    return pd.DataFrame(rows)


def recalibration_losses(
    results: pd.DataFrame, predictions: dict[str, np.ndarray], confidence: float, resamples: int
) -> pd.DataFrame:
    """Per method and point, where the recalibrated model is worse than the pruned one by more than
    the paired-bootstrap interval (seeds and test examples): the two values and the interval of the
    difference. Re-estimating BatchNorm statistics should not lower the metric; where it does, the
    recalibration batches are unlike the test data (e.g. augmented far from the evaluation
    transform), or too few."""
    task = of_columns(results.columns)
    rows = []
    for (method, ratio), at in results.groupby(["method", "ratio"], sort=False):
        seeds = sorted(at["seed"].unique())
        phases = {
            phase: np.stack([predictions[f"{method}/{ratio:g}/{s}/{phase}"] for s in seeds])
            for phase in ("pruned", "recalibrated")
        }
        best, other = stats.rank(phases, confidence, resamples, task)
        if best.method == "pruned" and not other.tied:
            rows.append(
                {
                    "method": method,
                    "ratio": ratio,
                    "pruned": best.value,
                    "recalibrated": other.value,
                    "difference": other.difference,
                    "low": other.low,
                    "high": other.high,
                }
            )
    return pd.DataFrame(rows)


def standing(row: Any) -> str:
    """A row of the winners table against the best of its point: "best" (the best itself: no
    interval), "tied" or "worse"."""
    return "best" if row.difference == 0 and row.low == row.high == 0 else "tied" if row.tied else "worse"


def _pm(mean: float, std: float, scale: float = 100.0, digits: int = 1) -> str:
    std = 0.0 if pd.isna(std) else std
    return f"{mean * scale:.{digits}f} ± {std * scale:.{digits}f}"


def _pm_metric(task: Task, mean: float, std: float) -> str:
    """A metric's mean ± std as the report shows it: accuracy in % to 0.1, perplexity to 0.01."""
    return _pm(mean, std, task.scale, 1 if task.percent else 2)


def markdown(frame: pd.DataFrame) -> str:
    """A table as Markdown, its cells as given (no re-formatting of numbers)."""
    return frame.to_markdown(index=False, disable_numparse=True)


def winner_table(winners: pd.DataFrame, budget: str, phase: str = "finetuned") -> str:
    """Per budget: the best method, the methods statistically tied with it, and the seeds a
    difference of the task's resolution (1 pp of accuracy, 1 % of perplexity) would need."""
    task, rows = of_columns(winners.columns), []
    metric = task.metric
    for ratio, group in winners[winners["phase"] == phase].groupby("ratio", sort=True):
        best = group.iloc[0]
        tied = [f"{r.method} ({task.shown(r[metric])})" for _, r in group.iloc[1:].iterrows() if r.tied]
        needed = group[task.seeds_column].iloc[0]
        rows.append(
            [
                f"{budget} {best.target_reduction:g}× (ratio {ratio:g})",
                best.method,
                _pm_metric(task, best[metric], best[f"{metric}_std"]),
                ", ".join(tied) or "none",
                f"{len(group) - 1 - len(tied)} of {len(group) - 1}",
                "–" if pd.isna(needed) else f"{needed:.0f}",
            ]
        )
    return markdown(
        pd.DataFrame(
            rows,
            columns=[
                "budget",
                "best",
                f"{metric} {task.unit}".strip(),
                f"tied with the best ({metric} {task.unit})".replace(" )", ")"),
                "worse than the best",
                f"seeds for {task.resolution_label}",
            ],
        )
    )


def target_note(reached: bool, reduction: float, target: float) -> str:
    """How a method met a target reduction: within 1 %, past it by its granularity, or not at all."""
    if not reached:
        return f"out of reach: {reduction:.2f}×"
    return "met" if reduction <= target / (1 - TOLERANCE) else f"passed: {reduction:.2f}×"


def point_table(summary: pd.DataFrame, winners: pd.DataFrame, ratio: float, batchnorm: bool = True) -> str:
    """Every method at one point: how it met the target, its metric (accuracy or perplexity) in
    each phase and its cost; without BatchNorm, nothing was recalibrated and the column says so."""
    at = summary[summary["ratio"] == ratio]
    task = of_columns(c.removesuffix("_mean") for c in summary.columns)
    m, unit = task.metric, f" {task.unit}" if task.unit else ""
    pm = lambda r, column: _pm_metric(task, r[f"{column}_mean"], r[f"{column}_std"])  # noqa: E731
    verdict = {
        r.method: standing(r)
        for r in winners[(winners["phase"] == "finetuned") & (winners["ratio"] == ratio)].itertuples()
    }
    rows = [
        [
            r.method,
            r.unit,
            target_note(r.reached, r.reduction_mean, 1 / (1 - ratio)),
            f"{r.macs_reduction_mean:.2f}×",
            f"{r.params_reduction_mean:.2f}×",
            pm(row, f"pruned_{m}"),
            pm(row, f"recalibrated_{m}") if batchnorm else "– (no BatchNorm)",
            pm(row, f"finetuned_{m}"),
            pm(row, f"{m}_change"),
            f"{r.latency_ms_mean:.3f}",
            f"{r.speedup_mean:.2f}×",
            f"{r.ort_ms_mean:.3f}",
            f"{r.ort_speedup_mean:.2f}×",
            f"{r.ort_b1_speedup_mean:.2f}×",
            verdict.get(r.method, "–"),
        ]
        for (_, row), r in zip(at.iterrows(), at.itertuples())
    ]
    return markdown(
        pd.DataFrame(
            rows,
            columns=[
                "method",
                "unit",
                "target",
                "MACs ↓",
                "params ↓",
                f"{task.short} pruned{unit}",
                f"{task.short} recalibrated{unit}",
                f"{task.short} fine-tuned{unit}",
                f"Δ vs base ({task.difference_unit})",
                "PyTorch ms",
                "speed-up",
                "ORT ms",
                "ORT speed-up",
                "ORT batch 1",
                "vs best",
            ],
        )
    )


def cost_table(summary: pd.DataFrame) -> str:
    """One row per method, one column per point: seconds choosing and cutting, and the retraining
    while pruning (epochs, seconds) where there was any."""
    cells: dict[str, dict[str, str]] = {}
    for r in summary.itertuples():
        row = summary.loc[r.Index]
        cell = f"{row['cost.pruning_seconds_mean']:.2f} s"
        if row["cost.retrain_epochs_mean"] > 0:
            cell += f" + {row['cost.retrain_epochs_mean']:.1f} epochs ({row['cost.retrain_seconds_mean']:.1f} s)"
        cells.setdefault(r.method, {"method": r.method, "schedule": r.schedule})[f"{1 / (1 - r.ratio):g}×"] = cell
    return markdown(pd.DataFrame(list(cells.values())).fillna("–"))


def deployment_section(summary: pd.DataFrame, results: pd.DataFrame, batch: int) -> list[str]:
    """What each method's MACs reduction buys in ONNX Runtime (the deploy stage's figures), and
    every model whose export failed or disagreed with PyTorch, one line each."""
    share = summary.assign(
        turned=np.log(summary["ort_speedup_mean"].clip(lower=1e-9)) / np.log(summary["macs_reduction_mean"])
    )
    rows = []
    for method, at in share.groupby("method", sort=False):
        dense = at["unit"].iloc[0] == "weight"
        cells = {
            f"{1 / (1 - r.ratio):g}×": f"{r.ort_speedup_mean:.2f}× of {r.macs_reduction_mean:.2f}×"
            for r in at.itertuples()
        }
        verdict = (
            "none: masks keep dense kernels, which a dense runtime runs at the base model's speed"
            if dense
            else f"{at['turned'].mean():.0%} (mean over points)"
        )
        rows.append({"method": method, **cells, "MACs reduction turned into speed-up": verdict})
    problems = results[results["onnx_check"] != "ok"]
    return [
        "## Deployment: ONNX Runtime",
        "",
        "Every fine-tuned model exported to ONNX (`models/onnx/`) and run in ONNX Runtime on a test batch: the "
        f"largest logit difference from PyTorch was {results['onnx_max_difference'].max():.2g}, and every model's "
        f"argmax agreed on at least {results['onnx_argmax_agreement'].min():.1%} of the examples. Speed-up in ONNX "
        "Runtime (CPU, "
        f"one thread, batch {batch}) against the MACs reduction, each point's models timed side by side with the "
        "base model; *turned into speed-up*: log(speed-up) / log(MACs reduction), 100 % when the runtime gains all "
        "the MACs promise, below 0 when the pruned model runs slower than the base (channel counts that the "
        "runtime's kernels handle badly: `round_to` keeps multiples of 8 or 16).",
        "",
        markdown(pd.DataFrame(rows).fillna("–")),
        "",
        *(
            ["Models that failed the check:", ""]
            + [f"- {r.method} ratio {r.ratio:g} seed {r.seed}: {r.onnx_check}" for r in problems.itertuples()]
            + [""]
            if len(problems)
            else []
        ),
    ]


WAYS_TIMED = {  # a timing column, its speed-up over the base model, the batch it ran at (None: the latency batch)
    "PyTorch, batch 1": ("latency_b1_ms", "b1_speedup", 1),
    "PyTorch, batch {b}": ("latency_ms", "speedup", None),
    "ONNX Runtime, batch 1": ("ort_b1_ms", "ort_b1_speedup", 1),
    "ONNX Runtime, batch {b}": ("ort_ms", "ort_speedup", None),
}


def prefill_section(results: pd.DataFrame, batch: int, length: int, task: Task) -> list[str]:
    """A language model's prefill throughput, tokens per second, of each point's first-seed models
    and the base model timed beside them (its figure from the speed-ups): what the LLM papers
    report next to perplexity. Nothing for a classifier."""
    if task.macs_per != "token":
        return []
    timed = results.dropna(subset=["latency_ms"])
    rows = []
    for ratio, at in timed.groupby("ratio", sort=True):
        point = f"{1 / (1 - ratio):g}×"
        base, methods = {"point": point, "method": "base model"}, []
        for label, (column, speedup, n) in WAYS_TIMED.items():
            tokens = (n or batch) * length / (at[column] / 1000)
            base[label.format(b=batch)] = f"{(tokens / at[speedup]).median():,.0f}"
            methods.append(tokens)
        rows.append(base)
        for i, r in enumerate(at.itertuples()):
            cells = {label.format(b=batch): f"{tokens.iloc[i]:,.0f}" for label, tokens in zip(WAYS_TIMED, methods)}
            rows.append({"point": point, "method": r.method, **cells})
    return [
        "## Prefill throughput",
        "",
        f"Tokens per second of a prefill (sequences of {length} tokens, one CPU thread), each point's first-seed "
        "models timed side by side with the base model (`deploy` stage): PyTorch eager and ONNX Runtime, at batch 1 "
        f"and at batch {batch} (`measure.latency_batch`).",
        "",
        markdown(pd.DataFrame(rows)),
        "",
    ]


def model_section(check: dict[str, Any], refused: dict[str, str]) -> list[str]:
    """What the model allowed (the check stage's findings, and methods that refused it while
    pruning): frozen channel groups, whose channels every channel method keeps and whose MACs
    count as kept, and the methods without results. Nothing when everything pruned."""
    if not check["frozen"] and not refused:
        return []
    lines = ["## What this model allows", ""]
    if check["frozen"]:
        frozen = len(check["frozen"])
        lines += [
            f"{frozen} of the model's channel groups {'is' if frozen == 1 else 'are'} frozen: torch-pruning's "
            "dependency graph cannot cut them consistently, so channel methods keep every channel of these layers "
            f"(their MACs count as kept) and prune the other {check['groups']} groups; unstructured methods prune "
            "them as usual (every layer: `checks/model.json`).",
            "",
            *[f"- frozen: {group['label']}: {group['reason']}" for group in check["frozen"]],
            "",
        ]
    if refused:
        lines += [
            "These methods refused the model and have no results; the others ran:",
            "",
            *[f"- **{key}**: {why}" for key, why in refused.items()],
            "",
        ]
    return lines


@dataclass
class Report:
    """What the report reads: params, the tables of the compare stage, its figures, and what the
    check stage found of the model (`checks/model.json`)."""

    params: Params
    results: pd.DataFrame
    summary: pd.DataFrame
    winners: pd.DataFrame
    figures: list[Path]
    layer_ratios: pd.DataFrame
    diagnostics: dict[str, dict[str, float]]
    deployed: pd.DataFrame
    env: dict[str, Any]
    check: dict[str, Any]
    refused: dict[str, str]
    fidelity: pd.DataFrame = field(default_factory=pd.DataFrame)  # the oracle's rows (`layouts.FIDELITY_COLUMNS`)
    recalibration: pd.DataFrame = field(default_factory=pd.DataFrame)  # `recalibration_losses`

    @property
    def task(self) -> Task:
        return of_columns(self.results.columns)

    @property
    def batchnorm(self) -> bool:
        """Whether the model has BatchNorm statistics that recalibration re-estimates (files of
        the check stage before this was recorded: it had)."""
        return bool(self.check.get("batchnorm", True))


def markdown_report(report: Report) -> str:
    """The report, section by section."""
    sections = (
        _introduction,
        lambda r: model_section(r.check, r.refused),
        _which_method,
        _costs,
        _points,
        _out_of_reach,
        _reading,
        lambda r: deployment_section(r.summary, r.results, r.params.measure.latency_batch),
        lambda r: prefill_section(r.results, r.params.measure.latency_batch, r.params.data.sequence_length, r.task),
        _per_layer,
        _diagnostics,
        _fidelity,
        _retention,
        _environment,
        _pictures,
    )
    return "\n".join(line for section in sections for line in section(report)) + "\n"


def _introduction(r: Report) -> list[str]:
    params, results, metric = r.params, r.results, f"base_{r.task.metric}"
    base = results.drop_duplicates("seed")
    recalibration = (
        f"after pruning, BatchNorm statistics are re-estimated on {params.recalibrate} training batches "
        "(no gradient step)"
        if r.batchnorm
        else "the model has no BatchNorm, so there are no statistics to re-estimate after pruning (the "
        "*recalibrated* figures are the pruned ones)"
    )
    return [
        "# prunebench report",
        "",
        f"Data set `{params.data.name}`, model `{params.model.name}`, seeds {', '.join(map(str, params.seeds))}; "
        f"test split; mean ± std over seeds. Budget: `{params.budget}`; every method searched its own fraction of "
        f"units to remove {', '.join(f'{x:g}' for x in sorted(results['ratio'].unique()))} of it. Base model: "
        f"{_pm_metric(r.task, base[metric].mean(), base[metric].std())}{' ' + r.task.unit if r.task.unit else ''} "
        f"test {r.task.metric} "
        f"({r.task.direction}), "
        f"{base['base_macs_sparse'].mean():,.0f} MACs per {r.task.macs_per}"
        f"{f' (sequences of {params.data.sequence_length} tokens)' if r.task.macs_per == 'token' else ''}, "
        f"{base['base_nonzeros'].mean():,.0f} {r.task.params_counted}.",
        "",
        f"Protocol: {recalibration}; then every model is fine-tuned for {params.finetune.epochs} epochs "
        "(`finetune`), the same budget for every method and point.",
        "",
    ]


def _which_method(r: Report) -> list[str]:
    stats_cfg, budget, task = r.params.stats, r.params.budget, r.task
    examples = "test examples" if task.percent else "test sequences (each one's mean per-token loss)"
    size = "1 pp" if task.percent else "1 % of the best perplexity"
    return [
        "## Which method, at which budget",
        "",
        f"The best mean test {task.metric} after fine-tuning at each point, and the methods indistinguishable from "
        f"it: a paired bootstrap over seeds and {examples} ({stats_cfg.resamples} resamples) whose "
        f"{stats_cfg.confidence:.0%} interval for the difference contains 0. *Seeds for {task.resolution_label}*: "
        f"how many seeds a paired comparison needs to separate a difference of {size} (two-sided 5 %, power 80 %), "
        "from the seed-to-seed spread of the paired differences at that point. Methods that missed the target are "
        "left out.",
        "",
        winner_table(r.winners, budget),
        "",
        "Before fine-tuning (BatchNorm recalibrated):" if r.batchnorm else "Before fine-tuning:",
        "",
        winner_table(r.winners, budget, "recalibrated"),
        "",
        *_recalibration_warning(r),
    ]


def _recalibration_warning(r: Report) -> list[str]:
    if not len(r.recalibration):  # none found, or no BatchNorm to recalibrate (the compare stage skips it)
        return []
    scale, unit = (100, " pp") if r.task.percent else (1, "")
    listed = "; ".join(
        f"`{x.method}` at {1 / (1 - x.ratio):g}×: {x.pruned * scale:.1f} → {x.recalibrated * scale:.1f}"
        f" (worse by {x.difference * scale:.2f}{unit}, interval [{x.low * scale:.2f}, {x.high * scale:.2f}])"
        for x in r.recalibration.itertuples()
    )
    return [
        f"**Recalibration lowered the test {r.task.metric}** beyond the paired interval: {listed}. Re-estimating "
        "BatchNorm statistics should not hurt a model that works: check that the training batches it uses look like "
        "the test images (`data.augment`: the statistics come from augmented training batches) and that "
        f"`recalibrate` ({r.params.recalibrate} batches) is enough; a model near chance before recalibration can "
        "fall either way. The recalibrated models are what fine-tuning starts from.",
        "",
    ]


def _costs(r: Report) -> list[str]:
    return [
        "## What each method costs",
        "",
        "The method's own work per point and seed (mean over seeds), besides the fine-tuning every method gets: "
        "seconds choosing and cutting (scoring, the budget search, the removal; a one-shot method scores once per "
        "seed, and every point counts that scoring), and the retraining while pruning (steps > 1; the retention "
        "schedule up to the point's iteration) in epochs and seconds. Seconds are wall-clock on the stage's "
        "device, with `workers` processes side by side on a shared machine: compare orders of magnitude, not small "
        "ratios (the same scoring timed 1.35× apart in one default run); epochs and products (`hvps` in the "
        f"diagnostics) are exact. `dvc plots show`: {r.task.metric} against these seconds.",
        "",
        cost_table(r.summary),
        "",
    ]


def _points(r: Report) -> list[str]:
    lines = []
    for ratio in sorted(r.results["ratio"].unique()):
        table = point_table(r.summary, r.winners, ratio, r.batchnorm)
        lines += [f"## {r.params.budget} {1 / (1 - ratio):g}× (ratio {ratio:g})", "", table, ""]
    return lines


def _out_of_reach(r: Report) -> list[str]:
    missed = r.summary[~r.summary["reached"]]
    if not len(missed):
        return []
    return [
        "## Targets out of reach",
        "",
        "These methods cannot remove that much of the budget (their granularity, `min_channels`, `max_ratio`, "
        "or layers they never prune); each row shows the furthest the method goes.",
        "",
        markdown(
            pd.DataFrame(
                [
                    [x.method, f"{x.ratio:g}", f"{1 / (1 - x.ratio):g}×", f"{x.reduction_mean:.2f}×"]
                    for x in missed.itertuples()
                ],
                columns=["method", "ratio", "target", "achieved"],
            )
        ),
        "",
    ]


def _reading(r: Report) -> list[str]:
    measure = r.params.measure
    recalibrated = (
        "*recalibrated* after re-estimating the BatchNorm statistics"
        if r.batchnorm
        else "*recalibrated* the same (the model has no BatchNorm)"
    )
    return [
        f"*Pruned* is the test {r.task.metric} right after pruning, {recalibrated}, *fine-tuned* after "
        "fine-tuning. "
        "*MACs* count only nonzero weights: unstructured methods "
        "keep dense kernels, so their measured latency does not drop; structured methods physically shrink the "
        "model. Latency (the deploy stage, on the CPU, one thread): at each point the first seed's model of every "
        "method and the base model are timed in one process, in "
        f"{measure.rounds} rounds that take each model in turn ({measure.min_run_time:g} s of passes "
        f"per model and round; the median over rounds), PyTorch eager and ONNX Runtime at batch "
        f"{measure.latency_batch} (the columns) and at batch 1, so equal architectures read equal; figures vary "
        "between runs. "
        f"Methods on the retention schedule retrain after every iteration, so their {r.task.metric} after pruning "
        "includes that retraining.",
        "",
    ]


def _per_layer(r: Report) -> list[str]:
    if not len(r.layer_ratios):
        return []
    ratio = r.layer_ratios["ratio"].iloc[0]
    table = r.layer_ratios.pivot_table(index="method", columns="layer", values="removed", sort=False)
    return [
        f"## Fraction removed per layer at ratio {ratio:g}",
        "",
        "Achieved, mean over seeds; for channel methods, the fraction of the layer's weights that physical "
        "removal took away (output and input channels).",
        "",
        markdown(table.map(lambda v: f"{v:.2f}").reset_index()),
        "",
    ]


def _diagnostics(r: Report) -> list[str]:
    if not r.diagnostics:
        return []
    return [
        "## Method diagnostics",
        "",
        "Mean over seeds and points. `taylor_fidelity.orderK`: Spearman rank correlation between the "
        "order-K Taylor estimate of each channel's loss change and the exact change (the channel zeroed), "
        "on a sample of channels.",
        "",
        markdown(
            pd.DataFrame(
                [(m, k, f"{v:.3f}") for m, values in r.diagnostics.items() for k, v in values.items()],
                columns=["method", "diagnostic", "value"],
            )
        ),
        "",
    ]


def _fidelity(r: Report) -> list[str]:
    """Per oracle method: each criterion's Spearman ρ with the exact loss change and its cost."""
    if not len(r.fidelity):
        return []
    lines = [
        "## How close each criterion comes to the exact loss change, and at what cost",
        "",
        "The `oracle` removes each unit in turn and measures the loss change ΔL on its calibration batches; "
        "every channel criterion scored the same model on the same batches (default knobs). ρ over all units: "
        "Spearman's rank correlation of its scores with ΔL across every layer (the ranking a global method "
        "uses); ρ per layer: the median over channel groups of ρ within a group (what a per-layer method uses). "
        "Mean ± std over seeds (and points, where the oracle scored more than once); seconds of scoring on "
        "this machine.",
        "",
    ]
    for method, rows in r.fidelity.groupby("method", sort=False):
        scored = rows[rows["refused"].isna()] if "refused" in rows else rows
        table = scored.groupby("criterion", sort=False).agg(
            rho=("rho_global", "mean"),
            rho_std=("rho_global", "std"),
            layer=("rho_layer_median", "mean"),
            seconds=("seconds", "median"),
        )
        table = table.sort_values("rho", ascending=False)
        shown = pd.DataFrame(
            {
                "criterion": table.index,
                "ρ over all units": [_signed(m, s) for m, s in zip(table["rho"], table["rho_std"])],
                "ρ per layer (median)": table["layer"].map(lambda v: "–" if v != v else f"{v:+.3f}"),
                "scoring (s)": table["seconds"].map(lambda v: f"{v:.3g}"),
            }
        )
        lines += [f"`{method}`:", "", markdown(shown), ""]
        if "refused" in rows:
            refused = rows[rows["refused"].notna()].drop_duplicates("criterion")
            lines += [
                f"- `{c}` did not score this model: {why}" for c, why in zip(refused["criterion"], refused["refused"])
            ]
            lines += [""] if len(refused) else []
    return lines


def _signed(mean: float, std: float) -> str:
    if mean != mean:
        return "– (constant scores)"
    return f"{mean:+.3f}" + (f" ± {std:.3f}" if std == std else "")


def _retention(r: Report) -> list[str]:
    deployed, task = r.deployed, r.task
    if not len(deployed):
        return []
    rule = RETENTION_RULES[task.higher_is_better].format(tolerance=f"{r.params.schedule.retention.tolerance:g}")
    if task.percent:
        shown = deployed.drop(columns="val_loss").assign(
            val_accuracy=deployed["val_accuracy"].map(lambda v: f"{v:.4f}")
        )
    else:  # the validation perplexity in the accuracy's place
        shown = deployed.drop(columns="val_loss").assign(
            val_accuracy=np.exp(deployed["val_loss"]).map(lambda v: f"{v:.3f}")
        )
        shown = shown.rename(columns={"val_accuracy": "val_perplexity"})
    return [
        "## Retention schedule: the deployed models",
        "",
        f"Chosen per seed among the iterations, on the validation split (never the test split), by the rule *{rule}*"
        "; every iteration is in `plots/methods/<method>/iterations.csv`.",
        "",
        markdown(shown.assign(params=shown["params"].map(lambda v: f"{v:,}"))),
        "",
    ]


def _environment(r: Report) -> list[str]:
    return [
        "## Environment",
        "",
        "Where the base models were trained (`metrics/base.json`): "
        + ", ".join(f"{k} `{v}`" for k, v in r.env.items())
        + ". The same params, seeds, code, software and "
        "CPU give bit-identical figures (latency aside); another CPU may choose other vectorised kernels, "
        "whose sums round differently, and then agrees within seed noise, not to the bit.",
        "",
    ]


def _pictures(r: Report) -> list[str]:
    return [
        f"![{p.stem if p.parent.parent.name != 'methods' else p.parent.name + ' ' + p.stem}]({Path('..') / p})"
        for p in r.figures
    ]


def diagnostics_means(rows: pd.DataFrame) -> dict[str, float]:
    """A method's diagnostic columns ("diagnostic.<name>") as name → mean over seeds and points."""
    return {
        c.removeprefix("diagnostic."): float(rows[c].mean())
        for c in rows.columns
        if c.startswith("diagnostic.") and rows[c].notna().any()
    }
