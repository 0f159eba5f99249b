"""params.yaml, the single source of truth, as one typed, frozen `Params`.

Every section is declared once here, as a frozen dataclass whose fields say what they may be
(`allowed.setting`): `load` reads params.yaml into it, refusing an unknown key or a bad value with
one line that names the key (`params.yaml: ratio = 1.5: expected a number in [0, 1)`), and
`json_schema` writes the same declaration as JSON Schema for editors (params.schema.json).
What only the registries know (data set and model names, a factory's knobs, a method's knobs)
is checked by the check stage (`prunebench.schema`), so a stage that loads its params imports
neither torch nor the methods.
"""

from __future__ import annotations

import dataclasses
import difflib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

import yaml

from prunebench.allowed import (
    Check,
    Json,
    boolean,
    integer,
    list_of,
    number,
    number_or_list,
    one_of,
    optional,
    positive,
    setting,
    string,
)
from prunebench.errors import UserError

PARAMS_FILE = Path("params.yaml")
BUDGETS = ("macs", "params", "units")  # what `ratio` removes (`prunebench.pruning.budget`)
EXECUTORS = ("local", "ray")  # executor.kind (`prunebench.execution`)
SCHEDULES = ("steps", "retention")  # how a method reaches `ratio`
ENTRY_KEYS = ("method", "schedule")  # keys of a `methods` entry that are not the method's knobs
AUGMENTS = ("none", "crop_flip", "resized_crop_flip")  # data.augment (`prunebench.training.preprocess`)
INTERPOLATIONS = ("bilinear", "bicubic")  # data.interpolation: of every resize
MODEL_START = ("weights", "checkpoint", "download")  # `model` keys that choose the starting weights


class ParamError(UserError, ValueError):
    """One line naming the key: `params.yaml: <key> = <value>: expected <what is allowed>`."""


def fail(key: str, value: Any, allowed: str) -> None:
    shown = repr(value)
    shown = shown if len(shown) <= 80 else shown[:76] + " …" + shown[-1]  # a long list stays one readable line
    raise ParamError(f"params.yaml: {key} = {shown}: expected {allowed}")


def section(cls: type | None, doc: str = "") -> Any:
    """A field that holds a nested section (None: the `methods` entries, parsed by `_methods`)."""
    return field(metadata={"section": cls, "doc": doc} if cls else {"doc": doc})


def fraction(lo_open: bool = True, hi_open: bool = True) -> Check:
    return number(0, 1, lo_open=lo_open, hi_open=hi_open)


@dataclass(frozen=True)
class Data:
    name: str = setting(
        string(), doc="digits | mnist | fashionmnist | cifar10 | cifar100 | imagefolder | shakespeare | text"
    )
    root: str = setting(string(), doc="where torchvision data sets are looked for")
    download: bool = setting(boolean(), doc="let torchvision fetch the data set into root (needs internet)")
    image_size: int | None = setting(
        optional(integer(8)), doc="the model's input size (null: imagefolder 224, others native)"
    )
    split_seed: int = setting(integer(0), doc="seed of the fixed stratified split")
    val_fraction: float = setting(fraction(), doc="validation part, carved from the training part")
    test_fraction: float = setting(fraction(), doc="test part (digits and shakespeare only)")
    batch_size: int = setting(integer(1))
    num_workers: int | None = setting(optional(integer(0)), doc="imagefolder DataLoader workers (null: per core)")
    crop_pct: float | None = setting(
        optional(fraction(hi_open=False)),
        None,
        "evaluation: resize to image_size / crop_pct, centre crop (null: the weights' or the data set's)",
    )
    mean: list[float] | None = setting(
        optional(list_of(fraction(False, False))), None, "per channel, of images in [0, 1] (null: the data set's)"
    )
    std: list[float] | None = setting(optional(list_of(positive())), None, "per channel (null: the data set's)")
    augment: str | None = setting(
        optional(one_of(*AUGMENTS)), None, "training augmentation: " + " | ".join(AUGMENTS) + " (null: the data set's)"
    )
    interpolation: str | None = setting(
        optional(one_of(*INTERPOLATIONS)),
        None,
        "of every resize: " + " | ".join(INTERPOLATIONS) + " (null: the weights' or bilinear)",
    )
    sequence_length: int = setting(integer(2), 64, "text: the tokens a language model reads at once")
    tokenizer: str | None = setting(
        optional(string()), None, "text: a Hugging Face tokenizer's directory (null: the text's UTF-8 bytes)"
    )


