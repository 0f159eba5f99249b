"""Paired statistics: at one operating point, the best method and the ones indistinguishable from it.

Every method prunes the same base model per seed and is tested on the same examples, so methods
are compared paired. The test is a paired bootstrap over seeds and test examples: resample the
seeds with replacement and, within each, the test examples with replacement, and take the mean
difference in the task's metric (`prunebench.task`). For accuracy, a resample of a seed's
examples only matters through how many of them one model gets right and the other wrong (and the
reverse), so it is drawn exactly as a multinomial of those counts. For perplexity, each test
sequence's mean per-token loss is kept; a resample weighs the sequences by multinomial counts,
the same for both models, and each seed's perplexity is exp of its weighted mean loss. A method
is tied with the best when the `confidence` interval of their difference contains 0.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from statistics import NormalDist

import numpy as np

from prunebench.task import IMAGES, Task


def bootstrap_differences(a: np.ndarray, b: np.ndarray, resamples: int, rng: np.random.Generator) -> np.ndarray:
    """Bootstrap replicates of mean(a) − mean(b): `a`, `b` are [seeds, examples] bool (right or
    wrong), paired by seed and example."""
    seeds, examples = a.shape
    only_a, only_b = (a & ~b).sum(1), (~a & b).sum(1)
    shares = np.stack([only_a, only_b, examples - only_a - only_b], axis=1) / examples  # [seeds, 3]
    picked = rng.integers(seeds, size=(resamples, seeds))
    counts = rng.multinomial(examples, shares[picked])  # [resamples, seeds, 3]
    return (counts[..., 0] - counts[..., 1]).mean(axis=1) / examples


def bootstrap_perplexity_differences(
    a: np.ndarray, b: np.ndarray, resamples: int, rng: np.random.Generator, chunk: int = 100
) -> np.ndarray:
    """Bootstrap replicates of the mean over seeds of perplexity(a) − perplexity(b): `a`, `b` are
    [seeds, sequences] mean per-token losses, paired by seed and sequence."""
    seeds, sequences = a.shape
    uniform = np.full(sequences, 1 / sequences)
    replicates = []
    for start in range(0, resamples, chunk):
        count = min(chunk, resamples - start)
        picked = rng.integers(seeds, size=(count, seeds))
        weights = rng.multinomial(sequences, uniform, size=(count, seeds)) / sequences  # [count, seeds, sequences]
        loss_a, loss_b = (weights * a[picked]).sum(-1), (weights * b[picked]).sum(-1)
        replicates.append((np.exp(loss_a) - np.exp(loss_b)).mean(axis=1))
    return np.concatenate(replicates)


def score(outcomes: np.ndarray, task: Task) -> np.ndarray:
    """Each seed's metric from its [seeds, examples] outcomes: the share right, or exp of the mean loss."""
    return outcomes.mean(1) if task.higher_is_better else np.exp(outcomes.mean(1, dtype=np.float64))


@dataclass(frozen=True)
class Standing:
    """One method at one point, against the best."""

    method: str
    value: float  # the task's metric, mean over seeds
    difference: float  # how far it falls behind the best (`Task.worse_by`)
    low: float  # the confidence interval of the difference
    high: float
    tied: bool  # indistinguishable from the best (the best is tied with itself)


def rank(
    outcomes: dict[str, np.ndarray],
    confidence: float,
    resamples: int,
    task: Task = IMAGES,
    seed: int = 0,
) -> list[Standing]:
    """Methods at one point, best first: `outcomes` maps each method to [seeds, examples] outcomes
    (bool right or wrong, or a sequence's mean loss; `loops.evaluate`), the seeds in the same order
    for every method."""
    rng = np.random.default_rng(seed)
    if task.higher_is_better:
        value = {m: float(c.mean()) for m, c in outcomes.items()}
    else:
        value = {m: float(score(c, task).mean()) for m, c in outcomes.items()}
    order = sorted(outcomes, key=lambda m: value[m], reverse=task.higher_is_better)
    best = order[0]
    tail = (1 - confidence) / 2 * 100
    standings = []
    for method in order:
        if method == best:
            standings.append(Standing(method, value[method], 0.0, 0.0, 0.0, True))
            continue
        if task.higher_is_better:
            replicates = bootstrap_differences(outcomes[best], outcomes[method], resamples, rng)
        else:
            replicates = bootstrap_perplexity_differences(outcomes[method], outcomes[best], resamples, rng)
        low, high = np.percentile(replicates, [tail, 100 - tail])
        difference = task.worse_by(value[best], value[method])
        standings.append(Standing(method, value[method], difference, float(low), float(high), bool(low <= 0)))
    return standings


def seed_spread(outcomes: dict[str, np.ndarray], task: Task = IMAGES) -> float:
    """How much a paired comparison moves from one seed to another: the standard deviation over
    seeds of the difference in the metric between two methods, the median over every pair (one
    method that collapses on some seed does not speak for the rest)."""
    names = sorted(outcomes)
    spreads = [
        np.std(score(outcomes[a], task) - score(outcomes[b], task), ddof=1)
        for i, a in enumerate(names)
        for b in names[i + 1 :]
    ]
    return float(np.median(spreads)) if spreads else math.nan


def seeds_needed(spread: float, difference: float = 0.01, confidence: float = 0.95, power: float = 0.8) -> int:
    """Seeds for a paired comparison to tell `difference` apart (two-sided, at `confidence`) with
    probability `power`, when seed-to-seed differences have standard deviation `spread`:
    n = ((z_{1-α/2} + z_power) · spread / difference)²."""
    z = NormalDist().inv_cdf
    return max(2, math.ceil(((z(1 - (1 - confidence) / 2) + z(power)) * spread / difference) ** 2))
