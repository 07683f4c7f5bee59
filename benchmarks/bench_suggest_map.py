"""Name matching on 12,000 variables: suggest_assignment_map and the wrong-map error message.

The checkpoint side is a TF1 encoder of repeated, same-shaped blocks
(`encoder/layer_0000/attention/query/kernel`, ... 12 variables per block); the model side is
the same encoder renamed to `enc_v2/`. Timed (TensorFlow's import and building the inputs
excluded):

  suggest_map, renamed scope          name/shape dicts only: the proposal is {"encoder/": "enc_v2/"}
  suggest_map, renamed + new head     a head of another shape under both scopes, so the broad entry
                                      is refused and narrower ones are needed
  warm_start, wrong map -> error      klc.warm_start on a real checkpoint with a map that finds
                                      nothing: the time to the MissingVariablesError, whose message has
                                      per-name "closest" hints and a suggested map (strict=True), or
                                      the closest scopes and a suggested map (strict=False); and the
                                      message alone (warm_start's _missing_message on the same plan)
  suggest_assignment_map, real        the public call on the same checkpoint and model

Speed is measured here, not asserted in the tests.
Run: python benchmarks/bench_suggest_map.py [--blocks 1000] [--repeat 3] [--workdir DIR] [--saver]
"""

import argparse
import importlib
import os
import shutil
import tempfile
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import tensorflow as tf  # noqa: E402

import keras_legacy_ckpt as klc  # noqa: E402
from keras_legacy_ckpt.assignment_map import plan_assignment_map, suggest_map  # noqa: E402
from keras_legacy_ckpt.checkpoint_reader import CheckpointFile  # noqa: E402
from keras_legacy_ckpt.mixin import legacy_variables_of  # noqa: E402

tf.get_logger().setLevel("ERROR")

# One block: 12 variables, most of them sharing their last name and shape with other blocks.
BLOCK = {
    "attention/query/kernel": (4, 4), "attention/query/bias": (4,),
    "attention/key/kernel": (4, 4), "attention/key/bias": (4,),
    "attention/value/kernel": (4, 4), "attention/value/bias": (4,),
    "ffn/dense/kernel": (4, 8), "ffn/dense/bias": (8,),
    "ffn/dense_1/kernel": (8, 4), "ffn/dense_1/bias": (4,),
    "layer_norm/gamma": (4,), "layer_norm/beta": (4,),
}


def encoder_shapes(scope, blocks, head=None):
    shapes = {"%s/layer_%04d/%s" % (scope, i, name): shape for i in range(blocks) for name, shape in BLOCK.items()}
    if head:
        shapes["%s/head/kernel" % scope] = head
    return shapes


def write_checkpoint(prefix, shapes, with_saver):
    """A TF1 V2 checkpoint with one zero tensor per name.

    with_saver: a TF1 graph with one get_variable per name, saved by tf.compat.v1.train.Saver
    (minutes for 12,000 variables: graph building costs ~10 ms a variable). Otherwise the
    SaveV2 op that Saver runs, called once with every tensor: the same bundle, in seconds.
    """
    if not with_saver:
        names = list(shapes)
        tf.raw_ops.SaveV2(prefix=prefix, tensor_names=names, shape_and_slices=[""] * len(names),
                          tensors=[tf.zeros(shapes[n]) for n in names])
        return prefix
    with tf.Graph().as_default():
        for name, shape in shapes.items():
            tf.compat.v1.get_variable(name, shape, initializer=tf.compat.v1.zeros_initializer())
        saver = tf.compat.v1.train.Saver()
        with tf.compat.v1.Session() as sess:
            sess.run(tf.compat.v1.global_variables_initializer())
            return saver.save(sess, prefix, write_meta_graph=False)


class Encoder(klc.LegacyCheckpointMixin, tf.Module):
    """A TF2 module whose variables carry the given legacy names."""

    def __init__(self, shapes):
        super().__init__()
        self.weights = [tf.Variable(tf.zeros(shape), name=name) for name, shape in shapes.items()]


def timed(fn, repeat=1):
    """(best wall-clock seconds of `repeat` runs, the result): the machine's noise only adds time."""
    best = float("inf")
    for _ in range(repeat):
        start = time.perf_counter()
        result = fn()
        best = min(best, time.perf_counter() - start)
    return best, result


def error_message(model, prefix, assignment_map, strict=True):
    try:
        klc.warm_start(model, prefix, assignment_map, strict=strict)
    except klc.MissingVariablesError as e:
        return str(e)
    raise AssertionError("expected MissingVariablesError")


