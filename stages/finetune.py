"""Stage finetune@<method>: fine-tune every pruned model with the same budget; masks stay applied."""

import sys

from tqdm import tqdm

from prunebench import surgery
from prunebench.io import write_csv, write_json
from prunebench.params import load
from prunebench.pipeline import Workbench, finetuned_model, pruned_model, summarize
from prunebench.pruning import mask_keeper
from prunebench.train import fit, prepare_model, seed_everything

key = sys.argv[1]
params = load()
bench = Workbench.open(params)
results, curves = {}, []
for seed in tqdm(params["seeds"], desc=f"finetune {key}", unit="seed"):
    seed_everything(seed)
    model, masks, spec = surgery.load(pruned_model(key, seed))
    model = prepare_model(model, bench.device)
    history = fit(model, bench.train_loader(seed), bench.val, params["finetune"], bench.device,
                  after_step=mask_keeper(model, masks), desc=f"finetune seed {seed}")
    results[seed] = bench.assess(model)
    surgery.save(finetuned_model(key, seed), model, spec, masks)
    curves += [{"seed": seed, **record} for record in history]
    tqdm.write(f"{key} seed {seed}: test accuracy {results[seed]['accuracy']:.4f}")
write_json(f"metrics/finetuned/{key}.json", summarize(results))
write_csv(f"plots/finetune/{key}.csv", curves)
