"""Issue 34: 2:4 sparsity where it can run faster, on a CUDA GPU (marked `gpu`: `make test` and
`make test-all` leave it out; `pytest -m gpu` on a GPU machine runs it). On the CPU a 2:4 mask
is a dense weight with zeros, which `benchmarks/semi_structured.py` times at dense speed."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from prunebench.pruning import rows

from helpers import ROOT

pytestmark = pytest.mark.gpu


def test_a_2_4_weight_from_the_row_masks_runs_as_semi_structured_sparse_and_agrees():
    if not torch.cuda.is_available() or torch.cuda.get_device_capability() < (8, 0):
        pytest.fail("needs a CUDA GPU of compute capability 8.0 or later (run with -m gpu there only)")
    torch.manual_seed(0)
    weight = torch.randn(512, 1024, device="cuda", dtype=torch.float16)
    masked = weight * rows.row_mask(weight.abs().float(), 0.0, "2:4").cuda()
    sparse = torch.sparse.to_sparse_semi_structured(masked)
    x = torch.randn(4096, 1024, device="cuda", dtype=torch.float16)
    assert torch.allclose(F.linear(x, sparse), F.linear(x, masked), rtol=1e-2, atol=1e-2)


def test_the_semi_structured_benchmark_runs_on_the_gpu(capsys):
    import importlib.util

    spec = importlib.util.spec_from_file_location("semi_structured", ROOT / "benchmarks/semi_structured.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    module.main(["--dim", "1024", "--tokens", "128", "--batch", "8"])
    table = capsys.readouterr().out
    assert "NVIDIA" in table or "H100" in table or "cuda" in table.lower()
    assert "no CUDA" not in table
