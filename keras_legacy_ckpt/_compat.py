"""One place that knows the differences between tf_keras, Keras 3 and tf.Module.

TF 2.21's `tf.keras` is Keras 3 unless TF_USE_LEGACY_KERAS=1 was set before TensorFlow
was imported, and the shim lives only in tf_keras. We import tf_keras directly (it
exposes the shim either way) and recognise Keras 3 objects without importing Keras 3
unless the caller already has.
"""

from __future__ import annotations

import inspect
import sys
from typing import Any, Tuple

import tensorflow as tf


def track_tf1_style_variables_decorator():
    from tf_keras.api._v1.keras.utils import track_tf1_style_variables

    return track_tf1_style_variables


def v1_layers_module():
    from tf_keras.api._v1.keras.__internal__.legacy import layers

    return layers


def _keras3():
    keras = sys.modules.get("keras")
    if keras is None or not str(getattr(keras, "__version__", "")).startswith("3"):
        return None
    return keras


def is_keras3_layer(obj: Any) -> bool:
    keras = _keras3()
    return keras is not None and isinstance(obj, keras.layers.Layer)


def is_keras3_variable(obj: Any) -> bool:
    keras = _keras3()
    return keras is not None and isinstance(obj, keras.Variable)


def is_tf_keras_layer(obj: Any) -> bool:
    tf_keras = sys.modules.get("tf_keras")
    return tf_keras is not None and isinstance(obj, tf_keras.layers.Layer)


def variable_shape(variable: Any) -> Tuple[int, ...]:
    return tuple(int(d) for d in variable.shape)


def variable_dtype(variable: Any) -> tf.dtypes.DType:
    return tf.as_dtype(variable.dtype).base_dtype


def accepts_training(fn: Any) -> bool:
    try:
        return "training" in inspect.signature(fn).parameters
    except (TypeError, ValueError):
        return False


def uses_shim(target: Any) -> bool:
    """Whether `target`'s call is decorated with track_tf1_style_variables."""
    decorator = getattr(call_function(target), "_tf_decorator", None)
    return getattr(decorator, "decorator_name", None) == "track_tf1_style_variables"


def call_function(target: Any) -> Any:
    """The function whose signature decides whether `target(...)` takes `training`."""
    if is_tf_keras_layer(target) or is_keras3_layer(target):
        return target.call
    return getattr(type(target), "__call__", None)
