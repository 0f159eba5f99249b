"""Import torchvision even when its compiled ops do not match the installed torch.

Why: the registry's torchvision 0.28.0 is a CUDA build. Next to the CPU build of torch 2.13.0
its C++ extension fails to load, and `torchvision/_meta_registrations.py` then registers fake
kernels for operators that do not exist (`torchvision::nms`), so `import torchvision` raises
RuntimeError. prunebench needs only torchvision's models, data sets and transforms, which are
pure Python. When (and only when) that import fails this way, we import torchvision again with
the meta-registrations module replaced by an empty one; detection ops such as nms stay
unavailable. With a matching torchvision (e.g. on a CUDA machine) the first import succeeds and
nothing here changes.
"""

from __future__ import annotations

import sys
import types
from types import ModuleType


def import_torchvision() -> ModuleType:
    try:
        import torchvision
    except RuntimeError as error:
        if "torchvision::" not in str(error):
            raise
        for name in [m for m in sys.modules if m == "torchvision" or m.startswith("torchvision.")]:
            del sys.modules[name]
        sys.modules["torchvision._meta_registrations"] = types.ModuleType("torchvision._meta_registrations")
        import torchvision
    return torchvision
