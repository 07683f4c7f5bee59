"""Real inputs (Datasets, iterators, multi-input models, Sequential without Input) and mixed precision."""

import numpy as np
import pytest
import tensorflow as tf
import tf_keras

import keras_legacy_ckpt as klc
from tests import tf1_programs, tf2_models
from tests.tf1_programs import mlp, v1

RNG = np.random.default_rng(3)
X = RNG.normal(size=(16, 5)).astype(np.float32)
Y = RNG.integers(0, 3, size=16)
W = np.ones(16, np.float32)


def _assert_loaded(model, ckpt_values, scope="backbone/"):
    variables = model.legacy_variables() if hasattr(model, "legacy_variables") else {
        v.name[:-2]: v for v in model.weights}
    assert len(variables) == 8
    for name, variable in variables.items():
        np.testing.assert_array_equal(variable.numpy(), ckpt_values[name[len(scope):]], err_msg=name)


class Batches(tf_keras.utils.Sequence):
    def __len__(self):
        return 2

    def __getitem__(self, index):
        return X[index * 8:(index + 1) * 8], Y[index * 8:(index + 1) * 8]


@pytest.mark.parametrize("kind", ["dataset_xy", "dataset_xyw", "dataset_x", "generator", "sequence", "tensor_iterator"])
def test_sample_input_may_be_batches_as_fit_takes_them(mlp_ckpt, kind):
    prefix, ckpt_values = mlp_ckpt
    sample = {
        "dataset_xy": lambda: tf.data.Dataset.from_tensor_slices((X, Y)).batch(4),
        "dataset_xyw": lambda: tf.data.Dataset.from_tensor_slices((X, Y, W)).batch(4),
        "dataset_x": lambda: tf.data.Dataset.from_tensor_slices(X).batch(4),
        "generator": lambda: ((X[i:i + 4], Y[i:i + 4]) for i in range(0, 16, 4)),
        "sequence": Batches,
        "tensor_iterator": lambda: iter(tf.data.Dataset.from_tensor_slices((X, Y)).batch(4)),
    }[kind]()
    inputs = tf_keras.Input([5])
    model = tf_keras.Model(inputs, tf2_models.ShimLayer(mlp, 5, name="shim")(inputs))
    report = klc.warm_start(model, prefix, {"/": "backbone/"}, sample_input=sample)
    assert len(report.loaded) == 8
    _assert_loaded(model.get_layer("shim"), ckpt_values)


def test_an_empty_dataset_is_a_clear_error(mlp_ckpt):
    model = tf2_models.ShimModel(mlp, 5)
    with pytest.raises(klc.LegacyCheckpointError, match="sample_input is an empty"):
        klc.warm_start(model, mlp_ckpt[0], {"/": "backbone/"}, sample_input=tf.data.Dataset.from_tensor_slices(X[:0]))


class TwoTowers(klc.LegacyCheckpointMixin, tf_keras.Model):
    """Takes (a, b) or {"a": a, "b": b}: two inputs, one TF1 network each."""

    @klc.track_tf1_style_variables
    def call(self, inputs, training=None):
        a, b = (inputs["a"], inputs["b"]) if isinstance(inputs, dict) else inputs
        with v1.variable_scope("left"):
            left = mlp(a, training=training)
        with v1.variable_scope("right"):
            right = mlp(b, training=training)
        return left + right


@pytest.mark.parametrize("as_dict", [False, True])
def test_multi_input_models_take_tuples_and_dicts_also_from_a_dataset(mlp_ckpt, as_dict):
    prefix, ckpt_values = mlp_ckpt
    pair = {"a": X, "b": X * 2} if as_dict else (X, X * 2)
    for sample in (tf.nest.map_structure(lambda t: t[:1], pair),
                   tf.data.Dataset.from_tensor_slices((pair, Y)).batch(4)):
        model = TwoTowers()
        report = klc.warm_start(model, prefix, {"/": "left/", "net/": "right/net/"}, sample_input=sample)
        assert len(report.loaded) == 16
        for name, variable in model.legacy_variables().items():
            np.testing.assert_array_equal(variable.numpy(), ckpt_values[name.split("/", 1)[1]], err_msg=name)


