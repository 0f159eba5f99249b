"""Method registry: the name used in params.yaml (`methods.<key>.method`, default the key)
→ its class. Adding a method is one file, one line here and one params entry."""

from __future__ import annotations

from prunebench.params import MethodEntry
from prunebench.pruning.methods.base import Context, Method, Scored
from prunebench.pruning.methods.channels import L1ChannelGlobal, RandomChannel, Slimming
from prunebench.pruning.methods.hessian_merge import HessianMerge
from prunebench.pruning.methods.interval_adjoint import IntervalAdjoint
from prunebench.pruning.methods.kernels import IntraKernel, Kernel
from prunebench.pruning.methods.l1_channel import L1Channel
from prunebench.pruning.methods.lamp import Lamp
from prunebench.pruning.methods.magnitude import GlobalMagnitude, Magnitude
from prunebench.pruning.methods.random import RandomWeights
from prunebench.pruning.methods.sensitivity_guided import SensitivityStructured, SensitivityUnstructured
from prunebench.pruning.methods.taylor import Taylor

METHODS: dict[str, type[Method]] = {
    "random": RandomWeights,
    "magnitude": Magnitude,
    "magnitude_global": GlobalMagnitude,
    "lamp": Lamp,
    "sensitivity_unstructured": SensitivityUnstructured,
    "l1_channel": L1Channel,
    "sensitivity_structured": SensitivityStructured,
    "l1_channel_global": L1ChannelGlobal,
    "random_channel": RandomChannel,
    "slimming": Slimming,
    "kernel": Kernel,
    "intra_kernel": IntraKernel,
    "taylor": Taylor,
    "hessian_merge": HessianMerge,
    "interval_adjoint": IntervalAdjoint,
}


def schedule(entry: MethodEntry) -> str:
    """How the entry reaches `ratio`: its `schedule:` or else the method's own."""
    return entry.schedule or METHODS[entry.method].schedule


def create(entry: MethodEntry) -> Method:
    """The method behind a `methods` entry, with the entry's knobs over the defaults."""
    cls = METHODS[entry.method]
    return cls(cls.Knobs(**entry.knobs))


__all__ = ["METHODS", "Context", "Method", "Scored", "create", "schedule"]
