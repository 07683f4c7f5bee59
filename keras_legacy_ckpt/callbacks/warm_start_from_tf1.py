"""WarmStartFromTF1: load a TF1 name-based checkpoint when a fresh `fit` (or evaluate, predict) starts."""

from __future__ import annotations

import os
import weakref
from typing import Any, Iterable, Optional

from absl import logging

try:  # a tf_keras callback works in tf_keras's fit and in Keras 3's; a Keras 3 one only in Keras 3's
    from tf_keras.callbacks import Callback
    from tf_keras.src.utils.io_utils import print_msg
except ImportError:  # no TensorFlow: Keras 3 on the JAX, torch or numpy backend
    from keras.callbacks import Callback

    try:
        from keras.src.utils.io_utils import print_msg
    except ImportError:
        print_msg = print

from keras_legacy_ckpt import resume
from keras_legacy_ckpt.assignment_map import NameMapping
from keras_legacy_ckpt.numpy_warm_start import warm_start
from keras_legacy_ckpt.warm_start_plan import WARM_START_OPTIONS, check_options
from keras_legacy_ckpt.warm_start_report import WarmStartReport

# The keyword-only options of warm_start that this callback passes through.
_WARM_START_OPTIONS = set(WARM_START_OPTIONS) - {"sample_input", "strict", "ignore", "verbose"}


class WarmStartFromTF1(Callback):
    """Warm-starts a fresh training run from a TF1 checkpoint; a resumed run keeps its weights.

    This is the TF2 replacement for
    `tf.compat.v1.train.init_from_checkpoint(ckpt, assignment_map)`, which in eager mode
    raises nothing and assigns nothing. At `on_train_begin` (or `on_test_begin`,
    `on_predict_begin` in `evaluate` and `predict`) it creates the shim weights (one
    forward pass on `sample_input`, or on each `LegacyCheckpointMixin`'s
    `warm_up_input_spec`), plans the whole mapping, checks every shape and dtype, and
    only then assigns: if anything is wrong, no variable changes and `fit` stops with
    the error. It subclasses `tf_keras.callbacks.Callback`, so it works in tf_keras's
    `fit` and in Keras 3's `fit`; where tf_keras (TensorFlow) cannot be imported it is a
    `keras.callbacks.Callback`, for Keras 3's `fit` on the JAX, torch or numpy backend, whose
    models it warm-starts without TensorFlow.

    Resume beats warm start, as in Estimator: when the run resumes (the optimizer has
    already taken steps, e.g. `BackupAndRestore` restored it, or the model was restored
    by `restore_object_checkpoint` or `SaveObjectCheckpoint(restore=True)`), nothing is
    assigned, `.skip_reason` says why and the reason is logged. This holds whatever the
    order of the callbacks: a restore that runs after this callback replaces the warm
    start, and is then reported the same way. `force=True` warm-starts anyway.

    Example:

    ```python
    model.fit(x, y, callbacks=[
        klc.WarmStartFromTF1("/old/model.ckpt-1000", {"/": "backbone/"},
                             sample_input=x[:1]),
        klc.SaveObjectCheckpoint("/new/tf2_ckpts", restore=True),
    ])
    ```

    Args:
        checkpoint: a TF1 checkpoint prefix (".../model.ckpt-1000"), or a directory
            with a `checkpoint` state file (its latest checkpoint is used).
        assignment_map: None (identity), a dict `{checkpoint_scope: model_scope}` with
            `init_from_checkpoint` semantics, `(regex, replacement)` rules, or a callable.
        sample_input: one batch of input for the warm-up forward pass.
        strict: raise if a model variable in the mapped scopes would get no value.
        ignore: regexes of model variable names to leave as initialised.
        force: warm-start even when the run resumes.
        verbose: 1 prints the report's summary (and progress bars over 256 MiB, on a terminal); 0
            only logs it through absl at INFO.
        **warm_start_options: more `warm_start` keywords: `on_shape_mismatch`,
            `on_dtype_mismatch`, `use_ema`, `ema_fallback`, `optimizer_state`, `batch_bytes`.

    A callback handles each model once: calling `fit` again with the same callback
    keeps what the model learned since.

    Attributes:
        report: the `WarmStartReport` of the last warm start, None before or when skipped.
        skip_reason: why the last run was not warm-started (it resumed), None when it was.
    """

    def __init__(self, checkpoint: "str | os.PathLike[str]", assignment_map: NameMapping = None, *,
                 sample_input: Any = None, strict: bool = True, ignore: Iterable[str] = (),
                 force: bool = False, verbose: int = 1, **warm_start_options: Any):
        super().__init__()
        unknown = set(warm_start_options) - _WARM_START_OPTIONS
        if unknown:
            raise TypeError("WarmStartFromTF1 got unknown options %s; warm_start accepts %s."
                            % (sorted(unknown), sorted(_WARM_START_OPTIONS)))
        check_options(assignment_map, ignore=ignore, **warm_start_options)
        self.warm_start_options = warm_start_options
        self._handled: "weakref.WeakSet" = weakref.WeakSet()
        self._watching_for_late_restore = False
        self._steps_after_warm_start = 0
        self.checkpoint = checkpoint
        self.assignment_map = assignment_map
        self.sample_input = sample_input
        self.strict = strict
        self.ignore = tuple(ignore)
        self.force = force
        self.verbose = verbose
        self.report: Optional[WarmStartReport] = None
        self.skip_reason: Optional[str] = None

    def on_train_begin(self, logs=None):
        self._warm_start_once()

    def on_test_begin(self, logs=None):
        self._warm_start_once()

    def on_predict_begin(self, logs=None):
        self._warm_start_once()

    def on_epoch_begin(self, epoch, logs=None):
        self._check_late_restore()

    def on_train_end(self, logs=None):
        self._check_late_restore()

    def _warm_start_once(self) -> None:
        if self.model in self._handled:
            # fit() called again with the same callback, or evaluate() inside fit: the
            # model has trained since; keep that.
            return
        self._handled.add(self.model)
        reason = None if self.force else resume.resume_reason(self.model)
        if reason is not None:
            self._skip(reason)
            return
        self.skip_reason = None
        self.report = warm_start(self.model, self.checkpoint, self.assignment_map,
                                 sample_input=self.sample_input, strict=self.strict, ignore=self.ignore,
                                 verbose=self.verbose, **self.warm_start_options)
        self._watching_for_late_restore = not self.force
        self._steps_after_warm_start = resume.optimizer_steps(self.model)  # optimizer_state may set it
        self._say(self.report.summary())

    def _check_late_restore(self) -> None:
        """A restore by a callback after this one in the list replaced the warm start: say so."""
        if not self._watching_for_late_restore:
            return
        self._watching_for_late_restore = False
        restored = resume.restored_from(self.model)
        steps = resume.optimizer_steps(self.model)
        if restored is None and steps == self._steps_after_warm_start:
            return
        reason = ("the model was restored from the object checkpoint %s" % restored if restored
                  else "its optimizer was restored at step %d (BackupAndRestore?)" % steps)
        self._skip(reason + " after the warm start, whose values it replaced")

    def _skip(self, reason: str) -> None:
        self.report = None
        self.skip_reason = reason
        message = ("WarmStartFromTF1: not warm-starting %s from %s: %s. Resume beats warm start; pass force=True "
                   "to warm-start anyway." % (type(self.model).__name__, self.checkpoint, reason))
        if self.verbose:
            print_msg(message)
        else:
            logging.warning("%s", message)

    def _say(self, text: str) -> None:
        if self.verbose:
            print_msg(text)
        else:
            logging.info("%s", text)
