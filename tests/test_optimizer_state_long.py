"""Optimizer state after long TF1 runs: N TF1 steps + M TF2 steps equal N + M TF1 steps.

TF1's AdamOptimizer keeps beta1_power = beta1^(t+1), multiplied by beta1 each step in float32:
0.9^t drops below float32's smallest normal number after ~830 steps and TensorFlow flushes it to 0,
so the step count must come from global_step (or from beta2_power). One real TF1 run of 20,000
steps (an Adam-trained and a Momentum-trained copy of a tiny network, sharing one global step) is
saved at N = 1, 500 and 20,000; the oracle restores each checkpoint in TF1 and trains M more steps.
"""

import os
import re

import numpy as np
import pytest
import tensorflow as tf
import tf_keras

import keras_legacy_ckpt as klc
from tests import tf2_models
from tests.tf1_programs import v1

LEARNING_RATE = 0.01
SAVED_AT = (1, 500, 20000)
LONGEST = SAVED_AT[-1]
M = 4
RNG = np.random.default_rng(23)
# Three batches of the same inputs with partly contradictory labels: the loss cannot reach 0,
# so gradients stay large enough after 20,000 steps for the optimizer state to matter.
INPUTS = RNG.normal(size=(8, 5)).astype(np.float32)
BATCHES = [(INPUTS, RNG.integers(0, 3, size=8).astype(np.int32)) for _ in range(3)]


def batch(step):
    """The batch of TF1 step `step` (0-based), in TF1 and in the TF2 continuation alike."""
    return BATCHES[step % len(BATCHES)]


def dense_net(x):
    with v1.variable_scope("net"):
        h = klc.v1_layers.dense(x, 6, activation=tf.nn.tanh, name="hidden")
        return klc.v1_layers.dense(h, 3, name="logits")


# One thread: on a graph this small, handing ops between threads costs more than it gains.
SINGLE_THREAD = v1.ConfigProto(inter_op_parallelism_threads=1, intra_op_parallelism_threads=1)


def _tf1_batch(global_step):
    """batch(global_step) inside the graph: feeding numpy arrays would triple the cost of a step."""
    index = global_step % len(BATCHES)
    return (tf.gather(tf.constant(np.stack([x for x, _ in BATCHES])), index),
            tf.gather(tf.constant(np.stack([y for _, y in BATCHES])), index))


def _tf1_train_op(global_step):
    """Adam on "adam/net", Momentum on "momentum/net"; one global_step increment per step."""
    x, y = _tf1_batch(global_step)
    ops = []
    for scope, optimizer in (("adam", v1.train.AdamOptimizer(LEARNING_RATE, epsilon=1e-8)),
                             ("momentum", v1.train.MomentumOptimizer(LEARNING_RATE, 0.9))):
        with v1.variable_scope(scope):
            loss = v1.losses.sparse_softmax_cross_entropy(y, dense_net(x))
        ops.append(optimizer.minimize(loss, var_list=v1.trainable_variables(scope + "/"),
                                      global_step=global_step if scope == "adam" else None))
    return tf.group(*ops)


@pytest.fixture(scope="module")
def long_run(tmp_path_factory):
    """{N: (checkpoint prefix after N steps, TF1 values after N + M steps)}, and the prefix of a
    checkpoint after LONGEST steps saved without global_step."""
    directory = str(tmp_path_factory.mktemp("long_run"))
    with tf.Graph().as_default():
        v1.set_random_seed(4)
        global_step = v1.train.get_or_create_global_step()
        train_op = _tf1_train_op(global_step)
        saver = v1.train.Saver(max_to_keep=None)
        without_step = v1.train.Saver([v for v in v1.global_variables() if v is not global_step])
        with v1.Session(config=SINGLE_THREAD) as sess:
            sess.run(v1.global_variables_initializer())
            train = sess.make_callable(train_op)
            prefixes = {}
            for step in range(LONGEST):
                train()
                if step + 1 in SAVED_AT:
                    prefixes[step + 1] = saver.save(sess, os.path.join(directory, "model.ckpt"), global_step=step + 1)
            no_step_prefix = without_step.save(sess, os.path.join(directory, "no_global_step.ckpt"))
            runs = {}
            for n, prefix in prefixes.items():  # the oracle: TF1 resumes from its own checkpoint
                saver.restore(sess, prefix)
                for _ in range(M):
                    train()
                runs[n] = prefix, {v.op.name: sess.run(v) for v in v1.global_variables()}
    return runs, no_step_prefix


