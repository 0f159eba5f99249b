"""End to end: the real `dvc repro` in a temporary copy of the repository, one seed, few epochs."""

from __future__ import annotations

import io
import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pandas as pd
import pytest
import yaml

from helpers import ROOT

GIT_IDENTITY = {f"GIT_{who}_{what}": value for who in ("AUTHOR", "COMMITTER")
                for what, value in (("NAME", "test"), ("EMAIL", "test@localhost"))}


def run(repo: Path, *args: str, check: bool = True) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("DVC_", "MLFLOW_TRACKING"))}
    env |= GIT_IDENTITY | {"PATH": f"{Path(sys.executable).parent}{os.pathsep}{env['PATH']}",
                           "MLFLOW_DISABLE_TELEMETRY": "true"}
    done = subprocess.run(args, cwd=repo, env=env, capture_output=True, text=True)
    if check and done.returncode != 0:
        raise AssertionError(f"{' '.join(args)} failed:\n{done.stdout[-3000:]}\n{done.stderr[-3000:]}")
    return done


# One of each code path (weights: per layer, global, allocated; channels: per layer, allocated,
# global with diagnostics, the retention schedule) keeps CI short; test_every_default_method_runs (slow) runs them all.
METHODS = ["random", "magnitude", "lamp", "sensitivity_unstructured", "l1_channel", "sensitivity_structured", "taylor3",
           "interval_adjoint"]
WEIGHT_METHODS = ["random", "magnitude", "lamp", "sensitivity_unstructured"]


def stages_run(output: str) -> set[str]:
    return {line.split("'")[1] for line in output.splitlines() if line.startswith("Running stage")}


def table_rows(markdown: str) -> list[list[str]]:
    """The cells of every Markdown table row in a text, stripped."""
    return [[cell.strip() for cell in line.strip().strip("|").split("|")] for line in markdown.splitlines()
            if line.startswith("|")]


def copy_project(tmp_path_factory, methods: list[str] | None) -> Path:
    """A copy of the project (what git would commit) with a small, fast params.yaml, committed."""
    repo = tmp_path_factory.mktemp("prunebench")
    files = subprocess.run(["git", "ls-files", "--cached", "--others", "--exclude-standard"], cwd=ROOT,
                           capture_output=True, text=True, check=True).stdout.split()
    for name in files:
        if (ROOT / name).is_file():
            (repo / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(ROOT / name, repo / name)
    params = yaml.safe_load((repo / "params.yaml").read_text())
    params["seeds"] = [0]
    params["train"]["epochs"] = 4
    params["finetune"]["epochs"] = 2
    params["sensitivity"]["ratios"] = [0.5, 0.9]
    params["measure"] |= {"warmup": 1, "min_run_time": 0.01}
    if methods is not None:
        params["methods"] = {key: params["methods"][key] for key in methods}
    (repo / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))
    run(repo, "git", "init", "-q")
    run(repo, "git", "add", "-A")
    run(repo, "git", "commit", "-qm", "test baseline")
    return repo


@pytest.fixture(scope="module")
def repo(tmp_path_factory) -> Path:
    repo = copy_project(tmp_path_factory, METHODS)
    output = run(repo, "dvc", "repro").stdout
    assert stages_run(output) >= {"check", "data", "train", "sensitivity", "prune@l1_channel", "compare"}
    return repo


@pytest.mark.slow
def test_every_default_method_runs(tmp_path_factory):
    repo = copy_project(tmp_path_factory, None)
    run(repo, "dvc", "repro")
    methods = list(yaml.safe_load((ROOT / "params.yaml").read_text())["methods"])
    results = pd.read_csv(repo / "results/results.csv")
    assert list(results["method"]) == methods
    assert (results["pruned_sparsity"] > 0.3).all()
    recovered = results.set_index("method")["finetuned_accuracy"]
    assert (recovered.drop("random") > 0.8).all()  # random pruning is the one not expected to recover
    assert 0 <= recovered["random"] <= 1
    report = table_rows((repo / "results/report.md").read_text())
    assert ["taylor3", "taylor_fidelity.order2"] in [row[:2] for row in report]


def mlflow_runs(repo: Path) -> pd.DataFrame:
    import mlflow

    mlflow.set_tracking_uri(f"sqlite:///{repo / 'mlflow.db'}")
    return mlflow.search_runs(experiment_names=["digits-cnn"])


