"""The deploy stage: every fine-tuned model and each base model as a standalone ONNX network
(`models/onnx`), each checked in ONNX Runtime against PyTorch on the first test batch; then,
at each point, the first seed's model of every method and the base model timed in this one
process, in rounds (`deploy.timing`): PyTorch eager and ONNX Runtime at `measure.latency_batch`
and at batch 1, one thread (a language model's prefill: a sequence of `data.sequence_length`
tokens per example). A model that fails to export or disagrees is one line
naming the method, point and layer, here and in the report, and its row says so."""

from __future__ import annotations

from typing import Any

from prunebench import paths, runtime, workers
from prunebench.deploy import export, timing
from prunebench.files import save_bytes, write_csv
from prunebench.layouts import DEPLOY_COLUMNS, ROW_KEYS
from prunebench.params import Params
from prunebench.progress import bar, say
from prunebench.stages.workbench import Workbench

Job = tuple[str, float, int]  # method, point, seed


def run(params: Params) -> None:
    setup = runtime.setup(params)  # this machine's workers: the timing below must run here, so the exports do too
    bench = Workbench.open(params, setup)
    x = next(iter(bench.test))[0].cpu()  # float images, or a language model's token ids
    shape = bench.splits.input_shape
    keys = [key for key in params.methods if not paths.refusal(paths.finetuned_models(key)).exists()]

    def exported(job: Job) -> tuple[dict[str, Any], bytes | None]:
        key, ratio, seed = job
        model = export.deployable(paths.base_model(seed) if key == "" else paths.finetuned_model(key, ratio, seed))
        try:
            network = export.to_onnx(model, x[:1])
        except Exception as error:  # noqa: BLE001 (any exporter failure is reported, never raised)
            return export.Check(export.export_failure(model, x[:1], error)).row(), None
        return export.check(model, network, x, params.deploy.tolerance).row(), network

    jobs: list[Job] = [("", 0.0, seed) for seed in params.seeds]
    jobs += [(key, ratio, seed) for key in keys for ratio in params.points for seed in params.seeds]
    checks = {}
    for (key, ratio, seed), (check, network) in zip(
        jobs,
        bar(workers.run(exported, jobs, setup.workers), total=len(jobs), desc="ONNX export and check", unit="model"),
    ):
        checks[key, ratio, seed] = check
        if network is not None:
            save_bytes(paths.onnx_base_model(seed) if key == "" else paths.onnx_model(key, ratio, seed), network)
    for (key, ratio, seed), check in checks.items():
        if check["onnx_check"] != "ok":
            say(f"{key or 'base model'} {paths.point_name(ratio) if key else ''} seed {seed}: {check['onnx_check']}")
    timed = {
        ratio: _time_point(params, keys, ratio, shape, checks)
        for ratio in bar(params.points, desc="latency", unit="point")
    }
    rows = [dict(zip(ROW_KEYS, job)) | checks[job] | timed[job[1]].get(job[0], {}) for job in jobs if job[0]]
    write_csv(paths.DEPLOY_RESULTS, rows, (*ROW_KEYS, *DEPLOY_COLUMNS))


def _time_point(params: Params, keys: list[str], ratio: float, shape: tuple[int, ...], checks: dict) -> dict[str, dict]:
    """The first seed's model of each method that exported, beside the base model: latencies and
    speed-ups over the base, per method."""
    seed = params.seeds[0]
    named = {"": (paths.base_model(seed), paths.onnx_base_model(seed))} | {
        key: (paths.finetuned_model(key, ratio, seed), paths.onnx_model(key, ratio, seed))
        for key in keys
        if checks[key, ratio, seed]["onnx_max_difference"] is not None  # exported (checked or not)
    }
    models = {key: (export.deployable(model), export.session(onnx)) for key, (model, onnx) in named.items()}
    measure = params.measure
    ms = timing.interleaved(models, shape, measure.latency_batch, measure.rounds, measure.min_run_time)
    base = ms.pop("")
    return {
        key: values
        | {
            "speedup": base["latency_ms"] / values["latency_ms"],
            "b1_speedup": base["latency_b1_ms"] / values["latency_b1_ms"],
            "ort_speedup": base["ort_ms"] / values["ort_ms"],
            "ort_b1_speedup": base["ort_b1_ms"] / values["ort_b1_ms"],
        }
        for key, values in ms.items()
    }