def continuation(n):
    """The M batches TF1 trained on after step n, as one array for fit(batch_size=8)."""
    xs, ys = zip(*(batch(step) for step in range(n, n + M)))
    return np.concatenate(xs), np.concatenate(ys)


def _assert_close(model_values, tf1_values, model_scope, tf1_scope):
    assert model_values
    for name, value in model_values.items():
        np.testing.assert_allclose(value, tf1_values[tf1_scope + name[len(model_scope):]],
                                   rtol=2e-5, atol=2e-6, err_msg=name)


def _tf_keras_fit(prefix, optimizer, scope, n, optimizer_state=True):
    """A shim model of the "<scope>/net" tower, warm-started from `prefix`, then fit on M batches."""
    model = tf2_models.ShimModel(lambda x, training=None: dense_net(x), 5, outer_scope=scope)
    model.compile(optimizer=optimizer, loss=tf_keras.losses.SparseCategoricalCrossentropy(from_logits=True))
    report = klc.warm_start(model, prefix, optimizer_state=optimizer_state)
    model.fit(*continuation(n), batch_size=8, epochs=1, shuffle=False, verbose=0)
    return model, report


@pytest.mark.parametrize("n", SAVED_AT)
def test_tf_keras_adam_resumes_long_tf1_runs_exactly(long_run, n):
    runs, _ = long_run
    prefix, expected = runs[n]
    optimizer = tf_keras.optimizers.Adam(LEARNING_RATE, epsilon=1e-8)
    model, report = _tf_keras_fit(prefix, optimizer, "adam", n)
    assert report.optimizer_state.startswith("Adam state of 8 slot variables, iterations = %d" % n)
    assert int(optimizer.iterations.numpy()) == n + M
    _assert_close(tf2_models.values(model), expected, "adam/", "adam/")

    # Without the optimizer state the same training ends elsewhere: the test can fail.
    cold, _ = _tf_keras_fit(prefix, tf_keras.optimizers.Adam(LEARNING_RATE, epsilon=1e-8), "adam", n,
                            optimizer_state=False)
    assert np.abs(tf2_models.values(cold)["adam/net/hidden/kernel"] - expected["adam/net/hidden/kernel"]).max() > 1e-4


def test_the_step_count_still_matters_after_a_long_run(long_run):
    # With the slots migrated but iterations = 949 (what log(beta1_power) / log(0.9) gives for a
    # beta1_power stuck at a denormal), Keras' bias correction sqrt(1 - 0.999^950) is 0.78, not 1.
    prefix, expected = long_run[0][LONGEST]
    model = tf2_models.ShimModel(lambda x, training=None: dense_net(x), 5, outer_scope="adam")
    model.compile(optimizer=tf_keras.optimizers.Adam(LEARNING_RATE, epsilon=1e-8),
                  loss=tf_keras.losses.SparseCategoricalCrossentropy(from_logits=True))
    klc.warm_start(model, prefix, optimizer_state=True)
    model.optimizer.iterations.assign(949)
    model.fit(*continuation(LONGEST), batch_size=8, epochs=1, shuffle=False, verbose=0)
    assert np.abs(tf2_models.values(model)["adam/net/hidden/kernel"] - expected["adam/net/hidden/kernel"]).max() > 1e-5


@pytest.mark.parametrize("n", SAVED_AT)
def test_keras3_adam_resumes_long_tf1_runs_exactly(long_run, n):
    import keras

    runs, _ = long_run
    prefix, expected = runs[n]
    optimizer = keras.optimizers.Adam(LEARNING_RATE, epsilon=1e-8)
    model = keras.Sequential([keras.Input((5,)), keras.layers.Dense(6, activation="tanh", name="hidden"),
                              keras.layers.Dense(3, name="logits")], name="net")
    model.compile(optimizer=optimizer, loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True))
    report = klc.warm_start(model, prefix, {"adam/net/": "net/"}, optimizer_state=True)
    assert report.optimizer_state.startswith("Adam state of 8 slot variables, iterations = %d" % n)
    for step in range(n, n + M):
        model.train_on_batch(*batch(step))
    _assert_close({v.path: v.numpy() for v in model.weights}, expected, "net/", "adam/net/")