def message_only(model, prefix, assignment_map, repeat):
    """The share of the error path spent on the message: warm_start's _missing_message (closest
    keys for the first 20 missing names, and a suggested map) on the same plan."""
    warm_start_module = importlib.import_module("keras_legacy_ckpt.warm_start")
    ckpt = CheckpointFile(prefix)
    variables = legacy_variables_of(model)
    plan = plan_assignment_map(assignment_map, variables, ckpt.tensors)
    return timed(lambda: warm_start_module._missing_message(ckpt, plan.missing(), plan.not_found, variables), repeat)


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--blocks", type=int, default=1000, help="repeated blocks of 12 variables (default 1000)")
    parser.add_argument("--workdir", help="where to write the checkpoint (default: a temp dir, removed); "
                        "a checkpoint already there is reused")
    parser.add_argument("--repeat", type=int, default=3, help="runs per operation; the best is shown (default 3)")
    parser.add_argument("--saver", action="store_true",
                        help="write the checkpoint from a TF1 graph with Saver (minutes) instead of SaveV2")
    options = parser.parse_args()
    workdir = options.workdir or tempfile.mkdtemp(prefix="klc-bench-suggest-")
    rows = []
    try:
        ckpt_shapes = encoder_shapes("encoder", options.blocks)
        count = len(ckpt_shapes)

        repeat = options.repeat
        model_shapes = encoder_shapes("enc_v2", options.blocks)
        seconds, result = timed(lambda: suggest_map(model_shapes, ckpt_shapes), repeat)
        rows.append(("suggest_map, renamed scope", seconds, result))
        model_shapes = encoder_shapes("enc_v2", options.blocks, head=(4, 7))
        with_head = encoder_shapes("encoder", options.blocks, head=(4, 3))
        seconds, result = timed(lambda: suggest_map(model_shapes, with_head), repeat)
        rows.append(("suggest_map, renamed + new head", seconds, result))

        prefix = os.path.join(workdir, "model.ckpt")
        if not os.path.exists(prefix + ".index"):
            start = time.perf_counter()
            write_checkpoint(prefix, ckpt_shapes, options.saver)
            print("checkpoint of %d variables written by %s in %.1f s"
                  % (count, "Saver" if options.saver else "SaveV2", time.perf_counter() - start))
        model = Encoder(encoder_shapes("enc_v2", options.blocks))
        for assignment_map in (None, {"/": "enc_v2/"}):
            seconds, message = timed(lambda: error_message(model, prefix, assignment_map), repeat)
            rows.append(("warm_start, map %r -> error" % (assignment_map,), seconds, message))
            seconds, message = message_only(model, prefix, assignment_map, repeat)
            rows.append(("  of which the message", seconds, message))
        seconds, message = timed(lambda: error_message(model, prefix, {"/": "enc_v2/"}, strict=False), repeat)
        rows.append(("same, strict=False (loads nothing)", seconds, message))
        seconds, result = timed(lambda: klc.suggest_assignment_map(model, prefix), repeat)
        rows.append(("suggest_assignment_map, real", seconds, result))
    finally:
        if not options.workdir:
            shutil.rmtree(workdir, ignore_errors=True)

    print("\n%d variables (%d blocks of %d); best of %d runs\n" % (count, options.blocks, len(BLOCK), options.repeat))
    print("%-40s %9s  %s" % ("operation", "seconds", "outcome"))
    for name, seconds, result in rows:
        print("%-40s %9.3f  %s" % (name, seconds, outcome(result)))
    message = rows[-4][2]
    print("\nThe error message (first lines and the fix):")
    lines = message.splitlines()
    print("\n".join(lines[:4] + ["  ..."] + lines[-2:]))


def outcome(result):
    if isinstance(result, str):
        return "%d-line message" % len(result.splitlines())
    entries = result.assignment_map
    shown = ", ".join("%r: %r" % kv for kv in list(entries.items())[:2]) + (", ..." if len(entries) > 2 else "")
    crosswise = sum(_block(name) != _block(key) for name, key in result.matched.items())
    return "%d map entries {%s}, %d matched (%d crosswise), %d unmatched, %d ambiguous" % (
        len(entries), shown, len(result.matched), crosswise, len(result.unmatched),
        len(getattr(result, "ambiguous", {})))


def _block(name):
    return name.split("/")[1]


if __name__ == "__main__":
    main()
