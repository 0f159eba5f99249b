"""Measured CPU latency speed-up of l1_channel at 0.5 on resnet18 (32×32, batch 64), divided by
its MACs reduction. Target: at least 0.7. Run by hand: .venv/bin/python benchmarks/structured_latency.py"""

import torch

from prunebench import measure, methods, models
from prunebench.methods import Context
from prunebench.pruning import prune_step

SHAPE, BATCH = (3, 32, 32), 64
torch.manual_seed(0)
model = models.build(models.spec({"name": "resnet18"}, 3, 10, 32)).eval()
cfg = {"latency_batch": BATCH, "warmup": 5, "repeats": 30}
cpu = torch.device("cpu")
before = measure.profile(model, SHAPE, cfg, cpu)
ctx = Context(batches=lambda: iter(()), device=cpu, generator=torch.Generator().manual_seed(0), input_shape=SHAPE)
pruned, _ = prune_step(model, methods.create("l1_channel", {}), 0.0, 0.5, ctx, {}, SHAPE)
after = measure.profile(pruned, SHAPE, cfg, cpu)
macs, speed = before["macs"] / after["macs"], before["latency_ms"] / after["latency_ms"]
print(f"torch {torch.__version__}, {torch.get_num_threads()} threads, batch {BATCH}, 32×32")
print(f"MACs {before['macs']:,.0f} → {after['macs']:,.0f} ({macs:.2f}×); latency {before['latency_ms']:.1f} → "
      f"{after['latency_ms']:.1f} ms ({speed:.2f}×); speed-up / MACs reduction = {speed / macs:.2f}")
