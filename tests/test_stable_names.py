"""Stable auto-names: unnamed TF1 layers reuse their warm-started variables on every call.

Published TF1 model code often calls `tf.compat.v1.layers.conv2d(x, 32, 3)` with no name
and no scope; TF1 names it `conv2d`, `conv2d_1`, ... once per graph. The shim runs that
code on every call, so the names must not move on from call to call.
"""

import functools
import os
import subprocess
import sys
import textwrap

import numpy as np
import pytest
import tensorflow as tf
import tf_keras

import keras_legacy_ckpt as klc
from keras_legacy_ckpt import testing
from tests import tf1_programs, tf2_models
from tests.tf2_models import AlwaysTrainingBN

v1 = tf.compat.v1
ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
INPUT_DIM = 16
# What TF1 names the variables of `unnamed_net` in a fresh graph.
TF1_NAMES = sorted(["conv2d/kernel", "conv2d/bias", "batch_normalization/gamma", "batch_normalization/beta",
                    "batch_normalization/moving_mean", "batch_normalization/moving_variance",
                    "dense/kernel", "dense/bias", "dense_1/kernel", "dense_1/bias"])


def unnamed_net(x, training=False):
    """TF1 model code as often published: no layer names, no variable scopes."""
    h = tf.reshape(x, [-1, 4, 4, 1])
    h = klc.v1_layers.conv2d(h, 3, 3, padding="same", activation=tf.nn.relu)
    h = klc.v1_layers.batch_normalization(h, training=training)
    h = tf.reshape(h, [-1, 4 * 4 * 3])
    h = klc.v1_layers.dense(h, 8, activation=tf.nn.relu)
    return klc.v1_layers.dense(h, 3)


class UnnamedShimModel(klc.LegacyCheckpointMixin, tf_keras.Model):
    warm_up_input_spec = tf.TensorSpec([None, INPUT_DIM])

    @klc.track_tf1_style_variables
    def call(self, x, training=None):
        return unnamed_net(x, training=bool(training))


class TfKerasShimModel(klc.LegacyCheckpointMixin, tf_keras.Model):
    """The same code under tf_keras's own decorator, whose auto-names drift."""

    warm_up_input_spec = tf.TensorSpec([None, INPUT_DIM])

    @klc._compat.tf_keras_track_tf1_style_variables()
    def call(self, x, training=None):
        return unnamed_net(x, training=bool(training))


@pytest.fixture(scope="module")
def unnamed_ckpt(tmp_path_factory):
    """A real TF1 graph program with unnamed layers, trained with Adam and a global step."""
    return tf1_programs.save_tf1_checkpoint(str(tmp_path_factory.mktemp("unnamed")), unnamed_net, INPUT_DIM)


@pytest.fixture(scope="module")
def batch():
    rng = np.random.default_rng(1)
    return rng.normal(size=(6, INPUT_DIM)).astype(np.float32), rng.integers(0, 3, size=6)


def tf1_logits(prefix, x, training=False):
    """The TF1 program's own output: its graph rebuilt, its checkpoint restored by a Saver."""
    return testing.run_tf1(functools.partial(unnamed_net, training=training), prefix, x)[0]


def legacy_names(model):
    return sorted(model.legacy_variables())


def assert_same_as_tf1(actual, expected):
    np.testing.assert_allclose(np.asarray(actual), expected, rtol=1e-6, atol=1e-6)


def test_the_tf1_program_names_its_layers_as_a_fresh_graph_does(unnamed_ckpt):
    prefix, values = unnamed_ckpt
    assert sorted(k for k in values if "Adam" not in k and k not in ("beta1_power", "beta2_power", "global_step")) \
        == TF1_NAMES


def test_every_call_reuses_the_warm_started_variables(unnamed_ckpt, batch):
    prefix, values = unnamed_ckpt
    x, _ = batch
    model = UnnamedShimModel()
    report = klc.warm_start(model, prefix)
    assert sorted(report.loaded) == TF1_NAMES and not report.missing
    expected = tf1_logits(prefix, x)

    assert_same_as_tf1(model(x, training=False), expected)        # first eager call
    assert_same_as_tf1(model(x, training=False), expected)        # second eager call
    assert_same_as_tf1(tf.function(lambda t: model(t, training=False))(x), expected)  # a new trace
    assert_same_as_tf1(model.predict(x, verbose=0), expected)     # Keras' predict_function
    assert legacy_names(model) == TF1_NAMES
    for name, variable in model.legacy_variables().items():
        np.testing.assert_array_equal(variable.numpy(), values[name])


