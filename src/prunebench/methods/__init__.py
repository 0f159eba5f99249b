"""Method registry: the name used in params.yaml (`methods.<key>.method`, default the key)
→ its class. Adding a method is one file, one line here and one params entry."""

from __future__ import annotations

from typing import Any

from prunebench.methods.base import Context, Method, Scored
from prunebench.methods.channels import L1ChannelGlobal, RandomChannel, Slimming
from prunebench.methods.hessian_merge import HessianMerge
from prunebench.methods.interval_adjoint import IntervalAdjoint
from prunebench.methods.kernels import IntraKernel, Kernel
from prunebench.methods.l1_channel import L1Channel
from prunebench.methods.lamp import Lamp
from prunebench.methods.magnitude import GlobalMagnitude, Magnitude
from prunebench.methods.random import RandomWeights
from prunebench.methods.sensitivity_guided import SensitivityStructured, SensitivityUnstructured
from prunebench.methods.taylor import Taylor

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
ENTRY_KEYS = ("method", "schedule")  # keys of a `methods` entry that are not the method's knobs


def implementation(key: str, entry: dict[str, Any] | None) -> str:
    """The registered name behind a `methods` entry."""
    return (entry or {}).get("method", key)


def schedule(key: str, entry: dict[str, Any] | None) -> str:
    """How the entry reaches `ratio`: its `schedule:` or else the method's own."""
    return (entry or {}).get("schedule", METHODS[implementation(key, entry)].schedule)


def create(key: str, entry: dict[str, Any] | None) -> Method:
    """The method behind a `methods` entry, with the entry's knobs over the defaults."""
    cls = METHODS[implementation(key, entry)]
    return cls(cls.Knobs(**{k: v for k, v in (entry or {}).items() if k not in ENTRY_KEYS}))


__all__ = ["METHODS", "Context", "Method", "Scored", "create", "implementation", "schedule"]
