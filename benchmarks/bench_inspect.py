"""`keras-legacy-ckpt inspect` with TensorFlow blocked vs the TensorFlow tools a user would otherwise run.

Wall time of the whole command, as a user waits for it (interpreter start, imports, listing, printing),
each run a fresh process with Python's bytecode cache on (as on a user's machine), median of `--repeat`
runs after one untimed run, on two checkpoints written by TensorFlow: 10,000
small tensors and 1 GB (64 float32 tensors and a global step, tf.compat.v1.train.Saver). Contenders:

  klc inspect, TF blocked:  `python -m keras_legacy_ckpt inspect CKPT` in a process where `import tensorflow`
                            raises (what a machine without TensorFlow sees)
  klc inspect:              the same command with TensorFlow installed (it does not import it)
  TF inspect_checkpoint:    `python -m tensorflow.python.tools.inspect_checkpoint --file_name=CKPT`
                            (TensorFlow's own tool: names, dtypes and shapes)
  tf.train.list_variables:  `import tensorflow; print each (name, shape) of tf.train.list_variables(CKPT)`

Run: python benchmarks/bench_inspect.py [--gb 1] [--repeat 5] [--workdir /tmp/klc-bench-inspect]
"""

import os
import statistics
import subprocess
import sys
import time

from fresh_process import ROOT, arguments, build_checkpoints, warm, work_directory

BLOCKED_CLI = """
import importlib.abc, runpy, sys
class NoTensorFlow(importlib.abc.MetaPathFinder):
    def find_spec(self, name, path=None, target=None):
        if name.split(".")[0] in ("tensorflow", "tf_keras", "keras"):
            raise ImportError("TensorFlow is blocked in this process")
sys.meta_path.insert(0, NoTensorFlow())
sys.argv = ["keras-legacy-ckpt"] + sys.argv[1:]
runpy.run_module("keras_legacy_ckpt", run_name="__main__")
"""

LIST_VARIABLES = "import sys, tensorflow as tf\nfor n, s in tf.train.list_variables(sys.argv[1]): print(n, s)"


def contenders(prefix):
    return {
        "klc inspect, TF blocked": [sys.executable, "-c", BLOCKED_CLI, "inspect", prefix],
        "klc inspect": [sys.executable, "-m", "keras_legacy_ckpt", "inspect", prefix],
        "TF inspect_checkpoint": [sys.executable, "-m", "tensorflow.python.tools.inspect_checkpoint",
                                  "--file_name=" + prefix],
        "tf.train.list_variables": [sys.executable, "-c", LIST_VARIABLES, prefix],
    }


def wall_seconds(command, repeat):
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="2", PYTHONPATH=ROOT)
    # As on a user's machine: Python caches compiled modules (some CI shells set PYTHONDONTWRITEBYTECODE,
    # which makes every run compile our modules again). One untimed run fills the cache.
    env.pop("PYTHONDONTWRITEBYTECODE", None)
    subprocess.run(command, capture_output=True, env=env, cwd=ROOT)
    times = []
    for _ in range(repeat):
        start = time.perf_counter()
        done = subprocess.run(command, capture_output=True, text=True, env=env, cwd=ROOT)
        times.append(time.perf_counter() - start)
        if done.returncode != 0:
            raise RuntimeError("%s failed:\n%s" % (command[:3], done.stderr[-2000:]))
    return statistics.median(times), len(done.stdout.splitlines())


def main():
    parser = arguments(__doc__, repeat=5)
    options = parser.parse_args()
    with work_directory(options.workdir, "klc-bench-inspect-") as workdir:
        many, large, _ = build_checkpoints(workdir, options.gb)
        for title, prefix in (("10,000 tensors of 4x4 float32", many), ("%.1f GB, 65 tensors" % options.gb, large)):
            warm(prefix)
            print("\n%s: wall time of the whole command (median of %d fresh processes)" % (title, options.repeat))
            for name, command in contenders(prefix).items():
                seconds, lines = wall_seconds(command, options.repeat)
                print("  %-28s %7.2f s   (%d lines of output)" % (name, seconds, lines))


if __name__ == "__main__":
    main()