@dataclass(frozen=True)
class Model:
    """The architecture (`name` and its factory's `knobs`, every other key of the section) and
    where its weights start."""

    name: str = setting(string(), doc="a registered model, or package.module:function")
    weights: str | None = setting(
        optional(string()), None, "torchvision weights (IMAGENET1K_V1), timm's weights file, or hf: its directory"
    )
    checkpoint: str | None = setting(optional(string()), None, "a state dict file to start from")
    download: bool = setting(boolean(), False, "let torchvision fetch model.weights (needs internet)")
    knobs: dict[str, Any] = field(default_factory=dict, metadata={"hidden": True})  # the factory's own arguments

    def as_dict(self) -> dict[str, Any]:
        """The section as params.yaml has it: the plain-data description of the model."""
        return {
            "name": self.name,
            "weights": self.weights,
            "checkpoint": self.checkpoint,
            "download": self.download,
            **self.knobs,
        }


@dataclass(frozen=True)
class Loop:
    """A training loop: SGD with momentum, cosine-annealed, early stopping on validation loss."""

    epochs: int = setting(integer(0))
    compile: bool = setting(boolean(), doc="run the training steps through torch.compile")
    lr: float = setting(positive())
    momentum: float = setting(fraction(lo_open=False))
    weight_decay: float = setting(number(0, 1))
    patience: int = setting(integer(0), doc="epochs without improvement before stopping (0 = off)")
    key: str = field(default="train", compare=False, metadata={"hidden": True})  # its place in params.yaml, for errors


@dataclass(frozen=True)
class Sensitivity:
    ratios: list[float] = setting(list_of(fraction()), doc="the ratios of the per-layer sweep")


@dataclass(frozen=True)
class Retention:
    q: float = setting(fraction(), doc="layer l keeps max(1, round(h_l · q^t)) units at iteration t")
    max_iterations: int = setting(integer(1))
    tolerance: float = setting(
        number(0, 1),
        doc="deployed: fewest parameters within this of the unpruned accuracy (perplexity: × (1 + this))",
    )


@dataclass(frozen=True)
class Schedule:
    iterations: int = setting(integer(1), doc="steps: 1 = one-shot; N steps per point")
    retention: Retention = section(Retention, "the geometric retention schedule")
    retrain: Loop = section(Loop, "the retraining between steps and after every retention iteration")


@dataclass(frozen=True)
class Measure:
    latency_batch: int = setting(integer(1))
    rounds: int = setting(integer(1), doc="timing rounds, each taking every model of a point in turn")
    min_run_time: float = setting(positive(), doc="seconds of passes per model, way and round")


@dataclass(frozen=True)
class Deploy:
    tolerance: float = setting(
        positive(), doc="largest |ONNX Runtime − PyTorch| logit, relative to 1 + the largest |logit|"
    )


@dataclass(frozen=True)
class Stats:
    confidence: float = setting(fraction(), doc="of the paired bootstrap interval")
    resamples: int = setting(integer(100))


@dataclass(frozen=True)
class MethodEntry:
    """One `methods` entry: the run's name, the registered method behind it, the schedule it
    asked for (None: the method's own) and its knobs (checked against the method by the check
    stage, typed by the method's `Knobs` when it is built)."""

    key: str
    method: str
    schedule: str | None
    knobs: dict[str, Any]

    @classmethod
    def of(cls, key: str, entry: Any) -> MethodEntry:
        """The entry `methods.<key>` of params.yaml."""
        if entry is not None and not isinstance(entry, dict):
            fail(f"methods.{key}", entry, "a mapping of knobs (or {})")
        entry = entry or {}
        schedule = entry.get("schedule")
        if schedule is not None and schedule not in SCHEDULES:
            fail(f"methods.{key}.schedule", schedule, "steps or retention")
        return cls(key, entry.get("method", key), schedule, {k: v for k, v in entry.items() if k not in ENTRY_KEYS})

    def as_dict(self) -> dict[str, Any]:
        """The entry as params.yaml has it."""
        return (
            ({"method": self.method} if self.method != self.key else {})
            | ({"schedule": self.schedule} if self.schedule else {})
            | self.knobs
        )


