"""How a method reaches the operating points, one class per schedule kind; each yields one seed's
points (`Outcome`) for the prune stage to assess, and writes what only it has.

Steps: the method scores each seed's base model once (one-shot), and each point searches its own
fraction of the method's units on that ranking (`budget.search`); with several steps, each step
re-scores after retraining. Retention: one run of iterations per seed serves every point: each
point takes the first iteration that reaches it, and a deployed model is chosen among the
iterations by a stated rule. A schedule runs inside a seed's job, wherever the executor put it:
it writes nothing itself, and hands the files it made (the deployed models) to the stage in
`Found.files`.
"""

from __future__ import annotations

import copy
import dataclasses
import time
from abc import ABC, abstractmethod
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from torch import nn

from prunebench import paths
from prunebench.files import write_csv
from prunebench.layouts import counts
from prunebench.params import MethodEntry, Params
from prunebench.progress import say
from prunebench.pruning import methods, retention
from prunebench.pruning.budget import ChannelCost, Choice, SelectionCost
from prunebench.pruning.methods import Context, Method
from prunebench.pruning.selection import Masks, Pruned, mask_keeper
from prunebench.pruning.steps import prune_in_steps, prune_to_counts
from prunebench.stages.workbench import Workbench
from prunebench.training import modelfile
from prunebench.training.data import task_of
from prunebench.training.loops import evaluate, fit, prepare_model, seed_everything
from prunebench.training.measure import count_params, layer_macs
from prunebench.training.models import prunable_layers

Tables = dict[str, list[dict[str, Any]]]


@dataclass
class Spent:
    """What the method itself spent on one point of one seed, besides the fine-tuning every
    method gets: wall seconds choosing and cutting (scoring, the budget search, the removal;
    one-shot methods score once per seed for every point, and each point counts that scoring),
    and the retraining while pruning (steps > 1, the retention schedule up to the point's
    iteration). Seconds are wall-clock on a shared machine; epochs are exact."""

    pruning_seconds: float = 0.0
    retrain_epochs: int = 0
    retrain_seconds: float = 0.0

    def columns(self) -> dict[str, float]:
        return {f"cost.{k}": v for k, v in dataclasses.asdict(self).items()}


@dataclass
class Outcome:
    """One operating point of one seed: the pruned model, how it met the target, what it cost."""

    ratio: float
    pruned: Pruned
    choice: Choice
    spent: Spent
    iteration: int | None = None  # the retention schedule's iteration


@dataclass
class Found:
    """What a schedule reports of one seed besides its points: the method's tables (each row
    tagged with its seed and point or iteration), and the retention iterations and retraining."""

    tables: Tables = field(default_factory=dict)
    iterations: list[dict[str, Any]] = field(default_factory=list)
    histories: list[dict[str, Any]] = field(default_factory=list)
    files: dict[Path, bytes] = field(default_factory=dict)  # model files for the stage to write

    def collect(self, tables: Tables, **where: Any) -> None:
        """Add a scoring's tables, each row tagged with where it came from (seed, point, iteration)."""
        for name, rows in tables.items():
            self.tables.setdefault(name, []).extend(where | row for row in rows)

    def extend(self, other: Found) -> None:
        """Add what another seed found after this one's."""
        self.collect(other.tables)
        self.iterations += other.iterations
        self.histories += other.histories
        self.files |= other.files


@dataclass
class SeedRun:
    """One seed's pruning, as a schedule runs it: the stage's workbench, the seed's base model and
    its description, the method's context, what a selection keeps of the budget (`kept`), and
    where the schedule reports what it found besides its points."""

    bench: Workbench
    model: nn.Module
    spec: dict[str, Any]
    seed: int
    ctx: Context
    kept: Callable[[Any], float]
    found: Found


class Schedule(ABC):
    """One method's way to the points, set up once per stage (before the seeds fan out)."""

    def __init__(self, params: Params, entry: MethodEntry, method: Method):
        self.params, self.entry, self.method = params, entry, method

    @abstractmethod
    def points(self, run: SeedRun) -> Iterator[Outcome]:
        """Every point of one seed, one at a time."""

    def write(self, found: Found) -> None:  # noqa: B027 (a hook: most schedules write nothing of their own)
        """The schedule's own outputs, from every seed's `found`."""


class Steps(Schedule):
    """`schedule.iterations` steps per point, retraining between them; one step is one-shot."""

    def points(self, run: SeedRun) -> Iterator[Outcome]:
        bench, model, seed, ctx, kept, found = run.bench, run.model, run.seed, run.ctx, run.kept, run.found
        iterations = self.params.schedule.iterations
        spent = Spent()  # the point's, as it goes

        def retrain(model: nn.Module, masks: Masks, step: int) -> nn.Module:
            start = time.perf_counter()
            model = prepare_model(model, bench.device)
            history = fit(
                model,
                bench.train_batches(seed),
                bench.val,
                self.params.schedule.retrain,
                bench.device,
                after_step=mask_keeper(model, masks),
                desc=f"seed {seed} retrain step {step}",
            )
            spent.retrain_epochs += len(history)
            spent.retrain_seconds += time.perf_counter() - start
            return model

        scored, scoring = None, 0.0
        if iterations == 1:
            model.eval()
            start = time.perf_counter()
            scored = self.method.score(model, prunable_layers(model), ctx)
            scoring = time.perf_counter() - start
            found.collect(scored.tables, seed=seed)
        for ratio in self.params.points:
            spent = Spent()
            start = time.perf_counter()
            pruned, choice = prune_in_steps(
                copy.deepcopy(model), self.method, ctx, kept, 1 - ratio, iterations, retrain, scored
            )
            spent.pruning_seconds = scoring + time.perf_counter() - start - spent.retrain_seconds
            if scored is None:
                found.collect(pruned.tables, seed=seed, ratio=ratio)
            yield Outcome(ratio, pruned, choice, spent)


