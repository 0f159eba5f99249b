"""The train stage: one base model per seed, its test metrics and training curves."""

from __future__ import annotations

import statistics
from typing import Any

from prunebench import environment, paths, resume, runtime
from prunebench.io import write_csv, write_json
from prunebench.layouts import EPOCH_COLUMNS
from prunebench.params import Params, plain
from prunebench.progress import say
from prunebench.pruning import surgery
from prunebench.stages.workbench import Workbench
from prunebench.training import measure, models, pretrained
from prunebench.training.loops import evaluate, fit, prepare_model, seed_everything


def run(params: Params) -> None:
    bench = Workbench.open(params, runtime.setup(params))
    s = bench.splits
    spec = models.spec(plain(params.model), s.in_channels, s.num_classes, s.image_size)

    def train(seed: int) -> tuple[dict[str, Any], list[dict[str, Any]]]:
        seed_everything(seed)
        model = prepare_model(pretrained.initial(spec), bench.device)
        store = resume.Store(
            paths.training_checkpoints(seed),
            resume.fingerprint(
                plain(params.model),
                plain(params.train),
                plain(params.data),
                params.device,
                seed,
                files=[paths.SPLIT, paths.code_manifest("train")],
            ),
        )
        history = fit(
            model,
            bench.train_batches(seed),
            bench.val,
            params.train,
            bench.device,
            desc=f"train seed {seed}",
            checkpoint=store.directory / "state.pt",
        )
        surgery.save(paths.base_model(seed), model, spec)
        test = evaluate(model, bench.test, bench.device)
        say(f"seed {seed}: test accuracy {test['accuracy']:.4f}")
        return {"seed": seed, **test, **measure.costs(model, s.input_shape)[0]}, history

    done = bench.run(train, params.seeds, "base models")
    rows = [row for row, _ in done]
    write_csv(
        paths.TRAIN_CURVES,
        [{"seed": row["seed"], **record} for row, history in done for record in history],
        ("seed", *EPOCH_COLUMNS),
    )
    write_csv(paths.BASE_RESULTS, rows)
    write_json(
        paths.BASE_METRICS,
        {
            "model": params.model.name,
            **{k: statistics.fmean(r[k] for r in rows) for k in rows[0] if k != "seed"},
            "environment": environment.describe(bench.device),
        },
    )
