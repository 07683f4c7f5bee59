"""keras-legacy-ckpt: use TF1 name-based checkpoints from TF2 and Keras models.

```python
import keras_legacy_ckpt as klc

model.fit(x, y, callbacks=[
    klc.WarmStartFromTF1("/old/model.ckpt-1000", {"/": "backbone/"}, sample_input=x[:1]),
    klc.SaveObjectCheckpoint("/new/tf2_ckpts"),
])
```
"""

from keras_legacy_ckpt import _cli_env

_cli_env.quiet_tensorflow_if_cli()  # the CLI only: before TensorFlow is first imported (see _cli_env)

from keras_legacy_ckpt import _compat, bundle_index
from keras_legacy_ckpt.callbacks import SaveObjectCheckpoint, WarmStartFromTF1
from keras_legacy_ckpt.checkpoint_reader import list_variables, verify_checkpoint
from keras_legacy_ckpt.diff import CheckpointDiff, diff_checkpoints
from keras_legacy_ckpt.export import export_safetensors
from keras_legacy_ckpt.errors import (AssignmentMapError, CheckpointNotFoundError, CorruptCheckpointError,
                                      DTypeMismatchError, DuplicateVariableNameError, LegacyCheckpointError,
                                      MissingVariablesError, ShapeMismatchError)
from keras_legacy_ckpt.mixin import LegacyCheckpointMixin
from keras_legacy_ckpt.object_checkpoint import restore_object_checkpoint
from keras_legacy_ckpt.rename import rename_checkpoint
from keras_legacy_ckpt.tf1_checkpoint import TF1Checkpoint, open_checkpoint
from keras_legacy_ckpt.transforms import VocabInfo
from keras_legacy_ckpt.warm_start import WarmStartReport, suggest_assignment_map, warm_start

__version__ = "0.1.0"

# The modeling shim and TF1-style layers, from tf_keras: present whether or not
# TF_USE_LEGACY_KERAS=1 is set (tf.compat.v1.keras.utils has the shim only when it is).
# Our shim is tf_keras's with auto-names (dense, dense_1, ...) kept the same on every call.
track_tf1_style_variables = _compat.track_tf1_style_variables_decorator()
v1_layers = _compat.v1_layers_module()

__all__ = [
    "AssignmentMapError", "CheckpointNotFoundError", "CorruptCheckpointError", "DTypeMismatchError",
    "DuplicateVariableNameError", "LegacyCheckpointError", "LegacyCheckpointMixin", "MissingVariablesError",
    "SaveObjectCheckpoint", "ShapeMismatchError", "WarmStartFromTF1", "WarmStartReport", "list_variables",
    "bundle_index", "rename_checkpoint", "restore_object_checkpoint", "suggest_assignment_map",
    "track_tf1_style_variables", "v1_layers", "verify_checkpoint", "warm_start", "VocabInfo", "TF1Checkpoint", "open_checkpoint",
    "export_safetensors", "diff_checkpoints", "CheckpointDiff",
]
