"""What a run is judged on: the task decides the metric and which way is better.

Image classification is judged on accuracy (higher is better), language modelling on perplexity,
exp of the mean per-token cross-entropy (lower is better). Stages write a result's metric columns
under the metric's name (`pruned_accuracy`, `pruned_perplexity`); the report, the statistics, the
views and MLflow read the name and the direction from here, never assume accuracy. Plain Python:
the compare stage reads it without importing torch.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

CLASSIFICATION, LANGUAGE_MODELLING = "classification", "language_modelling"


@dataclass(frozen=True)
class Task:
    name: str
    metric: str  # the column name of the headline figure: accuracy | perplexity
    higher_is_better: bool
    percent: bool  # shown ×100, in %, and differences in percentage points
    short: str  # the metric abbreviated, for table headers
    macs_per: str  # what one count of MACs is for: an example, or a token (of a sequence of fixed length)
    params_counted: str  # what the parameter counts (budget: params) count

    @property
    def resolution_label(self) -> str:
        """The difference the report sizes seed counts for: 1 pp of accuracy, 1 % of perplexity."""
        return "1 pp" if self.percent else "1 %"

    @property
    def seeds_column(self) -> str:
        return "seeds_for_1pp" if self.percent else "seeds_for_1pct"

    def resolution(self, best: float) -> float:
        """`resolution_label` in the metric's units, at a point whose best value is `best`."""
        return 0.01 if self.percent else 0.01 * best

    def worse_by(self, best: float, value: float) -> float:
        """How far `value` falls behind `best`, in the metric's units (≥ 0 when it does)."""
        return best - value if self.higher_is_better else value - best

    def better(self, a: float, b: float) -> bool:
        return a > b if self.higher_is_better else a < b

    def shown(self, value: float, digits: int = 1) -> str:
        """A value as the report prints it: accuracy in %, perplexity as it is."""
        return f"{value * 100:.{digits}f}" if self.percent else f"{value:.{digits + 1}f}"

    @property
    def scale(self) -> float:
        """What a value is multiplied by to be shown: 100 for a percentage."""
        return 100.0 if self.percent else 1.0

    @property
    def unit(self) -> str:
        """The unit of a shown value, and of a shown difference."""
        return "%" if self.percent else ""

    @property
    def difference_unit(self) -> str:
        return "pp" if self.percent else self.metric

    @property
    def direction(self) -> str:
        return "higher is better" if self.higher_is_better else "lower is better"

    @property
    def difference_column(self) -> str:
        """The column of a method's difference to the best, named so that larger reads better."""
        return f"{self.metric}_minus_best" if self.higher_is_better else f"best_minus_{self.metric}"

    def plot_vars(self) -> str:
        """What dvc.yaml's plot definitions read of the task (`vars`: `${task.metric}`, …), as YAML."""
        return (
            "# The task dvc.yaml's plots show (its `vars`), written by the check stage from data.name.\n"
            f"task:\n  metric: {self.metric}\n  title: {self.metric.capitalize()}\n"
            f"  difference: {self.difference_column}\n"
        )


TASKS = {
    CLASSIFICATION: Task(
        CLASSIFICATION, "accuracy", True, True, "acc.", macs_per="example", params_counted="nonzero parameters"
    ),
    LANGUAGE_MODELLING: Task(  # as the LLM papers count
        LANGUAGE_MODELLING,
        "perplexity",
        False,
        False,
        "ppl.",
        macs_per="token",
        params_counted="nonzero weights of the blocks' linear layers (embeddings, output layer, norms and biases "
        "not counted)",
    ),
}


def of_columns(columns: Iterable[str]) -> Task:
    """The task of a table of results, from its columns: a language model's have perplexity."""
    names = set(columns)
    return TASKS[LANGUAGE_MODELLING if {"base_perplexity", "perplexity"} & names else CLASSIFICATION]


IMAGES = TASKS[CLASSIFICATION]  # the task of every image data set: what views default to
