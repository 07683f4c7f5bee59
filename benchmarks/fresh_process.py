"""The harness the benchmarks share: each contender runs in a fresh Python process, so its imports,
time and peak RSS are its own, and reports one JSON line.

    from fresh_process import run, warm, WRITE_TF1_CHECKPOINT
    run(WRITE_TF1_CHECKPOINT, dst=prefix, count=64, elements=4_000_000)
    warm(prefix)                                   # the page cache holds the checkpoint
    run('''start = time.perf_counter(); ...; report(seconds=time.perf_counter() - start)''', src=prefix)
"""

import argparse
import contextlib
import json
import os
import shutil
import subprocess
import sys
import tempfile
import textwrap
from typing import Iterator, Optional

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

# Runs first in every contender: `args` (the keywords given to run), `report(**values)` (prints
# them with the process's peak RSS), `_started` (before any import but these).
PRELUDE = textwrap.dedent("""
    import time
    _started = time.perf_counter()
    import json, os, resource, sys
    os.environ["TF_CPP_MIN_LOG_LEVEL"] = "2"
    args = json.loads(sys.argv[1])
    def report(**values):
        values["peak_rss_mb"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
        print(json.dumps(values))
""")

# A TF1 checkpoint written by a TF1 program: `count` float32 kernels of `elements` each under
# layer_NN/ scopes, and a global step, saved by tf.compat.v1.train.Saver at args["dst"].
WRITE_TF1_CHECKPOINT = """
    import tensorflow as tf
    count, elements = args["count"], args["elements"]
    with tf.Graph().as_default():
        for i in range(count):
            with tf.compat.v1.variable_scope("layer_%02d" % i):
                tf.compat.v1.get_variable("kernel", [elements // 1024, 1024],
                                          initializer=tf.compat.v1.random_uniform_initializer(seed=i))
        tf.compat.v1.train.get_or_create_global_step()
        saver = tf.compat.v1.train.Saver()
        with tf.compat.v1.Session() as sess:
            sess.run(tf.compat.v1.global_variables_initializer())
            saver.save(sess, args["dst"], write_meta_graph=False)
    report()
"""


def run(body: str, prelude: str = "", **args) -> dict:
    """Runs PRELUDE, then `prelude` and `body` (each dedented), in a fresh interpreter; returns what it reported."""
    code = PRELUDE + textwrap.dedent(prelude) + textwrap.dedent(body)
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="2")
    result = subprocess.run([sys.executable, "-c", code, json.dumps(args)], capture_output=True, text=True,
                            env=env, cwd=ROOT)
    if result.returncode != 0:
        raise RuntimeError(result.stderr[-3000:])
    return json.loads(result.stdout.strip().splitlines()[-1])


def files_of(prefix: str) -> list:
    directory, base = os.path.split(prefix)
    return [os.path.join(directory, n) for n in os.listdir(directory) if n.startswith(base + ".")]


def warm(prefix: str) -> None:
    """Reads the checkpoint's files once, so every contender finds them in the page cache."""
    for path in files_of(prefix):
        with open(path, "rb") as f:
            while f.read(64 << 20):
                pass


# 10,000 small tensors, as a Saver of 10,000 variables writes them (tf.raw_ops.SaveV2), at args["dst"].
WRITE_MANY_TENSORS = """
    import tensorflow as tf
    names = ["block_%05d/dense/kernel" % i for i in range(10000)]
    tf.raw_ops.SaveV2(prefix=args["dst"], tensor_names=names, shape_and_slices=[""] * len(names),
                      tensors=[tf.random.uniform([4, 4], seed=i) for i, _ in enumerate(names)])
    report()
"""


def build_checkpoints(workdir: str, gb: float, count: int = 64) -> tuple:
    """(prefix of 10,000 small tensors, prefix of `gb` GB in `count` float32 kernels + global step, elements per
    kernel), written by TensorFlow into `workdir` unless they are there already."""
    many = os.path.join(workdir, "many", "model.ckpt")
    if not os.path.exists(many + ".index"):
        os.makedirs(os.path.dirname(many), exist_ok=True)
        run(WRITE_MANY_TENSORS, dst=many)
    elements = int(gb * 1e9 / 4 / count) // 1024 * 1024
    large = os.path.join(workdir, "large", "model.ckpt")
    if not os.path.exists(large + ".index"):
        os.makedirs(os.path.dirname(large), exist_ok=True)
        run(WRITE_TF1_CHECKPOINT, dst=large, count=count, elements=elements)
    return many, large, elements


def arguments(doc: str, *, gb: bool = True, repeat: Optional[int] = None,
              repeat_flag: str = "--repeat") -> argparse.ArgumentParser:
    """A parser with the flags every benchmark takes: --workdir, and --gb and --repeat when asked for."""
    parser = argparse.ArgumentParser(description=doc.splitlines()[0])
    if gb:
        parser.add_argument("--gb", type=float, default=1.0, help="size of the large checkpoint in GB (default 1)")
    if repeat is not None:
        parser.add_argument(repeat_flag, type=int, default=repeat,
                            help="runs per contender (default %d)" % repeat)
    parser.add_argument("--workdir", help="where to build the checkpoints (default: a temp dir, removed)")
    return parser


@contextlib.contextmanager
def work_directory(path: Optional[str], prefix: str) -> Iterator[str]:
    """`path` (made if missing, kept: its checkpoints are reused next time), or a temporary directory removed
    at the end."""
    directory = path or tempfile.mkdtemp(prefix=prefix)
    os.makedirs(directory, exist_ok=True)
    try:
        yield directory
    finally:
        if not path:
            shutil.rmtree(directory, ignore_errors=True)

