"""Mutate real TF1 checkpoints and check that keras-legacy-ckpt fails cleanly on every mutant.

For each mutant (byte flips, truncations and zero-fills of the index or a data file, garbage
indexes, splices of two checkpoints' indexes) a warm start must either load exactly the
original values, or raise one of our errors naming the checkpoint while leaving every
variable as it was. Any other exception, a wrong value, or a crash of the interpreter is
a failure. Used by tests/test_fuzz.py (a short run) and fuzz/run_fuzz.py (long runs).
"""

import dataclasses
import os
import random
import shutil
from typing import Dict, List, Optional

import numpy as np
import tensorflow as tf

import keras_legacy_ckpt as klc

v1 = tf.compat.v1
OPS = ("flip", "truncate", "zero", "garbage_index", "splice_index")


def network(x, training=False):
    with v1.variable_scope("net"):
        h = tf.nn.relu(tf.matmul(x, v1.get_variable("w1", [4, 8])) + v1.get_variable("b1", [8]))
        h = tf.matmul(h, v1.get_variable("w2", [8, 3]))
        return h * tf.cast(v1.get_variable("scale", [], dtype=tf.float16), tf.float32)


def write_checkpoints(directory: str) -> List[str]:
    """Two real TF1 checkpoints of the same graph (an optimizer, a global step), different values."""
    prefixes = []
    for seed in (1, 2):
        with tf.Graph().as_default():
            v1.set_random_seed(seed)
            x = tf.constant(np.ones([2, 4], np.float32))
            loss = tf.reduce_sum(network(x) ** 2)
            step = v1.train.get_or_create_global_step()
            train = v1.train.MomentumOptimizer(0.01, 0.9).minimize(loss, global_step=step)
            saver = v1.train.Saver()
            with v1.Session() as sess:
                sess.run(v1.global_variables_initializer())
                sess.run(train)
                prefixes.append(saver.save(sess, os.path.join(directory, "seed%d" % seed, "model.ckpt"),
                                           global_step=step))
    return prefixes


class Module(klc.LegacyCheckpointMixin, tf.Module):
    warm_up_input_spec = tf.TensorSpec([None, 4])

    @klc.track_tf1_style_variables
    def __call__(self, x):
        return network(x)


@dataclasses.dataclass(frozen=True)
class Mutation:
    op: str
    target: str          # "index" or "data"
    position: float      # where, as a fraction of the file's size
    value: int           # the bit to flip, or the garbage's length and seed
    span: int = 1        # bytes zeroed


def random_mutation(rng: random.Random) -> Mutation:
    op = rng.choice(OPS)
    target = "index" if op in ("garbage_index", "splice_index") else rng.choice(["index", "data"])
    return Mutation(op, target, rng.random(), rng.randrange(0, 4096), rng.choice([1, 4, 16, 64]))


def _files(prefix: str) -> Dict[str, str]:
    return {"index": prefix + ".index", "data": prefix + ".data-00000-of-00001"}


def apply(mutation: Mutation, source: str, other: str, directory: str) -> str:
    """Copies checkpoint `source` into `directory`, damages the copy, returns its prefix."""
    shutil.rmtree(directory, ignore_errors=True)
    os.makedirs(directory)
    prefix = os.path.join(directory, "model.ckpt")
    for kind, path in _files(source).items():
        shutil.copyfile(path, _files(prefix)[kind])
    path = _files(prefix)[mutation.target]
    with open(path, "rb") as f:
        data = bytearray(f.read())
    at = min(int(mutation.position * len(data)), max(len(data) - 1, 0))
    if mutation.op == "flip":
        data[at] ^= 1 << (mutation.value % 8)
    elif mutation.op == "truncate":
        del data[at:]
    elif mutation.op == "zero":
        data[at:at + mutation.span] = bytes(len(data[at:at + mutation.span]))
    elif mutation.op == "garbage_index":
        data = bytearray(random.Random(mutation.value).randbytes(mutation.value % 600))
    elif mutation.op == "splice_index":
        with open(_files(other)["index"], "rb") as f:
            foreign = f.read()
        data = data[:at] + foreign[at:]
    with open(path, "wb") as f:
        f.write(bytes(data))
    return prefix


class Checker:
    """Runs warm starts on mutants and classifies what happened."""

    def __init__(self, workdir: str):
        self.workdir = workdir
        self.source, self.other = write_checkpoints(workdir)
        reader = tf.train.load_checkpoint(self.source)
        self.expected = {n: reader.get_tensor(n) for n in reader.get_variable_to_shape_map()}
        self.module = Module()
        self.module.warm_up()
        self.variables = self.module.legacy_variables()
        self.initial = {n: np.full(v.shape, 7, v.dtype.as_numpy_dtype) for n, v in self.variables.items()}

    def check(self, mutation: Mutation) -> str:
        """Returns "loaded" or the error class name; raises AssertionError on a real failure."""
        for name, variable in self.variables.items():
            variable.assign(self.initial[name])
        prefix = apply(mutation, self.source, self.other, os.path.join(self.workdir, "mutant"))
        try:
            # Odd values also exercise the many-batch path (a few bytes per batch).
            report = klc.warm_start(self.module, prefix, batch_bytes=16 if mutation.value % 2 else 1 << 26)
        except klc.LegacyCheckpointError as e:
            self._assert_unchanged(mutation, e)
            if isinstance(e, (klc.CorruptCheckpointError, klc.CheckpointNotFoundError)):
                assert prefix in str(e) or os.path.dirname(prefix) in str(e), (mutation, str(e))
            return type(e).__name__
        except BaseException as e:  # anything else is a finding
            raise AssertionError("%r raised %s: %s" % (mutation, type(e).__name__, e)) from e
        assert len(report.loaded) == len(self.variables), (mutation, report.loaded)
        for name, key in report.loaded.items():
            np.testing.assert_array_equal(self.variables[name].numpy(), self.expected[key],
                                          err_msg="%r loaded a wrong value into %s" % (mutation, name))
        return "loaded"

    def _assert_unchanged(self, mutation: Mutation, error: Exception) -> None:
        for name, variable in self.variables.items():
            assert np.array_equal(variable.numpy(), self.initial[name]), (
                "%r: %s was changed although warm_start raised %s" % (mutation, name, error))


def run(checker: Checker, mutations: List[Mutation], counts: Optional[Dict[str, int]] = None) -> Dict[str, int]:
    counts = {} if counts is None else counts
    for mutation in mutations:
        outcome = checker.check(mutation)
        counts[outcome] = counts.get(outcome, 0) + 1
    return counts
