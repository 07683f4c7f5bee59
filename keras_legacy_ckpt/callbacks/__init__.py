"""Keras callbacks for migrating from TF1 checkpoints (usable in tf_keras and Keras 3 `fit`).

Each is imported on first use: `WarmStartFromTF1` works without TensorFlow (Keras 3 on the JAX,
torch or numpy backend); `SaveObjectCheckpoint` writes TensorFlow object checkpoints and imports it.
"""

import importlib
from typing import Any

_MODULES = {"SaveObjectCheckpoint": "save_object_checkpoint", "WarmStartFromTF1": "warm_start_from_tf1"}


def __getattr__(name: str) -> Any:
    if name not in _MODULES:
        raise AttributeError("module %r has no attribute %r" % (__name__, name))
    value = getattr(importlib.import_module("%s.%s" % (__name__, _MODULES[name])), name)
    globals()[name] = value
    return value


def __dir__():
    return sorted(set(__all__) | set(globals()))


__all__ = ["SaveObjectCheckpoint", "WarmStartFromTF1"]
