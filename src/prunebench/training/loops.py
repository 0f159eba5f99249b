"""Training and evaluation loops, and seeding.

On CUDA: bf16 autocast where the GPU supports it, else fp16 with gradient scaling; channels_last
and cudnn's benchmark mode; `compile` runs the training steps through torch.compile. On the
CPU: plain fp32, deterministic, so the same params and seed give identical metrics. Losses and
accuracies are summed on the device and read once per epoch: no step waits for the host.
"""

from __future__ import annotations

import copy
import math
import random
from collections.abc import Callable, Iterable
from typing import Any

import numpy as np
import torch
from torch import nn

from prunebench.errors import UserError
from prunebench.layouts import EPOCH_COLUMNS
from prunebench.params import Loop
from prunebench.progress import bar
from prunebench.training.optim import SGD, cosine


def seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)


def prepare_model(model: nn.Module, device: torch.device) -> nn.Module:
    model = model.to(device)
    if device.type == "cuda":
        model = model.to(memory_format=torch.channels_last)  # type: ignore[call-overload]  # not in torch's stubs
    return model


def precision(device: torch.device) -> torch.dtype | None:
    """The autocast type: bf16 on a GPU that has it (no scaling needed), else fp16; none on the CPU."""
    if device.type != "cuda":
        return None
    return torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16


