"""What a result was computed on: identical figures need the same machine and software.

On the CPU, the same params, seeds, code, software and CPU give bit-identical results (every
worker uses one thread, and batches and augmentation come from the seed). Another CPU may pick
other vectorised kernels (oneDNN / MKL choose by instruction set), whose sums round differently:
its figures then agree within seed noise, not to the bit. So the environment is recorded with
the results (metrics/base.json, the report, MLflow).
"""

from __future__ import annotations

import platform
from pathlib import Path

import torch

from prunebench import workers


def cpu_model() -> str:
    cpuinfo = Path("/proc/cpuinfo")
    if cpuinfo.exists():
        for line in cpuinfo.read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    return platform.processor() or platform.machine()


def describe(device: torch.device) -> dict[str, str | int]:
    """The facts that decide whether two runs can agree to the bit."""
    facts: dict[str, str | int] = {
        "cpu": cpu_model(),
        "cpu_kernels": torch.backends.cpu.get_cpu_capability(),
        "cores": workers.cores(),
        "torch_threads": torch.get_num_threads(),
        "torch": torch.__version__,
        "python": platform.python_version(),
        "os": platform.platform(terse=True),
        "device": device.type,
    }
    if device.type == "cuda":
        facts |= {
            "gpu": torch.cuda.get_device_name(device),
            "cuda": torch.version.cuda or "",
            "cudnn": str(torch.backends.cudnn.version()),
        }
    return facts
