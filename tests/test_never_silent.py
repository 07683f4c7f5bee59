"""A warm start that would load nothing raises; dtype casts are value-preserving unless asked."""

import numpy as np
import pytest
import tensorflow as tf

import keras_legacy_ckpt as klc
from tests import tf2_models
from tests.tf1_programs import mlp, v1

# checkpoint dtype, variable dtype: pairs "cast" converts without losing a value.
SAFE = [("float16", "float32"), ("bfloat16", "float32"), ("float64", "float32"), ("int32", "int64"),
        ("uint8", "int16"), ("int16", "float64"), ("uint32", "uint64")]
# ... and pairs it refuses: complex->real, float->int, narrowing or sign-changing ints, bool<->number.
UNSAFE = [("complex64", "float32"), ("float32", "int32"), ("int64", "int32"), ("uint64", "int32"),
          ("int32", "uint32"), ("int8", "uint16"), ("bool", "float32"), ("float32", "bool"), ("int64", "float64")]
VALUES = {
    "float16": [1.5, -2.25, 65504.0], "bfloat16": [1.5, -2.25, 3.0e38], "float64": [1.0 / 3, -1e-40, 1e30],
    "float32": [1.7, -2.6, 3e9], "int32": [7, -8, 2**31 - 1], "uint8": [0, 200, 255], "int16": [-32768, 5, 32767],
    "uint32": [0, 2**32 - 1, 12], "complex64": [1 + 2j, -3j, 4], "int64": [2**40 + 1, -5, 2**62],
    "uint64": [2**63 + 5, 1, 2**32 + 7], "int8": [-128, 3, 127], "bool": [True, False, True],
}


def _dtype_name(source, target):
    return "%s_to_%s" % (source, target)


@pytest.fixture(scope="module")
def dtype_ckpt(tmp_path_factory):
    """A TF1 checkpoint with one variable per (checkpoint dtype, variable dtype) pair; TF1's Saver writes it."""
    prefix = str(tmp_path_factory.mktemp("dtypes") / "model.ckpt")
    with tf.Graph().as_default():
        for source, target in SAFE + UNSAFE:
            v1.get_variable(_dtype_name(source, target), initializer=tf.constant(VALUES[source], tf.as_dtype(source)))
        v1.train.get_or_create_global_step()
        with v1.Session() as sess:
            sess.run(v1.global_variables_initializer())
            prefix = v1.train.Saver().save(sess, prefix, global_step=1)
    return prefix


class Variables(tf.Module):
    def __init__(self, pairs):
        super().__init__()
        self.vars = [tf.Variable(tf.zeros([3], tf.as_dtype(target)), name=_dtype_name(source, target))
                     for source, target in pairs]


def _expected(prefix, source, target):
    return tf.cast(tf.train.load_checkpoint(prefix).get_tensor(_dtype_name(source, target)), target).numpy()


@pytest.mark.parametrize("source,target", SAFE)
def test_cast_converts_value_preserving_pairs_like_tf_cast(dtype_ckpt, source, target):
    model = Variables([(source, target)])
    report = klc.warm_start(model, dtype_ckpt, {_dtype_name(source, target): _dtype_name(source, target)},
                            on_dtype_mismatch="cast")
    assert report.casts == {_dtype_name(source, target): "%s -> %s" % (source, target)}
    np.testing.assert_array_equal(model.vars[0].numpy(), _expected(dtype_ckpt, source, target))
    if source not in ("float64", "bfloat16"):  # the others hold every value exactly
        np.testing.assert_array_equal(model.vars[0].numpy(), np.asarray(VALUES[source]).astype(target))


@pytest.mark.parametrize("source,target", UNSAFE)
def test_cast_refuses_lossy_pairs_and_unsafe_cast_does_what_tf_cast_does(dtype_ckpt, source, target):
    name = _dtype_name(source, target)
    model = Variables([(source, target)] + SAFE)
    before = [v.numpy().copy() for v in model.vars]
    with pytest.raises(klc.DTypeMismatchError, match=r"%s \(%s\) <- '%s' \(%s\)" % (name, target, name, source)):
        klc.warm_start(model, dtype_ckpt, {"/": "/"}, on_dtype_mismatch="cast", strict=False)
    for variable, value in zip(model.vars, before):
        np.testing.assert_array_equal(variable.numpy(), value)

    report = klc.warm_start(model, dtype_ckpt, {"/": "/"}, on_dtype_mismatch="unsafe_cast", strict=False)
    assert report.casts[name] == "%s -> %s" % (source, target)
    np.testing.assert_array_equal(model.vars[0].numpy(), _expected(dtype_ckpt, source, target))


def test_uint64_into_int32_would_wrap(dtype_ckpt):
    wrapped = _expected(dtype_ckpt, "uint64", "int32")
    assert wrapped[2] == 7  # 2**32 + 7 wraps to 7: why "cast" refuses the pair


def test_empty_map_is_an_assignment_map_error(mlp_ckpt):
    model = tf2_models.ShimModule(mlp, 5)
    model.warm_up()
    before = tf2_models.values(model)
    for strict in (True, False):
        with pytest.raises(klc.AssignmentMapError, match="maps nothing"):
            klc.warm_start(model, mlp_ckpt[0], {}, strict=strict)
    tf2_models.assert_unchanged(model, before)