def test_fit_trains_the_warm_started_variables(unnamed_ckpt, batch):
    """fit's first step computes its loss with the checkpoint's weights (BN in training mode)."""
    prefix, _ = unnamed_ckpt
    x, y = batch
    model = UnnamedShimModel()
    model.compile(optimizer=tf_keras.optimizers.SGD(0.1),
                  loss=tf_keras.losses.SparseCategoricalCrossentropy(from_logits=True))
    warm = klc.WarmStartFromTF1(prefix, verbose=0)
    history = model.fit(x, y, batch_size=len(x), epochs=1, verbose=0, shuffle=False, callbacks=[warm])

    logits = tf1_logits(prefix, x, training=True)
    tf1_loss = tf_keras.losses.SparseCategoricalCrossentropy(from_logits=True)(y, logits).numpy()
    np.testing.assert_allclose(history.history["loss"][0], tf1_loss, rtol=1e-5)
    assert legacy_names(model) == TF1_NAMES   # the train_function trace created nothing
    assert sorted(warm.report.loaded) == TF1_NAMES
    trained = model.legacy_variables()["dense_1/kernel"].numpy()
    assert not np.array_equal(trained, tf1_programs.checkpoint_values(prefix)["dense_1/kernel"])
    model(x, training=False)
    assert legacy_names(model) == TF1_NAMES


def test_names_are_those_of_a_fresh_tf1_graph_whatever_ran_before():
    """Unrelated TF1-style code that moved the process-wide counters does not shift our names."""
    class Other(tf.Module):
        @klc._compat.tf_keras_track_tf1_style_variables()
        def __call__(self, x):
            return klc.v1_layers.dense(x, 2)

    other = Other()
    for _ in range(3):
        other(tf.zeros([1, INPUT_DIM]))   # dense, dense_1, dense_2 at the root
    model = UnnamedShimModel()
    model(tf.zeros([1, INPUT_DIM]))
    assert legacy_names(model) == TF1_NAMES
    other(tf.zeros([1, INPUT_DIM]))       # and we did not reset theirs either
    assert "dense_3/kernel" in {v.name[:-2] for v in other.variables}


def test_a_shim_calling_tf1_code_twice_names_it_like_one_tf1_graph():
    """Two towers built in one shim call: dense, dense_1, dense_2, dense_3 as in TF1."""
    class TwoTowers(klc.LegacyCheckpointMixin, tf_keras.Model):
        warm_up_input_spec = tf.TensorSpec([None, INPUT_DIM])

        @klc.track_tf1_style_variables
        def call(self, x, training=None):
            return unnamed_net(x) + unnamed_net(x)

    with tf.Graph().as_default():
        inputs = v1.placeholder(tf.float32, [None, INPUT_DIM])
        unnamed_net(inputs) + unnamed_net(inputs)
        graph_names = sorted(v.op.name for v in v1.global_variables())
    model = TwoTowers()
    model(tf.zeros([1, INPUT_DIM]))
    model(tf.zeros([1, INPUT_DIM]))
    assert legacy_names(model) == graph_names and "conv2d_1/kernel" in graph_names


class UnscopedTower(klc.LegacyCheckpointMixin, tf_keras.layers.Layer):
    warm_up_input_spec = tf.TensorSpec([None, INPUT_DIM])

    @klc.track_tf1_style_variables
    def call(self, x, training=None):
        return unnamed_net(x)


def test_a_shim_layer_nested_in_a_shim_call_continues_its_counters():
    """TF1 code calling TF1 code in one graph: the inner layer's dense follows the outer's."""
    class Outer(klc.LegacyCheckpointMixin, tf_keras.Model):
        warm_up_input_spec = tf.TensorSpec([None, INPUT_DIM])

        def __init__(self):
            super().__init__()
            self.inner = UnscopedTower()

        @klc.track_tf1_style_variables
        def call(self, x, training=None):
            return self.inner(klc.v1_layers.dense(x, INPUT_DIM))

    with tf.Graph().as_default():
        unnamed_net(klc.v1_layers.dense(v1.placeholder(tf.float32, [None, INPUT_DIM]), INPUT_DIM))
        graph_names = sorted(v.op.name for v in v1.global_variables())
    model = Outer()
    klc.mixin.warm_up_target(model)    # warms up, then checks that a second pass creates nothing
    model(tf.zeros([2, INPUT_DIM]))
    assert legacy_names(model) == graph_names and "dense_2/kernel" in graph_names


