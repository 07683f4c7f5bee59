"""absl flags that give a training binary its warm-start and checkpoint paths.

```python
from absl import app, flags
from keras_legacy_ckpt import flags as klc_flags

klc_flags.define_flags()

def main(argv):
    model.fit(x, y, callbacks=klc_flags.callbacks_from_flags(sample_input=x[:1]))

app.run(main)
```

    train --warm_start_from=/old/model.ckpt-1000 --warm_start_assignment_map="/=backbone/" \\
          --object_checkpoint_dir=/new/tf2_ckpts
"""

from __future__ import annotations

import json
import os
from typing import Any, List, Optional

from absl import flags

from keras_legacy_ckpt.assignment_map import NameMapping, parse_map_spec, validate_warm_start_map
from keras_legacy_ckpt.errors import AssignmentMapError

FLAGS = flags.FLAGS


def define_flags(flag_values: flags.FlagValues = FLAGS) -> None:
    """Defines --warm_start_from, --warm_start_assignment_map, --warm_start_strict,
    --object_checkpoint_dir and --object_checkpoint_save_on (once; calling again is a no-op)."""
    if "warm_start_from" in flag_values:
        return
    flags.DEFINE_string(
        "warm_start_from", None,
        "TF1 name-based checkpoint to warm-start the model from when training begins: a prefix such as "
        "/ckpts/model.ckpt-1000, or a directory with a 'checkpoint' state file (its latest checkpoint). "
        "Unset: no warm start.", flag_values=flag_values)
    flags.DEFINE_string(
        "warm_start_assignment_map", None,
        "How checkpoint names map to model names, as in tf.compat.v1.train.init_from_checkpoint: "
        "'ckpt_scope/=model_scope/,ckpt_name=model_name' (e.g. '/=backbone/' loads checkpoint 'dense/kernel' "
        "into 'backbone/dense/kernel'), or the path of a JSON file holding such a dict, or a list of "
        "[regex, replacement] pairs. Unset: names must match exactly.", flag_values=flag_values)
    flags.DEFINE_bool(
        "warm_start_strict", True,
        "Fail before assigning anything if a model variable inside the mapped scopes has no checkpoint "
        "tensor. --nowarm_start_strict loads what matches and lists the rest in the report.",
        flag_values=flag_values)
    flags.DEFINE_string(
        "object_checkpoint_dir", None,
        "Directory for TF2 object-based checkpoints (tf.train.Checkpoint) of the model and optimizer. A job "
        "restarted with the same flags resumes from the latest one there and does not warm-start again. "
        "Unset: none are written.", flag_values=flag_values)
    flags.DEFINE_enum(
        "object_checkpoint_save_on", "epoch_end", ["train_begin", "epoch_end", "train_end"],
        "When to write to --object_checkpoint_dir: train_begin (the warm-started weights, once), after "
        "every epoch, or when training ends.", flag_values=flag_values)
    flags.register_validator(
        "warm_start_assignment_map", _valid_map,
        message="--warm_start_assignment_map must be 'ckpt_scope/=model_scope/,...' or a JSON file path",
        flag_values=flag_values)


def _valid_map(value: Optional[str]) -> bool:
    try:
        mapping = parse_assignment_map_flag(value)
        if mapping is not None:
            validate_warm_start_map(mapping)
    except AssignmentMapError as e:
        raise flags.ValidationError(str(e))
    return True


def parse_assignment_map_flag(value: Optional[str]) -> NameMapping:
    """Parses the --warm_start_assignment_map value (never with eval)."""
    if not value:
        return None
    if os.path.isfile(value):
        try:
            with open(value) as f:
                loaded = json.load(f)
        except (OSError, ValueError) as e:
            raise AssignmentMapError("Cannot read assignment map JSON file %s: %s." % (value, e)) from None
        if isinstance(loaded, dict) and all(isinstance(k, str) and (v is None or isinstance(v, str))
                                            for k, v in loaded.items()):
            return loaded
        if isinstance(loaded, list) and all(isinstance(r, list) and len(r) == 2 for r in loaded):
            rules = [tuple(r) for r in loaded]
            validate_warm_start_map(rules)
            return rules
        raise AssignmentMapError("Assignment map JSON file %s must hold {\"ckpt_scope/\": \"model_scope/\"} or "
                                 "[[\"regex\", \"replacement\"], ...]." % value)
    return parse_map_spec(value)


def callbacks_from_flags(flag_values: flags.FlagValues = FLAGS, sample_input: Any = None) -> List[Any]:
    """SaveObjectCheckpoint(restore=True) and WarmStartFromTF1 as the flags ask; [] when they are unset.

    A binary restarted with the same flags resumes from the latest checkpoint in
    --object_checkpoint_dir and does not warm-start again (resume beats warm start).
    """
    from keras_legacy_ckpt.callbacks import SaveObjectCheckpoint, WarmStartFromTF1

    callbacks: List[Any] = []
    # The restore comes first so the warm start sees a resumed run before doing any work.
    if flag_values.object_checkpoint_dir:
        callbacks.append(SaveObjectCheckpoint(flag_values.object_checkpoint_dir, restore=True,
                                              sample_input=sample_input,
                                              save_on=flag_values.object_checkpoint_save_on))
    if flag_values.warm_start_from:
        callbacks.append(WarmStartFromTF1(
            flag_values.warm_start_from, parse_assignment_map_flag(flag_values.warm_start_assignment_map),
            sample_input=sample_input, strict=flag_values.warm_start_strict))
    return callbacks
