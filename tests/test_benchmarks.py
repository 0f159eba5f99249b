"""Every benchmark script imports and runs end to end in its smoke mode (tiny sizes): a benchmark
that no longer matches the library fails here, not when someone next measures by hand."""

from __future__ import annotations

import importlib.util

import pytest

from helpers import ROOT

BENCHMARKS = sorted((ROOT / "benchmarks").glob("*.py"))


@pytest.mark.parametrize("path", BENCHMARKS, ids=lambda p: p.stem)
def test_a_benchmark_runs_in_smoke_mode(path, capsys):
    spec = importlib.util.spec_from_file_location(f"benchmark_{path.stem}", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    module.main(["--smoke"])
    output = capsys.readouterr().out
    expected = {
        "hessian_solver": "| resnet20 8×8 (random) | Lanczos, first backward kept |",
        "taylor_scoring": "| default cnn (digits) | 3 |",
        "taylor_prefix": "| 3 | 12 | 448 |",
        "tp_speed": "| torch-pruning MagnitudePruner |",
        "structured_latency": "speed-up / MACs reduction =",
        "interval_significance": "\n1 | ",
        "data_path": "| prunebench: uint8 on the device",
        "offline_plots": "remote scripts: none",
        "weight_ranking": "| cnn | intra_kernel |",
        "sensitivity_sweep": "| sweep, 2 workers | ",
        "vit_units": "| heads | 2× |",
        "onnx_speedup": "| l1_channel 0.75 |",
        "ray_executor": "| finetune@l1_channel, two loopback nodes (1 used) | ",
        "semi_structured": "| blocks.0.mlp.fc1 | 256×64 | 32×128 |",  # on the CPU: masked against dense
    }[path.stem]
    assert expected in output
