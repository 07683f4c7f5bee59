"""The demo end to end, and the library under TF_USE_LEGACY_KERAS=1 (needs a fresh process)."""

import importlib.util
import os
import subprocess
import sys
import textwrap

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def test_demo_outputs_equal_tf1(tmp_path, capsys):
    spec = importlib.util.spec_from_file_location("warm_start_demo", os.path.join(ROOT, "examples", "warm_start_demo.py"))
    demo = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(demo)
    demo.main(str(tmp_path))
    out = capsys.readouterr().out
    assert "no variable changed" in out
    assert "loaded:  8 variables" in out
    assert "OK: TF2 outputs equal the TF1 program's outputs." in out


LEGACY_KERAS_PROGRAM = textwrap.dedent('''
    import os, sys, tempfile
    import numpy as np
    import tensorflow as tf
    import tf_keras
    assert tf.keras is tf_keras or tf.keras.__name__.startswith("tf_keras"), tf.keras
    import keras_legacy_ckpt as klc

    def net(x, training=False):
        with tf.compat.v1.variable_scope("net"):
            return tf.compat.v1.layers.dense(x, 3, name="out")

    tmp = tempfile.mkdtemp()
    with tf.Graph().as_default():
        net(tf.compat.v1.placeholder(tf.float32, [None, 4]))
        tf.compat.v1.train.get_or_create_global_step()
        saver = tf.compat.v1.train.Saver()
        with tf.compat.v1.Session() as sess:
            sess.run(tf.compat.v1.global_variables_initializer())
            prefix = saver.save(sess, os.path.join(tmp, "model.ckpt"))
    expected = tf.train.load_checkpoint(prefix).get_tensor("net/out/kernel")

    class Model(klc.LegacyCheckpointMixin, tf.keras.Model):
        warm_up_input_spec = tf.TensorSpec([None, 4])

        @tf.compat.v1.keras.utils.track_tf1_style_variables
        def call(self, x):
            with tf.compat.v1.variable_scope("backbone"):
                return net(x)

    model = Model()
    model.compile(optimizer="sgd", loss="mse")
    warm = klc.WarmStartFromTF1(prefix, {"/": "backbone/"}, verbose=0)
    model.fit(np.zeros((4, 4), np.float32), np.zeros((4, 3), np.float32), epochs=1, verbose=0,
              callbacks=[warm, klc.SaveObjectCheckpoint(os.path.join(tmp, "tf2"))])
    assert sorted(warm.report.loaded) == ["backbone/net/out/bias", "backbone/net/out/kernel"], warm.report.loaded
    restored = Model()
    klc.restore_object_checkpoint(restored, os.path.join(tmp, "tf2"))
    np.testing.assert_array_equal(restored.legacy_variables()["backbone/net/out/kernel"].numpy(), expected)
    print("LEGACY-KERAS-OK")
''')


def test_works_with_tf_use_legacy_keras(tmp_path):
    env = dict(os.environ, TF_USE_LEGACY_KERAS="1", TF_CPP_MIN_LOG_LEVEL="2", PYTHONPATH=ROOT)
    result = subprocess.run([sys.executable, "-c", LEGACY_KERAS_PROGRAM], env=env, capture_output=True,
                            text=True, timeout=300, cwd=str(tmp_path))
    assert "LEGACY-KERAS-OK" in result.stdout, result.stderr[-3000:]
