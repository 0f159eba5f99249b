"""Training and evaluation loops, device choice and seeding.

On CUDA: mixed precision (fp16 autocast + gradient scaling), channels_last and pinned memory.
On the CPU: plain fp32, deterministic, so the same params and seed give identical metrics.
"""

from __future__ import annotations

import copy
import math
import random
from collections.abc import Callable

import numpy as np
import torch
from torch import nn
from torch.utils.data import DataLoader
from tqdm import tqdm

EPOCH_COLUMNS = ("epoch", "lr", "train_loss", "train_accuracy", "val_loss", "val_accuracy")  # a `fit` record


def pick_device(name: str) -> torch.device:
    if name == "cuda" and not torch.cuda.is_available():
        raise RuntimeError("params.yaml: device = 'cuda' but no CUDA device is available; use auto or cpu")
    if name == "auto":
        name = "cuda" if torch.cuda.is_available() else "cpu"
    return torch.device(name)


def seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)


def prepare_model(model: nn.Module, device: torch.device) -> nn.Module:
    model = model.to(device)
    if device.type == "cuda":
        model = model.to(memory_format=torch.channels_last)
    return model


def _to_device(x: torch.Tensor, device: torch.device) -> torch.Tensor:
    x = x.to(device, non_blocking=True)
    if device.type == "cuda" and x.dim() == 4:
        x = x.contiguous(memory_format=torch.channels_last)
    return x


def _forward(model: nn.Module, x: torch.Tensor, y: torch.Tensor, device: torch.device):
    """Logits, mean cross-entropy and labels of one batch (fp16 autocast on CUDA)."""
    x, y = _to_device(x, device), y.to(device, non_blocking=True)
    with torch.autocast(device.type, enabled=device.type == "cuda"):
        logits = model(x)
    return logits, nn.functional.cross_entropy(logits.float(), y), y


@torch.no_grad()
def evaluate(model: nn.Module, loader: DataLoader, device: torch.device) -> dict[str, float]:
    """Mean cross-entropy and accuracy over the whole loader."""
    model.eval()
    loss_sum, correct, count = 0.0, 0, 0
    for x, y in loader:
        logits, loss, y = _forward(model, x, y, device)
        loss_sum += loss.item() * len(y)
        correct += (logits.argmax(1) == y).sum().item()
        count += len(y)
    return {"accuracy": correct / count, "loss": loss_sum / count}


def fit(
    model: nn.Module,
    train_loader: DataLoader,
    val_loader: DataLoader,
    cfg: dict,
    device: torch.device,
    epochs: int | None = None,
    after_step: Callable[[], None] | None = None,
    desc: str = "train",
) -> list[dict[str, float]]:
    """SGD with momentum and a cosine learning rate; returns one record per epoch.

    `after_step` runs after every optimiser step (pruning masks use it to keep removed weights
    at zero). With `cfg["patience"]` > 0 training stops once the validation loss has not
    improved for that many epochs. The weights with the best validation loss are restored.
    """
    epochs = cfg["epochs"] if epochs is None else epochs
    history: list[dict[str, float]] = []
    if epochs == 0:
        return history
    optimizer = torch.optim.SGD(
        model.parameters(), lr=cfg["lr"], momentum=cfg["momentum"], weight_decay=cfg["weight_decay"]
    )
    scheduler = torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, T_max=epochs)
    scaler = torch.amp.GradScaler(device.type, enabled=device.type == "cuda")
    best_loss, best_state, since_best = math.inf, None, 0
    bar = tqdm(range(1, epochs + 1), desc=desc, unit="epoch", leave=False)
    for epoch in bar:
        model.train()
        loss_sum, correct, count = 0.0, 0, 0
        for x, y in train_loader:
            logits, loss, y = _forward(model, x, y, device)
            optimizer.zero_grad(set_to_none=True)
            scaler.scale(loss).backward()
            scaler.step(optimizer)
            scaler.update()
            if after_step is not None:
                after_step()
            loss_sum += loss.item() * len(y)
            correct += (logits.argmax(1) == y).sum().item()
            count += len(y)
        lr = optimizer.param_groups[0]["lr"]
        scheduler.step()
        val = evaluate(model, val_loader, device)
        history.append(dict(zip(EPOCH_COLUMNS, (epoch, lr, loss_sum / count, correct / count, val["loss"],
                                                val["accuracy"]))))
        bar.set_postfix(loss=f"{val['loss']:.3f}", acc=f"{val['accuracy']:.3f}")
        if val["loss"] < best_loss:
            best_loss, best_state, since_best = val["loss"], copy.deepcopy(model.state_dict()), 0
        else:
            since_best += 1
            if 0 < cfg["patience"] <= since_best:
                break
    model.load_state_dict(best_state)
    return history
