"""`prunebench` command line: look at results and models outside the pipeline."""

from __future__ import annotations

import argparse
import os

from prunebench.errors import DEBUG, UserError, reported


def table(_: argparse.Namespace) -> int:
    """Print the winner-per-budget table of the last `dvc repro`."""
    import pandas as pd

    from prunebench.params import load
    from prunebench.paths import WINNERS
    from prunebench.report.markdown import winner_table

    if not WINNERS.exists():
        raise UserError(f"{WINNERS} is missing: run the pipeline first (make run, or dvc repro)")
    print(winner_table(pd.read_csv(WINNERS), load().budget))
    return 0


def evaluate(args: argparse.Namespace) -> int:
    """Test metrics (accuracy, loss; a language model's perplexity) and cost of a saved model file."""
    import json

    from prunebench import params, runtime
    from prunebench.stages.workbench import Workbench
    from prunebench.training import measure, modelfile
    from prunebench.training.loops import evaluate as test_metrics
    from prunebench.training.loops import prepare_model

    model, _, _ = modelfile.load(args.path)
    checked = params.load()
    bench = Workbench.open(checked, runtime.setup(checked))
    model = prepare_model(model, bench.device)
    print(
        json.dumps(
            test_metrics(model, bench.test, bench.device)
            | measure.profile(model, bench.splits.input_shape, checked.measure, bench.device),
            indent=2,
        )
    )
    return 0


def check(args: argparse.Namespace) -> int:
    """Check a params file in a second, as the check stage does first: every key, value, name and
    knob (`dvc repro` parses dvc.yaml before any stage runs, so a `methods` that is not a mapping, or
    an empty file, stops it with DVC's own message; this names the key)."""
    from prunebench import params, schema

    schema.validate(params.read(args.params))
    print(f"{args.params}: valid")
    return 0


def check_model(args: argparse.Namespace) -> int:
    """Build the model of a params file, load its weights, run one batch, and say which channel
    groups are frozen and which methods refuse it (what the check stage says), in seconds."""
    from prunebench import params, schema
    from prunebench.stages.check import inspect_model

    for line in inspect_model(schema.validate(params.read(args.params))).lines():
        print(line)
    return 0


def export_model(args: argparse.Namespace) -> int:
    """Export a saved model file to ONNX as the deploy stage does (masks folded in, batch dynamic),
    and check it in ONNX Runtime against PyTorch on a random batch of 8."""
    import torch

    from prunebench.deploy import export
    from prunebench.training import inputs, modelfile

    spec = modelfile.load(args.model)[2]
    model = export.deployable(args.model)
    torch.manual_seed(0)
    x = inputs.example(inputs.shape_of_spec(spec), 8, random=True)
    try:
        export.export(model, x[:1], args.out)
    except Exception as error:  # noqa: BLE001 (one line, as the deploy stage says it)
        raise UserError(f"{args.model}: {export.export_failure(model, x[:1], error)}") from None
    result = export.check(model, args.out, x, args.tolerance)
    if result.problem:
        raise UserError(f"{args.out}: {result.problem}")
    print(
        f"{args.out}: largest logit difference from PyTorch {result.max_difference:.2g} "
        f"(tolerance {args.tolerance:g}), argmax agrees on {result.agreement:.0%} of 8 random inputs"
    )
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="prunebench", description=__doc__)
    parser.add_argument("--debug", action="store_true", help=f"show tracebacks (or set {DEBUG}=1)")
    commands = parser.add_subparsers(required=True)
    commands.add_parser("table", help=table.__doc__).set_defaults(run=table)
    ev = commands.add_parser("evaluate", help=evaluate.__doc__)
    ev.add_argument("path", help="a .pt file written by the pipeline, e.g. models/finetuned/l1_channel/0.75/0.pt")
    ev.set_defaults(run=evaluate)
    ck = commands.add_parser("check", help=check.__doc__)
    ck.add_argument("params", nargs="?", default="params.yaml", help="the params file (default: params.yaml)")
    ck.set_defaults(run=check)
    cm = commands.add_parser("check-model", help=check_model.__doc__)
    cm.add_argument("params", nargs="?", default="params.yaml", help="the params file (default: params.yaml)")
    cm.set_defaults(run=check_model)
    ex = commands.add_parser("export", help=export_model.__doc__)
    ex.add_argument("model", help="a .pt file written by the pipeline, e.g. models/finetuned/l1_channel/0.75/0.pt")
    ex.add_argument("out", help="the .onnx file to write")
    ex.add_argument("--tolerance", type=float, default=1e-4, help="as deploy.tolerance in params.yaml (default 1e-4)")
    ex.set_defaults(run=export_model)
    args = parser.parse_args(argv)
    if args.debug:
        os.environ[DEBUG] = "1"
    with reported("prunebench"):
        return args.run(args)


if __name__ == "__main__":
    raise SystemExit(main())
