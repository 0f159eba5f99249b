"""The pruning methods, one file each behind one small interface (`base.Method`). A method
registers itself (`@register("name")` on its class) and this package imports every module it
holds, so adding one is its file and an entry in params.yaml."""

from __future__ import annotations

from prunebench.params import MethodEntry
from prunebench.pruning.methods.base import Context, Method, Scored
from prunebench.pruning.methods.registry import METHODS, register
from prunebench.registry import import_all

import_all(__name__)  # every method registers itself


def schedule(entry: MethodEntry) -> str:
    """How the entry reaches `ratio`: its `schedule:` or else the method's own."""
    return entry.schedule or METHODS[entry.method].schedule


def create(entry: MethodEntry) -> Method:
    """The method behind a `methods` entry, with the entry's knobs over the defaults."""
    cls = METHODS[entry.method]
    return cls(cls.Knobs(**entry.knobs))


__all__ = ["METHODS", "Context", "Method", "Scored", "create", "register", "schedule"]
