"""Warm start of a 1 GB TF1 checkpoint: klc.warm_start vs TensorFlow's own tf.train.Checkpoint(...).restore.

Builds a TF1 checkpoint with tf.compat.v1.train.Saver (default 1 GB: 64 float32 variables of 15.6 MB and
a global step) and a TF2 object checkpoint of the same values (tf.train.Checkpoint of a tf.Module whose
variables are named like the TF1 tensors). Each contender runs in a fresh process that first creates a
tf.Module with a zero variable per checkpoint tensor (the model, 1 GB), then times the restore alone
(imports and the model's creation excluded) and reports the process's peak RSS, and how far the peak
rose over the one the process had with its imports done and the model built:

  TF restore, TF1 checkpoint   tf.train.Checkpoint(module=m).restore(tf1_prefix): TF's name-based restore
  TF restore, TF2 checkpoint   tf.train.Checkpoint(module=m).restore(tf2_prefix): object-based, same values
  ours                         klc.warm_start(m, tf1_prefix): crc32c checked, all or nothing; 1 GB is more
                               than batch_bytes (64 MiB), so a crc32c pass, then the reads that are assigned
  ours, one pass               klc.warm_start(m, tf1_prefix, batch_bytes=2 GiB): the checked bytes are kept
                               and assigned (what checkpoints up to batch_bytes get), at the cost of memory
  ours, --compare-with DIR     klc.warm_start from another checkout (e.g. the previous commit), side by side

Every contender runs --repeats times (default 3), round robin so that machine noise hits all of them
alike, each after the checkpoint's files were read once (the page cache holds them); printed: the best
time, the lowest peak RSS and RSS rise, and every run's time.

Run: python benchmarks/bench_warm_start.py [--gb 1] [--repeats 3] [--workdir DIR] [--compare-with DIR]
"""

import os

from fresh_process import WRITE_TF1_CHECKPOINT, arguments, run, warm, work_directory

# Before each contender's body: TensorFlow, the model, and check() of the values it holds afterwards.
MODEL = """
    import sys
    if args.get("klc_root"):
        sys.path.insert(0, args["klc_root"])
    import tensorflow as tf
    tf.get_logger().setLevel("ERROR")

    def module_like(prefix):
        # A tf.Module with a zero variable named like each checkpoint tensor (the model).
        dtypes = tf.train.load_checkpoint(prefix).get_variable_to_dtype_map()
        module = tf.Module()
        module.vars = [tf.Variable(tf.zeros(s, dtypes[n]), name=n) for n, s in tf.train.list_variables(prefix)]
        return module

    def rss_mb():
        return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024

    def check(module):
        # Every variable holds its checkpoint value (first and last element).
        reader = tf.train.load_checkpoint(args["tf1"])
        for v in module.vars:
            want, got = reader.get_tensor(v.name.split(":")[0]).reshape(-1), v.numpy().reshape(-1)
            assert got[0] == want[0] and got[-1] == want[-1], v.name

    module = module_like(args["tf1"])
"""

TIMED = """
    %s
    model_rss = rss_mb()
    start = time.perf_counter()
    %s
    seconds = time.perf_counter() - start
    rise = rss_mb() - model_rss
    check(module)
    report(seconds=seconds, rss_rise_mb=rise)
"""

# name -> (setup, not timed; the restore, timed)
CONTENDERS = {
    "TF restore, TF1 checkpoint": (
        "pass", 'tf.train.Checkpoint(module=module).restore(args["tf1"]).assert_existing_objects_matched()'),
    "TF restore, TF2 checkpoint": (
        "pass", 'tf.train.Checkpoint(module=module).restore(args["tf2"]).assert_existing_objects_matched()'),
    "ours (klc.warm_start)": (
        "import keras_legacy_ckpt as klc; warm_start = klc.warm_start", 'warm_start(module, args["tf1"])'),
    "ours, one pass (batch_bytes=2 GiB)": (
        "import keras_legacy_ckpt as klc; warm_start = klc.warm_start",
        'warm_start(module, args["tf1"], batch_bytes=2 << 30)'),
}
COMPARED = "ours, from --compare-with"

WRITE_TF2_CHECKPOINT = """
    reader = tf.train.load_checkpoint(args["tf1"])
    for v in module.vars:
        v.assign(reader.get_tensor(v.name.split(":")[0]))
    checkpoint = tf.train.Checkpoint(module=module)
    checkpoint.save_counter  # created, so that it is saved and the restore matches every object
    checkpoint.write(args["tf2"])
    report()
"""


def main():
    parser = arguments(__doc__, repeat=3, repeat_flag="--repeats")
    parser.add_argument("--compare-with", help="also run klc.warm_start from this checkout (its root directory)")
    parser.add_argument("--only", nargs="*", help="run only these contenders (names as printed)")
    options = parser.parse_args()
    with work_directory(options.workdir, "klc-bench-ws-") as workdir:
        count = 64
        elements = int(options.gb * 1e9 / 4 / count) // 1024 * 1024
        tf1 = os.path.join(workdir, "tf1", "model.ckpt")
        tf2 = os.path.join(workdir, "tf2", "ckpt")
        if not os.path.exists(tf1 + ".index"):
            os.makedirs(os.path.dirname(tf1), exist_ok=True)
            run(WRITE_TF1_CHECKPOINT, dst=tf1, count=count, elements=elements)
        if not os.path.exists(tf2 + ".index"):
            os.makedirs(os.path.dirname(tf2), exist_ok=True)
            run(WRITE_TF2_CHECKPOINT, MODEL, tf1=tf1, tf2=tf2)
        size = sum(os.path.getsize(os.path.join(os.path.dirname(tf1), n)) for n in os.listdir(os.path.dirname(tf1)))
        print("checkpoint: %d float32 variables of %.1f MB + global_step, %.2f GB, %s"
              % (count, elements * 4 / 1e6, size / 1e9, tf1))

        contenders = dict(CONTENDERS)
        if options.compare_with:
            contenders[COMPARED] = CONTENDERS["ours (klc.warm_start)"]
        names = [n for n in contenders if not options.only or n in options.only]
        results = {name: [] for name in names}
        for _ in range(options.repeats):
            for name in names:
                warm(tf2 if "TF2" in name else tf1)
                root = os.path.abspath(options.compare_with) if name == COMPARED else None
                results[name].append(run(TIMED % contenders[name], MODEL, tf1=tf1, tf2=tf2, klc_root=root))

        print("\n%-36s %8s %14s %14s   %s" % ("contender", "best s", "peak RSS (MB)", "RSS rise (MB)",
                                             "every run (s)"))
        for name in names:
            runs = results[name]
            print("%-36s %8.3f %14.0f %+14.0f   %s" % (
                name, min(r["seconds"] for r in runs), min(r["peak_rss_mb"] for r in runs),
                min(r["rss_rise_mb"] for r in runs), " ".join("%.3f" % r["seconds"] for r in runs)))
        print("\nRSS rise: peak RSS over the RSS of the process with TensorFlow (and keras_legacy_ckpt) imported and "
              "the model built.")


if __name__ == "__main__":
    main()
