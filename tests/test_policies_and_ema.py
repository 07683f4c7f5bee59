"""Shape and dtype policies, exponential moving averages."""

import numpy as np
import pytest
import tensorflow as tf

import keras_legacy_ckpt as klc
from tests import tf1_programs, tf2_models
from tests.tf1_programs import mlp, scoped_variables, v1


def test_shape_skip_leaves_a_new_head_as_initialised_and_reports_it(ckpt_dir):
    prefix, values = tf1_programs.save_tf1_checkpoint(ckpt_dir, scoped_variables, 4)

    def five_classes(x, training=False):
        with v1.variable_scope("enc"):
            with v1.variable_scope("layer1"):
                w1, b1 = v1.get_variable("w", [4, 5]), v1.get_variable("b", [5])
            with v1.variable_scope("layer2"):
                w2 = v1.get_variable("w", [5, 2])
        with v1.variable_scope("head"):
            w3 = v1.get_variable("w", [2, 5])  # 5 classes now; the checkpoint has 3
        return tf.matmul(tf.matmul(tf.matmul(x, w1) + b1, w2), w3)

    model = tf2_models.ShimModule(five_classes, 4)
    model.warm_up()
    head_before = model.legacy_variables()["backbone/head/w"].numpy().copy()
    report = klc.warm_start(model, prefix, {"/": "backbone/"}, on_shape_mismatch="skip")
    assert list(report.skipped) == ["backbone/head/w"] and "backbone/head/w" not in report.loaded
    assert "skipped: 1 variables left as initialised" in report.summary()
    np.testing.assert_array_equal(model.legacy_variables()["backbone/head/w"].numpy(), head_before)
    np.testing.assert_array_equal(model.legacy_variables()["backbone/enc/layer2/w"].numpy(), values["enc/layer2/w"])


def test_float16_checkpoint_casts_only_when_asked(ckpt_dir):
    def half(x, training=False):
        with v1.variable_scope("net"):
            return tf.matmul(x, v1.get_variable("w", [3, 3], dtype=tf.float16))

    prefix, values = tf1_programs.save_tf1_checkpoint(ckpt_dir, half, 3, dtype=tf.float16)
    module = tf.Module()
    module.w = tf.Variable(tf.zeros([3, 3]), name="net/w")
    with pytest.raises(klc.DTypeMismatchError, match=r"(?s)net/w \(float32\) <- 'net/w' \(float16\).*cast"):
        klc.warm_start(module, prefix, {"net/w": "net/w"})
    assert not np.any(module.w.numpy())
    report = klc.warm_start(module, prefix, {"net/w": "net/w"}, on_dtype_mismatch="cast")
    assert report.casts == {"net/w": "float16 -> float32"} and "cast:    1 tensors" in report.summary()
    np.testing.assert_array_equal(module.w.numpy(), values["net/w"].astype(np.float32))


def test_bad_policy_names_are_rejected():
    with pytest.raises(ValueError, match="on_shape_mismatch"):
        klc.warm_start(tf.Module(), "/nowhere", on_shape_mismatch="ignore")


@pytest.fixture(scope="module")
def ema_ckpt(tmp_path_factory):
    return tf1_programs.save_tf1_checkpoint(str(tmp_path_factory.mktemp("ema")), mlp, 5, steps=5, ema_decay=0.5)


def test_use_ema_loads_moving_averages_and_raw_batch_norm_statistics(ema_ckpt):
    prefix, values = ema_ckpt
    assert "net/hidden/kernel/ExponentialMovingAverage" in values
    model = tf2_models.ShimModel(mlp, 5)
    report = klc.warm_start(model, prefix, {"/": "backbone/"}, use_ema=True)
    variables = model.legacy_variables()
    for name in ("net/hidden/kernel", "net/logits/bias", "net/bn/gamma"):
        assert report.loaded["backbone/" + name] == name + "/ExponentialMovingAverage"
        np.testing.assert_array_equal(variables["backbone/" + name].numpy(), values[name + "/ExponentialMovingAverage"])
        assert not np.array_equal(values[name + "/ExponentialMovingAverage"], values[name])
    # Non-trainable variables have no EMA copy and keep their own values, as in TF1's variables_to_restore().
    np.testing.assert_array_equal(variables["backbone/net/bn/moving_mean"].numpy(), values["net/bn/moving_mean"])
    assert "ema:     6 variables" in report.summary()


def test_use_ema_without_any_copy_raises_even_with_fallback(ckpt_dir):
    prefix, values = tf1_programs.save_tf1_checkpoint(ckpt_dir, mlp, 5)
    model = tf2_models.ShimModel(mlp, 5)
    model.warm_up()
    before = tf2_models.values(model)
    with pytest.raises(klc.MissingVariablesError, match="backbone/net/hidden/kernel <- 'net/hidden/kernel'"):
        klc.warm_start(model, prefix, {"/": "backbone/"}, use_ema=True)
    after = tf2_models.values(model)
    assert all(np.array_equal(before[k], after[k]) for k in before)
    # Not one variable has a copy: falling back for all of them would report raw weights as averages.
    with pytest.raises(klc.MissingVariablesError, match="no variable has one"):
        klc.warm_start(model, prefix, {"/": "backbone/"}, use_ema=True, ema_fallback=True)


def test_ema_fallback_loads_raw_values_only_where_a_copy_is_missing(tmp_path):
    with tf.Graph().as_default():
        averaged = v1.get_variable("net/averaged", [3, 2])
        raw = v1.get_variable("net/raw", [2])
        step = v1.train.get_or_create_global_step()
        train = v1.train.AdamOptimizer(0.1).minimize(tf.reduce_sum(averaged ** 2) + tf.reduce_sum(raw ** 2),
                                                     global_step=step)
        with tf.control_dependencies([train]):
            train = v1.train.ExponentialMovingAverage(0.5).apply([averaged])  # only one of the two
        with v1.Session() as sess:
            sess.run(v1.global_variables_initializer())
            sess.run(train)
            prefix = v1.train.Saver().save(sess, str(tmp_path / "model.ckpt"), global_step=step)
    values = tf1_programs.checkpoint_values(prefix)
    module = tf.Module()
    module.vars = [tf.Variable(tf.zeros([3, 2]), name="net/averaged"), tf.Variable(tf.zeros([2]), name="net/raw")]
    with pytest.raises(klc.MissingVariablesError, match="net/raw <- 'net/raw'"):
        klc.warm_start(module, prefix, use_ema=True)
    report = klc.warm_start(module, prefix, use_ema=True, ema_fallback=True)
    assert report.loaded == {"net/averaged": "net/averaged/ExponentialMovingAverage", "net/raw": "net/raw"}
    np.testing.assert_array_equal(module.vars[0].numpy(), values["net/averaged/ExponentialMovingAverage"])
    np.testing.assert_array_equal(module.vars[1].numpy(), values["net/raw"])
