"""Optimizer state migration: N TF1 steps + M TF2 steps equal N + M TF1 steps."""

import os

import numpy as np
import pytest
import tensorflow as tf
import tf_keras

import keras_legacy_ckpt as klc
from tests import tf2_models
from tests.tf1_programs import mlp, v1

RNG = np.random.default_rng(11)
X = RNG.normal(size=(16, 5)).astype(np.float32)
Y = RNG.integers(0, 3, size=16)
N, M = 4, 3


def dense_net(x, training=False):
    with v1.variable_scope("net"):
        h = klc.v1_layers.dense(x, 6, activation=tf.nn.tanh, name="hidden")
        return klc.v1_layers.dense(h, 3, name="logits")


def train_tf1(ckpt_dir, network, make_optimizer, outer_scope=None):
    """N steps, save, M more steps; returns (checkpoint after N, values after N + M)."""
    with tf.Graph().as_default():
        v1.set_random_seed(4)
        inputs = v1.placeholder(tf.float32, [None, 5])
        if outer_scope:
            with v1.variable_scope(outer_scope):
                logits = network(inputs, training=True)
        else:
            logits = network(inputs, training=True)
        loss = v1.losses.sparse_softmax_cross_entropy(Y, logits)
        step = v1.train.get_or_create_global_step()
        with tf.control_dependencies(v1.get_collection(v1.GraphKeys.UPDATE_OPS)):
            train_op = make_optimizer().minimize(loss, global_step=step)
        saver = v1.train.Saver()
        with v1.Session() as sess:
            sess.run(v1.global_variables_initializer())
            for _ in range(N):
                sess.run(train_op, {inputs: X})
            prefix = saver.save(sess, os.path.join(ckpt_dir, "model.ckpt"), global_step=step)
            for _ in range(M):
                sess.run(train_op, {inputs: X})
            values = {v.op.name: sess.run(v) for v in v1.global_variables()}
    return prefix, values


def _assert_close(model_values, tf1_values, strip=""):
    for name, value in model_values.items():
        np.testing.assert_allclose(value, tf1_values[name[len(strip):]], rtol=2e-5, atol=2e-6, err_msg=name)


@pytest.mark.parametrize("kind", ["adam", "momentum"])
def test_tf_keras_resumes_tf1_training_exactly(ckpt_dir, kind):
    if kind == "adam":
        prefix, expected = train_tf1(ckpt_dir, mlp, lambda: v1.train.AdamOptimizer(0.05))
        optimizer = tf_keras.optimizers.Adam(0.05, epsilon=1e-8)
    else:
        prefix, expected = train_tf1(ckpt_dir, mlp, lambda: v1.train.MomentumOptimizer(0.05, 0.9))
        optimizer = tf_keras.optimizers.SGD(0.05, momentum=0.9)
    model = tf2_models.ShimModel(mlp, 5)
    model.compile(optimizer=optimizer, loss=tf_keras.losses.SparseCategoricalCrossentropy(from_logits=True))
    warm = klc.WarmStartFromTF1(prefix, {"/": "backbone/"}, optimizer_state=True, verbose=0)
    model.fit(X, Y, batch_size=16, epochs=M, shuffle=False, verbose=0, callbacks=[warm])
    assert warm.report.optimizer_state.startswith("Adam state of 12 slot variables, iterations = 4" if kind == "adam"
                                                  else "SGD state of 6 slot variables, iterations = 4")
    assert int(optimizer.iterations.numpy()) == N + M
    _assert_close(tf2_models.values(model), expected, strip="backbone/")

    # Without the optimizer state the same training ends elsewhere: the test can fail.
    cold = tf2_models.ShimModel(mlp, 5)
    cold.compile(optimizer=type(optimizer).from_config(optimizer.get_config()),
                 loss=tf_keras.losses.SparseCategoricalCrossentropy(from_logits=True))
    cold.fit(X, Y, batch_size=16, epochs=M, shuffle=False, verbose=0,
             callbacks=[klc.WarmStartFromTF1(prefix, {"/": "backbone/"}, verbose=0)])
    kernel = tf2_models.values(cold)["backbone/net/hidden/kernel"]
    assert np.abs(kernel - expected["net/hidden/kernel"]).max() > 1e-4


@pytest.mark.parametrize("kind", ["adam", "momentum"])
def test_keras3_resumes_tf1_training_exactly(ckpt_dir, kind):
    import keras

    if kind == "adam":
        prefix, expected = train_tf1(ckpt_dir, dense_net, lambda: v1.train.AdamOptimizer(0.05))
        optimizer, summary = keras.optimizers.Adam(0.05, epsilon=1e-8), "Adam state of 8 slot variables"
    else:
        prefix, expected = train_tf1(ckpt_dir, dense_net, lambda: v1.train.MomentumOptimizer(0.05, 0.9))
        optimizer, summary = keras.optimizers.SGD(0.05, momentum=0.9), "SGD state of 4 slot variables"
    model = keras.Sequential([keras.Input((5,)), keras.layers.Dense(6, activation="tanh", name="hidden"),
                              keras.layers.Dense(3, name="logits")], name="net")
    model.compile(optimizer=optimizer, loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True))
    report = klc.warm_start(model, prefix, optimizer_state=True)
    assert report.optimizer_state == summary + ", iterations = 4 (from global_step)"
    model.fit(X, Y, batch_size=16, epochs=M, shuffle=False, verbose=0)
    _assert_close({v.path: v.numpy() for v in model.weights}, expected)


def test_mismatched_betas_and_missing_slots_raise_before_assigning(ckpt_dir):
    prefix, _ = train_tf1(ckpt_dir, mlp, lambda: v1.train.AdamOptimizer(0.05, beta1=0.8))
    model = tf2_models.ShimModel(mlp, 5)
    model.compile(optimizer=tf_keras.optimizers.Adam(0.05), loss="mse")
    model.warm_up()
    before = tf2_models.values(model)
    with pytest.raises(klc.LegacyCheckpointError, match="beta_1=0.9.*beta1_power"):
        klc.warm_start(model, prefix, {"/": "backbone/"}, optimizer_state=True)
    model.compile(optimizer=tf_keras.optimizers.SGD(0.05, momentum=0.9), loss="mse")
    with pytest.raises(klc.MissingVariablesError, match="backbone/net/hidden/kernel <- 'net/hidden/kernel/Momentum'"):
        klc.warm_start(model, prefix, {"/": "backbone/"}, optimizer_state=True)
    after = tf2_models.values(model)
    assert all(np.array_equal(before[k], after[k]) for k in before)
