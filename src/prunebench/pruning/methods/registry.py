"""The method registry: the name params.yaml uses (`methods.<key>.method`, default the key) →
the method's class, registered where the class is defined (`@register("name")`)."""

from __future__ import annotations

from prunebench.pruning.methods.base import Method
from prunebench.registry import Registry

METHODS: Registry[type[Method]] = Registry("methods.<key>.method")
register = METHODS.register