def test_sequential_of_a_shim_layer_without_an_input(mlp_ckpt):
    prefix, ckpt_values = mlp_ckpt
    model = tf_keras.Sequential([tf2_models.ShimLayer(mlp, 5, name="shim")])
    report = klc.warm_start(model, prefix, {"/": "backbone/"})  # the layer's warm_up_input_spec
    assert len(report.loaded) == 8
    _assert_loaded(model.layers[0], ckpt_values)

    model = tf_keras.Sequential([tf2_models.ShimLayer(mlp, 5, name="shim")])
    model.compile(optimizer=tf_keras.optimizers.SGD(0.0),
                  loss=tf_keras.losses.SparseCategoricalCrossentropy(from_logits=True))
    warm = klc.WarmStartFromTF1(prefix, {"/": "backbone/"}, verbose=0)
    model.fit(tf.data.Dataset.from_tensor_slices((X, Y)).batch(4), epochs=1, verbose=0, callbacks=[warm])
    assert len(warm.report.loaded) == 8 and len(model.weights) == 8  # fit reused the warm-started weights
    expected = tf1_programs.tf1_init_from_checkpoint(prefix, mlp, 5, {"/": "backbone/"})
    for name, variable in model.layers[0].legacy_variables().items():
        if "moving_" not in name:  # SGD(0) keeps the weights; training mode moves batch-norm statistics
            np.testing.assert_array_equal(variable.numpy(), expected[name], err_msg=name)


@pytest.fixture
def mixed_policy():
    def use(name, keras3=False):
        if keras3:
            import keras
            keras.mixed_precision.set_global_policy(name)
        else:
            tf_keras.mixed_precision.set_global_policy(name)
    yield use
    import keras
    tf_keras.mixed_precision.set_global_policy("float32")
    keras.mixed_precision.set_global_policy("float32")


@pytest.mark.parametrize("policy", ["mixed_float16", "mixed_bfloat16"])
def test_tf_keras_mixed_precision_warm_starts_with_optimizer_state(mlp_ckpt, mixed_policy, policy):
    prefix, ckpt_values = mlp_ckpt
    mixed_policy(policy)
    low = tf.as_dtype(policy.split("_")[1])
    model = tf2_models.ShimModel(mlp, 5)
    model.compile(optimizer=tf_keras.optimizers.Adam(0.01, epsilon=1e-8),
                  loss=tf_keras.losses.SparseCategoricalCrossentropy(from_logits=True))
    if policy == "mixed_float16":
        assert type(model.optimizer).__name__.startswith("LossScaleOptimizer")
    report = klc.warm_start(model, prefix, {"/": "backbone/"}, optimizer_state=True)
    assert "iterations = 3" in report.optimizer_state
    for name, variable in model.legacy_variables().items():
        want = ckpt_values[name[len("backbone/"):]]
        if variable.dtype == low:  # v1 dense layers take the input's dtype under the policy
            assert report.casts[name] == "float32 -> %s" % low.name
            np.testing.assert_array_equal(variable.numpy(), want.astype(low.as_numpy_dtype), err_msg=name)
        else:  # float32 variables get the checkpoint's bits
            assert variable.dtype == tf.float32 and name not in report.casts
            np.testing.assert_array_equal(variable.numpy(), want, err_msg=name)
    assert sum(1 for name in model.legacy_variables() if name in report.casts) == 4
    inner = getattr(model.optimizer, "inner_optimizer", model.optimizer)
    assert int(inner.iterations.numpy()) == 3


def test_keras3_mixed_precision_keeps_float32_variables_exact_and_sees_through_loss_scaling(ckpt_dir, mixed_policy):
    import keras

    prefix, values = tf1_programs.save_tf1_checkpoint(ckpt_dir, tf1_programs.dense_only, 5)
    mixed_policy("mixed_float16", keras3=True)
    model = keras.Sequential([keras.Input((5,)), keras.layers.Dense(6, activation="relu", name="hidden"),
                              keras.layers.Dense(3, name="logits")], name="net")
    model.compile(optimizer=keras.optimizers.Adam(0.01, epsilon=1e-8),
                  loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True))
    assert isinstance(model.optimizer, keras.optimizers.LossScaleOptimizer)
    report = klc.warm_start(model, prefix, optimizer_state=True)
    assert report.casts == {} and "iterations = 3" in report.optimizer_state
    for variable in model.weights:
        np.testing.assert_array_equal(variable.numpy(), values[variable.path], err_msg=variable.path)
    assert int(model.optimizer.iterations.numpy()) == 3


def test_optimizer_state_uses_the_slots_and_reports_their_casts(mlp_ckpt, mixed_policy):
    prefix, _ = mlp_ckpt
    mixed_policy("mixed_float16")
    model = tf2_models.ShimModel(mlp, 5)
    model.compile(optimizer=tf_keras.optimizers.Adam(0.01, epsilon=1e-8),
                  loss=tf_keras.losses.SparseCategoricalCrossentropy(from_logits=True))
    report = klc.warm_start(model, prefix, {"/": "backbone/"}, optimizer_state=True)
    assert report.unused == []  # the Adam slots, beta powers and global_step went into the optimizer
    slot_casts = [name for name, cast in report.casts.items() if name not in model.legacy_variables()]
    assert len(slot_casts) == 8 and all(report.casts[n] == "float32 -> float16" for n in slot_casts), report.casts
