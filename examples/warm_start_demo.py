"""End-to-end demo: a TF1 program's checkpoint warm-starts a TF2 shim model inside fit.

1. A real TF1 graph program (variable scopes, v1 dense + batch norm layers, Adam, a
   global step) trains a few steps and saves with tf.compat.v1.train.Saver.
2. The same network code, now inside a tf_keras model decorated with the modeling
   shim and nested under an extra "backbone" scope, is trained with model.fit. The
   WarmStartFromTF1 callback loads the TF1 checkpoint with {"/": "backbone/"} at
   on_train_begin; SaveObjectCheckpoint writes a TF2 object checkpoint of the
   warm-started weights before the first step.
3. A fresh TF2 model restores that object checkpoint, and its outputs are compared
   with the TF1 program's outputs on the same inputs.

Run: python examples/warm_start_demo.py [--workdir DIR]
"""

import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import argparse  # noqa: E402
import tempfile  # noqa: E402
import warnings  # noqa: E402

import numpy as np  # noqa: E402
import tensorflow as tf  # noqa: E402
import tf_keras  # noqa: E402

import keras_legacy_ckpt as klc  # noqa: E402

tf.get_logger().setLevel("ERROR")
warnings.filterwarnings("ignore", message=r".*is deprecated.*")
warnings.filterwarnings("ignore", category=UserWarning, module=r"tf_keras.*")


def network(x, training):
    """The model code, written once in TF1 style and used by both programs."""
    with tf.compat.v1.variable_scope("net"):
        h = klc.v1_layers.dense(x, 16, activation=tf.nn.relu, name="hidden")
        h = klc.v1_layers.batch_normalization(h, training=training, name="bn")
        return klc.v1_layers.dense(h, 3, name="logits")


def run_tf1_program(ckpt_dir, x, y, x_eval, steps=20):
    """Trains `network` in a TF1 graph and session; returns the checkpoint and eval outputs."""
    os.makedirs(ckpt_dir, exist_ok=True)
    with tf.Graph().as_default():
        tf.compat.v1.set_random_seed(1)
        inputs = tf.compat.v1.placeholder(tf.float32, [None, 8])
        labels = tf.compat.v1.placeholder(tf.int64, [None])
        training = tf.compat.v1.placeholder_with_default(False, [])
        logits = network(inputs, training)
        loss = tf.compat.v1.losses.sparse_softmax_cross_entropy(labels, logits)
        global_step = tf.compat.v1.train.get_or_create_global_step()
        with tf.control_dependencies(tf.compat.v1.get_collection(tf.compat.v1.GraphKeys.UPDATE_OPS)):
            train_op = tf.compat.v1.train.AdamOptimizer(0.01).minimize(loss, global_step=global_step)
        saver = tf.compat.v1.train.Saver()
        with tf.compat.v1.Session() as sess:
            sess.run(tf.compat.v1.global_variables_initializer())
            for _ in range(steps):
                sess.run(train_op, {inputs: x, labels: y, training: True})
            path = saver.save(sess, os.path.join(ckpt_dir, "model.ckpt"), global_step=global_step)
            return path, sess.run(logits, {inputs: x_eval})


class Classifier(klc.LegacyCheckpointMixin, tf_keras.Model):
    """The TF2 model: the same TF1-style code under an extra "backbone" scope."""

    warm_up_input_spec = tf.TensorSpec([None, 8])

    @klc.track_tf1_style_variables
    def call(self, x, training=None):
        with tf.compat.v1.variable_scope("backbone"):
            return network(x, training)


def main(workdir):
    rng = np.random.default_rng(0)
    x = rng.normal(size=(64, 8)).astype(np.float32)
    y = rng.integers(0, 3, size=64).astype(np.int64)
    x_eval = rng.normal(size=(16, 8)).astype(np.float32)

    tf1_path, tf1_outputs = run_tf1_program(os.path.join(workdir, "tf1"), x, y, x_eval)
    print("1. TF1 program trained 20 steps and saved %s:" % tf1_path)
    for name, shape, dtype in klc.list_variables(tf1_path):
        print("     %-40s %-10s %s" % (name, shape, dtype))

    model = Classifier()
    model.warm_up()
    before = {v.name: v.numpy() for v in model.weights}
    tf.compat.v1.train.init_from_checkpoint(tf1_path, {"/": "backbone/"})
    unchanged = all(np.array_equal(before[v.name], v.numpy()) for v in model.weights)
    print("\n2. The TF1 way, tf.compat.v1.train.init_from_checkpoint, in eager mode: no error, and "
          "%s." % ("no variable changed" if unchanged else "some variables changed"))

    model.compile(optimizer=tf_keras.optimizers.Adam(0.01),
                  loss=tf_keras.losses.SparseCategoricalCrossentropy(from_logits=True))
    saver = klc.SaveObjectCheckpoint(os.path.join(workdir, "tf2"), save_on="train_begin")
    warm = klc.WarmStartFromTF1(tf1_path, {"/": "backbone/"}, verbose=0)
    print("\n3. model.fit with [SaveObjectCheckpoint(save_on='train_begin'), WarmStartFromTF1(...)]:")
    model.fit(x, y, batch_size=16, epochs=2, verbose=0, callbacks=[saver, warm])
    print(warm.report.summary())
    print("   TF2 object checkpoint of the warm-started weights: %s" % saver.latest_path)

    restored = Classifier()
    klc.restore_object_checkpoint(restored, saver.latest_path)
    tf2_outputs = restored(x_eval, training=False).numpy()
    diff = float(np.max(np.abs(tf2_outputs - tf1_outputs)))
    trained_diff = float(np.max(np.abs(model(x_eval, training=False).numpy() - tf1_outputs)))
    print("\n4. A fresh TF2 model restored from that checkpoint, on 16 eval inputs:")
    print("   max |TF2 - TF1| output difference: %.3g (%s)"
          % (diff, "bit-identical" if diff == 0 else "within float32 rounding"))
    print("   (after 2 epochs of fit the trained model differs from TF1 by %.3g, as it should)" % trained_diff)
    np.testing.assert_allclose(tf2_outputs, tf1_outputs, rtol=1e-6, atol=1e-6)
    print("\nOK: TF2 outputs equal the TF1 program's outputs.")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--workdir", help="where to write the checkpoints (default: a temp dir)")
    args = parser.parse_args()
    if args.workdir:
        main(args.workdir)
    else:
        with tempfile.TemporaryDirectory() as tmp:
            main(tmp)
