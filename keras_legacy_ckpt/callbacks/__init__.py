"""Keras callbacks for migrating from TF1 checkpoints (usable in tf_keras and Keras 3 `fit`)."""

from keras_legacy_ckpt.callbacks.save_object_checkpoint import SaveObjectCheckpoint
from keras_legacy_ckpt.callbacks.warm_start_from_tf1 import WarmStartFromTF1

__all__ = ["SaveObjectCheckpoint", "WarmStartFromTF1"]
