"""Paired statistics: at one operating point, the best method and the ones indistinguishable from it.

Every method prunes the same base model per seed and is tested on the same examples, so methods
are compared paired. The test is a paired bootstrap over seeds and test examples: resample the
seeds with replacement and, within each, the test examples with replacement, and take the mean
difference in accuracy. Within a seed, a resample of the examples only matters through how many
of them one model gets right and the other wrong (and the reverse), so it is drawn exactly as a
multinomial of those counts. A method is tied with the best when the `confidence` interval of
their difference contains 0.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from statistics import NormalDist

import numpy as np


def bootstrap_differences(a: np.ndarray, b: np.ndarray, resamples: int, rng: np.random.Generator) -> np.ndarray:
    """Bootstrap replicates of mean(a) − mean(b): `a`, `b` are [seeds, examples] bool (right or
    wrong), paired by seed and example."""
    seeds, examples = a.shape
    only_a, only_b = (a & ~b).sum(1), (~a & b).sum(1)
    shares = np.stack([only_a, only_b, examples - only_a - only_b], axis=1) / examples  # [seeds, 3]
    picked = rng.integers(seeds, size=(resamples, seeds))
    counts = rng.multinomial(examples, shares[picked])  # [resamples, seeds, 3]
    return (counts[..., 0] - counts[..., 1]).mean(axis=1) / examples


@dataclass(frozen=True)
class Standing:
    """One method at one point, against the best."""

    method: str
    accuracy: float  # mean over seeds
    difference: float  # best's accuracy minus this one's
    low: float  # the confidence interval of the difference
    high: float
    tied: bool  # indistinguishable from the best (the best is tied with itself)


def rank(correct: dict[str, np.ndarray], confidence: float, resamples: int, seed: int = 0) -> list[Standing]:
    """Methods at one point, best first: `correct` maps each method to [seeds, examples] bool,
    the seeds in the same order for every method."""
    rng = np.random.default_rng(seed)
    accuracy = {m: float(c.mean()) for m, c in correct.items()}
    best = max(accuracy, key=lambda m: accuracy[m])
    tail = (1 - confidence) / 2 * 100
    standings = []
    for method in sorted(correct, key=lambda m: accuracy[m], reverse=True):
        if method == best:
            standings.append(Standing(method, accuracy[method], 0.0, 0.0, 0.0, True))
            continue
        replicates = bootstrap_differences(correct[best], correct[method], resamples, rng)
        low, high = np.percentile(replicates, [tail, 100 - tail])
        standings.append(
            Standing(
                method, accuracy[method], accuracy[best] - accuracy[method], float(low), float(high), bool(low <= 0)
            )
        )
    return standings


def seed_spread(correct: dict[str, np.ndarray]) -> float:
    """How much a paired comparison moves from one seed to another: the standard deviation over
    seeds of the difference in accuracy between two methods, the median over every pair (one
    method that collapses on some seed does not speak for the rest)."""
    names = sorted(correct)
    spreads = [
        np.std(correct[a].mean(1) - correct[b].mean(1), ddof=1) for i, a in enumerate(names) for b in names[i + 1 :]
    ]
    return float(np.median(spreads)) if spreads else math.nan


def seeds_needed(spread: float, difference: float = 0.01, confidence: float = 0.95, power: float = 0.8) -> int:
    """Seeds for a paired comparison to tell `difference` apart (two-sided, at `confidence`) with
    probability `power`, when seed-to-seed differences have standard deviation `spread`:
    n = ((z_{1-α/2} + z_power) · spread / difference)²."""
    z = NormalDist().inv_cdf
    return max(2, math.ceil(((z(1 - (1 - confidence) / 2) + z(power)) * spread / difference) ** 2))
