"""A TF2 training binary that takes its warm start from the command line (absl flags).

    python examples/train_binary.py --warm_start_from=/old/model.ckpt-1000 \
        --warm_start_assignment_map=/=backbone/ --object_checkpoint_dir=/tmp/tf2_ckpts

With no TF1 checkpoint at hand, --write_tf1_checkpoint=DIR first runs a small TF1 program
that writes one there (the demo's), so the binary can be tried end to end.
"""

import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import sys  # noqa: E402

import numpy as np  # noqa: E402
import tf_keras  # noqa: E402
from absl import app, flags  # noqa: E402

from keras_legacy_ckpt import flags as klc_flags  # noqa: E402

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import warm_start_demo  # noqa: E402  (the network code and the TF1 program)

klc_flags.define_flags()
flags.DEFINE_integer("epochs", 2, "Training epochs.")
flags.DEFINE_string("write_tf1_checkpoint", None, "Directory in which to first write a TF1 checkpoint of the "
                    "demo network, for trying this binary; pass --warm_start_from=DIR too.")
FLAGS = flags.FLAGS


def _data():
    rng = np.random.default_rng(0)
    x = rng.normal(size=(64, 8)).astype(np.float32)
    y = rng.integers(0, 3, size=64).astype(np.int64)
    return x, y


def parse_flags(argv):
    """app.run's flag parser: --write_tf1_checkpoint writes the demo's TF1 checkpoint first, because
    --warm_start_from must name an existing checkpoint when the flags are parsed."""
    demo = flags.FlagValues()
    flags.DEFINE_string("write_tf1_checkpoint", None, "", flag_values=demo)
    demo(argv, known_only=True)
    if demo.write_tf1_checkpoint:
        x, y = _data()
        path, _ = warm_start_demo.run_tf1_program(demo.write_tf1_checkpoint, x, y, x[:4])
        print("wrote TF1 checkpoint %s" % path)
    return app.parse_flags_with_usage(argv)


def main(argv):
    del argv
    x, y = _data()
    model = warm_start_demo.Classifier()
    model.compile(optimizer=tf_keras.optimizers.Adam(0.01),
                  loss=tf_keras.losses.SparseCategoricalCrossentropy(from_logits=True))
    callbacks = klc_flags.callbacks_from_flags(sample_input=x[:1])
    history = model.fit(x, y, batch_size=16, epochs=FLAGS.epochs, verbose=0, callbacks=callbacks)
    print("trained %d epochs, final loss %.4f" % (FLAGS.epochs, history.history["loss"][-1]))
    for callback in callbacks:
        if getattr(callback, "latest_path", None):
            print("TF2 object checkpoint: %s" % callback.latest_path)


if __name__ == "__main__":
    app.run(main, flags_parser=parse_flags)