def test_results_have_one_row_per_method_and_seed_with_sane_values(repo):
    results = pd.read_csv(repo / "results/results.csv")
    assert list(results["method"]) == METHODS
    assert (results["seed"] == 0).all()
    assert (results["base_accuracy"] > 0.8).all()  # chance is 0.1
    by = results.set_index("method")
    assert by.loc["l1_channel", "finetuned_params"] < 0.4 * by.loc["l1_channel", "base_params"]
    assert by.loc["l1_channel", "macs_reduction"] > 2.5
    assert by.loc["sensitivity_structured", "finetuned_params"] < by.loc["sensitivity_structured", "base_params"]
    for method in WEIGHT_METHODS:
        assert by.loc[method, "finetuned_params"] == by.loc[method, "base_params"]  # masks, not removal
        assert by.loc[method, "finetuned_nonzeros"] < 0.6 * by.loc[method, "base_nonzeros"]
        assert by.loc[method, "macs_reduction"] > 1.6
    assert by.loc["magnitude", "pruned_accuracy"] > by.loc["random", "pruned_accuracy"]


def test_summary_report_metrics_and_plots(repo):
    summary = pd.read_csv(repo / "results/summary.csv")
    assert {"finetuned_accuracy_mean", "finetuned_accuracy_std", "speedup_mean"} <= set(summary.columns)
    report = (repo / "results/report.md").read_text()
    rows = table_rows(report)
    assert ["l1_channel", "channel"] in [row[:2] for row in rows]
    for link in [line.split("(")[1].rstrip(")") for line in report.splitlines() if line.startswith("![")]:
        assert (repo / "results" / link).stat().st_size > 1000
    assert list(json.loads((repo / "metrics/summary.json").read_text())) == METHODS
    assert "## Fraction removed per layer" in report and "sensitivity_unstructured" in [row[0] for row in rows]
    assert ["taylor3", "taylor_fidelity.order2"] in [row[:2] for row in rows]
    assert (repo / "plots/methods/taylor3/fidelity.png").exists()
    sensitivity = pd.read_csv(repo / "plots/sensitivity/sensitivity.csv")
    counts = sensitivity.groupby("kind").size()
    assert counts["unstructured"] == 5 * 3 and counts["structured"] == 4 * 3  # (unpruned, 0.5, 0.9)
    assert sensitivity.groupby(["kind", "layer"])["accuracy"].apply(lambda a: a.iloc[0] >= a.iloc[-1]).all()
    layer_ratios = json.loads((repo / "metrics/pruned/lamp.json").read_text())["layer_ratios"]["0"]
    assert list(layer_ratios) == ["stem.0", "block.conv1", "block.conv2", "down.0", "fc"]
    iterations = pd.read_csv(repo / "plots/methods/interval_adjoint/iterations.csv")
    retention = pd.read_csv(repo / "plots/methods/interval_adjoint/retention.csv")
    assert list(iterations["units_kept"]) == list(retention.drop(columns=["iteration", "kept_percent",
                                                                         "removed_fraction"]).sum(axis=1))
    assert retention["removed_fraction"].iloc[-1] >= 0.5 > retention["removed_fraction"].iloc[-2]
    assert iterations["params"].is_monotonic_decreasing and iterations["deployed"].sum() == 1
    deployed = json.loads((repo / "metrics/pruned/interval_adjoint.json").read_text())["deployed"]["0"]
    chosen = iterations[iterations["deployed"]].iloc[0]
    assert deployed["iteration"] == chosen["iteration"] and (repo / deployed["model"]).exists()
    assert chosen["val_accuracy"] >= iterations["val_accuracy"].iloc[0] - 0.01
    assert ["interval_adjoint", "0", str(deployed["iteration"])] in [row[:3] for row in rows]
    for png in ("retention", "retention_distribution", "accuracies", "losses"):
        assert (repo / f"plots/methods/interval_adjoint/{png}.png").stat().st_size > 1000
    rendered = json.loads(run(repo, "dvc", "plots", "show", "--json").stdout)
    assert "errors" not in rendered
    assert all(len(definitions) == 1 for definitions in rendered["data"].values())


def test_mlflow_holds_the_base_and_method_runs(repo):
    runs = mlflow_runs(repo)
    assert sorted(runs["tags.mlflow.runName"]) == sorted(["base seed 0", "benchmark"] + [f"{m} seed 0" for m in METHODS])
    assert (runs["tags.dvc_exp"] == "workspace").all()
    assert runs["tags.git_commit"].str.fullmatch("[0-9a-f]{40}").all()
    method = runs[runs["tags.mlflow.runName"] == "l1_channel seed 0"].iloc[0]
    assert method["metrics.finetuned_accuracy"] > 0.5 and method["params.ratio"] == "0.5"
    from mlflow.tracking import MlflowClient

    history = MlflowClient().get_metric_history(method["run_id"], "val_accuracy")
    assert [m.step for m in history] == [1, 2]
    iterative = runs[runs["tags.mlflow.runName"] == "interval_adjoint seed 0"].iloc[0]
    steps = MlflowClient().get_metric_history(iterative["run_id"], "iteration_val_accuracy")
    assert [m.step for m in steps] == [0, 1, 2, 3, 4]  # q = 0.8 reaches 0.5 at iteration 4
    assert iterative["metrics.deployed_iteration"] in range(5)


