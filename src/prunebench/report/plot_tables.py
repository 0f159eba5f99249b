"""The data behind the views `dvc plots` draws from plots/compare/ that need more than the
results: each method's standing at each point (best, tied, worse), the Pareto front repeated in
each family's panel, and the differences to the best with their intervals."""

from __future__ import annotations

import pandas as pd

from prunebench.report import figures, markdown, palette
from prunebench.report.palette import Look
from prunebench.task import IMAGES, Task


def difference_rows(winners: pd.DataFrame, looks: dict[str, Look], task: Task = IMAGES) -> pd.DataFrame:
    """The forest view's data: at each point and phase, how far each method falls behind the best,
    negated (worse to the left): accuracy minus the best's in pp, or the best's perplexity minus
    the method's; with its interval and standing (best, tied or worse)."""
    column = task.difference_column
    rows = winners.assign(
        budget=[f"{t:g}×" for t in winners["target_reduction"]],
        **{column: -winners["difference"] * task.scale},
        low=-winners["high"] * task.scale,
        high=-winners["low"] * task.scale,
        standing=[markdown.standing(r) for r in winners.itertuples()],
    )
    return palette.columns(rows, looks)


FRONT = "Pareto front"  # the method name of the front's rows in plots/compare/tradeoff.csv


def tradeoff_rows(
    curve: pd.DataFrame,
    summary: pd.DataFrame,
    winners: pd.DataFrame,
    looks: dict[str, Look],
    task: Task = IMAGES,
) -> pd.DataFrame:
    """The faceted trade-off views' data: every seed's row, with its standing at its point in
    each phase (best, tied or none); then the Pareto front over every method of each phase,
    repeated in each family's panel (method FRONT; the other phase's accuracy empty)."""
    rows = palette.columns(curve, looks)
    for phase in markdown.WINNER_PHASES:
        marks = figures.standings(winners, phase)
        rows[f"{phase}_standing"] = [marks.get((m, r), "") for m, r in zip(rows["method"], rows["ratio"])]
    reached = summary[summary["reached"]]
    fronts = [
        pd.DataFrame(
            {
                "method": FRONT,
                "reduction": front["reduction_mean"],
                f"{phase}_{task.metric}": front[f"{phase}_{task.metric}_mean"],
                "family": label,
            }
        )
        for phase in markdown.WINNER_PHASES
        for front in [figures.pareto(reached, "reduction_mean", f"{phase}_{task.metric}_mean", task.higher_is_better)]
        for label in rows["family"].unique()
    ]
    return pd.concat([rows, *fronts], ignore_index=True).astype({"seed": "Int64"})
