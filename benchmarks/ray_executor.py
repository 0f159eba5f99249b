"""What Ray costs on one small machine, and a stage spread over two nodes.

1. The default pipeline (`dvc repro` in a fresh copy of the project) with `executor.kind: local`,
   then again (`--force`) with `kind: ray` and `address: null` (a Ray instance per stage), and
   whether the two give the same results (every non-timing column, every model file).
2. The fine-tuning stage of one method alone (`finetune@l1_channel`): local, and on a two-node
   Ray cluster on the loopback address (one CPU per node, tests/cluster.py), same results.

Run by hand on a quiet machine, as root (the cluster runs in a namespace of its own):
  .venv/bin/python benchmarks/ray_executor.py [--smoke]
`--smoke`: one seed, one point, two methods, one epoch each; on Ray only the train stage.
"""

from __future__ import annotations

import argparse
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pandas as pd
import yaml

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests"))

from cluster import ADDRESS, in_namespace  # noqa: E402  (the tests' loopback cluster)

from prunebench.resume import job_log  # noqa: E402


def copy_project(smoke: bool) -> Path:
    repo = Path(tempfile.mkdtemp(prefix="ray-bench-"))
    files = subprocess.run(["git", "ls-files"], cwd=ROOT, capture_output=True, text=True, check=True).stdout.split()
    for name in files:
        if (ROOT / name).is_file():
            (repo / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(ROOT / name, repo / name)
    if smoke:
        edit(repo, seeds=[0], ratio=0.75, train={"epochs": 1}, finetune={"epochs": 1}, sensitivity={"ratios": [0.5]})
        params = yaml.safe_load((repo / "params.yaml").read_text())
        edit(repo, methods={key: params["methods"][key] for key in ("magnitude", "l1_channel")})
    for command in (["git", "init", "-q"], ["git", "add", "-A"], ["git", "commit", "-qm", "bench"]):
        subprocess.run(command, cwd=repo, check=True, capture_output=True)
    return repo


def edit(repo: Path, **changes: object) -> None:
    params = yaml.safe_load((repo / "params.yaml").read_text())
    for key, value in changes.items():
        params[key] = params[key] | value if isinstance(value, dict) and key != "methods" else value
    (repo / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))


def repro(repo: Path, *args: str) -> float:
    bin_dir = Path(sys.executable).parent
    start = time.perf_counter()
    subprocess.run(
        ["dvc", "repro", *args],
        cwd=repo,
        check=True,
        capture_output=True,
        env={"PATH": f"{bin_dir}:/usr/bin:/bin", "HOME": str(Path.home()), "MLFLOW_DISABLE_TELEMETRY": "true"},
    )
    return time.perf_counter() - start


def outputs(repo: Path) -> tuple[pd.DataFrame, dict[str, bytes]]:
    table = pd.read_csv(repo / "results/results.csv")
    timings = [c for c in table.columns if "seconds" in c or c.endswith("_ms") or "speedup" in c]
    models = {p.relative_to(repo).as_posix(): p.read_bytes() for p in (repo / "models").rglob("*.pt")}
    return table.drop(columns=timings), models


def finetuned(repo: Path) -> tuple[bytes, dict[str, bytes]]:
    folder = repo / "models/finetuned/l1_channel"
    models = {p.relative_to(folder).as_posix(): p.read_bytes() for p in folder.rglob("*.pt")}
    return (repo / "results/finetuned/l1_channel.csv").read_bytes(), models


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--smoke", action="store_true")
    smoke = parser.parse_args(argv).smoke
    repo = copy_project(smoke)
    cache = repo / "checkpoints"
    try:
        local = repro(repo)
        expected = outputs(repo)
        edit(repo, executor={"kind": "ray", "address": None})
        shutil.rmtree(cache)  # else the finished jobs of the local run are reused
        found = in_namespace("stages", str(repo), "train") if smoke else in_namespace("repro", str(repo))
        table, models = outputs(repo)
        same = table.equals(expected[0]) and models == expected[1]
        print("| the default pipeline | seconds | same results |")
        print("|---|---:|---|")
        print(f"| local ({'smoke' if smoke else 'default'}) | {local:.0f} | |")
        what = "the train stage alone (smoke)" if smoke else f"{found['seconds']:.0f}"
        print(f"| ray, a Ray instance per stage | {what} | {'identical' if same else 'DIFFERENT'} |")
        if not smoke:  # the way to run Ray: one head node started once, every stage joins it
            edit(repo, executor={"kind": "ray", "address": ADDRESS})
            shutil.rmtree(cache)
            found = in_namespace("repro", str(repo), "head")
            table, models = outputs(repo)
            verdict = "identical" if table.equals(expected[0]) and models == expected[1] else "DIFFERENT"
            print(f"| ray, a running head node (2 CPUs) | {found['seconds']:.0f} | {verdict} |")
        stage = ["--force", "--single-item", "finetune@l1_channel"]
        edit(repo, executor={"kind": "local", "address": None})
        shutil.rmtree(cache)
        alone = repro(repo, *stage)
        reference = finetuned(repo)
        edit(repo, executor={"kind": "ray", "address": ADDRESS})
        shutil.rmtree(cache)
        spread = in_namespace("two_nodes", str(repo), "finetune@l1_channel", "keep")
        nodes = len({line["node"] for line in job_log(cache / "finetune/l1_channel")})
        print(f"| finetune@l1_channel, local | {alone:.0f} | |")
        print(
            f"| finetune@l1_channel, two loopback nodes ({nodes} used) | {spread['seconds']:.0f} |"
            f" {'identical' if finetuned(repo) == reference else 'DIFFERENT'} |"
        )
    finally:
        shutil.rmtree(repo, ignore_errors=True)


if __name__ == "__main__":
    main()
