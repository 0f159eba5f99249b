"""Stage sensitivity: prune one layer (unstructured, by magnitude) or one channel group
(structured, by filter L1) at a time and measure validation accuracy without retraining, for
every ratio in `sensitivity.ratios` and every seed's base model."""

from tqdm import tqdm

from prunebench import report, surgery
from prunebench.io import write_csv
from prunebench.params import load
from prunebench.pipeline import SENSITIVITY, Workbench, base_model
from prunebench.sensitivity import sweep
from prunebench.train import prepare_model

params = load()
bench = Workbench.open(params)
rows = []
for seed in tqdm(params["seeds"], desc="sensitivity", unit="seed"):
    model, _, _ = surgery.load(base_model(seed))
    model = prepare_model(model, bench.device)
    rows += [{"seed": seed, **row} for row in sweep(model, bench.val, params["sensitivity"]["ratios"],
                                                     bench.device, bench.splits.input_shape)]
write_csv(SENSITIVITY, rows)
report.plot_sensitivity(rows, "plots/sensitivity/unstructured.png")
report.plot_sensitivity_heatmap(rows, "plots/sensitivity/structured.png")
