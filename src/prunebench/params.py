"""Load params.yaml and check every key before any stage does work.

A bad value stops with one line that names the key, the value, and what is allowed.
"""

from __future__ import annotations

import inspect
from pathlib import Path
from typing import Any

import yaml

from prunebench import spec
from prunebench.spec import Check

PARAMS_FILE = Path("params.yaml")


class ParamError(ValueError):
    """One line: `params.yaml: <key> = <value>: expected <what is allowed>`."""


def _fail(key: str, value: Any, allowed: str) -> None:
    raise ParamError(f"params.yaml: {key} = {value!r}: expected {allowed}")


LOOP = {  # every training loop (train, finetune, schedule.retrain) has these
    "lr": spec.positive(),
    "momentum": spec.number(0, 1, hi_open=True),
    "weight_decay": spec.number(0, 1),
    "patience": spec.integer(0),
}

SCHEMA: dict[str, Check | dict[str, Check]] = {
    "ratio": spec.number(0, 1, hi_open=True),
    "seeds": spec.list_of(spec.integer(0)),
    "device": spec.one_of("auto", "cpu", "cuda"),
    "data": {
        "root": spec.string(),
        "split_seed": spec.integer(0),
        "val_fraction": spec.number(0, 1, lo_open=True, hi_open=True),
        "test_fraction": spec.number(0, 1, lo_open=True, hi_open=True),
        "batch_size": spec.integer(1),
        "num_workers": spec.integer(0),
        "download": spec.boolean(),
        "image_size": spec.optional(spec.integer(8)),
    },
    "train": {"epochs": spec.integer(1), **LOOP},
    "finetune": {"epochs": spec.integer(0), **LOOP},
    "sensitivity": {"ratios": spec.list_of(spec.number(0, 1, lo_open=True, hi_open=True))},
    "schedule": {
        "iterations": spec.integer(1),
        "retention": {"q": spec.number(0, 1, lo_open=True, hi_open=True), "max_iterations": spec.integer(1),
                      "tolerance": spec.number(0, 1)},
        "retrain": {"epochs": spec.integer(0), **LOOP},
    },
    "measure": {"latency_batch": spec.integer(1), "warmup": spec.integer(0), "repeats": spec.integer(1)},
}


def load(path: str | Path = PARAMS_FILE) -> dict[str, Any]:
    path = Path(path)
    if not path.exists():
        raise ParamError(f"{path}: not found; run from the repository root")
    params = yaml.safe_load(path.read_text()) or {}
    validate(params)
    return params


def validate(params: dict[str, Any]) -> None:
    _check_tree(params, SCHEMA, prefix="")
    _check_names(params)
    _check_methods(params["methods"] if "methods" in params else _fail("methods", None, "a mapping"))
    if len(set(params["seeds"])) != len(params["seeds"]):
        _fail("seeds", params["seeds"], "distinct seeds")
    if params["data"]["val_fraction"] + params["data"]["test_fraction"] >= 1:
        _fail("data.val_fraction + data.test_fraction", None, "a sum below 1")


def _check_tree(params: Any, schema: dict, prefix: str) -> None:
    if not isinstance(params, dict):
        _fail(prefix.rstrip(".") or "params.yaml", params, "a mapping")
    for key, check in schema.items():
        name = prefix + key
        if key not in params:
            _fail(name, None, "a value (the key is missing)")
        if isinstance(check, dict):
            _check_tree(params[key], check, name + ".")
        elif not check.ok(params[key]):
            _fail(name, params[key], check.allowed)


def _check_names(params: dict[str, Any]) -> None:
    from prunebench.data import DATASETS
    from prunebench.models import MODELS

    data_name = params["data"].get("name")
    if data_name not in DATASETS:
        _fail("data.name", data_name, "one of " + ", ".join(DATASETS))
    model = params.get("model")
    if not isinstance(model, dict) or model.get("name") not in MODELS:
        _fail("model.name", (model or {}).get("name"), "one of " + ", ".join(MODELS))
    factory = inspect.signature(MODELS[model["name"]])
    knobs = [p for p in factory.parameters if p not in ("in_channels", "num_classes", "image_size")]
    for key in model:
        if key != "name" and key not in knobs:
            _fail(f"model.{key}", model[key], f"a knob of {model['name']}: " + (", ".join(knobs) or "none"))


def _check_methods(methods: Any) -> None:
    from prunebench.methods import ENTRY_KEYS, METHODS, implementation, schedule

    if not isinstance(methods, dict) or not methods:
        _fail("methods", methods, "a non-empty mapping of run name to knobs")
    for key, entry in methods.items():
        if entry is not None and not isinstance(entry, dict):
            _fail(f"methods.{key}", entry, "a mapping of knobs (or {})")
        name = implementation(key, entry)
        if name not in METHODS:
            where = f"methods.{key}.method" if entry and "method" in entry else f"methods.{key}"
            _fail(where, name, "a registered method: " + ", ".join(METHODS))
        knobs = METHODS[name].knobs
        how = schedule(key, entry)
        if how not in ("steps", "retention"):
            _fail(f"methods.{key}.schedule", how, "steps or retention")
        if how == "retention" and METHODS[name].unit != "channel":
            _fail(f"methods.{key}.schedule", how, f"steps ({name} prunes weights; the retention schedule counts units)")
        for knob, value in (entry or {}).items():
            if knob in ENTRY_KEYS:
                continue
            if knob not in knobs:
                _fail(f"methods.{key}.{knob}", value, f"a knob of {name}: " + (", ".join(knobs) or "none"))
            if not knobs[knob][1].ok(value):
                _fail(f"methods.{key}.{knob}", value, knobs[knob][1].allowed)
