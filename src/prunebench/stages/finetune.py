"""The finetune stage: every pruned model of one method, every point and seed, with the same
budget; masks stay applied."""

from __future__ import annotations

from typing import Any

import torch

from prunebench import paths, resume, runtime
from prunebench.io import read_json, write_csv, write_json
from prunebench.layouts import EPOCH_COLUMNS, ROW_KEYS
from prunebench.params import Params, plain
from prunebench.pruning import surgery
from prunebench.pruning.selection import mask_keeper
from prunebench.report.results import save_predictions
from prunebench.stages.workbench import Workbench
from prunebench.training import measure
from prunebench.training.loops import evaluate, fit, prepare_model, seed_everything


def run(params: Params, key: str) -> None:
    refused = paths.refusal(paths.pruned_models(key))
    if refused.exists():  # the method refused the model: nothing to fine-tune, and the report says why
        write_json(paths.refusal(paths.finetuned_models(key)), read_json(refused))
        write_csv(paths.finetuned_results(key), [], ROW_KEYS)
        save_predictions(paths.finetuned_predictions(key), {})
        write_csv(paths.finetune_curves(key), [], ("ratio", "seed", *EPOCH_COLUMNS))
        return
    bench = Workbench.open(params, runtime.setup(params))

    def finetune(job: tuple[float, int]) -> tuple[dict[str, Any], torch.Tensor, list[dict[str, Any]]]:
        ratio, seed = job
        seed_everything(seed)
        model, masks, spec = surgery.load(paths.pruned_model(key, ratio, seed))
        model = prepare_model(model, bench.device)
        store = resume.Store(
            paths.finetune_checkpoints(key, ratio, seed),
            resume.fingerprint(
                plain(params.finetune),
                plain(params.data),
                params.device,
                seed,
                files=[paths.pruned_model(key, ratio, seed), paths.SPLIT, paths.code_manifest("finetune")],
            ),
        )
        history = fit(
            model,
            bench.train_batches(seed),
            bench.val,
            params.finetune,
            bench.device,
            after_step=mask_keeper(model, masks),
            desc=f"finetune {key} {paths.point_name(ratio)} seed {seed}",
            checkpoint=store.directory / "state.pt",
        )
        test = evaluate(model, bench.test, bench.device, per_example=True)
        surgery.save(paths.finetuned_model(key, ratio, seed), model, spec, masks)
        row = {
            "method": key,
            "ratio": ratio,
            "seed": seed,
            "finetuned_accuracy": test["accuracy"],
            "finetuned_loss": test["loss"],
            "finetuned_nonzeros": measure.count_nonzero(model),
            "epochs": len(history),
        }
        return row, test["correct"], [{"ratio": ratio, "seed": seed, **record} for record in history]

    done = bench.run(finetune, [(ratio, seed) for ratio in params.points for seed in params.seeds], f"finetune {key}")
    write_csv(paths.finetuned_results(key), [row for row, _, _ in done])
    save_predictions(
        paths.finetuned_predictions(key),
        {f"{paths.point_name(row['ratio'])}/{row['seed']}/finetuned": correct for row, correct, _ in done},
    )
    write_csv(
        paths.finetune_curves(key),
        [record for _, _, curve in done for record in curve],
        ("ratio", "seed", *EPOCH_COLUMNS),
    )
