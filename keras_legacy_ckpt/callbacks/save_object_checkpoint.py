"""SaveObjectCheckpoint: write the migrated model as TF2 object-based checkpoints, and resume from them."""

from __future__ import annotations

import contextlib
import os
import re
import weakref
from typing import Any, Optional

import tensorflow as tf
from tf_keras.callbacks import Callback

from keras_legacy_ckpt import distribute, resume
from keras_legacy_ckpt.errors import LegacyCheckpointError
from keras_legacy_ckpt.object_checkpoint import object_checkpoint, restore_object_checkpoint

_SAVE_ON = ("train_begin", "epoch_end", "train_end")


def _listdir(directory: str):
    try:
        return tf.io.gfile.listdir(directory)
    except tf.errors.OpError:
        return []


def _tf1_session_as_default():
    """TF1 graph mode: tf.train.Checkpoint saves through the default session, so make
    tf_keras's training session the default one."""
    if tf.executing_eagerly():
        return contextlib.nullcontext()
    from tf_keras.src import backend

    return backend.get_session().as_default()


def _continue_numbering(checkpoint: tf.train.Checkpoint, latest: Optional[str]) -> None:
    """A new manager over a directory that has ckpt-N continues with ckpt-N+1 (a resumed job
    must not overwrite ckpt-1, which the state file lists as older)."""
    number = re.search(r"-(\d+)$", latest or "")
    if number:
        checkpoint.save_counter.assign(int(number.group(1)))


