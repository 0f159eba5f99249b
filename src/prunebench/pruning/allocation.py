"""Per-layer ratios from sensitivity curves: spend a pruning budget where the measured drop in
accuracy (a language model's: in minus its loss) per unit removed is smallest. Pure arithmetic on
the sensitivity stage's rows, so the methods that use it import nothing of the sweep that
measured them."""

from __future__ import annotations

import numpy as np

from prunebench.errors import OutOfReach
from prunebench.task import of_columns


def allocate(
    curves: dict[str, list[tuple[float, float]]], sizes: dict[str, int], target: float, step: float = 0.01
) -> dict[str, float]:
    """Per-layer ratios that remove `target` of all units (weighted by `sizes`) in total.

    `curves` maps a layer to its measured (ratio, quality) points (`quality`), ratio 0 included. The drop
    is interpolated linearly and made non-decreasing; the budget is spent greedily in steps of
    `step`, each time on the layer whose quality drop per unit removed is smallest. The last
    step is partial, so the total is exact. A layer never goes past its largest measured ratio.
    """
    drops, caps = {}, {}
    for name, points in curves.items():
        points = sorted(points)
        base = dict(points)[0.0]
        ratios = np.array([r for r, _ in points])
        drop = np.maximum.accumulate(np.array([base - acc for _, acc in points]).clip(min=0))
        drops[name] = lambda r, x=ratios, y=drop: float(np.interp(r, x, y))
        caps[name] = float(ratios.max())
    budget = target * sum(sizes.values())
    reachable = sum(caps[n] * sizes[n] for n in sizes)
    if budget > reachable + 1e-9:
        raise OutOfReach(
            f"ratio {target} needs more than the sensitivity sweep measured "
            f"(at most {reachable / sum(sizes.values()):.3f}); extend sensitivity.ratios"
        )
    chosen = dict.fromkeys(sizes, 0.0)
    removed = 0.0
    while removed < budget - 1e-9:
        options = [
            ((drops[n](chosen[n] + step) - drops[n](chosen[n])) / (step * sizes[n]), -sizes[n], n)
            for n in sizes
            if chosen[n] + step <= caps[n] + 1e-9
        ]
        if not options:  # only partial steps remain below the caps
            options = [(0.0, -sizes[n], n) for n in sizes if chosen[n] < caps[n] - 1e-9]
        _, _, name = min(options)
        amount = min(step * sizes[name], (caps[name] - chosen[name]) * sizes[name], budget - removed)
        chosen[name] += amount / sizes[name]
        removed += amount
    return chosen


def quality(row: dict) -> float:
    """What allocation keeps high, from a sensitivity row: the accuracy of a classifier; minus the
    loss of a language model (the log of its perplexity: a drop is the log of how many times the
    perplexity grows, the same for every layer whatever the level)."""
    return float(row["accuracy"]) if of_columns(row).higher_is_better else -float(row["loss"])


def curves_of(rows: list[dict], kind: str) -> dict[str, list[tuple[float, float]]]:
    """(ratio, quality) points per layer of one kind, averaged over the rows' seeds."""
    points: dict[str, dict[float, list[float]]] = {}
    for row in rows:
        if row["kind"] == kind:
            points.setdefault(row["layer"], {}).setdefault(float(row["ratio"]), []).append(quality(row))
    return {layer: [(r, float(np.mean(a))) for r, a in sorted(by_ratio.items())] for layer, by_ratio in points.items()}
