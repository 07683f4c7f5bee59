"""SaveObjectCheckpoint: write the migrated model as a TF2 object-based checkpoint."""

from __future__ import annotations

import os
from typing import Optional

import tensorflow as tf
from tf_keras.callbacks import Callback

from keras_legacy_ckpt import distribute
from keras_legacy_ckpt.errors import LegacyCheckpointError
from keras_legacy_ckpt.object_checkpoint import object_checkpoint

_SAVE_ON = ("train_begin", "epoch_end", "train_end")


def _listdir(directory: str):
    try:
        return tf.io.gfile.listdir(directory)
    except tf.errors.OpError:
        return []


class SaveObjectCheckpoint(Callback):
    """Saves `tf.train.Checkpoint(model=model, optimizer=...)` during `fit`.

    Once a TF1 checkpoint has been warm-started into a TF2 model, the migration guide
    recommends saving a TF2 object-based checkpoint and using that from then on. This
    callback does it through `tf.train.CheckpointManager` (which keeps the newest
    `max_to_keep` checkpoints and a `checkpoint` state file).

    With `save_on="train_begin"` the checkpoint is written when the first epoch begins:
    after every callback's `on_train_begin` has run and before the first training step,
    so it holds the warm-started weights whatever the order of the callbacks.

    Example:

    ```python
    model.fit(x, y, callbacks=[
        klc.SaveObjectCheckpoint("/new/tf2_ckpts", save_on="epoch_end"),
        klc.WarmStartFromTF1("/old/model.ckpt-1000", sample_input=x[:1]),
    ])
    klc.restore_object_checkpoint(Net(), "/new/tf2_ckpts", sample_input=x[:1])
    ```

    Under a multi-worker strategy only the chief keeps checkpoints in `directory`; the
    other workers take part in each save in a temporary directory that is then removed.

    Args:
        directory: where to write the checkpoints.
        save_on: "train_begin" (the starting point of training), "epoch_end" (after
            each epoch) or "train_end".
        max_to_keep: how many checkpoints the manager keeps.
        include_optimizer: also save `model.optimizer`, to resume training.

    Attributes:
        latest_path: the prefix of the last checkpoint written, None before.
    """

    def __init__(self, directory: "str | os.PathLike[str]", *, save_on: str = "train_begin",
                 max_to_keep: int = 5, include_optimizer: bool = True):
        super().__init__()
        if save_on not in _SAVE_ON:
            raise LegacyCheckpointError("save_on must be one of %s, got %r." % (", ".join(_SAVE_ON), save_on))
        self.directory = os.fspath(directory)
        self.save_on = save_on
        self.max_to_keep = max_to_keep
        self.include_optimizer = include_optimizer
        self.latest_path: Optional[str] = None
        self._manager: Optional[tf.train.CheckpointManager] = None
        self._manager_owner = None
        self._pending_train_begin = False

    def _save(self) -> None:
        strategy = distribute.strategy_of(self.model)
        directory = distribute.worker_directory(self.directory, strategy)
        # One manager per (model, optimizer): the callback may be reused for another model or after
        # a recompile, and must then save what is being trained now.
        owner = (id(self.model), id(getattr(self.model, "optimizer", None)), directory)
        if self._manager is None or self._manager_owner != owner:
            checkpoint = object_checkpoint(self.model, self.include_optimizer)
            self._manager = tf.train.CheckpointManager(checkpoint, directory, max_to_keep=self.max_to_keep)
            self._manager_owner = owner
        before = set(_listdir(self.directory))
        try:
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

    def on_train_begin(self, logs=None):
        self._pending_train_begin = self.save_on == "train_begin"

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