def _gpus() -> Check:
    """What Ray accepts for a task's GPUs: 0, a fraction of one (jobs packed onto it), or whole GPUs."""
    return Check(
        lambda v: isinstance(v, (int, float)) and not isinstance(v, bool) and (0 <= v <= 1 or float(v).is_integer()),
        "a number in [0, 1] or a whole number of GPUs",
        {"type": "number", "minimum": 0},
    )


@dataclass(frozen=True)
class Executor:
    """Where a stage's jobs run; no stage depends on it (results do not)."""

    kind: str = setting(one_of(*EXECUTORS), doc="local: processes on this machine | ray: Ray tasks")
    address: str | None = setting(
        optional(string()), doc="ray: null starts a Ray instance here; auto or host:port joins a cluster"
    )
    cpus_per_job: int = setting(integer(1), doc="ray: CPUs (and torch threads) per job")
    gpus_per_job: float = setting(_gpus(), doc="ray on GPUs: a fraction packs small jobs, 0.25 = four per GPU")


@dataclass(frozen=True)
class Params:
    budget: str = setting(one_of(*BUDGETS), doc="what ratio removes, for every method alike")
    ratio: float | list[float] = setting(number_or_list(fraction()), doc="the operating points")
    seeds: list[int] = setting(list_of(integer(0)), doc="one base model per seed")
    device: str = setting(one_of("auto", "cpu", "cuda"))
    workers: int | None = setting(optional(integer(1)), doc="processes per stage on the CPU (null: per core)")
    executor: Executor = section(Executor, "where the jobs of a stage run (local processes or Ray)")
    data: Data = section(Data)
    model: Model = section(Model, "the model, its factory's knobs and its starting weights")
    train: Loop = section(Loop, "base model training (epochs 0: the loaded model as it is)")
    sensitivity: Sensitivity = section(Sensitivity)
    schedule: Schedule = section(Schedule)
    recalibrate: int = setting(integer(0), doc="training batches that re-estimate BatchNorm statistics")
    finetune: Loop = section(Loop, "the same fine-tuning for every method and point")
    measure: Measure = section(Measure)
    deploy: Deploy = section(Deploy, "the ONNX export and its check (deploy stage)")
    stats: Stats = section(Stats)
    methods: dict[str, MethodEntry] = section(None, "run name → knobs; `method:` picks the implementation")

    @property
    def points(self) -> list[float]:
        """The operating points: `ratio`, one number or a list of them."""
        return list(self.ratio) if isinstance(self.ratio, list) else [self.ratio]


def declared(cls: Any) -> list[dataclasses.Field]:
    """The fields of a section that params.yaml has."""
    return [f for f in dataclasses.fields(cls) if not f.metadata.get("hidden")]


def plain(value: Any) -> Any:
    """A section (or all of `Params`) as params.yaml has it: plain data, for MLflow and for the
    fingerprints of resume caches."""
    if hasattr(value, "as_dict"):
        return value.as_dict()
    if dataclasses.is_dataclass(value):
        return {f.name: plain(getattr(value, f.name)) for f in declared(value)}
    if isinstance(value, dict):
        return {k: plain(v) for k, v in value.items()}
    return value


def load(path: str | Path = PARAMS_FILE) -> Params:
    """params.yaml as typed `Params`; a bad value or unknown key is one `ParamError` line."""
    return parse(read(path))


def read(path: str | Path = PARAMS_FILE) -> dict[str, Any]:
    """params.yaml as plain data, unchecked."""
    path = Path(path)
    if not path.exists():
        raise ParamError(f"{path}: not found; run from the repository root")
    try:
        raw = yaml.safe_load(path.read_text())
    except yaml.YAMLError as error:  # where, and what the parser expected, in one line
        mark = getattr(error, "problem_mark", None)
        where = f" line {mark.line + 1}, column {mark.column + 1}" if mark is not None else ""
        problem = getattr(error, "problem", None) or str(error).splitlines()[0]
        raise ParamError(f"{path}{where}: not YAML ({problem})") from None
    if not isinstance(raw, dict):
        raise ParamError(f"{path}: expected a mapping of keys to values")
    return raw