@pytest.mark.parametrize("assignment_map,closest", [
    ({"nte/": "backbone/"}, "closest: net/"),                        # a misspelt checkpoint scope
    ([(r"^nothing_matches/", "backbone/")], None),                   # rules that rename nothing
    (lambda key: None, None),                                        # a callable that maps nothing
])
def test_a_map_that_loads_nothing_raises_even_when_not_strict(mlp_ckpt, assignment_map, closest):
    model = tf2_models.ShimModule(mlp, 5)
    model.warm_up()
    before = tf2_models.values(model)
    with pytest.raises(klc.MissingVariablesError, match="would assign no variable") as raised:
        klc.warm_start(model, mlp_ckpt[0], assignment_map, strict=False)
    message = str(raised.value)
    assert "checkpoint scopes: net/ (" in message and "model scopes:      backbone/ (8)" in message
    assert "{'net/': 'backbone/net/'}" in message or "{'/': 'backbone/'}" in message, message
    if closest:
        assert closest in message
    tf2_models.assert_unchanged(model, before)


def test_everything_ignored_or_skipped_is_nothing_loaded(mlp_ckpt):
    model = tf2_models.ShimModule(mlp, 5, outer_scope="other")
    model.warm_up()
    with pytest.raises(klc.MissingVariablesError, match="would assign no variable"):
        klc.warm_start(model, mlp_ckpt[0], {"/": "other/"}, ignore=[".*"])
    with pytest.raises(klc.MissingVariablesError, match=r"8 variable\(s\) are ignored"):
        klc.warm_start(model, mlp_ckpt[0], {"/": "other/"}, ignore=[".*"])
    with pytest.raises(klc.MissingVariablesError, match="skipped for its shape"):
        klc.warm_start(tf2_models.ShimModule(mlp, 7, outer_scope="other"), mlp_ckpt[0],
                       {"net/hidden/kernel": "other/net/hidden/kernel"},
                       on_shape_mismatch="skip", strict=False)


def test_cast_refuses_a_narrowing_float_cast_that_would_overflow(tmp_path):
    prefix = str(tmp_path / "model.ckpt")
    with tf.Graph().as_default():
        v1.get_variable("big", initializer=tf.constant([1.0, 3e9, -7.5], tf.float32))  # 3e9: inf in float16
        v1.get_variable("small", initializer=tf.constant([1.0, 6e4, -7.5], tf.float32))
        with v1.Session() as sess:
            sess.run(v1.global_variables_initializer())
            prefix = v1.train.Saver().save(sess, prefix)
    model = tf.Module()
    model.big = tf.Variable(tf.zeros([3], tf.float16), name="big")
    model.small = tf.Variable(tf.zeros([3], tf.float16), name="small")
    with pytest.raises(klc.DTypeMismatchError, match=r"big \(float16\) <- 'big' \(float32\): values beyond float16's"):
        klc.warm_start(model, prefix, on_dtype_mismatch="cast")
    assert not model.small.numpy().any() and not model.big.numpy().any()
    report = klc.warm_start(model, prefix, {"small": "small"}, on_dtype_mismatch="cast")
    assert report.casts == {"small": "float32 -> float16"}
    np.testing.assert_array_equal(model.small.numpy(), np.float16([1.0, 6e4, -7.5]))
    klc.warm_start(model, prefix, on_dtype_mismatch="unsafe_cast")
    assert np.isinf(model.big.numpy()[1])


def bert_adam_weight_decay(x, training=False):
    """A BERT-style TF1 program: its AdamWeightDecay keeps slots as '<param>/adam_m' and '<param>/adam_v'."""
    with v1.variable_scope("bert/encoder"):
        kernel = v1.get_variable("dense/kernel", [5, 4])
    loss = tf.reduce_sum(tf.matmul(x, kernel) ** 2)
    grad, = tf.gradients(loss, [kernel])
    name = kernel.op.name
    m = v1.get_variable(name + "/adam_m", kernel.shape, initializer=tf.zeros_initializer(), trainable=False)
    v = v1.get_variable(name + "/adam_v", kernel.shape, initializer=tf.zeros_initializer(), trainable=False)
    next_m = 0.9 * m + 0.1 * grad
    next_v = 0.999 * v + 0.001 * tf.square(grad)
    update = next_m / (tf.sqrt(next_v) + 1e-6) + 0.01 * kernel
    return tf.group(kernel.assign(kernel - 0.01 * update), m.assign(next_m), v.assign(next_v))


def test_bert_adam_weight_decay_slots_are_reported_as_optimizer_state(tmp_path):
    prefix = str(tmp_path / "bert.ckpt")
    with tf.Graph().as_default():
        train_op = bert_adam_weight_decay(tf.constant(np.ones([2, 5], np.float32)))
        v1.train.get_or_create_global_step()
        with v1.Session() as sess:
            sess.run(v1.global_variables_initializer())
            sess.run(train_op)
            prefix = v1.train.Saver().save(sess, prefix, global_step=1)
    module = tf.Module()
    module.kernel = tf.Variable(tf.zeros([5, 4]), name="bert/encoder/dense/kernel")
    summary = klc.warm_start(module, prefix).summary()
    assert "unused:  3 optimizer/step tensors (bert/encoder/dense/kernel/adam_m" in summary, summary
    assert "other tensors" not in summary
