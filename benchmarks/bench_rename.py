"""Rename a large TF1 checkpoint: keras-legacy-ckpt vs what users would otherwise do.

Builds a TF1 checkpoint (default 1 GB: 64 float32 tensors of 16 MB, written by
tf.compat.v1.train.Saver), then runs each contender in a fresh process and prints time
(of the operation itself, TensorFlow's import excluded) and the process's peak RSS, next
to the peak RSS of a process that only imports TensorFlow:

  rename:     the migration guide's recipe | ours, streaming | ours, zero-copy | cp (and cp + sync,
              since ours fsyncs the files it writes)
  planning:   opening and planning a 10,000-variable checkpoint

Warm start against TensorFlow's restore is measured by bench_warm_start.py.

Run: make bench   (or: python benchmarks/bench_rename.py --gb 1 --workdir /tmp/klc-bench)
The page cache is warm for every contender (each run reads the same files).
"""

import os
import shutil
import subprocess

from fresh_process import WRITE_TF1_CHECKPOINT, arguments, files_of, run, work_directory
import time

# Before each contender's body: TensorFlow (the recipe needs it; the baseline RSS is a bare import of it).
TF = """
    import tensorflow as tf
    tf.get_logger().setLevel("ERROR")
"""

CONTENDERS = {
    "import tensorflow only": """
        report(seconds=0.0)
    """,
    "guide recipe (Saver)": """
        start = time.perf_counter()
        with tf.Graph().as_default():
            reader = tf.compat.v1.train.NewCheckpointReader(args["src"])
            variable_from_new_name = {}
            for old in reader.get_variable_to_shape_map():
                variable_from_new_name["backbone/" + old] = tf.Variable(reader.get_tensor(old))
            init = tf.compat.v1.global_variables_initializer()
            saver = tf.compat.v1.train.Saver(variable_from_new_name)
            with tf.compat.v1.Session() as sess:
                sess.run(init)
                saver.save(sess, args["dst"], write_meta_graph=False)
        report(seconds=time.perf_counter() - start)
    """,
    "ours, streaming": """
        import keras_legacy_ckpt as klc
        start = time.perf_counter()
        klc.rename_checkpoint(args["src"], args["dst"], {"/": "backbone/"}, mode="stream")
        report(seconds=time.perf_counter() - start)
    """,
    "ours, zero-copy": """
        import keras_legacy_ckpt as klc
        start = time.perf_counter()
        klc.rename_checkpoint(args["src"], args["dst"], {"/": "backbone/"}, mode="zero_copy")
        report(seconds=time.perf_counter() - start)
    """,
    "ours, plan 10k variables": """
        from keras_legacy_ckpt.assignment_map import plan_assignment_map
        from keras_legacy_ckpt.checkpoint_reader import CheckpointFile
        names = ["backbone/" + n for n, _ in tf.train.list_variables(args["src"])]
        start = time.perf_counter()
        ckpt = CheckpointFile(args["src"])
        plan = plan_assignment_map({"/": "backbone/"}, names, ckpt.tensors)
        assert len(plan.matches) == len(names) == 10000
        report(seconds=time.perf_counter() - start)
    """,
}

MAKE_MANY = """
    names = ["block_%05d/dense/kernel" % i for i in range(10000)]
    tf.raw_ops.SaveV2(prefix=args["dst"], tensor_names=names, shape_and_slices=[""] * len(names),
                      tensors=[tf.zeros([4, 4]) for _ in names])
    report(seconds=0.0)
"""


def run_with_tf(body, **args):
    return run(body, prelude=TF, **args)


def main():
    parser = arguments(__doc__)
    parser.add_argument("--skip_guide", action="store_true", help="skip the guide's recipe (slow, memory-hungry)")
    options = parser.parse_args()
    with work_directory(options.workdir, "klc-bench-") as workdir:
        count = 64
        elements = int(options.gb * 1e9 / 4 / count) // 1024 * 1024
        src = os.path.join(workdir, "large", "model.ckpt")
        if not os.path.exists(src + ".index"):
            os.makedirs(os.path.dirname(src), exist_ok=True)
            run(WRITE_TF1_CHECKPOINT, dst=src, count=count, elements=elements)
        size = sum(os.path.getsize(f) for f in files_of(src))
        print("checkpoint: %d float32 tensors of %.1f MB + global_step, %.2f GB, %s"
              % (count, elements * 4 / 1e6, size / 1e9, src))

        baseline = run_with_tf(CONTENDERS["import tensorflow only"])
        rows = [("import tensorflow only", None, baseline["peak_rss_mb"])]
        names = ["guide recipe (Saver)", "ours, streaming", "ours, zero-copy"]
        if options.skip_guide:
            names = names[1:]
        for name in names:
            dst = os.path.join(workdir, "out-" + name.split()[-1].strip("()"), "model.ckpt")
            shutil.rmtree(os.path.dirname(dst), ignore_errors=True)
            os.makedirs(os.path.dirname(dst))
            subprocess.run(["sync"], check=True)
            result = run_with_tf(CONTENDERS[name], src=src, dst=dst)
            rows.append((name, result["seconds"], result["peak_rss_mb"]))
            shutil.rmtree(os.path.dirname(dst))
        cp_dir = os.path.join(workdir, "out-cp")
        shutil.rmtree(cp_dir, ignore_errors=True)
        os.makedirs(cp_dir)
        subprocess.run(["sync"], check=True)
        start = time.perf_counter()
        subprocess.run(["cp"] + files_of(src) + [cp_dir], check=True)
        copied = time.perf_counter() - start
        subprocess.run(["sync"], check=True)  # ours fsyncs what it writes; so must a fair cp
        rows.append(("cp of the files", copied, None))
        rows.append(("cp + sync", time.perf_counter() - start, None))
        shutil.rmtree(cp_dir)

        many = os.path.join(workdir, "many", "model.ckpt")
        if not os.path.exists(many + ".index"):
            os.makedirs(os.path.dirname(many), exist_ok=True)
            run_with_tf(MAKE_MANY, dst=many)
        result = run_with_tf(CONTENDERS["ours, plan 10k variables"], src=many)
        rows.append(("ours, plan 10k variables", result["seconds"], result["peak_rss_mb"]))

        print("\n%-28s %10s %14s %18s" % ("contender", "seconds", "peak RSS (MB)", "RSS over import"))
        for name, seconds, rss in rows:
            print("%-28s %10s %14s %18s" % (
                name, "-" if seconds is None else "%.3f" % seconds, "-" if rss is None else "%.0f" % rss,
                "-" if rss is None or name.startswith("import") else "%+.0f" % (rss - baseline["peak_rss_mb"])))


if __name__ == "__main__":
    main()