def cross_entropy(logits: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """The mean cross-entropy of every prediction: a classifier's one per example (logits [B,
    classes]), a language model's one per token ([B, tokens, vocab], each position predicting the
    next token). Every loss that scores or trains a model is this one."""
    return nn.functional.cross_entropy(logits.flatten(0, -2), y.flatten())


def _forward(model: nn.Module, x: torch.Tensor, y: torch.Tensor, device: torch.device):
    """Logits and mean cross-entropy (`cross_entropy`) of one batch that `prunebench.training.batches`
    put on the device."""
    dtype = precision(device)
    with torch.autocast(device.type, dtype=dtype, enabled=dtype is not None):
        logits = model(x)
    return logits, cross_entropy(logits.float(), y)


@torch.no_grad()
def evaluate(model: nn.Module, batches: Iterable, device: torch.device, per_example: bool = False) -> dict[str, Any]:
    """Mean cross-entropy and accuracy (of every prediction: an example's class, or a sequence's
    next tokens) over all batches, summed on the device and read once; for a language model also
    the perplexity, exp of the mean per-token cross-entropy. With `per_example`, also "outcome"
    (a tensor on the CPU, in the batches' order, for paired comparisons): which examples a
    classifier gets right (bool), or each sequence's mean per-token cross-entropy (float)."""
    model.eval()
    loss_sum = torch.zeros((), device=device)
    right, outcomes, count, sequences = torch.zeros((), device=device, dtype=torch.long), [], 0, False
    for x, y in batches:
        logits, loss = _forward(model, x, y, device)
        loss_sum += loss * y.numel()
        hits = logits.argmax(-1) == y
        right += hits.sum()
        count += y.numel()
        sequences = y.dim() == 2
        if per_example:
            outcomes.append(_sequence_losses(logits, y) if sequences else hits)
    result = {"accuracy": int(right) / count, "loss": float(loss_sum) / count}
    if sequences:
        result["perplexity"] = math.exp(result["loss"])
    return result | {"outcome": torch.cat(outcomes).cpu()} if per_example else result


def _sequence_losses(logits: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """Each sequence's mean per-token cross-entropy: sequences of one length, so their mean is the
    mean per-token loss, and a paired bootstrap can resample sequences."""
    losses = nn.functional.cross_entropy(logits.float().flatten(0, -2), y.flatten(), reduction="none")
    return losses.view(y.shape).mean(-1)


@torch.no_grad()
def recalibrate(model: nn.Module, batches: Iterable, count: int) -> nn.Module:
    """Re-estimate every BatchNorm's running statistics from `count` training batches (their
    plain average; no gradient step, every other layer in eval mode): pruning changes what each
    BatchNorm sees, so its old statistics no longer fit. Returns the model in eval mode."""
    norms = [m for m in model.modules() if isinstance(m, nn.modules.batchnorm._BatchNorm) and m.track_running_stats]
    model.eval()
    if not norms or count == 0:
        return model
    momenta = [m.momentum for m in norms]
    for norm in norms:
        norm.reset_running_stats()
        norm.momentum = None  # a cumulative average over the batches
        norm.train()
    for _, (x, _y) in zip(range(count), batches):
        model(x)
    for norm, momentum in zip(norms, momenta):
        norm.momentum = momentum
    return model.eval()


class Diverged(UserError, FloatingPointError):
    """Training produced a loss that is not finite."""


def fit(
    model: nn.Module,
    train_batches: Iterable,
    val_batches: Iterable,
    cfg: Loop,
    device: torch.device,
    epochs: int | None = None,
    after_step: Callable[[], None] | None = None,
    desc: str = "train",
) -> list[dict[str, float]]:
    """SGD with momentum and a cosine learning rate; returns one record per epoch.

    `after_step` runs after every optimiser step (pruning masks use it to keep removed weights
    at zero). With `cfg.patience` > 0 training stops once the validation loss has not
    improved for that many epochs. The weights with the best validation loss are restored.

    A loss that is not finite stops training with a `Diverged` error that names `desc`, the epoch
    and the params.yaml key to lower (`cfg.key`.lr).
    """
    epochs = cfg.epochs if epochs is None else epochs
    if epochs == 0:
        return []
    optimizer = SGD(model.parameters(), lr=cfg.lr, momentum=cfg.momentum, weight_decay=cfg.weight_decay)
    scaler = torch.amp.GradScaler(device.type, enabled=precision(device) == torch.float16)
    state: dict[str, Any] = {"history": [], "best_loss": math.inf, "best": None, "since_best": 0}
    runner: Any = torch.compile(model) if cfg.compile else model
    history = state["history"]
    epochs_bar = bar(range(1, epochs + 1), desc=desc, unit="epoch", leave=False)
    for epoch in epochs_bar:
        optimizer.lr = lr = cosine(cfg.lr, epoch - 1, epochs)
        model.train()
        if hasattr(train_batches, "set_epoch"):
            train_batches.set_epoch(epoch)
        loss_sum = torch.zeros((), device=device)
        correct = torch.zeros((), device=device, dtype=torch.long)
        count = 0
        for x, y in train_batches:
            logits, loss = _forward(runner, x, y, device)
            optimizer.zero_grad(set_to_none=True)
            scaler.scale(loss).backward()
            scaler.step(optimizer)  # type: ignore[arg-type]  # duck-typed: it reads param_groups
            scaler.update()
            if after_step is not None:
                after_step()
            loss_sum += loss.detach() * y.numel()
            correct += (logits.argmax(-1) == y).sum()
            count += y.numel()
        val = evaluate(model, val_batches, device)
        for name, value in (("training", float(loss_sum) / count), ("validation", val["loss"])):
            if not math.isfinite(value):
                raise Diverged(
                    f"{desc}, epoch {epoch}: the {name} loss is {value} (diverged); lower {cfg.key}.lr (now {cfg.lr:g})"
                )
        history.append(
            dict(
                zip(
                    EPOCH_COLUMNS,
                    (epoch, lr, float(loss_sum) / count, int(correct) / count, val["loss"], val["accuracy"]),
                )
            )
        )
        epochs_bar.set_postfix(loss=f"{val['loss']:.3f}", acc=f"{val['accuracy']:.3f}")
        if val["loss"] < state["best_loss"]:
            state |= {"best_loss": val["loss"], "best": copy.deepcopy(model.state_dict()), "since_best": 0}
        else:
            state["since_best"] += 1
        stop = 0 < cfg.patience <= state["since_best"]
        if stop:
            break
    model.load_state_dict(state["best"])
    return history
