"""TF1 behaviour (tf.compat.v1.disable_v2_behavior()): warm starts assign through a session, or raise.

disable_v2_behavior changes the whole process, so the checks run in a fresh one.
"""

import os
import subprocess
import sys
import textwrap

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

PROGRAM = textwrap.dedent('''
    import os, sys
    os.environ["TF_CPP_MIN_LOG_LEVEL"] = "2"
    sys.path.insert(0, os.environ["KLC_ROOT"])
    import numpy as np
    import tensorflow as tf
    import tf_keras
    import keras_legacy_ckpt as klc
    from tests import tf1_programs, tf2_models
    from tests.tf1_programs import mlp, v1

    workdir = sys.argv[1]
    prefix, values = tf1_programs.save_tf1_checkpoint(workdir, mlp, 5)
    oracle = tf1_programs.tf1_init_from_checkpoint(prefix, mlp, 5, {"/": "backbone/"})
    tf.compat.v1.disable_v2_behavior()
    x = np.random.default_rng(0).normal(size=(16, 5)).astype(np.float32)
    y = np.zeros(16, np.int64)

    # 1. tf_keras fit in graph mode: the warm start runs in the tf_keras backend session.
    model = tf2_models.ShimModel(mlp, 5)
    model.compile(optimizer=tf_keras.optimizers.legacy.SGD(0.1),
                  loss=tf_keras.losses.SparseCategoricalCrossentropy(from_logits=True))
    seen = {}

    class Record(tf_keras.callbacks.Callback):
        def on_train_begin(self, logs=None):
            seen.update({n: tf_keras.backend.get_value(v) for n, v in self.model.legacy_variables().items()})

    warm = klc.WarmStartFromTF1(prefix, {"/": "backbone/"}, verbose=0)
    save = klc.SaveObjectCheckpoint(os.path.join(workdir, "tf2"))  # saves through tf_keras's session
    model.fit(x, y, batch_size=8, epochs=1, verbose=0, callbacks=[warm, Record(), save])
    assert sorted(warm.report.loaded) == sorted(oracle), (warm.report.loaded, sorted(oracle))
    for name in oracle:
        np.testing.assert_array_equal(seen[name], oracle[name], err_msg=name)
    saved = tf.train.load_checkpoint(save.latest_path)
    kernel = tf_keras.backend.get_value(model.legacy_variables()["backbone/net/hidden/kernel"])
    assert any(np.array_equal(saved.get_tensor(key), kernel) for key in saved.get_variable_to_shape_map())
    print("FIT-OK", flush=True)

    # 2. A TF1 graph and a session of the user's own, as with init_from_checkpoint.
    with tf.Graph().as_default():
        module = tf2_models.ShimModule(mlp, 5)
        module(tf.compat.v1.placeholder(tf.float32, [None, 5]))
        with tf.compat.v1.Session() as sess:
            sess.run(tf.compat.v1.global_variables_initializer())
            report = klc.warm_start(module, prefix, {"/": "backbone/"})
            got = {n: sess.run(v) for n, v in module.legacy_variables().items()}
    assert sorted(report.loaded) == sorted(got) == sorted(oracle)
    for name in oracle:
        np.testing.assert_array_equal(got[name], oracle[name], err_msg=name)
    print("SESSION-OK", flush=True)

    # 3. No session holds the graph: an error, never a report of values that were not assigned.
    with tf.Graph().as_default():
        module = tf2_models.ShimModule(mlp, 5)
        module(tf.compat.v1.placeholder(tf.float32, [None, 5]))
        try:
            klc.warm_start(module, prefix, {"/": "backbone/"})
        except klc.LegacyCheckpointError as e:
            assert "no session" in str(e), e
            print("NO-SESSION-OK", flush=True)
''')


def test_graph_mode_warm_start_assigns_through_the_session_or_raises(tmp_path):
    env = dict(os.environ, KLC_ROOT=ROOT, TF_CPP_MIN_LOG_LEVEL="2")
    result = subprocess.run([sys.executable, "-c", PROGRAM, str(tmp_path)], env=env, capture_output=True,
                            text=True, timeout=300)
    for marker in ("FIT-OK", "SESSION-OK", "NO-SESSION-OK"):
        assert marker in result.stdout, result.stderr[-4000:]
