"""The sensitivity stage: how much validation accuracy (a language model's: how much perplexity)
each layer loses when pruned alone (the curves `prunebench.pruning.allocation` turns into per-layer
ratios).

Unstructured: a layer's smallest-|w| weights are zeroed. Structured: a group's weakest units (L1
of their weights) are physically removed; layers coupled by a residual addition lose the same
channels, so the structured sweep and allocation work on groups (`coupling.Group`: channels, a
transformer's width, an attention module's heads), labelled by their layers joined with "+" (e.g.
"stem.0+block.conv2"; the first is the group's root).
"""

from __future__ import annotations

import copy
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

import torch
from torch import nn

from prunebench import paths, resume, runtime
from prunebench.files import write_csv
from prunebench.params import Params, plain
from prunebench.pruning.coupling import groups
from prunebench.pruning.criteria import filter_l1
from prunebench.pruning.selection import choose_channels, kept_count, select_weights
from prunebench.pruning.surgery import remove
from prunebench.report import figures
from prunebench.stages.workbench import Shared, Workbench
from prunebench.training import modelfile
from prunebench.training.loops import evaluate, prepare_model
from prunebench.training.models import prunable_layers


@dataclass(frozen=True)
class Probe:
    """One evaluation of the sweep: a seed's base model with one layer (unstructured) or one
    group (structured: channels, the width, an attention module's heads; its layers joined by "+")
    pruned by `ratio`; kind "base": unpruned."""

    seed: int
    kind: str
    layer: str = ""
    ratio: float = 0.0


def probes(model: nn.Module, seed: int, ratios: list[float], input_shape: tuple[int, ...]) -> list[Probe]:
    """The seed's evaluations: the base model, then every prunable layer and every channel group
    (frozen groups left out) at every ratio."""
    layers = [Probe(seed, "unstructured", name, r) for name in prunable_layers(model) for r in ratios]
    labels = [group.label for group in groups(model, input_shape)]
    return [Probe(seed, "base"), *layers, *[Probe(seed, "structured", label, r) for label in labels for r in ratios]]


def evaluate_probe(
    model: nn.Module,
    probe: Probe,
    loader: Iterable[tuple[torch.Tensor, torch.Tensor]],
    device: torch.device,
    input_shape: tuple[int, ...],
) -> dict[str, float]:
    """Accuracy and loss of `model` (left as it was) with the probe's pruning."""
    if probe.kind == "base":
        return evaluate(model, loader, device)
    if probe.kind == "unstructured":  # mask the layer in place, and put it back
        layer = prunable_layers(model)[probe.layer]
        original = layer.weight.detach().clone()
        keep = select_weights({probe.layer: layer}, {probe.layer: original.abs()}, probe.ratio, "layer", {})
        with torch.no_grad():
            layer.weight.copy_(original * keep[f"{probe.layer}.weight"].to(original.device))
        found = evaluate(model, loader, device)
        with torch.no_grad():
            layer.weight.copy_(original)
        return found
    pruned = copy.deepcopy(model)
    every = groups(pruned, input_shape)
    group = next(g for g in every if g.label == probe.layer)
    scores = {n: filter_l1(layer) for n, layer in prunable_layers(pruned).items() if n in group.members}
    count = kept_count(group.size, probe.ratio)
    remove(pruned, choose_channels([group], scores, {group.root: count})[1], input_shape, every)
    return evaluate(pruned, loader, device)


def probe_jobs(base: dict[int, nn.Module], ratios: list[float], input_shape: tuple[int, ...]) -> list[Probe]:
    """Every seed's evaluations, seed after seed."""
    return [probe for seed, model in base.items() for probe in probes(model.eval(), seed, ratios, input_shape)]


def tabulate(jobs: list[Probe], found: list[dict[str, float]], ratios: list[float]) -> list[dict]:
    """Rows (seed, layer, kind, ratio, accuracy, loss) from the evaluations `found` of `jobs`; ratio
    0 is the unpruned model, once per layer and group."""
    unpruned = {probe.seed: metrics for probe, metrics in zip(jobs, found) if probe.kind == "base"}
    rows = []
    for probe, metrics in zip(jobs, found):
        if probe.kind == "base":
            continue
        row = {"seed": probe.seed, "layer": probe.layer, "kind": probe.kind}
        if probe.ratio == ratios[0]:
            rows.append(row | {"ratio": 0.0, **unpruned[probe.seed]})
        rows.append(row | {"ratio": probe.ratio, **metrics})
    return rows


def sweep(
    base: dict[int, nn.Module],
    loader: Iterable[tuple[torch.Tensor, torch.Tensor]],
    ratios: list[float],
    device: torch.device,
    input_shape: tuple[int, ...],
) -> list[dict]:
    """The sweep in this process: rows for every seed's base model, every prunable layer
    (unstructured) and channel group (structured) at every ratio (`tabulate`)."""
    jobs = probe_jobs(base, ratios, input_shape)
    return tabulate(jobs, [evaluate_probe(base[p.seed], p, loader, device, input_shape) for p in jobs], ratios)


@dataclass
class Sweep(Shared):
    """What every evaluation shares: the data and the seeds' base models (files' bytes, rebuilt
    once per worker process on its device)."""

    files: dict[int, bytes]
    base: dict[int, nn.Module] = field(default_factory=dict, repr=False)

    def on(self, device: torch.device) -> Sweep:
        """Itself where its models are already on `device`; else rebuilt there."""
        if self.base and device == self.bench.device:
            return self
        models = {seed: prepare_model(modelfile.load(data)[0], device).eval() for seed, data in self.files.items()}
        return Sweep(self.bench.on(device), self.files, models)

    def __reduce__(self) -> tuple[Any, ...]:
        return (Sweep, (self.bench, self.files))  # the receiver rebuilds the models (`on`)


def evaluate_job(context: Sweep, probe: Probe) -> dict[str, float]:
    bench = context.bench
    return evaluate_probe(context.base[probe.seed], probe, bench.val, bench.device, bench.splits.input_shape)


def run(params: Params) -> None:
    """The sweep on every seed's base model (validation split), its (layer, ratio) evaluations
    spread over the executor, its table and the two figures (a line per layer; a heatmap of
    channel groups × ratios)."""
    bench = Workbench.open(params, runtime.setup(params))
    files = {seed: paths.base_model(seed) for seed in params.seeds}
    context = Sweep(bench, {seed: file.read_bytes() for seed, file in files.items()}).on(bench.device)
    jobs = probe_jobs(context.base, params.sensitivity.ratios, bench.splits.input_shape)
    finished = resume.Jobs(
        paths.finished_jobs("sensitivity"),
        resume.fingerprint(
            params.sensitivity.ratios,
            plain(params.data),
            params.device,
            files=[paths.SPLIT, paths.code_manifest("sensitivity")],
        ),
        lambda p: f"{p.seed}/{p.kind}/{p.layer or 'model'}/{p.ratio:g}",
        lambda p: context.files[p.seed],
    )
    found = bench.run(evaluate_job, context, jobs, "sensitivity", finished)
    rows = tabulate(jobs, found, params.sensitivity.ratios)
    write_csv(paths.SENSITIVITY, rows)
    figures.plot_sensitivity(rows, paths.SENSITIVITY_UNSTRUCTURED)
    figures.plot_sensitivity_heatmap(rows, paths.SENSITIVITY_STRUCTURED)
