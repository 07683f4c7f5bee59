"""TF2 object-based checkpoints of migrated models: what to save, and a checked restore."""

from __future__ import annotations

import os
from typing import Any, List

import tensorflow as tf

from keras_legacy_ckpt import resume
from keras_legacy_ckpt.checkpoint_reader import resolve_checkpoint
from keras_legacy_ckpt.errors import LegacyCheckpointError, MissingVariablesError, ShapeMismatchError
from keras_legacy_ckpt.mixin import variables_of, warm_up_target


def object_checkpoint(model: Any, include_optimizer: bool = True) -> tf.train.Checkpoint:
    """`tf.train.Checkpoint(model=model, optimizer=model.optimizer)`, or of the model's weights only."""
    if not include_optimizer:
        return tf.train.Checkpoint(model=_without_optimizer(model))
    optimizer = getattr(model, "optimizer", None)
    if optimizer is not None:
        return tf.train.Checkpoint(model=model, optimizer=optimizer)
    return tf.train.Checkpoint(model=model)


def _optimizer_variables(optimizer: Any) -> List[Any]:
    variables = optimizer.variables
    return list(variables() if callable(variables) else variables)


def _without_optimizer(model: Any) -> Any:
    """The model's checkpoint dependencies minus its compiled optimizer (Keras models track it),
    so restoring weights into a model whose optimizer already has slots checks the weights only."""
    optimizer = getattr(model, "optimizer", None)
    children = getattr(model, "_trackable_children", None)
    if optimizer is None or children is None:
        return model
    view = tf.__internal__.tracking.AutoTrackable()
    for name, child in children().items():
        if child is not optimizer:
            setattr(view, name, child)
    return view


def restore_object_checkpoint(target: Any, path_or_dir: "str | os.PathLike[str]", *,
                              sample_input: Any = None, include_optimizer: bool = False):
    """Restores a checkpoint written by `SaveObjectCheckpoint` into `target`.

    Warms `target` up first (so shim weights exist and are checked, not deferred), then
    asserts that every existing variable got a value. On a mismatch every variable keeps
    the value it had and `MissingVariablesError` names what did not match. A restored
    target counts as a resumed run: `WarmStartFromTF1` will not warm-start over it.

    ```python
    model = Net()
    klc.restore_object_checkpoint(model, "/tmp/tf2_ckpts", sample_input=x[:1])
    ```

    Args:
        target: the model (tf_keras, Keras 3, or tf.Module) that was saved.
        path_or_dir: a checkpoint prefix, or the directory SaveObjectCheckpoint wrote to
            (its latest checkpoint is used).
        sample_input: input for one forward pass if the shim weights do not exist yet.
        include_optimizer: also restore `target.optimizer` (to resume training).

    Returns:
        The `tf.train.Checkpoint` restore status.
    """
    prefix = resolve_checkpoint(path_or_dir)
    if not tf.executing_eagerly():
        raise LegacyCheckpointError(
            "restore_object_checkpoint(%s) needs eager execution; in TF1 graph mode "
            "(tf.compat.v1.disable_v2_behavior()) restore with tf.train.Checkpoint(model=...).restore(path)"
            ".run_restore_ops(session) instead." % prefix)
    warm_up_target(target, sample_input)
    if not variables_of(target):
        raise MissingVariablesError(
            "%s has no variables yet, so restoring %s could check nothing (TensorFlow would defer it). Pass "
            "sample_input=<one batch>, or build the model first." % (type(target).__name__, prefix))
    optimizer = getattr(target, "optimizer", None) if include_optimizer else None
    variables = variables_of(target) + (_optimizer_variables(optimizer) if optimizer is not None else [])
    saved = [(v, tf.identity(tf.convert_to_tensor(v))) for v in variables]
    try:
        status = object_checkpoint(target, include_optimizer).read(prefix)
        status.assert_existing_objects_matched()
    except (AssertionError, ValueError, tf.errors.OpError) as e:
        for variable, value in saved:
            variable.assign(value)
        shape_problem = not isinstance(e, AssertionError) and "shape" in str(e).lower()
        error = ShapeMismatchError if shape_problem else MissingVariablesError
        raise error(
            "Checkpoint %s does not fit %s; nothing was restored. TensorFlow says: %s. Is this the checkpoint "
            "of this model (SaveObjectCheckpoint writes tf.train.Checkpoint(model=...))? For TF1 name-based "
            "checkpoints use warm_start()." % (prefix, type(target).__name__, str(e).strip().splitlines()[0])) from None
    # Every variable of the target matched; what is left (save_counter, an optimizer we
    # were not asked to restore) is expected not to be used.
    status.expect_partial()
    resume.mark_restored(target, prefix)
    return status
