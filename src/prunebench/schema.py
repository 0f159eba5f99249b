"""What params.yaml may hold beyond its declaration (`prunebench.params`): the names the
registries know (data sets, models, methods), a model factory's knobs and a method's knobs; and
the JSON Schema of params.yaml that editors read (params.schema.json, written by
`python -m prunebench.schema`, compared with the declaration by a test).

The check stage runs `validate` before any stage that owns outputs, so a typo stops the pipeline
with one line such as `params.yaml: schedule.q: unknown key (did you mean schedule.retention.q?)`.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

from prunebench.params import ENTRY_KEYS, MODEL_START, Json, MethodEntry, Model, ParamError, Params, fail, unknown
from prunebench.params import json_schema as declared_schema
from prunebench.params import parse as parse_params

SCHEMA_FILE = Path("params.schema.json")


def validate(raw: dict[str, Any]) -> Params:
    """params.yaml as plain data → checked, typed `Params`."""
    params = parse_params(raw)
    _check_data(params.data.name)
    _check_model(params.model)
    for entry in params.methods.values():
        _check_method(entry)
    return params


def _check_data(name: str) -> None:
    from prunebench.training.data import DATASETS

    DATASETS[name]  # one line naming the registered data sets


def _check_model(model: Model) -> None:
    from prunebench.training import models

    try:
        knobs, takes_any = models.knobs(models.family(model.name).factory)
    except models.ModelError as error:
        raise ParamError(f"params.yaml: {error}") from error
    for key in model.knobs:
        if key not in knobs and not takes_any:
            allowed = ["name", *MODEL_START, *knobs]
            unknown(f"model.{key}", allowed, [f"model.{k}" for k in allowed])
    if model.weights and model.checkpoint:
        fail("model.weights", model.weights, "null when model.checkpoint is set (one starting point)")
    if model.checkpoint and not Path(model.checkpoint).is_file():
        fail("model.checkpoint", model.checkpoint, "a state dict file (path from the repository root)")


def _check_method(entry: MethodEntry) -> None:
    from prunebench.allowed import checks
    from prunebench.pruning.methods import METHODS, schedule

    key = entry.key
    if entry.method not in METHODS:
        where = f"methods.{key}.method" if entry.method != key else f"methods.{key}"
        fail(where, entry.method, "a registered method: " + ", ".join(METHODS))
    cls = METHODS[entry.method]
    if schedule(entry) == "retention" and cls.unit != "channel":
        fail(
            f"methods.{key}.schedule",
            "retention",
            f"steps ({entry.method} prunes weights; the retention schedule counts units)",
        )
    allowed_knobs = checks(cls.Knobs)
    for knob, value in entry.knobs.items():
        if knob not in allowed_knobs:
            allowed = [*ENTRY_KEYS, *allowed_knobs]
            unknown(f"methods.{key}.{knob}", allowed, [f"methods.{key}.{k}" for k in allowed])
        if not allowed_knobs[knob].ok(value):
            fail(f"methods.{key}.{knob}", value, allowed_knobs[knob].allowed)


def json_schema() -> Json:
    """params.yaml's JSON Schema: the declaration, with the registries' names and knobs."""
    from prunebench.allowed import checks
    from prunebench.pruning.methods import METHODS

    knobs: dict[str, list[tuple[str, Json]]] = {}
    for name, cls in METHODS.items():
        for knob, check in checks(cls.Knobs).items():
            knobs.setdefault(knob, []).append((name, check.json))
    entry_properties: Json = {
        "method": {"enum": list(METHODS), "description": "the registered method (default: the key)"},
        "schedule": {"enum": ["steps", "retention"], "description": "how ratio is reached (default: the method's own)"},
    }
    for knob, found in knobs.items():
        variants: list[Json] = []
        for _, variant in found:  # the knob's distinct checks across the methods that have it
            if variant not in variants:
                variants.append(variant)
        entry_properties[knob] = (variants[0] if len(variants) == 1 else {"anyOf": variants}) | {
            "description": "a knob of " + ", ".join(name for name, _ in found)
        }
    entry = {
        "anyOf": [{"type": "null"}, {"type": "object", "properties": entry_properties, "additionalProperties": False}]
    }
    schema = declared_schema(Params, methods=entry)
    from prunebench.training.data import DATASETS
    from prunebench.training.models import MODELS

    fields = schema["properties"]
    fields["data"]["properties"]["name"] |= {"enum": list(DATASETS)}
    fields["model"]["properties"]["name"] = {
        "anyOf": [{"enum": list(MODELS)}, {"type": "string", "pattern": r"^[\w.]+:[\w.]+$"}],
        "description": fields["model"]["properties"]["name"]["description"],
    }
    return {
        "$schema": "https://json-schema.org/draft/2020-12/schema",
        "title": "prunebench params.yaml",
        "description": "Every knob of the benchmark; `prunebench.params` declares it.",
    } | schema


def write(path: Path = SCHEMA_FILE) -> None:
    from prunebench.files import write_text

    write_text(path, json.dumps(json_schema(), indent=2, ensure_ascii=False) + "\n")


if __name__ == "__main__":
    write(Path(sys.argv[1]) if len(sys.argv) > 1 else SCHEMA_FILE)
    print(f"{sys.argv[1] if len(sys.argv) > 1 else SCHEMA_FILE}: written")