def parse(raw: Any) -> Params:
    """Check `raw` (params.yaml as plain data) against the declaration and build `Params`."""
    params = _section(Params, raw, "")
    if len(set(params.seeds)) != len(params.seeds):
        fail("seeds", params.seeds, "distinct seeds")
    if len(set(params.points)) != len(params.points):
        fail("ratio", params.ratio, "distinct operating points")
    if params.data.val_fraction + params.data.test_fraction >= 1:
        fail("data.val_fraction + data.test_fraction", None, "a sum below 1")
    return params


S = TypeVar("S")


def _section(cls: type[S], raw: Any, prefix: str) -> S:
    """One section: unknown keys first (with the closest known key), then each field in order."""
    if not isinstance(raw, dict):
        fail(prefix.rstrip(".") or "params.yaml", raw, "a mapping")
    fields = {f.name: f for f in declared(cls)}
    if cls is not Model:
        for key in raw:
            if key not in fields:
                unknown(prefix + key, list(fields))
    values: dict[str, Any] = {}
    for name, f in fields.items():
        key = prefix + name
        if name not in raw:
            if f.default is dataclasses.MISSING:
                fail(key, None, "a value (the key is missing)")
            continue
        if "section" in f.metadata:
            values[name] = _section(f.metadata["section"], raw[name], key + ".")
        elif name == "methods":
            values[name] = _methods(raw[name])
        elif not f.metadata["check"].ok(raw[name]):
            fail(key, raw[name], f.metadata["check"].allowed)
        else:
            values[name] = raw[name]
    if cls is Model:
        values["knobs"] = {k: v for k, v in raw.items() if k not in fields}
    if cls is Loop:
        values["key"] = prefix.rstrip(".")
    return cls(**values)


def _methods(raw: Any) -> dict[str, MethodEntry]:
    if not isinstance(raw, dict) or not raw:
        fail("methods", raw, "a non-empty mapping of run name to knobs")
    return {key: MethodEntry.of(key, entry) for key, entry in raw.items()}


def known_keys(cls: type = Params, prefix: str = "") -> list[str]:
    """Every dotted key the declaration names."""
    keys = []
    for f in declared(cls):
        keys.append(prefix + f.name)
        if "section" in f.metadata:
            keys += known_keys(f.metadata["section"], f"{prefix}{f.name}.")
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
    all of the declaration's) or else the keys allowed at its place."""
    guess = suggest(key, known or known_keys())
    hint = f"did you mean {guess}?" if guess else "expected one of " + (", ".join(siblings) or "none")
    raise ParamError(f"params.yaml: {key}: unknown key ({hint})")


def json_schema(cls: type = Params, methods: Json | None = None, models: Json | None = None) -> Json:
    """The declaration as JSON Schema; `methods` and `models` are the schemas of a `methods`
    entry and of the `model` section's extra keys, which the registries know (`prunebench.schema`)."""
    properties: Json = {}
    for f in declared(cls):
        if "section" in f.metadata:
            prop = json_schema(f.metadata["section"], methods, models)
        elif f.name == "methods":
            prop = {"type": "object", "minProperties": 1, "additionalProperties": methods or {}}
        else:
            prop = dict(f.metadata["check"].json)
        if f.metadata.get("doc"):
            prop["description"] = f.metadata["doc"]
        properties[f.name] = prop
    required = [
        f.name for f in declared(cls) if f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING
    ]
    extra: Json | bool = (models or True) if cls is Model else False  # a model's factory knobs
    schema: Json = {"type": "object", "properties": properties, "required": required, "additionalProperties": extra}
    if cls.__doc__ and not cls.__doc__.startswith(cls.__name__ + "("):
        schema["description"] = " ".join(cls.__doc__.split())
    return schema
