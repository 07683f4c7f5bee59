"""Long fuzz run: N mutants of real TF1 checkpoints through warm_start, in crash-proof chunks.

    python fuzz/run_fuzz.py --n 1000 [--seed 0] [--chunk 250]

Each chunk runs in its own process, so an interpreter crash is caught and reported (with the
chunk's seed, to replay it) instead of ending the run. Prints how each mutant ended.
"""

import argparse
import json
import os
import subprocess
import sys
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

CHUNK = """
import json, os, random, sys, tempfile
os.environ["TF_CPP_MIN_LOG_LEVEL"] = "2"
import tensorflow as tf
tf.get_logger().setLevel("ERROR")
sys.path.insert(0, %(root)r)
from fuzz import harness
seed, count = %(seed)d, %(count)d
rng = random.Random(seed)
with tempfile.TemporaryDirectory() as tmp:
    checker = harness.Checker(tmp)
    failures, counts = [], {}
    for _ in range(count):
        mutation = harness.random_mutation(rng)
        try:
            harness.run(checker, [mutation], counts)
        except AssertionError as e:
            failures.append(str(e)[:500])
            counts["FAILED"] = counts.get("FAILED", 0) + 1
print(json.dumps({"counts": counts, "failures": failures}))
"""


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=1000)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--chunk", type=int, default=250)
    options = parser.parse_args()
    totals, failures, crashes = {}, [], []
    start = time.perf_counter()
    for first in range(0, options.n, options.chunk):
        seed = options.seed * 1_000_003 + first
        count = min(options.chunk, options.n - first)
        result = subprocess.run([sys.executable, "-c", CHUNK % dict(root=ROOT, seed=seed, count=count)],
                                capture_output=True, text=True)
        if result.returncode != 0:
            crashes.append("chunk seed %d exited %d: %s" % (seed, result.returncode, result.stderr[-1000:]))
            continue
        outcome = json.loads(result.stdout.strip().splitlines()[-1])
        for key, value in outcome["counts"].items():
            totals[key] = totals.get(key, 0) + value
        failures += outcome["failures"]
    print("%d mutants in %.0f s" % (options.n, time.perf_counter() - start))
    for key, value in sorted(totals.items(), key=lambda kv: -kv[1]):
        print("  %-28s %d" % (key, value))
    print("  %-28s %d" % ("interpreter crashes", len(crashes)))
    for line in failures + crashes:
        print("FAILURE:", line)
    sys.exit(1 if failures or crashes else 0)


if __name__ == "__main__":
    main()
