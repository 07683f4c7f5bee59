"""One place that knows the differences between tf_keras, Keras 3 and tf.Module.

TF 2.21's `tf.keras` is Keras 3 unless TF_USE_LEGACY_KERAS=1 was set before TensorFlow
was imported, and the shim lives only in tf_keras. We import tf_keras directly (it
exposes the shim either way) and recognise Keras 3 objects without importing Keras 3
unless the caller already has.
"""

from __future__ import annotations

import contextlib
import inspect
import sys
import threading
from typing import Any, Iterator, Tuple

import tensorflow as tf

# `uses_shim` recognises shim methods by this decorator name (tf_keras's and ours).
SHIM_DECORATOR_NAME = "track_tf1_style_variables"


def tf_keras_track_tf1_style_variables():
    """tf_keras's own shim decorator (what tf.compat.v1.keras.utils has under TF_USE_LEGACY_KERAS=1)."""
    from tf_keras.api._v1.keras.utils import track_tf1_style_variables

    return track_tf1_style_variables


def track_tf1_style_variables_decorator():
    """The decorator exported as `klc.track_tf1_style_variables`: tf_keras's, with stable names."""
    return track_tf1_style_variables


def track_tf1_style_variables(method):
    """tf_keras's `track_tf1_style_variables`, plus auto-names that do not drift between calls.

    TF1 layers without a name (`v1_layers.dense(x, 4)`) open `variable_scope(None,
    default_name="dense")`, which picks `dense`, `dense_1`, ... from per-scope counters in
    the variable scope store. In TF1 that store belongs to the graph, which the program
    builds once. Eagerly one store (per thread) serves the whole process, and tf.function
    graphs share it, so every call, trace and unrelated TF1-style code moves the counters
    on, and the next call names, and creates, `dense_1/kernel` instead of reusing
    `dense/kernel`.

    Each outermost shim call here runs with empty counters, as if the TF1 code were built
    in a fresh graph, and the process-wide counters are put back afterwards. A shim call
    nested in another shares the outer call's counters, as TF1 code calling TF1 code in one
    graph does.
    """
    tracked = tf_keras_track_tf1_style_variables()(method)

    def with_stable_names(self, *args, **kwargs):
        if getattr(self, "_tf1_style_var_store", None) is None:
            self._tf1_style_var_store = _sharded_aware_variable_store()
        with fresh_tf1_name_counters():
            return tracked(self, *args, **kwargs)

    return tf.__internal__.decorator.make_decorator(
        target=method, decorator_func=with_stable_names, decorator_name=SHIM_DECORATOR_NAME)


def _sharded_aware_variable_store() -> Any:
    """tf_keras's shim variable store, able to reuse a ShardedVariable on the next call.

    Under ParameterServerStrategy with a variable_partitioner the shim's get_variable
    creates ShardedVariables; tf_keras's store then fails on every later call, when it
    checks the existing variable's `get_shape()`, which a ShardedVariable lacks.
    """
    from tf_keras.src.legacy_tf_layers.variable_scope_shim import _EagerVariableStore

    class ShardedAwareVariableStore(_EagerVariableStore):
        def _get_single_variable(self, name, shape=None, dtype=tf.float32, **kwargs):
            found = self._vars.get(name)
            if found is None or hasattr(found, "get_shape"):
                return super()._get_single_variable(name, shape=shape, dtype=dtype, **kwargs)
            if not tf.TensorShape(shape).is_compatible_with(found.shape) or not tf.as_dtype(
                    dtype).is_compatible_with(found.dtype):
                raise ValueError("Trying to share variable %s, but specified shape %s and dtype %s and found shape "
                                 "%s and dtype %s." % (name, shape, tf.as_dtype(dtype).name, found.shape,
                                                       found.dtype.name))
            return found

    return ShardedAwareVariableStore()


_shim_calls = threading.local()  # per thread, like the variable scope store itself


@contextlib.contextmanager
def fresh_tf1_name_counters() -> Iterator[None]:
    """Empty variable-scope name counters for the outermost shim call on this thread."""
    depth = getattr(_shim_calls, "depth", 0)
    _shim_calls.depth = depth + 1
    try:
        if depth:
            yield  # nested: keep counting in the outer call's fresh counters
            return
        from tensorflow.python.ops import variable_scope as vs  # no public API for the counters

        store = vs.get_variable_scope_store()
        saved = store.variable_scopes_count
        store.variable_scopes_count = {}
        try:
            yield
        finally:
            store.variable_scopes_count = saved
    finally:
        _shim_calls.depth = depth


def v1_layers_module():
    from tf_keras.api._v1.keras.__internal__.legacy import layers

    return layers


def _keras3():
    keras = sys.modules.get("keras")
    if keras is None or not str(getattr(keras, "__version__", "")).startswith("3"):
        return None
    return keras


def mixed_precision_dtypes() -> set:
    """The compute dtypes (float16, bfloat16) of the mixed precision policies set in tf_keras or Keras 3."""
    policies = []
    tf_keras = sys.modules.get("tf_keras")
    if tf_keras is not None:
        policies.append(tf_keras.mixed_precision.global_policy())
    keras = _keras3()
    if keras is not None:
        policies.append(keras.mixed_precision.global_policy())
    return {tf.as_dtype(p.compute_dtype) for p in policies if p.name.startswith("mixed_")}


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
    return getattr(decorator, "decorator_name", None) == SHIM_DECORATOR_NAME


def call_function(target: Any) -> Any:
    """The function whose signature decides whether `target(...)` takes `training`."""
    if is_tf_keras_layer(target) or is_keras3_layer(target):
        return target.call
    return getattr(type(target), "__call__", None)
