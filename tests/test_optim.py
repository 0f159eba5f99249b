"""prunebench.training.optim against its oracle, torch.optim's SGD and CosineAnnealingLR."""

from __future__ import annotations

import subprocess
import sys

import torch
from torch import nn

from prunebench.training.optim import SGD, cosine

EPOCHS, STEPS = 4, 3


def _model() -> nn.Module:
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(5, 4), nn.ReLU(), nn.Linear(4, 3))
    model.unused = nn.Linear(2, 2)  # never in the forward pass: no gradient, left alone by both
    return model


def _train(model: nn.Module, optimizer, epochs: range, set_lr, scaler=None) -> None:
    data = torch.Generator().manual_seed(1)
    for epoch in range(EPOCHS):
        xs = [torch.randn(8, 5, generator=data) for _ in range(STEPS)]
        ys = [torch.randint(0, 3, (8,), generator=data) for _ in range(STEPS)]
        if epoch not in epochs:
            continue
        set_lr(epoch)
        for x, y in zip(xs, ys):
            optimizer.zero_grad(set_to_none=True)
            loss = nn.functional.cross_entropy(model[2](model[1](model[0](x))), y)
            if scaler is None:
                loss.backward()
                optimizer.step()
            else:
                scaler.scale(loss).backward()
                scaler.step(optimizer)
                scaler.update()


def _torch_reference() -> tuple[nn.Module, list[float]]:
    model = _model()
    optimizer = torch.optim.SGD(model.parameters(), lr=0.1, momentum=0.9, weight_decay=5e-3)
    scheduler = torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, T_max=EPOCHS)
    rates = []

    def set_lr(epoch: int) -> None:
        if epoch:
            scheduler.step()
        rates.append(optimizer.param_groups[0]["lr"])

    _train(model, optimizer, range(EPOCHS), set_lr)
    return model, rates


def _ours(epochs: range, model: nn.Module | None = None, optimizer: SGD | None = None, scaler=None):
    model = model or _model()
    optimizer = optimizer or SGD(model.parameters(), lr=0.1, momentum=0.9, weight_decay=5e-3)

    def set_lr(epoch: int) -> None:
        optimizer.lr = cosine(0.1, epoch, EPOCHS)

    _train(model, optimizer, epochs, set_lr, scaler)
    return model, optimizer


def test_the_cosine_schedule_is_torchs():
    _, rates = _torch_reference()
    ours = [cosine(0.1, epoch, EPOCHS) for epoch in range(EPOCHS)]
    assert max(abs(a - b) for a, b in zip(ours, rates)) < 1e-15  # torch's recursion rounds differently
    assert cosine(0.1, 0, EPOCHS) == 0.1 and abs(cosine(0.1, EPOCHS, EPOCHS)) < 1e-18


def test_sgd_with_momentum_and_weight_decay_matches_torch_optim():
    reference, _ = _torch_reference()
    ours, _ = _ours(range(EPOCHS))
    for (name, expected), actual in zip(reference.named_parameters(), ours.parameters()):
        torch.testing.assert_close(actual, expected, rtol=1e-6, atol=1e-7, msg=name)
    assert torch.equal(ours.unused.weight, _model().unused.weight)  # no gradient: untouched


def test_a_run_resumed_from_the_state_dict_ends_where_an_unbroken_one_does():
    unbroken, _ = _ours(range(EPOCHS))
    first, optimizer = _ours(range(2))
    saved_model = {k: v.clone() for k, v in first.state_dict().items()}
    saved = optimizer.state_dict()
    resumed = _model()
    resumed.load_state_dict(saved_model)
    again = SGD(resumed.parameters(), lr=1.0, momentum=0.9, weight_decay=5e-3)
    again.load_state_dict(saved)
    _ours(range(2, EPOCHS), resumed, again)
    for expected, actual in zip(unbroken.parameters(), resumed.parameters()):
        assert torch.equal(actual, expected)


def test_a_grad_scaler_unscales_and_steps_it():
    plain, _ = _ours(range(EPOCHS))
    scaled, _ = _ours(range(EPOCHS), scaler=torch.amp.GradScaler("cpu", init_scale=1024.0))
    for expected, actual in zip(plain.parameters(), scaled.parameters()):
        torch.testing.assert_close(actual, expected, rtol=1e-5, atol=1e-6)


def test_training_does_not_import_torch_dynamo():
    """The reason the module exists: torch.optim's first use imports torch._dynamo (seconds)."""
    code = (
        "import sys, torch\n"
        "from prunebench.training.loops import fit\n"
        "model = torch.nn.Linear(3, 2)\n"
        "batches = [(torch.randn(4, 3), torch.tensor([0, 1, 0, 1]))]\n"
        "from prunebench.params import Loop\n"
        "cfg = Loop(epochs=1, compile=False, lr=0.1, momentum=0.9, weight_decay=0.0, patience=0)\n"
        "fit(model, batches, batches, cfg, torch.device('cpu'))\n"
        "print('torch._dynamo' in sys.modules)\n"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert done.stdout.strip().splitlines()[-1] == "False"
