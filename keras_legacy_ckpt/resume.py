"""Resume beats warm start: is this a fresh run, or one that continues earlier training?

Estimator's rule, kept by `WarmStartFromTF1`: a TF1 checkpoint initialises a fresh run
only. A run that resumes (its optimizer has already stepped, e.g. `BackupAndRestore`
restored it, or its model was restored from a TF2 object checkpoint) keeps the weights
it resumed with; warm-starting over them would silently throw the training away.

The mark left by a restore is an attribute of the model itself, so it lives and dies
with the model and is visible to whoever holds it.
"""

from __future__ import annotations

from typing import Any, Optional

import numpy as np

_RESTORED_FROM = "_klc_restored_from"


def mark_restored(model: Any, path: str) -> None:
    """Records that `model`'s weights were restored from the object checkpoint `path`."""
    # object.__setattr__: Keras' attribute tracking has nothing to track in a string.
    object.__setattr__(model, _RESTORED_FROM, path)


def restored_from(model: Any) -> Optional[str]:
    return getattr(model, _RESTORED_FROM, None)


def optimizer_steps(model: Any) -> int:
    """`model.optimizer.iterations`, 0 when there is no optimizer."""
    iterations = getattr(getattr(model, "optimizer", None), "iterations", None)
    if iterations is None:
        return 0
    return int(_read(iterations))


def _read(variable: Any) -> Any:
    import tensorflow as tf

    if isinstance(variable, tf.Variable) and not tf.executing_eagerly():
        # TF1 behaviour: the value lives in the session that tf_keras trains with.
        import tf_keras

        return tf_keras.backend.get_value(variable)
    # .numpy(): np.asarray() refuses tf.distribute's MirroredVariable.
    return variable.numpy() if hasattr(variable, "numpy") else np.asarray(variable)


def resume_reason(model: Any) -> Optional[str]:
    """Why `model` is resuming a run rather than starting one, or None for a fresh run."""
    path = restored_from(model)
    if path is not None:
        return "the model was restored from the object checkpoint %s" % path
    steps = optimizer_steps(model)
    if steps > 0:
        return ("its optimizer has already taken %d step(s) (a resumed run: BackupAndRestore, a restored "
                "optimizer, or an earlier fit)" % steps)
    return None
