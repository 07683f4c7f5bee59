"""TF2 models that reuse the TF1 network code through the modeling shim."""

import numpy as np
import tensorflow as tf
import tf_keras

import keras_legacy_ckpt as klc


class ShimLayer(klc.LegacyCheckpointMixin, tf_keras.layers.Layer):
    """A tf_keras layer running `network` under `outer_scope`."""

    def __init__(self, network, input_dim, outer_scope="backbone", **kwargs):
        super().__init__(**kwargs)
        self.network = network
        self.outer_scope = outer_scope
        self.warm_up_input_spec = tf.TensorSpec([None, input_dim])

    @klc.track_tf1_style_variables
    def call(self, x, training=None):
        with tf.compat.v1.variable_scope(self.outer_scope):
            return self.network(x, training=training)


class ShimModel(klc.LegacyCheckpointMixin, tf_keras.Model):
    def __init__(self, network, input_dim, outer_scope="backbone", **kwargs):
        super().__init__(**kwargs)
        self.network = network
        self.outer_scope = outer_scope
        self.warm_up_input_spec = tf.TensorSpec([None, input_dim])

    @klc.track_tf1_style_variables
    def call(self, x, training=None):
        with tf.compat.v1.variable_scope(self.outer_scope):
            return self.network(x, training=training)


class ShimModule(klc.LegacyCheckpointMixin, tf.Module):
    def __init__(self, network, input_dim, outer_scope="backbone"):
        super().__init__()
        self.network = network
        self.outer_scope = outer_scope
        self.warm_up_input_spec = tf.TensorSpec([None, input_dim])

    @klc.track_tf1_style_variables
    def __call__(self, x):
        with tf.compat.v1.variable_scope(self.outer_scope):
            return self.network(x)


def values(target):
    return {name: v.numpy().copy() for name, v in target.legacy_variables().items()}


def assert_unchanged(target, before):
    """Every legacy variable of `target` still holds its value in `before` (a `values(target)` taken earlier)."""
    after = values(target)
    assert before.keys() == after.keys()
    for name in before:
        np.testing.assert_array_equal(before[name], after[name], err_msg=name)


class AlwaysTrainingBN(klc.LegacyCheckpointMixin, tf_keras.layers.Layer):
    """A shim layer whose call takes no `training` and whose batch norm is hard-coded to training=True, plus a
    call counter: every pass would change both. With `bn_name=None` the batch norm is unnamed and unscoped
    (TF1 auto-names it); else it is `net/<bn_name>`."""

    warm_up_input_spec = tf.TensorSpec([None, 4])

    def __init__(self, bn_name="bn"):
        super().__init__()
        self.bn_name = bn_name
        self.calls = tf.Variable(0, name="calls")

    @klc.track_tf1_style_variables
    def call(self, x):
        self.calls.assign_add(1)
        if self.bn_name is None:
            return klc.v1_layers.batch_normalization(x * 3.0 + 1.0, training=True)
        with tf.compat.v1.variable_scope("net"):
            return klc.v1_layers.batch_normalization(x * 3.0 + 1.0, training=True, name=self.bn_name)

