"""Value checks shared by params validation and method knobs: each says what is allowed."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class Check:
    ok: Callable[[Any], bool]
    allowed: str  # completes "expected ...", e.g. "an integer ≥ 1"


def _is_int(v: Any) -> bool:
    return isinstance(v, int) and not isinstance(v, bool)


def _is_number(v: Any) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool)


def integer(lo: int | None = None) -> Check:
    return Check(lambda v: _is_int(v) and (lo is None or v >= lo),
                 "an integer" + (f" ≥ {lo}" if lo is not None else ""))


def number(lo: float, hi: float, lo_open: bool = False, hi_open: bool = False) -> Check:
    def ok(v: Any) -> bool:
        return _is_number(v) and (v > lo if lo_open else v >= lo) and (v < hi if hi_open else v <= hi)

    return Check(ok, f"a number in {'(' if lo_open else '['}{lo:g}, {hi:g}{')' if hi_open else ']'}")


def positive() -> Check:
    return Check(lambda v: _is_number(v) and v > 0, "a number > 0")


def one_of(*choices: Any) -> Check:
    return Check(lambda v: v in choices, "one of " + ", ".join(map(str, choices)))


def boolean() -> Check:
    return Check(lambda v: isinstance(v, bool), "true or false")


def string() -> Check:
    return Check(lambda v: isinstance(v, str) and v != "", "a non-empty string")


def optional(check: Check) -> Check:
    return Check(lambda v: v is None or check.ok(v), f"null or {check.allowed}")


def list_of(check: Check) -> Check:
    return Check(
        lambda v: isinstance(v, list) and len(v) > 0 and all(check.ok(x) for x in v),
        f"a non-empty list, each {check.allowed}",
    )


def number_or_list(check: Check) -> Check:
    """One value, or a non-empty list of values, each passing `check`."""
    many = list_of(check)
    return Check(lambda v: check.ok(v) or many.ok(v), f"{check.allowed}, or {many.allowed}")