class SaveObjectCheckpoint(Callback):
    """Saves `tf.train.Checkpoint(model=model, optimizer=...)` during `fit`, and resumes from it.

    Once a TF1 checkpoint has been warm-started into a TF2 model, the migration guide
    recommends saving a TF2 object-based checkpoint and using that from then on. This
    callback does it through `tf.train.CheckpointManager` (which keeps the newest
    `max_to_keep` checkpoints and a `checkpoint` state file). By default it saves the
    trained weights after every epoch.

    With `restore=True`, a training binary that is preempted and started again with the
    same arguments resumes: when `fit` begins, the latest checkpoint in `directory`
    (model, and optimizer if it was saved) is restored, and `WarmStartFromTF1` then
    leaves the weights alone, whatever the order of the two callbacks. With no
    checkpoint there yet the run is fresh. The epoch count of `fit` starts again from
    its `initial_epoch`: the weights and the optimizer's step resume, the epoch
    numbering does not (use Keras' `BackupAndRestore` for that).

    With `save_on="train_begin"` the checkpoint is written when the first epoch begins:
    after every callback's `on_train_begin` has run and before the first training step,
    so it holds the warm-started weights whatever the order of the callbacks.

    Example:

    ```python
    model.fit(x, y, callbacks=[
        klc.SaveObjectCheckpoint("/new/tf2_ckpts", restore=True),
        klc.WarmStartFromTF1("/old/model.ckpt-1000", sample_input=x[:1]),
    ])
    klc.restore_object_checkpoint(Net(), "/new/tf2_ckpts", sample_input=x[:1])
    ```

    Under a multi-worker strategy only the chief keeps checkpoints in `directory`; the
    other workers take part in each save in a temporary directory that is then removed.

    Args:
        directory: where to write the checkpoints.
        save_on: "epoch_end" (after each epoch), "train_begin" (the starting point of
            training, e.g. the warm-started weights) or "train_end".
        restore: restore the latest checkpoint in `directory`, if there is one, when
            `fit` begins.
        sample_input: one batch of input, for the forward pass that creates shim weights
            before a restore (not needed when the model's mixins have `warm_up_input_spec`).
        max_to_keep: how many checkpoints the manager keeps.
        include_optimizer: also save (and restore) `model.optimizer`, to resume training.

    Attributes:
        latest_path: the prefix of the last checkpoint written (or restored), None before.
        restored_path: the checkpoint restored when `fit` began, None for a fresh run.
    """

    def __init__(self, directory: "str | os.PathLike[str]", *, save_on: str = "epoch_end", restore: bool = False,
                 sample_input: Any = None, max_to_keep: int = 5, include_optimizer: bool = True):
        super().__init__()
        if save_on not in _SAVE_ON:
            raise LegacyCheckpointError("save_on must be one of %s, got %r." % (", ".join(_SAVE_ON), save_on))
        self.directory = os.fspath(directory)
        self.save_on = save_on
        self.restore = restore
        self.sample_input = sample_input
        self.max_to_keep = max_to_keep
        self.include_optimizer = include_optimizer
        self.latest_path: Optional[str] = None
        self.restored_path: Optional[str] = None
        self._manager: Optional[tf.train.CheckpointManager] = None
        self._manager_owner = None
        self._pending_train_begin = False
        self._restored_models: "weakref.WeakSet" = weakref.WeakSet()

    def _save(self) -> None:
        strategy = distribute.strategy_of(self.model)
        directory = distribute.worker_directory(self.directory, strategy)
        # One manager per (model, optimizer): the callback may be reused for another model or after
        # a recompile, and must then save what is being trained now.
        owner = (id(self.model), id(getattr(self.model, "optimizer", None)), directory)
        if self._manager is None or self._manager_owner != owner:
            checkpoint = object_checkpoint(self.model, self.include_optimizer)
            self._manager = tf.train.CheckpointManager(checkpoint, directory, max_to_keep=self.max_to_keep)
            _continue_numbering(checkpoint, self._manager.latest_checkpoint)
            self._manager_owner = owner
        before = set(_listdir(self.directory))
        try:
            with _tf1_session_as_default():
                path = self._manager.save()
            if directory == self.directory:
                self.latest_path = path
            else:
                # A non-chief worker takes part in the save but keeps nothing.
                tf.io.gfile.rmtree(directory)
        except (tf.errors.OpError, OSError) as e:
            # TensorFlow writes a new checkpoint under new names and updates the state file
            # last, so earlier checkpoints are intact; remove what this attempt left behind.
            for name in set(_listdir(self.directory)) - before:
                path = os.path.join(self.directory, name)
                try:
                    if tf.io.gfile.isdir(path):
                        tf.io.gfile.rmtree(path)
                    else:
                        tf.io.gfile.remove(path)
                except tf.errors.OpError:
                    pass
            message = (getattr(e, "message", None) or str(e)).strip().splitlines()[0]
            latest = tf.train.latest_checkpoint(self.directory)
            earlier = ("Earlier checkpoints there are intact (latest: %s)" % latest if latest
                       else "Nothing was left behind")
            raise LegacyCheckpointError(
                "Saving the object checkpoint to %s failed: %s. %s; check the destination's free space "
                "and permissions." % (self.directory, message, earlier)) from None

    def set_model(self, model):
        super().set_model(model)
        if self.restore and model not in self._restored_models:
            # fit() sets the model of every callback before any on_train_begin: announcing the
            # restore now lets WarmStartFromTF1 skip wherever it stands in the list.
            resume.announce_restore(model, tf.train.latest_checkpoint(self.directory))

    def on_train_begin(self, logs=None):
        if self.restore:
            self._restore_latest()
        self._pending_train_begin = self.save_on == "train_begin"

    def _restore_latest(self) -> None:
        latest = tf.train.latest_checkpoint(self.directory)
        if latest is None or self.model in self._restored_models:
            return  # a fresh run, or fit() called again: the model has trained since
        restore_object_checkpoint(self.model, latest, sample_input=self.sample_input,
                                  include_optimizer=self.include_optimizer)
        self._restored_models.add(self.model)
        resume.announce_restore(self.model, None)  # done: restore_object_checkpoint marked it restored
        self.restored_path = self.latest_path = latest

    def on_epoch_begin(self, epoch, logs=None):
        # The first epoch begins after every callback's on_train_begin (a warm start
        # included) and before the first step, and is not timed like batch hooks are.
        if self._pending_train_begin:
            self._pending_train_begin = False
            self._save()

    def on_epoch_end(self, epoch, logs=None):
        if self.save_on == "epoch_end":
            self._save()

    def on_train_end(self, logs=None):
        if self._pending_train_begin or self.save_on == "train_end":
            self._pending_train_begin = False
            self._save()
