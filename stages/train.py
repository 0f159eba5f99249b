"""Stage train: one base model per seed."""

from tqdm import tqdm

from prunebench import models, surgery
from prunebench.io import write_csv, write_json
from prunebench.params import load
from prunebench.pipeline import Workbench, base_model, summarize
from prunebench.train import fit, prepare_model, seed_everything

params = load()
bench = Workbench.open(params)
s = bench.splits
spec = models.spec(params["model"], s.in_channels, s.num_classes, s.image_size)
results, curves = {}, []
for seed in tqdm(params["seeds"], desc="base models", unit="seed"):
    seed_everything(seed)
    model = prepare_model(models.build(spec), bench.device)
    history = fit(model, bench.train_loader(seed), bench.val, params["train"], bench.device, desc=f"train seed {seed}")
    results[seed] = bench.assess(model)
    surgery.save(base_model(seed), model, spec)
    curves += [{"seed": seed, **record} for record in history]
    tqdm.write(f"seed {seed}: test accuracy {results[seed]['accuracy']:.4f}")
write_csv("plots/train/curves.csv", curves)
write_json("metrics/base.json", summarize(results, model=params["model"]["name"]))
