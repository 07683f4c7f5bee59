"""Long crash-safety run: N SIGKILLs during rename_checkpoint and N during SaveObjectCheckpoint.

    python fuzz/run_crash_trials.py --n 50 [--seed 0]

Prints how the destinations ended (absent / complete; checkpoints listed) and every violation.
"""

import argparse
import collections
import os
import random
import sys
import tempfile
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

import tensorflow as tf  # noqa: E402

from fuzz import crash  # noqa: E402

tf.get_logger().setLevel("ERROR")


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=50)
    parser.add_argument("--seed", type=int, default=0)
    options = parser.parse_args()
    rng = random.Random(options.seed)
    failures = []
    rename_outcomes, save_outcomes = collections.Counter(), collections.Counter()
    start = time.perf_counter()
    with tempfile.TemporaryDirectory() as tmp:
        source = crash.write_source(tmp)
        reader = tf.train.load_checkpoint(source)
        expected = {n: reader.get_tensor(n) for n in reader.get_variable_to_shape_map()}
        for i in range(options.n):
            for kind in ("rename", "save"):
                workdir = os.path.join(tmp, "%s-%d" % (kind, i))
                try:
                    if kind == "rename":
                        rename_outcomes[crash.rename_trial(source, expected, workdir, rng)] += 1
                    else:
                        listed, swept = crash.save_trial(workdir, rng)
                        save_outcomes["%d listed, %d being swept" % (listed, swept)] += 1
                except Exception as e:  # every violation is reported, the run goes on
                    failures.append("%s trial %d: %s: %s" % (kind, i, type(e).__name__, e))
    print("%d rename kills and %d save kills in %.0f s" % (options.n, options.n, time.perf_counter() - start))
    print("  rename destination after the kill: %s" % dict(rename_outcomes))
    print("  object checkpoints listed after the kill (latest restored every time): %s"
          % dict(sorted(save_outcomes.items())))
    print("  violations: %d" % len(failures))
    for failure in failures:
        print("FAILURE:", failure)
    sys.exit(1 if failures else 0)


if __name__ == "__main__":
    main()