class Retention(Schedule):
    """The geometric retention schedule (`prunebench.pruning.retention`); its plan is made before
    the seeds fan out and written with the stage's outputs."""

    def __init__(self, params: Params, entry: MethodEntry, method: Method, cost: ChannelCost):
        super().__init__(params, entry, method)
        cfg, budget = params.schedule.retention, params.budget
        self.plan = retention.table(
            {root: size for root, size in cost.sizes.items() if root in cost.counted},
            cfg.q,
            cfg.max_iterations,
            lambda counts: cost.kept(counts, budget),
            min(1 - r for r in params.points),
        )

    def points(self, run: SeedRun) -> Iterator[Outcome]:
        key, cfg, seed, found = self.entry.key, self.params.schedule, run.seed, run.found
        done = retention.Iterations()
        self._iterate(run, done)
        results = done.results
        choice = retention.choose(results, cfg.retention.tolerance, task_of(self.params.data).higher_is_better)
        found.files[paths.deployed_model(key, seed)] = done.models[choice["iteration"]]
        found.histories += [
            {"seed": seed, "iteration": t, **epoch} for t in range(1, len(results)) for epoch in done.histories[t]
        ]
        found.iterations += [{"seed": seed, **r, "deployed": r["iteration"] == choice["iteration"]} for r in results]
        say(f"{key} seed {seed}: deployed iteration {choice['iteration']} ({choice['rule']})")
        for ratio in self.params.points:  # each point: the first iteration that reaches it (else the last)
            row = retention.first_reaching(self.plan, 1 - ratio)
            reached = row["budget_kept"] <= 1 - ratio
            point = Choice(row["removed_fraction"], counts(row), row["budget_kept"], reached)
            upto = results[1 : row["iteration"] + 1]  # the iterations this point went through
            spent = Spent(
                sum(r["pruning_seconds"] for r in upto),
                sum(r["epochs"] for r in upto),
                sum(r["retrain_seconds"] for r in upto),
            )
            pruned = Pruned(modelfile.load(done.models[row["iteration"]])[0])
            yield Outcome(ratio, pruned, point, spent, row["iteration"])

    def _iterate(self, run: SeedRun, done: retention.Iterations) -> None:
        """The schedule, iteration after iteration: prune to the counts, retrain with early
        stopping on the validation split, assess on the validation split. Each iteration is
        seeded on its own."""
        bench, seed, ctx, found = run.bench, run.seed, run.ctx, run.found

        def own_seed(t: int) -> int:
            return seed * 1000 + t

        def prune(model: nn.Module, t: int, counts: dict[str, int]) -> nn.Module:
            step = dataclasses.replace(ctx, generator=torch.Generator().manual_seed(own_seed(t)))
            pruned = prune_to_counts(prepare_model(model, bench.device), self.method, counts, step)
            found.collect(pruned.tables, seed=seed, iteration=t)
            return prepare_model(pruned.model, bench.device)

        def retrain(model: nn.Module, t: int) -> list[dict]:
            seed_everything(own_seed(t))
            return fit(
                model,
                bench.train_batches(own_seed(t)),
                bench.val,
                self.params.schedule.retrain,
                bench.device,
                desc=f"seed {seed} iteration {t}",
            )

        def assess(model: nn.Module) -> dict[str, float]:
            val = evaluate(prepare_model(model, bench.device), bench.val, bench.device)
            return {
                "val_accuracy": val["accuracy"],
                "val_loss": val["loss"],
                "params": count_params(model, bench.splits.input_shape),
                "macs": sum(layer_macs(model, bench.splits.input_shape).values()),
            }

        retention.iterate(run.model, run.spec, self.plan, done, prune, retrain, assess)

    def write(self, found: Found) -> None:
        write_csv(paths.method_retention(self.entry.key), self.plan)
        write_csv(paths.method_iterations(self.entry.key), found.iterations)
        write_csv(paths.method_plots(self.entry.key) / "retrain_history.csv", found.histories)  # every epoch


def schedule_for(params: Params, entry: MethodEntry, method: Method, cost: SelectionCost | None) -> Schedule:
    """The entry's schedule; `cost` is the cost of a selection when it serves every seed, else None
    (the retention schedule counts channels, whose cost always does)."""
    if methods.schedule(entry) == "retention":
        assert isinstance(cost, ChannelCost), "the retention schedule is for channel methods (schema.py)"
        return Retention(params, entry, method, cost)
    return Steps(params, entry, method)