def test_two_instances_each_take_a_fresh_graphs_names():
    """Each shim layer's outermost call is its own TF1 graph: in their own variable scopes
    the two get distinct names; without, both are `dense`, ... and legacy_variables (so
    warm_start) says they clash."""
    class Towers(klc.LegacyCheckpointMixin, tf_keras.Model):
        def __init__(self, scopes):
            super().__init__()
            self.towers = [tf2_models.ShimLayer(unnamed_net, INPUT_DIM, outer_scope=s) if s else UnscopedTower()
                           for s in scopes]

        def call(self, x, training=None):
            return tf.add_n([tower(x) for tower in self.towers])

    scoped = Towers(["a", "b"])
    for _ in range(2):
        scoped(tf.zeros([1, INPUT_DIM]))
    assert legacy_names(scoped) == sorted(s + "/" + n for s in "ab" for n in TF1_NAMES)

    clashing = Towers([None, None])
    for _ in range(2):
        clashing(tf.zeros([1, INPUT_DIM]))
    assert len(clashing.weights) == 2 * len(TF1_NAMES)       # stable: nothing new on the second call
    with pytest.raises(klc.DuplicateVariableNameError, match="variable_scope"):
        clashing.legacy_variables()


def test_names_stay_stable_across_tf_function_retraces():
    class TwoDense(tf.Module):
        @klc.track_tf1_style_variables
        def __call__(self, x):
            return klc.v1_layers.dense(klc.v1_layers.dense(x, 2), 2)

    module = TwoDense()
    run = tf.function(module.__call__)
    first = run(tf.ones([1, 3]))
    run(tf.ones([2, 3]))              # a retrace (new shape): same variables
    np.testing.assert_array_equal(module(tf.ones([1, 3])), first)   # and an eager call
    assert sorted(v.name for v in module.variables) == [
        "dense/bias:0", "dense/kernel:0", "dense_1/bias:0", "dense_1/kernel:0"]


def test_drifting_names_under_tf_keras_decorator_make_warm_start_raise(unnamed_ckpt, batch):
    prefix, _ = unnamed_ckpt
    x, _ = batch
    model = TfKerasShimModel()
    model(x[:1], training=False)    # built by the user, as before fit
    before = {v.name: v.numpy().copy() for v in model.weights}

    with pytest.raises(klc.LegacyCheckpointError) as err:
        klc.warm_start(model, prefix)

    message = str(err.value)
    created = sorted(v.name[:-2] for v in model.weights if v.name not in before)
    assert len(created) == len(TF1_NAMES)
    assert "created %d new variable(s): %s." % (len(created), ", ".join(created[:12])) in message
    assert "variable_scope" in message and "klc.track_tf1_style_variables" in message
    for variable in model.weights:
        if variable.name in before:
            np.testing.assert_array_equal(variable.numpy(), before[variable.name], err_msg=variable.name)


def test_drift_is_caught_on_a_fresh_model_too_and_nothing_is_loaded(unnamed_ckpt):
    prefix, values = unnamed_ckpt
    model = TfKerasShimModel()
    with pytest.raises(klc.LegacyCheckpointError, match="second time created 10 new variable"):
        klc.warm_start(model, prefix)
    kernels = [value for key, value in values.items() if key.endswith("kernel")]
    assert not any(np.array_equal(v.numpy(), value) for v in model.weights for value in kernels
                   if v.shape == value.shape)


@pytest.mark.parametrize("built_first", [False, True], ids=["warm-up-and-check", "check-only"])
def test_the_check_pass_changes_no_value(built_first):
    layer = AlwaysTrainingBN(bn_name=None)
    if built_first:
        layer(tf.ones([2, 4]))
        for v in layer.weights:   # back to the initial statistics, which every pass would move
            if "moving" in v.name:
                v.assign(tf.zeros_like(v) if "mean" in v.name else tf.ones_like(v))
    layer.calls.assign(7)
    before = {v.name: v.numpy().copy() for v in layer.weights}
    klc.mixin.warm_up_target(layer)
    klc.mixin.warm_up_target(layer, tf.ones([2, 4]))
    assert sorted(v.name for v in layer.weights) == sorted(
        ["calls:0", "batch_normalization/beta:0", "batch_normalization/gamma:0",
         "batch_normalization/moving_mean:0", "batch_normalization/moving_variance:0"])
    assert layer.calls.numpy() == 7
    for v in layer.weights:
        if v.name in before:
            np.testing.assert_array_equal(v.numpy(), before[v.name], err_msg=v.name)
    stats = {v.name: v.numpy() for v in layer.weights if "moving" in v.name}
    np.testing.assert_array_equal(stats["batch_normalization/moving_mean:0"], np.zeros(4, np.float32))
    np.testing.assert_array_equal(stats["batch_normalization/moving_variance:0"], np.ones(4, np.float32))


