"""A `model.name` factory for a model whose code lives in another code base: the recipe of
README's "Bring a model from elsewhere". params.yaml:

    model:
      name: examples.foreign_model:build
      source: ../pytorch_resnet_cifar10   # a checkout of the other code base
      module: resnet                      # the module of that checkout that defines the model
      function: resnet56                  # and the function that builds it
      checkpoint: ../pytorch_resnet_cifar10/pretrained_models/resnet56-4bfd9763.th

The other code base's files are not in prunebench's code manifests: after editing them, run
`dvc repro -f train` (the checkpoint itself is hashed into the train stage's manifest).
"""

from __future__ import annotations

import importlib
import inspect
import sys
from pathlib import Path

from torch import nn


def build(num_classes: int, source: str, module: str, function: str) -> nn.Module:
    """`function` of `module` from the checkout at `source`, with `num_classes` if it takes it
    (many CIFAR model functions fix 10 classes)."""
    folder = str(Path(source).resolve())
    if folder not in sys.path:
        sys.path.insert(0, folder)
    make = getattr(importlib.import_module(module), function)
    return make(num_classes=num_classes) if "num_classes" in inspect.signature(make).parameters else make()
