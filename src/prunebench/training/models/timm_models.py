"""timm's models by name: `model.name: timm:<name>` builds any model timm lists
(`timm.list_models()`; a pretrained tag may follow the name, `vit_tiny_patch16_224.augreg_in21k`),
for the data set's channels, classes and, where the architecture takes it, image size; every other
key of the `model` section goes to `timm.create_model`.

timm fetches its weights from the Hugging Face Hub, which this suite never reaches: `model.weights`
is the path of such a file (`model.safetensors` or `pytorch_model.bin`), adapted by the
architecture's own filter as timm adapts it (position embeddings resampled to the image size) and
transferred as torchvision's weights are (a classifier for other classes starts afresh); the
preprocessing it expects comes from the model's pretrained configuration. `model.checkpoint` is a
state dict of exactly this model, as for every family.
"""

from __future__ import annotations

import sys
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import Any

from torch import Tensor, nn

from prunebench.training import torchfile
from prunebench.training.models.family import PREFIXES, Family, ModelError, Pretrained, WeightsError


def _timm() -> Any:
    """timm, imported after torchvision is made importable (timm imports it)."""
    from prunebench.training._torchvision import import_torchvision

    import_torchvision()
    import timm

    return timm


@dataclass(frozen=True)
class TimmWeights(Pretrained):
    """A local copy of timm's pretrained weights of the model `name`."""

    name: str

    def config(self) -> dict[str, Any]:
        return _timm().models.get_pretrained_cfg(self.name).to_dict()

    def state(self, description: dict[str, Any], model: nn.Module) -> dict[str, Tensor]:
        path = Path(description["weights"])
        if not path.is_file():
            hub = self.config().get("hf_hub_id") or f"timm/{self.name}"
            raise WeightsError(
                f"model.weights = {str(path)!r}: no such file: download model.safetensors from "
                f"https://huggingface.co/{hub} (the Hub is not reachable from here) and put it there"
            )
        state = torchfile.read_weights(path)
        if not isinstance(state, dict):
            raise WeightsError(f"model.weights = {str(path)!r}: holds no state dict (name → tensor)")
        return fit_state(model, state)

    def preprocessing(self, description: dict[str, Any]) -> dict[str, Any] | None:
        if not description.get("weights"):
            return None
        cfg = self.config()
        return {key: cfg[key] for key in ("mean", "std", "crop_pct", "interpolation")}


def fit_state(model: nn.Module, state: dict[str, Tensor]) -> dict[str, Tensor]:
    """Pretrained weights as the architecture's own filter adapts them (timm's `checkpoint_filter_fn`
    where its module has one: position embeddings resampled to the model's grid, and the like)."""
    adapt = getattr(sys.modules[type(model).__module__], "checkpoint_filter_fn", None)
    return adapt(state, model) if adapt is not None else state


@cache
def timm_family(name: str) -> Family:
    """The family of `timm:<name>`."""
    timm = _timm()
    if not timm.is_model(name):
        raise ModelError(f"model.name = 'timm:{name}': timm {timm.__version__} has no such model (timm.list_models())")

    def factory(in_channels: int, num_classes: int, image_size: int, **knobs: Any) -> nn.Module:
        shape = {"in_chans": in_channels, "num_classes": num_classes}
        try:
            return timm.create_model(name, pretrained=False, img_size=image_size, **shape, **knobs)
        except TypeError as error:  # an architecture without a fixed grid (a CNN) takes no image size
            if "img_size" not in str(error):
                raise
            return timm.create_model(name, pretrained=False, **shape, **knobs)

    return Family(f"timm:{name}", factory, TimmWeights(name))


PREFIXES.register("timm")(timm_family)