def test_without_global_step_the_step_comes_from_beta2_power(long_run):
    runs, no_step_prefix = long_run
    n = LONGEST
    optimizer = tf_keras.optimizers.Adam(LEARNING_RATE, epsilon=1e-8)
    model, report = _tf_keras_fit(no_step_prefix, optimizer, "adam", n)
    assert report.optimizer_state.startswith("Adam state of 8 slot variables, iterations = %d" % n)
    assert "beta2_power" in report.optimizer_state
    _assert_close(tf2_models.values(model), runs[n][1], "adam/", "adam/")


# A beta1_power stuck at a few denormal ulps: without flush-to-zero (some GPUs) float32 rounding keeps
# 0.9^t there for good, where log(beta1_power) / log(0.9) would claim some 950 steps.
STUCK_DENORMAL = 4 * 2.0 ** -149


@pytest.mark.parametrize("saved_at, global_step, powers, expected", [
    pytest.param(20000, 20000, {"beta1_power": STUCK_DENORMAL}, (20000, "from global_step"), id="stuck-denormal"),
    pytest.param(20000, None, {"beta1_power": STUCK_DENORMAL}, (20000, "from beta2_power"),
                 id="stuck-denormal-no-global-step"),
    pytest.param(500, None, {}, (500, "from beta1_power"), id="no-global-step"),
    # minimize() was not given global_step: it stayed 0.
    pytest.param(20000, 0, {}, (20000, "from beta2_power; global_step = 0 did not count Adam's steps"),
                 id="global-step-0"),
    # Both powers agree on another t: global_step counted something else.
    pytest.param(500, 123, {}, (500, "from beta1_power; global_step = 123 did not count Adam's steps"),
                 id="global-step-overruled"),
    # Only beta2_power tells t: wrong betas are as likely as a global_step counting something else.
    pytest.param(20000, 12345, {},
                 r"\(beta_1=0\.9, beta_2=0\.999\).*after t = 12345 .*its global_step.*beta2_power = 2\.0.*, "
                 r"not beta_2\^12346 = 4\.3.*drop it \(keras-legacy-ckpt rename .*'\^global_step\$'\)",
                 id="global-step-disagrees"),
    # Both powers underflowed (as after ~90,000 steps): they fit any such t, but not global_step = 100.
    pytest.param(20000, 100, {"beta2_power": 0.0},
                 r"after t = 100 .*beta1_power = 0, not beta_1\^101 = 2\.39.*beta2_power = 0, not beta_2\^101 = 0\.9"
                 r".*the underflowed powers cannot tell them: leave optimizer_state off",
                 id="global-step-disagrees-powers-underflowed"),
])
def test_where_the_step_count_comes_from(long_run, tmp_path, saved_at, global_step, powers, expected):
    """A real TF1 checkpoint after `saved_at` steps, with its global_step or beta powers replaced."""
    tf1 = tf.train.load_checkpoint(long_run[0][saved_at][0])
    tensors = {name: tf1.get_tensor(name) for name in tf1.get_variable_to_shape_map() if name != "global_step"}
    tensors.update({name: np.float32(value) for name, value in powers.items()})
    if global_step is not None:
        tensors["global_step"] = np.int64(global_step)
    prefix = str(tmp_path / "model.ckpt")
    tf.raw_ops.SaveV2(prefix=prefix, tensor_names=list(tensors), shape_and_slices=[""] * len(tensors),
                      tensors=list(tensors.values()))
    model = tf2_models.ShimModel(lambda x, training=None: dense_net(x), 5, outer_scope="adam")
    model.compile(optimizer=tf_keras.optimizers.Adam(LEARNING_RATE, epsilon=1e-8), loss="mse")
    if isinstance(expected, tuple):
        report = klc.warm_start(model, prefix, optimizer_state=True)
        assert report.optimizer_state == "Adam state of 8 slot variables, iterations = %d (%s)" % expected
    else:
        with pytest.raises(klc.LegacyCheckpointError, match=expected):
            klc.warm_start(model, prefix, optimizer_state=True)


