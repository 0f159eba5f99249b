"""The top Hessian eigenpairs: products and seconds of the Lanczos solver against power iteration
with deflation (the solver before issue 24, kept here as the reference) and against PyHessian.

Run by hand from the repository root after `make run` (it needs models/base/0.pt), on a quiet
machine: `.venv/bin/python benchmarks/hessian_solver.py` (PyHessian: `pip install pyhessian`,
for this benchmark only). Both models use the pipeline's settings: all prunable weights, k = 8,
tol 1e-3, 2 calibration batches of 64; resnet20 at 32×32 has random weights and inputs (no
CIFAR-10 here). Accuracy is measured against a Lanczos solve to tol 1e-9: the relative error of
the 8 eigenvalues, and each pair's relative residual ‖Hv − λv‖/|λ| (products not counted).
PyHessian and Lanczos get the same single batch of 128 and find the top 3 at their default
tol 1e-3. `--smoke` runs every step on tiny untrained models (what CI runs).
"""

from __future__ import annotations

import argparse
import time

import torch
from torch import Tensor, nn

from prunebench import params, paths, runtime
from prunebench.pruning.hessian import HessianOperator, top_eigenpairs
from prunebench.stages.workbench import Workbench
from prunebench.training import modelfile, models
from prunebench.training.models import prunable_layers


def power_iteration(operator: HessianOperator, k: int, iterations: int, tol: float, seed: int) -> tuple[Tensor, Tensor]:
    """The solver before issue 24: power iteration with deflation, a pair ending when its
    eigenvalue estimate changes by less than `tol` relative, or after `iterations` products."""
    generator = torch.Generator().manual_seed(seed)
    values, vectors = [], []
    for _ in range(k):
        v = torch.randn(operator.size, generator=generator)
        estimate = None
        for _ in range(iterations):
            for u in vectors:
                v -= (v @ u) * u
            v /= v.norm()
            hv = operator(v)
            previous, estimate = estimate, float(v @ hv)
            v = hv
            if previous is not None and abs(estimate - previous) <= tol * abs(previous):
                break
        for u in vectors:
            v -= (v @ u) * u
        vectors.append(v / v.norm())
        values.append(estimate)
    return torch.tensor(values, dtype=torch.float64), torch.stack(vectors).double()


def accuracy(operator: HessianOperator, values: Tensor, vectors: Tensor, exact: Tensor) -> str:
    """Largest relative eigenvalue error against `exact`, and largest relative residual."""
    error = float(((values - exact) / exact).abs().max())
    residual = max(float((operator(v).double() - lam * v).norm() / abs(lam)) for lam, v in zip(values, vectors))
    return f"{error:.1e} | {residual:.1e}"


def solvers(name: str, model: nn.Module, batches: list, k: int, cap: int) -> list[str]:
    model.eval()
    weights = [m.weight for m in prunable_layers(model).values()]
    exact = top_eigenpairs(HessianOperator(model, weights, batches), k, 400, 1e-9, torch.Generator().manual_seed(1))
    rows = []
    operator = HessianOperator(model, weights, batches, keep_graph=False)
    start = time.perf_counter()
    values, vectors = power_iteration(operator, k, cap, 1e-3, 0)
    seconds, products = time.perf_counter() - start, operator.calls
    check = HessianOperator(model, weights, batches)
    found = accuracy(check, values, vectors, exact.values)
    rows.append(f"| {name} | power iteration (before) | {products} | {seconds:.1f} | {found} |")
    for keep in (False, True):
        operator = HessianOperator(model, weights, batches, keep_graph=keep)
        start = time.perf_counter()
        pairs = top_eigenpairs(operator, k, cap, 1e-3, torch.Generator().manual_seed(0))
        seconds = time.perf_counter() - start
        solver = f"Lanczos{', first backward kept' if keep else ''}"
        found = accuracy(check, pairs.values, pairs.vectors, exact.values)
        rows.append(f"| {name} | {solver} | {pairs.products} | {seconds:.1f} | {found} |")
    return rows


def against_pyhessian(name: str, model: nn.Module, batch: tuple[Tensor, Tensor]) -> str:
    """Top 3 on one batch: PyHessian (its defaults: at most 100 iterations, tol 1e-3) and ours."""
    try:
        from pyhessian import hessian
    except ImportError:
        return f"| {name} | PyHessian not installed | | | | |"
    model.eval()
    weights = [m.weight for m in prunable_layers(model).values()]
    chosen = {id(w) for w in weights}
    for p in model.parameters():  # PyHessian differentiates what requires grad: the same weights as ours
        p.requires_grad_(id(p) in chosen)
    torch.manual_seed(0)
    start = time.perf_counter()
    theirs, _ = hessian(model, nn.CrossEntropyLoss(), data=batch, cuda=False).eigenvalues(top_n=3)
    their_seconds = time.perf_counter() - start
    operator = HessianOperator(model, weights, [batch])
    start = time.perf_counter()
    ours = top_eigenpairs(operator, 3, 100, 1e-3, torch.Generator().manual_seed(0))
    our_seconds = time.perf_counter() - start
    for p in model.parameters():
        p.requires_grad_(True)
    shown = " ".join(f"{v:.4g}" for v in theirs)
    return (
        f"| {name} | {their_seconds:.1f} | {our_seconds:.1f} | {their_seconds / our_seconds:.1f}× "
        f"| {shown} | {' '.join(f'{float(v):.4g}' for v in ours.values)} |"
    )


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--smoke", action="store_true", help="tiny untrained models and random data (CI)")
    args = parser.parse_args(argv)
    k, cap, size, batch = (2, 5, 8, 8) if args.smoke else (8, 100, 32, 64)
    torch.set_num_threads(1)
    print(f"torch {torch.__version__}, {torch.get_num_threads()} thread\n")
    if args.smoke:
        model = models.build(models.spec({"name": "cnn", "width": 4, "hidden": 8}, 1, 10, 8))
        batches = [(torch.randn(batch, 1, 8, 8), torch.randint(0, 10, (batch,))) for _ in range(2)]
    else:
        checked = params.load()
        bench = Workbench.open(checked, runtime.setup(checked))
        model = modelfile.load(paths.base_model(0))[0]
        loader = iter(bench.train_batches(0))
        batches = [next(loader), next(loader)]
    torch.manual_seed(0)
    net = models.build(models.spec({"name": "resnet20"}, 3, 10, size))
    net_batches = [(torch.randn(batch, 3, size, size), torch.randint(0, 10, (batch,))) for _ in range(2)]
    default = "default cnn (digits, untrained)" if args.smoke else "default cnn (digits, trained)"
    cases = [(default, model, batches), (f"resnet20 {size}×{size} (random)", net, net_batches)]
    print(f"| model | solver (k = {k}, tol 1e-3) | products | seconds | eigenvalue error | residual |")
    print("|---|---|---|---|---|---|")
    for name, m, b in cases:
        print("\n".join(solvers(name, m, b, k, cap)))
    print("\n| model | PyHessian top 3 (s) | ours (s) | ours faster | PyHessian's | ours |")
    print("|---|---|---|---|---|---|")
    for name, m, b in cases:
        one = (torch.cat([x for x, _ in b]), torch.cat([y for _, y in b]))
        print(against_pyhessian(name, m, one))


if __name__ == "__main__":
    main()
