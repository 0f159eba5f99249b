"""The paired statistics give the known answers on constructed examples."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from prunebench.report.stats import bootstrap_differences, rank, seed_spread, seeds_needed


def predictions(seeds: int, examples: int, right: float, rng: np.random.Generator) -> np.ndarray:
    return rng.random((seeds, examples)) < right


def test_identical_methods_are_tied_with_a_zero_difference():
    rng = np.random.default_rng(0)
    a = predictions(3, 500, 0.9, rng)
    ranked = rank({"a": a, "copy": a.copy()}, 0.95, 1000)
    assert [s.tied for s in ranked] == [True, True] and ranked[1].difference == 0 == ranked[1].low == ranked[1].high


def test_a_method_worse_on_every_seed_is_not_tied_and_its_interval_covers_the_true_difference():
    rng = np.random.default_rng(1)
    best = predictions(3, 1000, 0.95, rng)
    worse = best & ~(rng.random(best.shape) < 0.05)  # loses 5 % of the best's right answers, on every seed
    ranked = rank({"worse": worse, "best": best}, 0.95, 2000)
    assert ranked[0].method == "best" and not ranked[1].tied
    assert ranked[1].low > 0 and ranked[1].low < 0.95 * 0.05 < ranked[1].high


def test_a_method_that_swaps_as_many_answers_each_way_is_tied():
    rng = np.random.default_rng(2)
    a = predictions(3, 400, 0.8, rng)
    b = a.copy()
    for seed in range(3):  # 8 examples right only for a, 8 right only for b: the same accuracy, paired noise
        right, wrong = np.flatnonzero(a[seed]), np.flatnonzero(~a[seed])
        b[seed, right[:8]], b[seed, wrong[:8]] = False, True
    (first, second) = rank({"a": a, "b": b}, 0.95, 2000)
    assert second.tied and first.difference == 0 and second.low < 0 < second.high


def test_the_multinomial_draw_matches_resampling_the_examples_one_by_one():
    """Within a seed the resampled mean difference depends on the examples only through how many
    one model gets right and the other wrong: drawn as a multinomial, it has the distribution of
    an explicit resample."""
    rng = np.random.default_rng(3)
    a, b = predictions(3, 300, 0.9, rng), predictions(3, 300, 0.85, rng)
    fast = bootstrap_differences(a, b, 20000, np.random.default_rng(4))
    draws = np.random.default_rng(5)
    slow = []
    for _ in range(4000):
        seeds = draws.integers(3, size=3)
        slow.append(
            np.mean(
                [(a[s, idx].astype(int) - b[s, idx]).mean() for s in seeds for idx in [draws.integers(300, size=300)]]
            )
        )
    assert fast.mean() == pytest.approx(np.mean(slow), abs=0.002)
    assert fast.std() == pytest.approx(np.std(slow), rel=0.05)


def test_seeds_needed_follows_the_power_formula():
    assert seeds_needed(0.01) == 8  # ((1.960 + 0.842) · 1 pp / 1 pp)² = 7.85
    assert seeds_needed(0.005) == 2 and seeds_needed(0.02) == 32
    a = np.zeros((4, 100), dtype=bool)
    a[:, :50] = True
    b = a.copy()
    b[0, :3], b[1, 50:53] = False, True  # per-seed differences 0.03, -0.03, 0, 0
    assert seed_spread({"a": a, "b": b}) == pytest.approx(np.std([0.03, -0.03, 0, 0], ddof=1))


def swapped(right: np.ndarray, count: int, rng: np.random.Generator) -> np.ndarray:
    """`count` right answers made wrong and `count` wrong ones right."""
    out = right.copy()
    out[rng.choice(np.flatnonzero(right), count, replace=False)] = False
    out[rng.choice(np.flatnonzero(~right), count, replace=False)] = True
    return out


def test_the_report_names_a_recalibration_that_lowers_accuracy_beyond_the_interval_and_no_other():
    """Issue 35: BatchNorm statistics re-estimated on batches unlike the test images (ImageNet's
    random resized crop on 32 × 32 images measured 92.6 % → 79.4 %) must not pass silently."""
    from prunebench.report import markdown

    rng = np.random.default_rng(0)
    rows, predictions = [], {}
    for method in ("hurt", "noise", "helped"):
        for seed in (0, 1, 2):
            pruned = rng.random(1000) < 0.9
            recalibrated = {
                "hurt": pruned & (rng.random(1000) < 0.85),  # about 13 pp lost
                "noise": swapped(pruned, 10, rng),  # as many answers lost as gained
                "helped": pruned | (rng.random(1000) < 0.5),
            }[method]
            predictions[f"{method}/0.5/{seed}/pruned"] = pruned
            predictions[f"{method}/0.5/{seed}/recalibrated"] = recalibrated
            rows.append(
                {
                    "method": method,
                    "ratio": 0.5,
                    "seed": seed,
                    "pruned_accuracy": pruned.mean(),
                    "recalibrated_accuracy": recalibrated.mean(),
                    "finetuned_accuracy": recalibrated.mean(),
                }
            )
    found = markdown.recalibration_losses(pd.DataFrame(rows), predictions, 0.95, 500)
    assert list(found["method"]) == ["hurt"]
    (hurt,) = found.itertuples()
    assert 0.1 < hurt.difference < 0.16 and 0 < hurt.low <= hurt.difference <= hurt.high
    assert hurt.pruned - hurt.recalibrated == pytest.approx(hurt.difference)
