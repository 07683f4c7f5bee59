"""Crash-safety trials: SIGKILL a process while it renames a checkpoint or saves object checkpoints.

After each kill: the source (rename) and the latest checkpoint the state file names (saves) must
be intact and loadable, and a destination is either absent or complete and correct: no partial
output is ever taken for a complete one. Used by tests/test_crash_safety.py (a few trials)
and fuzz/run_crash_trials.py (N >= 50).
"""

import os
import signal
import subprocess
import sys
import time

import numpy as np
import tensorflow as tf

import keras_legacy_ckpt as klc

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

RENAME_LOOP = """
import os, sys
os.environ["TF_CPP_MIN_LOG_LEVEL"] = "2"
import keras_legacy_ckpt as klc
src, dst = sys.argv[1], sys.argv[2]
print("ready", flush=True)
i = 0
while True:
    klc.rename_checkpoint(src, dst, {"/": "v%d/" % i}, overwrite=True, mode=("stream", "zero_copy")[i % 2])
    i += 1
"""

SAVE_LOOP = """
import os, sys
os.environ["TF_CPP_MIN_LOG_LEVEL"] = "2"
import numpy as np, tf_keras
import keras_legacy_ckpt as klc
sys.path.insert(0, %r)
from fuzz.crash import build_model
model = build_model()
model.compile(optimizer="adam", loss="mse")
x, y = np.ones((8, 256), np.float32), np.zeros((8, 256), np.float32)
print("ready", flush=True)
model.fit(x, y, epochs=100000, verbose=0,
          callbacks=[klc.SaveObjectCheckpoint(sys.argv[1], save_on="epoch_end", max_to_keep=3)])
""" % ROOT


def build_model():
    import tf_keras

    return tf_keras.Sequential([tf_keras.Input([256]), tf_keras.layers.Dense(1024), tf_keras.layers.Dense(256)])


def write_source(directory):
    """A real TF1 checkpoint of about 8 MB."""
    with tf.Graph().as_default():
        for i in range(8):
            tf.compat.v1.get_variable("layer_%d/kernel" % i, [512, 512])
        tf.compat.v1.train.get_or_create_global_step()
        saver = tf.compat.v1.train.Saver()
        with tf.compat.v1.Session() as sess:
            sess.run(tf.compat.v1.global_variables_initializer())
            return saver.save(sess, os.path.join(directory, "src", "model.ckpt"))


def _run_and_kill(code, args, rng, max_delay):
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="2", PYTHONPATH=ROOT)
    process = subprocess.Popen([sys.executable, "-c", code] + args, stdout=subprocess.PIPE,
                               stderr=subprocess.DEVNULL, text=True, env=env)
    try:
        if process.stdout.readline().strip() != "ready":
            raise AssertionError("the child process did not start")
        time.sleep(rng.uniform(0.05, max_delay))
        if process.poll() is not None:
            raise AssertionError("the child process ended on its own (exit %s)" % process.returncode)
    finally:
        process.send_signal(signal.SIGKILL)
        process.wait()


def rename_trial(source, expected, workdir, rng, max_delay=1.5):
    """Returns "complete" or "absent" for the destination; raises AssertionError on damage."""
    dst = os.path.join(workdir, "dst", "model.ckpt")
    _run_and_kill(RENAME_LOOP, [source, dst], rng, max_delay)
    assert klc.verify_checkpoint(source) == len(expected)
    reader = tf.train.load_checkpoint(source)
    for name, value in expected.items():
        assert np.array_equal(reader.get_tensor(name), value), "source tensor %s changed" % name
    if not os.path.exists(dst + ".index"):
        return "absent"
    klc.verify_checkpoint(dst)
    out = tf.train.load_checkpoint(dst)
    names = out.get_variable_to_shape_map()
    scopes = {n.split("/", 1)[0] for n in names}
    assert len(scopes) == 1 and len(names) == len(expected), "a mixed or partial destination: %s" % scopes
    scope = scopes.pop()
    for name, value in expected.items():
        assert np.array_equal(out.get_tensor(scope + "/" + name), value), "destination tensor %s is wrong" % name
    return "complete"


def save_trial(workdir, rng, max_delay=4.0):
    """Returns (checkpoints listed, of which swept) after the kill; raises on damage.

    The latest checkpoint must restore. tf.train.CheckpointManager records the new checkpoint,
    then deletes the oldest, then records again: a kill in between leaves an older entry
    listed whose files are (partly) gone. Such an entry must fail as missing, never load.
    """
    directory = os.path.join(workdir, "tf2")
    _run_and_kill(SAVE_LOOP, [directory], rng, max_delay)
    state = tf.train.get_checkpoint_state(directory)
    if state is None:
        return 0, 0
    swept = 0
    for path in state.all_model_checkpoint_paths:
        path = path if os.path.isabs(path) else os.path.join(directory, path)
        if path == state.model_checkpoint_path or os.path.basename(path) == state.model_checkpoint_path:
            continue
        try:
            klc.verify_checkpoint(path)
        except klc.CheckpointNotFoundError:
            swept += 1
        except klc.CorruptCheckpointError as e:
            assert "is missing" in str(e), e  # data deleted before the index: still never loads
            swept += 1
    klc.restore_object_checkpoint(build_model(), directory)  # the latest
    return len(state.all_model_checkpoint_paths), swept