def test_the_check_runs_only_where_the_shim_is_used():
    """One extra pass per warm start for shim targets; none for plain Keras layers."""
    calls = []

    class Plain(tf_keras.layers.Layer):
        def build(self, shape):
            self.w = self.add_weight(name="w", shape=[shape[-1]])

        def call(self, x):
            calls.append("plain")
            return x * self.w

    class Shim(klc.LegacyCheckpointMixin, tf_keras.layers.Layer):
        warm_up_input_spec = tf.TensorSpec([None, 3])

        @klc.track_tf1_style_variables
        def call(self, x):
            calls.append("shim")
            return klc.v1_layers.dense(x, 2)

    klc.mixin.warm_up_target(Plain(), tf.ones([1, 3]))
    assert calls == ["plain"]                      # the warm-up pass only
    calls.clear()
    shim = Shim()
    klc.mixin.warm_up_target(shim)
    assert calls == ["shim", "shim"]               # warm-up pass, then the check pass
    calls.clear()
    klc.mixin.warm_up_target(shim)
    assert calls == ["shim"]                       # variables exist: the check pass only


def test_the_variable_scope_fix_works_under_tf_keras_decorator(unnamed_ckpt, batch):
    """What the error message advises: a variable_scope around the TF1 code, and a map."""
    prefix, _ = unnamed_ckpt
    x, _ = batch

    class Scoped(klc.LegacyCheckpointMixin, tf_keras.Model):
        warm_up_input_spec = tf.TensorSpec([None, INPUT_DIM])

        @klc._compat.tf_keras_track_tf1_style_variables()
        def call(self, x, training=None):
            with v1.variable_scope("net"):
                return unnamed_net(x, training=bool(training))

    model = Scoped()
    report = klc.warm_start(model, prefix, {"/": "net/"})
    assert len(report.loaded) == len(TF1_NAMES)
    assert_same_as_tf1(model(x, training=False), tf1_logits(prefix, x))
    assert_same_as_tf1(model(x, training=False), tf1_logits(prefix, x))


def test_the_decorator_is_still_recognised_as_the_shim():
    model = UnnamedShimModel()
    assert klc._compat.uses_shim(model) and model._needs_warm_up()
    assert klc._compat.accepts_training(klc._compat.call_function(model))   # the signature is the method's


LEGACY_KERAS_PROGRAM = textwrap.dedent('''
    import tensorflow as tf
    import keras_legacy_ckpt as klc
    assert tf.keras.__name__.startswith("tf_keras"), tf.keras

    class Model(klc.LegacyCheckpointMixin, tf.keras.Model):
        warm_up_input_spec = tf.TensorSpec([None, 4])

        @klc.track_tf1_style_variables
        def call(self, x):
            return tf.compat.v1.layers.dense(tf.compat.v1.layers.dense(x, 3), 2)

    model = Model()
    klc.mixin.warm_up_target(model)
    model(tf.zeros([1, 4]))
    tf.function(model)(tf.zeros([2, 4]))
    names = sorted(v.name for v in model.weights)
    assert names == ["dense/bias:0", "dense/kernel:0", "dense_1/bias:0", "dense_1/kernel:0"], names
    print("STABLE-NAMES-OK")
''')


def test_stable_names_with_tf_use_legacy_keras(tmp_path):
    env = dict(os.environ, TF_USE_LEGACY_KERAS="1", TF_CPP_MIN_LOG_LEVEL="2", PYTHONPATH=ROOT)
    result = subprocess.run([sys.executable, "-c", LEGACY_KERAS_PROGRAM], env=env, capture_output=True,
                            text=True, timeout=300, cwd=str(tmp_path))
    assert "STABLE-NAMES-OK" in result.stdout, result.stderr[-3000:]
