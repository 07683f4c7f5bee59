"""keras-legacy-ckpt: use TF1 name-based checkpoints from TF2 and Keras models.

```python
import keras_legacy_ckpt as klc

model.fit(x, y, callbacks=[
    klc.WarmStartFromTF1("/old/model.ckpt-1000", {"/": "backbone/"}, sample_input=x[:1]),
    klc.SaveObjectCheckpoint("/new/tf2_ckpts"),
])
```

Importing the package imports no TensorFlow (nor numpy): the errors are here at once; every other
name is imported on first use. The offline tools
(`list_variables`, `verify_checkpoint`, `export_safetensors`, `diff_checkpoints`, `rename_checkpoint`)
and the warm start of Keras 3 models on JAX, torch or numpy need no TensorFlow for local V2
checkpoints; the rest imports it.
"""

import importlib
import sys
import types
from typing import Any

from keras_legacy_ckpt import _cli_env

_cli_env.quiet_tensorflow_if_cli()  # the CLI only: before TensorFlow is first imported (see _cli_env)

from keras_legacy_ckpt.errors import (AssignmentMapError, CheckpointNotFoundError, CorruptCheckpointError,  # noqa: E402
                                      DTypeMismatchError, DuplicateVariableNameError, LegacyCheckpointError,
                                      MissingVariablesError, ShapeMismatchError)

__version__ = "0.1.0"

# Public name -> the module that defines it (imported when the name is first used).
_LAZY = {
    "SaveObjectCheckpoint": "callbacks", "WarmStartFromTF1": "callbacks",
    "list_variables": "checkpoint_reader", "verify_checkpoint": "checkpoint_reader",
    "CheckpointDiff": "diff", "diff_checkpoints": "diff",
    "TF1Checkpoint": "tf1_checkpoint", "open_checkpoint": "tf1_checkpoint",
    "export_safetensors": "export",
    "LegacyCheckpointMixin": "mixin",
    "restore_object_checkpoint": "object_checkpoint",
    "rename_checkpoint": "rename",
    "VocabInfo": "warm_start_plan",
    "WarmStartReport": "warm_start_report", "suggest_assignment_map": "numpy_warm_start",
}


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        value = getattr(importlib.import_module("keras_legacy_ckpt." + _LAZY[name]), name)
    elif name == "bundle_index":
        value = importlib.import_module("keras_legacy_ckpt.bundle_index")
    elif name in ("track_tf1_style_variables", "v1_layers"):
        # The modeling shim and TF1-style layers, from tf_keras: present whether or not
        # TF_USE_LEGACY_KERAS=1 is set (tf.compat.v1.keras.utils has the shim only when it is).
        # Our shim is tf_keras's with auto-names (dense, dense_1, ...) kept the same on every call.
        from keras_legacy_ckpt import _compat

        value = (_compat.track_tf1_style_variables_decorator() if name == "track_tf1_style_variables"
                 else _compat.v1_layers_module())
    else:
        raise AttributeError("module 'keras_legacy_ckpt' has no attribute %r" % name)
    globals()[name] = value  # once imported, an ordinary attribute
    return value


__all__ = [
    "AssignmentMapError", "CheckpointNotFoundError", "CorruptCheckpointError", "DTypeMismatchError",
    "DuplicateVariableNameError", "LegacyCheckpointError", "LegacyCheckpointMixin", "MissingVariablesError",
    "SaveObjectCheckpoint", "ShapeMismatchError", "WarmStartFromTF1", "WarmStartReport", "list_variables",
    "bundle_index", "rename_checkpoint", "restore_object_checkpoint", "suggest_assignment_map",
    "track_tf1_style_variables", "v1_layers", "verify_checkpoint", "warm_start", "VocabInfo", "TF1Checkpoint",
    "open_checkpoint", "export_safetensors", "diff_checkpoints", "CheckpointDiff",
]


def __dir__():
    return sorted(set(__all__) | set(globals()))


class _Package(types.ModuleType):
    """`klc.warm_start` is the function, though a submodule has the same name: importing the submodule
    (which any module using it does) would otherwise replace the package's attribute with the module."""

    @property
    def warm_start(self):
        # The dispatcher: Keras 3 models on the JAX, torch or numpy backend are warm-started without
        # TensorFlow (numpy_warm_start), everything else by keras_legacy_ckpt.warm_start (TensorFlow).
        from keras_legacy_ckpt.numpy_warm_start import check_available, warm_start

        check_available()  # ImportError when neither TensorFlow nor Keras is installed
        return warm_start

    @warm_start.setter
    def warm_start(self, value):
        pass  # the import system setting the submodule here: the function stays


sys.modules[__name__].__class__ = _Package
