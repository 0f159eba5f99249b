"""One registration idiom for everything params.yaml names by a word: data sets, model families
and methods. Each entry registers itself where it is defined (`@REGISTRY.register("name")` on a
class or function, or `REGISTRY.register("name")(value)`), and its package imports every module
it holds (`import_all`), so adding a method or a model family is one file."""

from __future__ import annotations

import importlib
import pkgutil
from collections.abc import Callable, Iterator
from typing import Generic, TypeVar

T = TypeVar("T")


class Registry(Generic[T]):
    """Names → entries of one kind; `key` is the params.yaml key that names them, for errors."""

    def __init__(self, key: str):
        self.key = key
        self._entries: dict[str, T] = {}

    def register(self, name: str) -> Callable[[T], T]:
        """A decorator (or a call on a value) that adds the entry under `name`."""

        def add(entry: T) -> T:
            if name in self._entries:
                raise ValueError(f"{self.key}: {name!r} is registered twice")
            self._entries[name] = entry
            return entry

        return add

    def __getitem__(self, name: str) -> T:
        from prunebench.params import fail

        if name not in self._entries:
            fail(self.key, name, "one of " + ", ".join(self._entries))
        return self._entries[name]

    def __contains__(self, name: object) -> bool:
        return name in self._entries

    def __iter__(self) -> Iterator[str]:
        return iter(self._entries)

    def __len__(self) -> int:
        return len(self._entries)

    def items(self) -> Iterator[tuple[str, T]]:
        return iter(self._entries.items())


def import_all(package: str) -> None:
    """Import every module of `package` (from its `__init__`: `import_all(__name__)`), each of
    which registers what it defines. `prunebench.sources` reads this call as an import of each of
    them, so a stage's code manifest holds every registered method or family."""
    for found in pkgutil.iter_modules(importlib.import_module(package).__path__):
        importlib.import_module(f"{package}.{found.name}")
