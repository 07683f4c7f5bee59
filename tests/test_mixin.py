"""LegacyCheckpointMixin: warm_up, legacy_variables, legacy_name, duplicate names."""

import numpy as np
import pytest
import tensorflow as tf
import tf_keras

import keras_legacy_ckpt as klc
from tests import tf1_programs, tf2_models
from tests.tf1_programs import mlp, v1
from tests.tf2_models import AlwaysTrainingBN


def test_warm_up_creates_weights_from_spec_and_changes_no_value():
    layer = AlwaysTrainingBN()
    layer.calls.assign(7)
    layer.warm_up()
    names = layer.legacy_variables()
    assert sorted(names) == ["calls", "net/bn/beta", "net/bn/gamma", "net/bn/moving_mean", "net/bn/moving_variance"]
    np.testing.assert_array_equal(names["net/bn/moving_mean"].numpy(), np.zeros(4, np.float32))
    np.testing.assert_array_equal(names["net/bn/moving_variance"].numpy(), np.ones(4, np.float32))
    assert names["calls"].numpy() == 7
    # The pass itself did run and would have changed them:
    layer(tf.ones([2, 4]))
    assert names["calls"].numpy() == 8 and np.any(names["net/bn/moving_mean"].numpy() != 0)


def test_warm_up_is_a_no_op_once_weights_exist():
    layer = tf2_models.ShimLayer(mlp, 5)
    layer.warm_up(tf.ones([3, 5]))
    first = layer.legacy_variables()
    first["backbone/net/hidden/bias"].assign(tf.fill([6], 2.0))
    layer.warm_up()
    again = layer.legacy_variables()
    assert all(first[k] is again[k] for k in first)
    np.testing.assert_array_equal(again["backbone/net/hidden/bias"].numpy(), np.full(6, 2.0, np.float32))


def test_warm_up_passes_training_false():
    seen = []

    class Recorder(klc.LegacyCheckpointMixin, tf.Module):
        warm_up_input_spec = tf.TensorSpec([None, 2])

        @klc.track_tf1_style_variables
        def __call__(self, x, training=True):
            seen.append(training)
            return x * v1.get_variable("w", [2])

    Recorder().warm_up()
    assert seen == [False]


def test_warm_up_without_spec_or_input_says_how_to_fix():
    class NoSpec(klc.LegacyCheckpointMixin, tf.Module):
        @klc.track_tf1_style_variables
        def __call__(self, x):
            return x * v1.get_variable("w", [2])

    with pytest.raises(klc.LegacyCheckpointError, match="warm_up_input_spec"):
        NoSpec().warm_up()


def test_legacy_names_are_tf1_graph_names():
    with tf.Graph().as_default():
        with v1.variable_scope("backbone"):
            mlp(v1.placeholder(tf.float32, [None, 5]))
        graph_names = sorted(v.name[:-2] for v in v1.global_variables())
    module = tf2_models.ShimModule(mlp, 5)
    module.warm_up()
    assert sorted(module.legacy_variables()) == graph_names


class WithAttribute(klc.LegacyCheckpointMixin, tf.Module):
    """A shim module that also owns a tf.Variable whose eager name differs from TF1's."""

    warm_up_input_spec = tf.TensorSpec([None, 4])

    def __init__(self):
        super().__init__()
        self.scale = tf.Variable(tf.ones([3]), name="scale")

    @klc.track_tf1_style_variables
    def __call__(self, x):
        with v1.variable_scope("backbone"):
            return tf1_programs.scoped_variables(x) * self.scale

    def legacy_name(self, variable):
        if variable is self.scale:
            return "backbone/scale"
        return super().legacy_name(variable)


def test_legacy_name_override_loads_tf_variable_attributes(ckpt_dir):
    def with_scale(x, training=False):
        out = tf1_programs.scoped_variables(x)
        return out * v1.get_variable("scale", [3])

    prefix, values = tf1_programs.save_tf1_checkpoint(ckpt_dir, with_scale, 4, outer_scope="backbone")
    module = WithAttribute()
    report = klc.warm_start(module, prefix)
    assert report.loaded["backbone/scale"] == "backbone/scale" and len(report.loaded) == 5
    np.testing.assert_array_equal(module.scale.numpy(), values["backbone/scale"])


def test_duplicate_names_are_all_listed_and_warm_start_changes_nothing(ckpt_dir):
    prefix, _ = tf1_programs.save_tf1_checkpoint(ckpt_dir, tf1_programs.scoped_variables, 4)
    module = tf.Module()
    module.a = tf.Variable(tf.zeros([2]), name="w")
    module.b = tf.Variable(tf.ones([3]), name="w")
    module.c = tf.Variable(tf.zeros([1]), name="v")
    module.d = tf.Variable(tf.zeros([1]), name="v")
    with pytest.raises(klc.DuplicateVariableNameError) as err:
        klc.warm_start(module, prefix)
    message = str(err.value)
    assert "'w' is the name of 2 variables" in message and "'v' is the name of 2" in message
    assert "variable_scope" in message
    np.testing.assert_array_equal(module.b.numpy(), np.ones(3, np.float32))


def test_nested_mixins_innermost_names_win():
    class Outer(klc.LegacyCheckpointMixin, tf_keras.Model):
        def __init__(self):
            super().__init__()
            self.inner = WithAttribute()

        def call(self, x):
            return self.inner(x)

    outer = Outer()
    outer.inner.warm_up()
    assert "backbone/scale" in outer.legacy_variables()
