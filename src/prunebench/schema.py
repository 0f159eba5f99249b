"""What params.yaml may hold: every key, what each value may be, and the names the registries know.

A bad value or an unknown key stops with one line that names the key, e.g.
`params.yaml: ratio = 1.5: expected a number in [0, 1)` or
`params.yaml: schedule.q: unknown key (did you mean schedule.retention.q?)`: a typo never runs
the defaults silently.
"""

from __future__ import annotations

import difflib
import inspect
from pathlib import Path
from typing import Any

from prunebench import spec
from prunebench.budget import BUDGETS
from prunebench.params import ParamError
from prunebench.spec import Check

LOOP = {  # every training loop (train, finetune, schedule.retrain) has these
    "compile": spec.boolean(),
    "lr": spec.positive(),
    "momentum": spec.number(0, 1, hi_open=True),
    "weight_decay": spec.number(0, 1),
    "patience": spec.integer(0),
}

SCHEMA: dict[str, Check | dict] = {
    "budget": spec.one_of(*BUDGETS),
    "ratio": spec.number_or_list(spec.number(0, 1, lo_open=True, hi_open=True)),
    "seeds": spec.list_of(spec.integer(0)),
    "device": spec.one_of("auto", "cpu", "cuda"),
    "workers": spec.optional(spec.integer(1)),
    "data": {
        "name": spec.string(),  # checked against the registry below
        "root": spec.string(),
        "split_seed": spec.integer(0),
        "val_fraction": spec.number(0, 1, lo_open=True, hi_open=True),
        "test_fraction": spec.number(0, 1, lo_open=True, hi_open=True),
        "batch_size": spec.integer(1),
        "num_workers": spec.optional(spec.integer(0)),
        "download": spec.boolean(),
        "image_size": spec.optional(spec.integer(8)),
    },
    "model": {"name": spec.string()},  # and the factory's own knobs, checked below
    "train": {"epochs": spec.integer(0), **LOOP},  # 0: the loaded model is the base model
    "finetune": {"epochs": spec.integer(0), **LOOP},
    "sensitivity": {"ratios": spec.list_of(spec.number(0, 1, lo_open=True, hi_open=True))},
    "schedule": {
        "iterations": spec.integer(1),
        "retention": {"q": spec.number(0, 1, lo_open=True, hi_open=True), "max_iterations": spec.integer(1),
                      "tolerance": spec.number(0, 1)},
        "retrain": {"epochs": spec.integer(0), **LOOP},
    },
    "recalibrate": spec.integer(0),
    "measure": {"latency_batch": spec.integer(1), "warmup": spec.integer(0), "min_run_time": spec.positive()},
    "stats": {"confidence": spec.number(0, 1, lo_open=True, hi_open=True), "resamples": spec.integer(100)},
    "methods": {},  # run name → knobs, checked below
}


def fail(key: str, value: Any, allowed: str) -> None:
    raise ParamError(f"params.yaml: {key} = {value!r}: expected {allowed}")


def validate(params: dict[str, Any]) -> None:
    _check_tree(params, SCHEMA, prefix="")
    _check_data(params["data"])
    _check_model(params["model"])
    _check_methods(params["methods"])
    if len(set(params["seeds"])) != len(params["seeds"]):
        fail("seeds", params["seeds"], "distinct seeds")
    ratios = params["ratio"] if isinstance(params["ratio"], list) else [params["ratio"]]
    if len(set(ratios)) != len(ratios):
        fail("ratio", params["ratio"], "distinct operating points")
    if params["data"]["val_fraction"] + params["data"]["test_fraction"] >= 1:
        fail("data.val_fraction + data.test_fraction", None, "a sum below 1")


def known_keys(schema: dict = SCHEMA, prefix: str = "") -> list[str]:
    """Every dotted key the schema names."""
    keys = []
    for key, check in schema.items():
        keys.append(prefix + key)
        if isinstance(check, dict):
            keys += known_keys(check, f"{prefix}{key}.")
    return keys


def suggest(key: str, known: list[str]) -> str | None:
    """The known key most like `key`: alike as a whole path and in its last part, so that a key
    put at the wrong level (schedule.q) finds its place (schedule.retention.q)."""
    def likeness(candidate: str) -> tuple[float, float]:
        leaf = difflib.SequenceMatcher(None, key.rsplit(".", 1)[-1], candidate.rsplit(".", 1)[-1]).ratio()
        return difflib.SequenceMatcher(None, key, candidate).ratio() + leaf, leaf

    best = max(known, key=likeness)
    total, leaf = likeness(best)
    return best if total >= 1.2 and leaf >= 0.5 else None


