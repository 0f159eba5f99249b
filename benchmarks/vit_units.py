"""Which unit of a vision transformer buys speed where it is deployed: heads, MLP neurons or the
embedding width, each removed alone (`l1_channel` with `kinds: [<kind>]`) and all together, at equal
MACs (2× and 4×), against ONNX Runtime's speed-up; a timm ViT-Tiny-sized model (timm's
`vit_tiny_patch16_224`: width 192, 12 blocks of 3 heads, MLP 768, here on 4 × 4 patches of 32 × 32
images: 65 tokens) trained briefly on real CIFAR-10 images, since pretrained weights cannot be
downloaded here.

Run by hand from the repository root, on a quiet machine:
    .venv/bin/python benchmarks/vit_units.py --root /abs/cifar_imagefolder --minutes 25
(`root`: an `imagefolder` tree, train/ and val/ of class folders of 32 × 32 images.) Trains with the
pipeline's loop (SGD, cosine) for as many epochs as fit in `--minutes`, prunes copies of the model,
reports test accuracy right after pruning and after one epoch of fine-tuning, the MACs reduction,
and each model's ONNX Runtime latency timed beside the base model (`deploy.timing.interleaved`,
one thread, batch 1 and `--batch`). `--smoke`: a tiny ViT on digits (what CI runs).
"""

from __future__ import annotations

import argparse
import copy
import dataclasses
import functools
import time

import torch

from prunebench import params
from prunebench.deploy import export, timing
from prunebench.params import MethodEntry
from prunebench.pruning import methods
from prunebench.pruning.methods import Context
from prunebench.pruning.steps import prune_in_steps
from prunebench.pruning.units import units_of
from prunebench.training import data, measure, models
from prunebench.training.batches import batches
from prunebench.training.loops import evaluate, fit, seed_everything

KINDS = {"heads": ["head"], "neurons": ["channel"], "width": ["width"], "all": None}


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--root", default="data/raw", help="an imagefolder tree of 32 × 32 images")
    parser.add_argument("--minutes", type=float, default=25.0, help="training budget")
    parser.add_argument("--batch", type=int, default=64)
    parser.add_argument("--smoke", action="store_true", help="tiny ViT on digits (CI)")
    args = parser.parse_args(argv)
    torch.set_num_threads(1)
    seed_everything(0)
    cpu = torch.device("cpu")
    cfg = params.load()
    if args.smoke:
        data_cfg = cfg.data
        description = {"name": "vit", "dim": 16, "depth": 1}
        budget, epochs_max, batch, rounds, run_time = 0.0, 2, 8, 1, 0.005
    else:
        data_cfg = dataclasses.replace(
            cfg.data, name="imagefolder", root=args.root, image_size=32, crop_pct=1.0, augment="crop_flip"
        )
        description = {"name": "timm:vit_tiny_patch16_224", "patch_size": 4}
        budget, epochs_max, batch, rounds, run_time = args.minutes * 60, 100, args.batch, 5, 0.3
    splits = data.load(data.prepare(data_cfg), data_cfg)
    shape = splits.input_shape
    train = batches(splits.train, splits, data_cfg, cpu, train=True)
    val, test = batches(splits.val, splits, data_cfg, cpu), batches(splits.test, splits, data_cfg, cpu)
    base = models.build(models.spec(description, shape[0], splits.num_classes, shape[1]))
    start = time.perf_counter()
    one = dataclasses.replace(cfg.train, epochs=1, patience=0)
    fit(base, train, val, one, cpu, desc="one epoch")  # timed, to fit the budget
    epochs = max(1, min(epochs_max, int(budget / (time.perf_counter() - start))))
    fit(base, train, val, dataclasses.replace(cfg.train, epochs=epochs), cpu, desc="train")
    trained = time.perf_counter() - start
    base.eval()
    base_accuracy = evaluate(base, test, cpu)["accuracy"]
    x, y = next(iter(train))
    ctx = Context(lambda: iter([(x, y)]), cpu, torch.Generator().manual_seed(0), shape)
    base_macs = measure.costs(base, shape)[0]["macs"]
    rows, pairs = [], {"base": base}
    for label, kinds in KINDS.items():
        method = methods.create(MethodEntry.of("l1", {"method": "l1_channel", "kinds": kinds}))
        kept = functools.partial(units_of(method).cost(base, shape).kept, budget="macs")
        for ratio in (0.5, 0.75):
            pruned, choice = prune_in_steps(copy.deepcopy(base), method, ctx, kept, 1 - ratio, 1, lambda m, *_: m)
            model = pruned.model.eval()
            after = evaluate(model, test, cpu)["accuracy"]
            tuned = copy.deepcopy(model)
            fit(tuned, train, val, dataclasses.replace(cfg.finetune, epochs=1), cpu, desc=f"finetune {label}")
            name = f"{label} {1 / (1 - ratio):g}×"
            pairs[name] = model
            rows.append(
                (
                    name,
                    base_macs / measure.costs(model, shape)[0]["macs"],
                    choice.reached,
                    after,
                    evaluate(tuned.eval(), test, cpu)["accuracy"],
                    _sizes(model),
                )
            )
    sessions = {}
    for name, model in pairs.items():
        network = export.to_onnx(model, x[:1])
        check = export.check(model, network, x, 1e-3)
        assert check.problem is None, f"{name}: {check.problem}"
        sessions[name] = (model, export.session(network))
    ms = timing.interleaved(sessions, shape, batch, rounds, run_time)
    b = ms["base"]
    print(
        f"torch {torch.__version__}, 1 thread; {description['name']} on {shape[1]}×{shape[1]}, "
        f"{sum(p.numel() for p in base.parameters()):,} parameters, {base_macs:,.0f} MACs per image; trained "
        f"{epochs} epochs in {trained / 60:.1f} min, test accuracy {base_accuracy:.3f} ({len(splits.test)} images)\n"
    )
    print(
        f"| units removed | target | MACs ↓ | reached | acc. pruned | acc. fine-tuned 1 epoch | heads / MLP / width "
        f"| ORT batch {batch} speed-up | ORT batch 1 speed-up |"
    )
    print("|---|---|---|---|---|---|---|---|---|")
    for name, reduction, reached, after, tuned, sizes in rows:
        label, target = name.rsplit(" ", 1)
        m = ms[name]
        print(
            f"| {label} | {target} | {reduction:.2f}× | {'yes' if reached else 'no'} | {after:.3f} | {tuned:.3f} "
            f"| {sizes} | {b['ort_ms'] / m['ort_ms']:.2f}× | {b['ort_b1_ms'] / m['ort_b1_ms']:.2f}× |"
        )


def _sizes(model: torch.nn.Module) -> str:
    """Heads per block, hidden neurons of the first block's MLP, and the embedding width."""
    blocks = list(model.blocks)
    heads = "·".join(str(block.attn.num_heads) for block in blocks[:3]) + ("…" if len(blocks) > 3 else "")
    return f"{heads} / {blocks[0].mlp.fc1.out_features} / {blocks[0].norm1.normalized_shape[0]}"


if __name__ == "__main__":
    main()