def test_nothing_reruns_and_a_new_ratio_reruns_only_what_depends_on_it(repo):
    assert "up to date" in run(repo, "dvc", "status").stdout
    assert stages_run(run(repo, "dvc", "repro").stdout) == set()
    run(repo, "dvc", "exp", "save", "-n", "half")
    rerun = stages_run(run(repo, "dvc", "exp", "run", "-n", "seventy", "-S", "ratio=0.7").stdout)
    assert rerun == {"check", "concatenate", "compare"} | {f"{s}@{m}" for s in ("prune", "finetune") for m in METHODS}
    shown = pd.read_csv(io.StringIO(run(repo, "dvc", "exp", "show", "--csv").stdout)).set_index("Experiment")
    value = lambda exp, column: float(shown.loc[exp, column])  # noqa: E731 ("!" = missing raises)
    assert value("half", "ratio") == 0.5 and value("seventy", "ratio") == 0.7
    assert value("half", "l1_channel.finetuned_accuracy") > 0.5
    assert value("seventy", "l1_channel.pruned_sparsity") > value("half", "l1_channel.pruned_sparsity")
    assert "seventy" in set(mlflow_runs(repo)["tags.dvc_exp"])


def test_a_temporary_experiment_logs_to_the_main_mlflow_store(repo):
    run(repo, "dvc", "exp", "run", "--temp", "-n", "tmp-sixty", "-S", "ratio=0.6")
    runs = mlflow_runs(repo)
    assert len(runs[runs["tags.dvc_exp"] == "tmp-sixty"]) == 2 + len(METHODS)


def test_a_bad_param_stops_before_any_stage_touches_outputs(repo):
    before = (repo / "results/results.csv").read_bytes()
    models_before = sorted(p.name for p in (repo / "models/pruned/l1_channel").iterdir())
    params = (repo / "params.yaml").read_text()
    (repo / "params.yaml").write_text(params.replace("ratio: 0.7", "ratio: 1.5"))
    done = run(repo, "dvc", "repro", check=False)
    (repo / "params.yaml").write_text(params)
    assert done.returncode != 0
    assert "params.yaml: ratio = 1.5: expected a number in [0, 1)" in done.stdout + done.stderr
    assert stages_run(done.stdout) == {"check"}
    assert (repo / "results/results.csv").read_bytes() == before
    assert sorted(p.name for p in (repo / "models/pruned/l1_channel").iterdir()) == models_before


def test_a_killed_prune_stage_resumes_at_the_unfinished_iteration(repo):
    before = pd.read_csv(repo / "results/results.csv").set_index("method").loc["interval_adjoint"]
    store = repo / "checkpoints/interval_adjoint/0"
    shutil.rmtree(store)
    # the default box, spelled out: prune@interval_adjoint must run (else DVC restores it from its cache)
    params = (repo / "params.yaml").read_text()
    (repo / "params.yaml").write_text(params.replace("interval_adjoint: {}", "interval_adjoint: {box: [0, 100]}"))
    env = {k: v for k, v in os.environ.items() if not k.startswith("DVC_")}
    env["PATH"] = f"{Path(sys.executable).parent}{os.pathsep}{env['PATH']}"
    repro = subprocess.Popen(["dvc", "repro", "prune@interval_adjoint"], cwd=repo, env=env,
                             stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
    while not (store / "1/result.json").exists():  # then kill it while it retrains after pruning iteration 2
        assert repro.poll() is None, "the stage ended before it was killed"
        time.sleep(0.005)
    os.killpg(repro.pid, signal.SIGKILL)  # dvc and the stage it runs
    repro.wait()
    assert sorted(p.parent.name for p in store.glob("*/result.json")) == ["0", "1"]
    assert not (repo / "models/pruned/interval_adjoint/0.pt").exists()  # DVC removed the outputs first
    output = run(repo, "dvc", "repro").stdout
    assert "resuming at iteration 2" in output and "prune@interval_adjoint" in stages_run(output)
    after = pd.read_csv(repo / "results/results.csv").set_index("method").loc["interval_adjoint"]
    for column in ("pruned_accuracy", "pruned_params", "finetuned_accuracy", "finetuned_loss"):
        assert after[column] == before[column]  # the same as the run that was never interrupted
    (repo / "params.yaml").write_text(params)