def test_tf_keras_momentum_resumes_a_long_tf1_run_exactly(long_run):
    runs, _ = long_run
    n = LONGEST
    prefix, expected = runs[n]
    model, report = _tf_keras_fit(prefix, tf_keras.optimizers.SGD(LEARNING_RATE, momentum=0.9), "momentum", n)
    assert report.optimizer_state.startswith("SGD state of 4 slot variables, iterations = %d" % n)
    _assert_close(tf2_models.values(model), expected, "momentum/", "momentum/")
    cold, _ = _tf_keras_fit(prefix, tf_keras.optimizers.SGD(LEARNING_RATE, momentum=0.9), "momentum", n,
                            optimizer_state=False)
    kernel = tf2_models.values(cold)["momentum/net/hidden/kernel"]
    assert np.abs(kernel - expected["momentum/net/hidden/kernel"]).max() > 1e-4


def test_a_long_run_still_checks_the_betas(long_run):
    runs, _ = long_run
    prefix, _ = runs[LONGEST]
    model = tf2_models.ShimModel(lambda x, training=None: dense_net(x), 5, outer_scope="adam")
    model.compile(optimizer=tf_keras.optimizers.Adam(LEARNING_RATE, beta_2=0.99), loss="mse")
    model.warm_up()
    before = tf2_models.values(model)
    with pytest.raises(klc.LegacyCheckpointError, match=r"beta_2=0\.99\).*model\.ckpt-20000.*beta2_power"):
        klc.warm_start(model, prefix, optimizer_state=True)
    after = tf2_models.values(model)
    assert all(np.array_equal(before[k], after[k]) for k in before)


def _tf1_adam_checkpoint(directory, steps, beta1=0.9, beta2=0.999, global_step="counted"):
    """`steps` TF1 Adam steps on "adam/net"; global_step "counted" (minimize(global_step=...)),
    "uncounted" (created but not passed to minimize) or None (absent)."""
    with tf.Graph().as_default():
        x, y = batch(0)
        with v1.variable_scope("adam"):
            loss = v1.losses.sparse_softmax_cross_entropy(y, dense_net(x))
        step = v1.train.get_or_create_global_step() if global_step else None
        train_op = v1.train.AdamOptimizer(LEARNING_RATE, beta1, beta2, epsilon=1e-8).minimize(
            loss, global_step=step if global_step == "counted" else None)
        with v1.Session(config=SINGLE_THREAD) as sess:
            sess.run(v1.global_variables_initializer())
            train = sess.make_callable(train_op)
            for _ in range(steps):
                train()
            return v1.train.Saver().save(sess, os.path.join(directory, "model.ckpt"))


def test_both_beta_powers_underflowed_without_global_step_is_a_clear_error(ckpt_dir):
    # beta2 = 0.9: 0.9^t is flushed to 0 after ~830 steps, and 0.5^t long before.
    prefix = _tf1_adam_checkpoint(ckpt_dir, 900, beta1=0.5, beta2=0.9, global_step=None)
    model = tf2_models.ShimModel(lambda x, training=None: dense_net(x), 5, outer_scope="adam")
    model.compile(optimizer=tf_keras.optimizers.Adam(LEARNING_RATE, beta_1=0.5, beta_2=0.9), loss="mse")
    model.warm_up()
    before = tf2_models.values(model)
    with pytest.raises(klc.LegacyCheckpointError, match=r"%s: it has no global_step.*underflowed" % re.escape(prefix)):
        klc.warm_start(model, prefix, optimizer_state=True)
    assert int(model.optimizer.iterations.numpy()) == 0
    after = tf2_models.values(model)
    assert all(np.array_equal(before[k], after[k]) for k in before)


def test_a_global_step_that_adam_did_not_count_is_not_used(ckpt_dir):
    # minimize(loss) without global_step=: the checkpoint's global_step stays 0 while Adam steps.
    prefix = _tf1_adam_checkpoint(ckpt_dir, 7, global_step="uncounted")
    assert tf.train.load_checkpoint(prefix).get_tensor("global_step") == 0
    model = tf2_models.ShimModel(lambda x, training=None: dense_net(x), 5, outer_scope="adam")
    model.compile(optimizer=tf_keras.optimizers.Adam(LEARNING_RATE, epsilon=1e-8), loss="mse")
    report = klc.warm_start(model, prefix, optimizer_state=True)
    assert report.optimizer_state.startswith("Adam state of 8 slot variables, iterations = 7")
    assert int(model.optimizer.iterations.numpy()) == 7
