"""Latency that compares like with like: every model of a point timed in one process, in rounds
that take each model in turn (each round starting one model later), the base model among them.
A slow spell of the machine then falls on every model alike, and equal architectures read
equal. Each round times a block of passes per model and way of running it (at least 3 passes
and `min_run_time` seconds); the figure is the median over the rounds of the mean pass in each
block."""

from __future__ import annotations

import statistics
import time
from collections.abc import Callable
from typing import Any

import torch
from torch import nn

from prunebench.deploy.export import INPUT, OUTPUT
from prunebench.training.inputs import example

# PyTorch eager and ONNX Runtime, each at the batch and at batch 1
WAYS = ("latency_ms", "latency_b1_ms", "ort_ms", "ort_b1_ms")


def interleaved(
    models: dict[str, tuple[nn.Module, Any]],
    input_shape: tuple[int, ...],
    batch: int,
    rounds: int,
    min_run_time: float,
) -> dict[str, dict[str, float]]:
    """Milliseconds per pass of each (PyTorch model, ONNX Runtime session), keyed by WAYS, on
    the CPU threads this process has."""
    x = {n: example(input_shape, n, random=True) for n in (1, batch)}
    inputs = {n: {INPUT: x[n].numpy()} for n in (1, batch)}

    def ways(model: nn.Module, session: Any) -> dict[str, Callable[[], Any]]:
        return {
            "latency_ms": lambda: model(x[batch]),
            "latency_b1_ms": lambda: model(x[1]),
            "ort_ms": lambda: session.run([OUTPUT], inputs[batch]),
            "ort_b1_ms": lambda: session.run([OUTPUT], inputs[1]),
        }

    runs = {name: ways(*pair) for name, pair in models.items()}
    samples: dict[str, dict[str, list[float]]] = {name: {way: [] for way in WAYS} for name in models}
    with torch.inference_mode():
        for fns in runs.values():  # warm-up: allocations, ORT's first-run work
            for fn in fns.values():
                fn()
        names = list(runs)
        for turn in range(rounds):  # each round starts one model later: none is always first
            for name in names[turn % len(names) :] + names[: turn % len(names)]:
                for way, fn in runs[name].items():
                    samples[name][way].append(_block(fn, min_run_time))
    return {name: {way: statistics.median(s) * 1000 for way, s in by_way.items()} for name, by_way in samples.items()}


def _block(fn: Callable[[], Any], min_run_time: float) -> float:
    """Seconds per call of `fn`, over at least 3 calls and `min_run_time` seconds."""
    calls, start = 0, time.perf_counter()
    while calls < 3 or time.perf_counter() - start < min_run_time:
        fn()
        calls += 1
    return (time.perf_counter() - start) / calls