def unknown(key: str, siblings: list[str], known: list[str] | None = None) -> None:
    """Stop on a key params.yaml should not have, with the closest of the `known` keys (default:
    all of the schema's) or else the keys allowed at its place."""
    guess = suggest(key, known or known_keys())
    hint = f"did you mean {guess}?" if guess else "expected one of " + (", ".join(siblings) or "none")
    raise ParamError(f"params.yaml: {key}: unknown key ({hint})")


def _check_tree(params: Any, schema: dict, prefix: str) -> None:
    if not isinstance(params, dict):
        fail(prefix.rstrip(".") or "params.yaml", params, "a mapping")
    for key in params:
        if key not in schema and prefix != "model.":
            unknown(prefix + key, list(schema))
    for key, check in schema.items():
        name = prefix + key
        if key not in params:
            fail(name, None, "a value (the key is missing)")
        if isinstance(check, dict):
            if check:
                _check_tree(params[key], check, name + ".")
        elif not check.ok(params[key]):
            fail(name, params[key], check.allowed)


def _check_data(data: dict[str, Any]) -> None:
    from prunebench.data import DATASETS

    if data["name"] not in DATASETS:
        fail("data.name", data["name"], "one of " + ", ".join(DATASETS))


MODEL_INITIAL = {"weights": spec.optional(spec.string()), "checkpoint": spec.optional(spec.string()),
                 "download": spec.boolean()}


def _check_model(model: dict[str, Any]) -> None:
    from prunebench import models

    if not isinstance(model["name"], str) or (model["name"] not in models.MODELS and ":" not in model["name"]):
        fail("model.name", model["name"], "one of " + ", ".join(models.MODELS) + ", or package.module:function")
    try:
        parameters = inspect.signature(models.factory(model["name"])).parameters
    except models.ModelError as error:
        raise ParamError(f"params.yaml: {error}") from error
    knobs = [p for p, v in parameters.items() if p not in models.SHAPE and v.kind is not v.VAR_KEYWORD]
    takes_any = any(v.kind is v.VAR_KEYWORD for v in parameters.values())
    for key, value in model.items():
        if key in MODEL_INITIAL and not MODEL_INITIAL[key].ok(value):
            fail(f"model.{key}", value, MODEL_INITIAL[key].allowed)
        elif key != "name" and key not in MODEL_INITIAL and key not in knobs and not takes_any:
            allowed = ["name", *MODEL_INITIAL, *knobs]
            unknown(f"model.{key}", allowed, [f"model.{k}" for k in allowed])
    if model.get("weights") and model.get("checkpoint"):
        fail("model.weights", model["weights"], "null when model.checkpoint is set (one starting point)")
    if model.get("checkpoint") and not Path(model["checkpoint"]).is_file():
        fail("model.checkpoint", model["checkpoint"], "a state dict file (path from the repository root)")


def _check_methods(methods: Any) -> None:
    from prunebench.methods import ENTRY_KEYS, METHODS, implementation, schedule

    if not isinstance(methods, dict) or not methods:
        fail("methods", methods, "a non-empty mapping of run name to knobs")
    for key, entry in methods.items():
        if entry is not None and not isinstance(entry, dict):
            fail(f"methods.{key}", entry, "a mapping of knobs (or {})")
        name = implementation(key, entry)
        if name not in METHODS:
            where = f"methods.{key}.method" if entry and "method" in entry else f"methods.{key}"
            fail(where, name, "a registered method: " + ", ".join(METHODS))
        checks = METHODS[name].Knobs.checks()
        how = schedule(key, entry)
        if how not in ("steps", "retention"):
            fail(f"methods.{key}.schedule", how, "steps or retention")
        if how == "retention" and METHODS[name].unit != "channel":
            fail(f"methods.{key}.schedule", how, f"steps ({name} prunes weights; the retention schedule counts units)")
        for knob, value in (entry or {}).items():
            if knob in ENTRY_KEYS:
                continue
            if knob not in checks:
                allowed = [*ENTRY_KEYS, *checks]
                unknown(f"methods.{key}.{knob}", allowed, [f"methods.{key}.{k}" for k in allowed])
            if not checks[knob].ok(value):
                fail(f"methods.{key}.{knob}", value, checks[knob].allowed)
