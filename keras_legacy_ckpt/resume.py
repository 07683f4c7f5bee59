"""Resume beats warm start: is this a fresh run, or one that continues earlier training?

Estimator's rule, kept by `WarmStartFromTF1`: a TF1 checkpoint initialises a fresh run
only. A run that resumes keeps the weights it resumed with; warm-starting over them would
silently throw the training away. A run resumes when:

* its optimizer has already stepped (`BackupAndRestore` restored it, or an earlier `fit`);
* its model was restored from an object checkpoint (`restore_object_checkpoint`), or
  `SaveObjectCheckpoint(restore=True)` announced that it will restore one when `fit` begins;
* a TensorFlow restore is still pending for weights not created yet (`load_weights` or
  `tf.train.Checkpoint.restore` on an unbuilt model);
* klc warm-started the model before and it has trained since (e.g. a second phase of
  fine-tuning after a recompile, whose new optimizer has not stepped).

The marks are attributes of the model itself, so they live and die with the model and
are visible to whoever holds it.
"""

from __future__ import annotations

import dataclasses
import sys
import weakref
from typing import Any, Callable, Optional

import numpy as np

_RESTORED_FROM = "_klc_restored_from"
_RESTORE_ANNOUNCED = "_klc_restore_announced"
_WARM_STARTED = "_klc_warm_started"


@dataclasses.dataclass(frozen=True)
class _WarmStarted:
    checkpoint: str
    optimizer: Callable[[], Any]  # a weak reference: the optimizer trained after the warm start
    steps: int


def _mark(model: Any, attribute: str, value: Any) -> None:
    # object.__setattr__: nothing for Keras' or tf.Module's attribute tracking to track here.
    object.__setattr__(model, attribute, value)


def mark_restored(model: Any, path: str) -> None:
    """Records that `model`'s weights were restored from the object checkpoint `path`."""
    _mark(model, _RESTORED_FROM, path)


def announce_restore(model: Any, path: Optional[str]) -> None:
    """Records that `path` will be restored into `model` when `fit` begins (None: no longer)."""
    _mark(model, _RESTORE_ANNOUNCED, path)


def restored_from(model: Any) -> Optional[str]:
    return getattr(model, _RESTORED_FROM, None) or getattr(model, _RESTORE_ANNOUNCED, None)


def mark_warm_started(model: Any, checkpoint: str) -> None:
    """Records a warm start, with the optimizer and step it happened at."""
    optimizer = getattr(model, "optimizer", None)
    reference = weakref.ref(optimizer) if optimizer is not None else (lambda: None)
    _mark(model, _WARM_STARTED, _WarmStarted(checkpoint, reference, optimizer_steps(model)))


def optimizer_steps(model: Any) -> int:
    """`model.optimizer.iterations`, 0 when there is no optimizer."""
    return _steps(getattr(model, "optimizer", None))


def _steps(optimizer: Any) -> int:
    iterations = getattr(optimizer, "iterations", None)
    return 0 if iterations is None else int(_read(iterations))


def _read(variable: Any) -> Any:
    # TensorFlow only if something imported it already: a Keras 3 model on JAX never needs it.
    tf = sys.modules.get("tensorflow")
    if tf is not None and isinstance(variable, tf.Variable):
        if not tf.executing_eagerly():
            # TF1 behaviour: the value lives in the session that tf_keras trains with.
            from tf_keras.src import backend

            return backend.get_value(variable)
        # .numpy(): np.asarray() refuses tf.distribute's MirroredVariable.
        return variable.numpy()
    keras = sys.modules.get("keras")
    if keras is not None and isinstance(variable, keras.Variable):
        return keras.ops.convert_to_numpy(variable.value)
    return variable.numpy() if hasattr(variable, "numpy") else np.asarray(variable)


def pending_restore(target: Any) -> bool:
    """Whether a TensorFlow restore waits for variables of `target` that do not exist yet."""
    tf = sys.modules.get("tensorflow")  # no TensorFlow imported: no TensorFlow restore pending
    if tf is None or not isinstance(target, tf.__internal__.tracking.Trackable):
        return False
    try:
        objects = tf.train.TrackableView(target).descendants()
    except Exception:  # a model TensorFlow cannot walk has no restore of its own pending
        return False
    return any(getattr(obj, "_self_unconditional_deferred_dependencies", None) for obj in objects)


def _trained_since_warm_start(model: Any) -> Optional[str]:
    mark = getattr(model, _WARM_STARTED, None)
    if mark is None:
        return None
    then = mark.optimizer()
    if then is not None and then is getattr(model, "optimizer", None) and _steps(then) == mark.steps:
        return None  # not trained since: another warm start in the same fit, say
    if then is not None and _steps(then) == mark.steps:
        return None  # recompiled, but the earlier optimizer never stepped
    return ("it was warm-started from %s before and has trained or been recompiled since (a later phase of "
            "training)" % mark.checkpoint)


def resume_reason(model: Any) -> Optional[str]:
    """Why `model` is resuming a run rather than starting one, or None for a fresh run."""
    path = getattr(model, _RESTORED_FROM, None)
    if path is not None:
        return "the model was restored from the object checkpoint %s" % path
    path = getattr(model, _RESTORE_ANNOUNCED, None)
    if path is not None:
        return "SaveObjectCheckpoint(restore=True) resumes the model from the object checkpoint %s" % path
    steps = optimizer_steps(model)
    if steps > 0:
        return ("its optimizer has already taken %d step(s) (a resumed run: BackupAndRestore, a restored "
                "optimizer, or an earlier fit)" % steps)
    if pending_restore(model):
        return ("a TensorFlow restore (load_weights or tf.train.Checkpoint.restore) is pending for its "
                "weights")
    return _trained_since_warm_start(model)
