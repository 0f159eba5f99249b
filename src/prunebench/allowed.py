"""Value checks shared by params.yaml's sections and the methods' knobs: each says what is
allowed, in words (for one-line errors) and as JSON Schema (for editors)."""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

Json = dict[str, Any]


@dataclass(frozen=True)
class Check:
    ok: Callable[[Any], bool]
    allowed: str  # completes "expected ...", e.g. "an integer ≥ 1"
    json: Json = field(default_factory=dict)  # the same rule as JSON Schema


def _is_int(v: Any) -> bool:
    return isinstance(v, int) and not isinstance(v, bool)


def _is_number(v: Any) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool)


def integer(lo: int | None = None) -> Check:
    return Check(
        lambda v: _is_int(v) and (lo is None or v >= lo),
        "an integer" + (f" ≥ {lo}" if lo is not None else ""),
        {"type": "integer"} | ({"minimum": lo} if lo is not None else {}),
    )


def number(lo: float, hi: float, lo_open: bool = False, hi_open: bool = False) -> Check:
    def ok(v: Any) -> bool:
        return _is_number(v) and (v > lo if lo_open else v >= lo) and (v < hi if hi_open else v <= hi)

    return Check(
        ok,
        f"a number in {'(' if lo_open else '['}{lo:g}, {hi:g}{')' if hi_open else ']'}",
        {
            "type": "number",
            ("exclusiveMinimum" if lo_open else "minimum"): lo,
            ("exclusiveMaximum" if hi_open else "maximum"): hi,
        },
    )


def positive() -> Check:
    return Check(lambda v: _is_number(v) and v > 0, "a number > 0", {"type": "number", "exclusiveMinimum": 0})


def one_of(*choices: Any) -> Check:
    return Check(lambda v: v in choices, "one of " + ", ".join(map(str, choices)), {"enum": list(choices)})


def boolean() -> Check:
    return Check(lambda v: isinstance(v, bool), "true or false", {"type": "boolean"})


def string() -> Check:
    return Check(lambda v: isinstance(v, str) and v != "", "a non-empty string", {"type": "string", "minLength": 1})


def optional(check: Check) -> Check:
    return Check(
        lambda v: v is None or check.ok(v), f"null or {check.allowed}", {"anyOf": [{"type": "null"}, check.json]}
    )


def list_of(check: Check) -> Check:
    return Check(
        lambda v: isinstance(v, list) and len(v) > 0 and all(check.ok(x) for x in v),
        f"a non-empty list, each {check.allowed}",
        {"type": "array", "minItems": 1, "items": check.json},
    )


def number_or_list(check: Check) -> Check:
    """One value, or a non-empty list of values, each passing `check`."""
    many = list_of(check)
    return Check(
        lambda v: check.ok(v) or many.ok(v), f"{check.allowed}, or {many.allowed}", {"anyOf": [check.json, many.json]}
    )


def setting(check: Check, default: Any = dataclasses.MISSING, doc: str = "") -> Any:
    """A field of a typed section or of a method's knobs: what it may be set to, its default
    (none: params.yaml must give it), and a line for editors."""
    return field(default=default, metadata={"check": check, "doc": doc})


def checks(cls: type) -> dict[str, Check]:
    """The check of every field of a section or knobs class declared with `setting`."""
    return {f.name: f.metadata["check"] for f in dataclasses.fields(cls) if "check" in f.metadata}
