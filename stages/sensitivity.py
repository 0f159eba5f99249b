"""Stage sensitivity: prune one layer at a time by weight magnitude and measure validation
accuracy without retraining, for every ratio in `sensitivity.ratios`."""

from prunebench import report, surgery
from prunebench.io import write_csv
from prunebench.params import load
from prunebench.pipeline import Workbench, base_model
from prunebench.sensitivity import sweep_unstructured
from prunebench.train import prepare_model

params = load()
bench = Workbench.open(params)
model, _, _ = surgery.load(base_model(params["seeds"][0]))
model = prepare_model(model, bench.device)
rows = sweep_unstructured(model, bench.val, params["sensitivity"]["ratios"], bench.device)
write_csv("plots/sensitivity/unstructured.csv", rows)
report.plot_sensitivity(rows, "plots/sensitivity/unstructured.png")
