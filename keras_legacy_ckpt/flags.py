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

Values that cannot work fail when the flags are parsed (absl IllegalFlagValueError, naming the value and
the fix): a --warm_start_from that names no checkpoint (unless --object_checkpoint_dir already holds one,
from which the run resumes without reading the TF1 checkpoint), a --warm_start_assignment_map without
--warm_start_from, a map with bad syntax, and a JSON map file that is missing or invalid. Local paths are
checked with os.path; paths with a scheme (gs://, ram://, ...) with tf.io.gfile.
"""

from __future__ import annotations

import json
from typing import Any, List, Optional, Tuple

from absl import flags

from keras_legacy_ckpt import file_access
from keras_legacy_ckpt.assignment_map import NameMapping, parse_map_spec, validate_warm_start_map
from keras_legacy_ckpt.errors import AssignmentMapError, LegacyCheckpointError

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
    flags.register_multi_flags_validator(
        ["warm_start_from", "warm_start_assignment_map"], _map_needs_checkpoint,
        message="--warm_start_assignment_map needs --warm_start_from", flag_values=flag_values)
    flags.register_validator(
        "warm_start_from", lambda value: _valid_warm_start_from(value, flag_values),
        message="--warm_start_from must name an existing TF1 checkpoint", flag_values=flag_values)


def _valid_map(value: Optional[str]) -> bool:
    try:
        mapping = parse_assignment_map_flag(value)
        if mapping is not None:
            validate_warm_start_map(mapping)
    except AssignmentMapError as e:
        raise flags.ValidationError(str(e))
    return True


def _map_needs_checkpoint(values: dict) -> bool:
    if values["warm_start_assignment_map"] and not values["warm_start_from"]:
        raise flags.ValidationError(
            "--warm_start_assignment_map=%s is set without --warm_start_from, so nothing would use it: add "
            "--warm_start_from=<the TF1 checkpoint prefix or directory the map applies to>, or drop the map."
            % values["warm_start_assignment_map"])
    return True


def _valid_warm_start_from(value: Optional[str], flag_values: flags.FlagValues) -> bool:
    if not value:
        return True
    # Resume beats warm start: a restarted job whose object checkpoint directory already holds a
    # checkpoint resumes from it and never reads the TF1 checkpoint, which may be gone by now.
    resume_dir = flag_values["object_checkpoint_dir"].value if "object_checkpoint_dir" in flag_values else None
    try:
        if resume_dir and file_access.exists(file_access.join(resume_dir, "checkpoint")):
            return True
        problem = checkpoint_problem(value)
    except Exception as e:  # noqa: BLE001  (tf.errors.OpError of a remote file system: permissions, network)
        raise flags.ValidationError("cannot check that this checkpoint exists: %s" % str(e).strip().split("\n")[0])
    if problem:
        raise flags.ValidationError(problem)
    return True


def checkpoint_problem(path: str) -> Optional[str]:
    """Why `path` names no TF1 checkpoint (a sentence ending with the fix), or None when it names one:
    exactly what the warm start itself will open (a TF2 object checkpoint, say, is refused here already)."""
    from keras_legacy_ckpt.checkpoint_reader import CheckpointFile

    try:
        CheckpointFile(path)  # reads the index, not the tensors
    except LegacyCheckpointError as e:
        return str(e)
    return None


def parse_assignment_map_flag(value: Optional[str]) -> NameMapping:
    """Parses the --warm_start_assignment_map value (never with eval).

    A value ending in .json, or naming an existing file, is a JSON file; anything else is a map spec.
    """
    if not value:
        return None
    if value.lower().endswith(".json") or (file_access.exists(value) and not file_access.isdir(value)):
        return _load_json_map(value)
    return parse_map_spec(value)


_JSON_FORMS = '{"ckpt_scope/": "model_scope/", "ckpt_name": "model_name"} or [["regex", "replacement"], ...]'


def _no_duplicate_keys(pairs: List[Tuple[str, Any]]) -> dict:
    seen: dict = {}
    for key, value in pairs:
        if key in seen:
            raise AssignmentMapError("%r is given twice" % key)
        seen[key] = value
    return seen


def _load_json_map(path: str) -> NameMapping:
    if not file_access.exists(path):
        raise AssignmentMapError(
            "The assignment map JSON file %s does not exist (a value ending in .json is always read as a file). "
            "Fix the path, or pass the map itself, e.g. '/=backbone/'." % path)
    try:
        text = file_access.read_file(path).decode("utf-8")
    except Exception as e:  # noqa: BLE001  (OSError, UnicodeDecodeError, tf.errors.OpError)
        raise AssignmentMapError("Cannot read the assignment map JSON file %s: %s." % (path, e)) from None
    try:
        loaded = json.loads(text, object_pairs_hook=_no_duplicate_keys)
    except json.JSONDecodeError as e:
        raise AssignmentMapError("The assignment map file %s is not valid JSON (line %d column %d: %s). It must "
                                 "hold %s." % (path, e.lineno, e.colno, e.msg, _JSON_FORMS)) from None
    except AssignmentMapError as e:
        raise AssignmentMapError("In the assignment map JSON file %s, %s: give each name once." % (path, e)) from None
    if isinstance(loaded, dict) and all(isinstance(k, str) and (v is None or isinstance(v, str))
                                        for k, v in loaded.items()):
        return loaded
    if isinstance(loaded, list) and all(isinstance(r, list) and len(r) == 2 and isinstance(r[0], str)
                                        and (r[1] is None or isinstance(r[1], str)) for r in loaded):
        rules = [tuple(r) for r in loaded]
        validate_warm_start_map(rules)
        return rules
    raise AssignmentMapError("The assignment map JSON file %s must hold %s; it holds %s." % (
        path, _JSON_FORMS, json.dumps(loaded)[:200]))


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
