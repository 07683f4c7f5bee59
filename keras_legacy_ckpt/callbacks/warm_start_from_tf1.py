"""WarmStartFromTF1: load a TF1 name-based checkpoint when `fit` starts."""

from __future__ import annotations

import inspect
import os
import weakref
from typing import Any, Iterable, Optional

from absl import logging
from tf_keras.callbacks import Callback
from tf_keras.src.utils import io_utils

from keras_legacy_ckpt.assignment_map import NameMapping
from keras_legacy_ckpt.warm_start import WarmStartReport, warm_start

# The keyword-only options of warm_start that this callback passes through.
_WARM_START_OPTIONS = {name for name, p in inspect.signature(warm_start).parameters.items()
                       if p.kind is inspect.Parameter.KEYWORD_ONLY} - {"sample_input", "strict", "ignore"}


class WarmStartFromTF1(Callback):
    """Warm-starts the model from a TF1 checkpoint at the beginning of training.

    This is the TF2 replacement for
    `tf.compat.v1.train.init_from_checkpoint(ckpt, assignment_map)`, which in eager mode
    raises nothing and assigns nothing. At `on_train_begin` it creates the shim weights
    (one forward pass on `sample_input`, or on each `LegacyCheckpointMixin`'s
    `warm_up_input_spec`), plans the whole mapping, checks every shape and dtype, and
    only then assigns: if anything is wrong, no variable changes and `fit` stops with
    the error. It subclasses `tf_keras.callbacks.Callback`, so it works in tf_keras's
    `fit` and in Keras 3's `fit`.

    Example:

    ```python
    model.fit(x, y, callbacks=[
        klc.WarmStartFromTF1("/old/model.ckpt-1000", {"/": "backbone/"},
                             sample_input=x[:1]),
        klc.SaveObjectCheckpoint("/new/tf2_ckpts"),
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
        verbose: 1 prints the report's summary; 0 only logs it through absl at INFO.
        **warm_start_options: more `warm_start` keywords: `on_shape_mismatch`,
            `on_dtype_mismatch`, `use_ema`, `ema_fallback`, `optimizer_state`, `batch_bytes`.

    A callback warm-starts each model once: calling `fit` again with the same callback
    keeps what the model learned since.

    Attributes:
        report: the `WarmStartReport` of the last warm start, None before.
    """

    def __init__(self, checkpoint: "str | os.PathLike[str]", assignment_map: NameMapping = None, *,
                 sample_input: Any = None, strict: bool = True, ignore: Iterable[str] = (),
                 verbose: int = 1, **warm_start_options: Any):
        super().__init__()
        unknown = set(warm_start_options) - _WARM_START_OPTIONS
        if unknown:
            raise TypeError("WarmStartFromTF1 got unknown options %s; warm_start accepts %s."
                            % (sorted(unknown), sorted(_WARM_START_OPTIONS)))
        self.warm_start_options = warm_start_options
        self._warm_started: "weakref.WeakSet" = weakref.WeakSet()
        self.checkpoint = checkpoint
        self.assignment_map = assignment_map
        self.sample_input = sample_input
        self.strict = strict
        self.ignore = tuple(ignore)
        self.verbose = verbose
        self.report: Optional[WarmStartReport] = None

    def on_train_begin(self, logs=None):
        if self.model in self._warm_started:
            # fit() called again with the same callback: the model has trained since; keep that.
            logging.info("WarmStartFromTF1: %s was already warm-started from %s; not again.",
                         type(self.model).__name__, self.checkpoint)
            return
        self.report = warm_start(self.model, self.checkpoint, self.assignment_map,
                                 sample_input=self.sample_input, strict=self.strict, ignore=self.ignore,
                                 **self.warm_start_options)
        self._warm_started.add(self.model)
        if self.verbose:
            io_utils.print_msg(self.report.summary())
        else:
            logging.info("%s", self.report.summary())
