"""Reading TF1 checkpoints into numpy: klc.open_checkpoint with TensorFlow blocked vs tf.train.load_checkpoint.

Two checkpoints written by TensorFlow: 10,000 small tensors (tf.raw_ops.SaveV2, as a Saver of 10,000
variables writes them) and 1 GB (64 float32 tensors of 16 MB and a global step, tf.compat.v1.train.Saver).
Each contender runs in a fresh process, `--repeat` times (the median is printed):

  klc:        `import tensorflow` raises in the process; keras_legacy_ckpt.open_checkpoint is imported, then
              open_checkpoint + keys/shape/dtype of every tensor, then read() of every tensor
  TensorFlow: import tensorflow, then tf.train.load_checkpoint + get_variable_to_shape_map and
              get_variable_to_dtype_map, then get_tensor() of every tensor

Tensors are read one at a time and dropped. The page cache is warm for every run (the files are read
once before). Peak RSS is the process's, Python and imports included.

Run: python benchmarks/bench_numpy_reader.py [--gb 1] [--repeat 3] [--workdir /tmp/klc-bench-numpy]
"""

import os
import statistics

from fresh_process import ROOT, arguments, build_checkpoints, files_of, run, warm, work_directory


KLC = """
    import importlib.abc
    class NoTensorFlow(importlib.abc.MetaPathFinder):
        def find_spec(self, name, path=None, target=None):
            if name.split(".")[0] in ("tensorflow", "tf_keras", "keras"):
                raise ImportError("TensorFlow is blocked in this process")
    sys.meta_path.insert(0, NoTensorFlow())
    start = time.perf_counter()
    sys.path.insert(0, args["root"])
    from keras_legacy_ckpt import open_checkpoint
    imported = time.perf_counter()
    ckpt = open_checkpoint(args["src"])
    info = {name: (ckpt.shape(name), ckpt.dtype(name)) for name in ckpt.keys()}
    opened = time.perf_counter()
    total = 0
    for name in info:
        total += ckpt.read(name).nbytes
    read = time.perf_counter()
    assert not [m for m in sys.modules if m.split(".")[0] == "tensorflow"]
    report(import_s=imported - start, open_s=opened - imported, read_s=read - opened, tensors=len(info),
           bytes=total)
"""

TF = """
    start = time.perf_counter()
    import tensorflow as tf
    imported = time.perf_counter()
    reader = tf.train.load_checkpoint(args["src"])
    shapes = reader.get_variable_to_shape_map()
    dtypes = reader.get_variable_to_dtype_map()
    info = {name: (shapes[name], dtypes[name]) for name in sorted(shapes)}
    opened = time.perf_counter()
    total = 0
    for name in info:
        total += reader.get_tensor(name).nbytes
    read = time.perf_counter()
    report(import_s=imported - start, open_s=opened - imported, read_s=read - opened, tensors=len(info),
           bytes=total)
"""

def measure(body, src, repeat):
    runs = [run(body, src=src, root=ROOT) for _ in range(repeat)]
    return {key: statistics.median(r[key] for r in runs) for key in runs[0]}


def table(title, klc, tf):
    print("\n%s (median of runs)" % title)
    print("%-40s %16s %16s" % ("", "klc, TF blocked", "TensorFlow"))
    rows = [("import (module / tensorflow)", "import_s", "%.3f s"),
            ("open + keys/shape/dtype of all", "open_s", "%.3f s"),
            ("read every tensor", "read_s", "%.3f s"),
            ("total (import + open + read)", None, "%.3f s"),
            ("peak RSS", "peak_rss_mb", "%.0f MB")]
    for label, key, fmt in rows:
        if key is None:
            values = [r["import_s"] + r["open_s"] + r["read_s"] for r in (klc, tf)]
        else:
            values = [klc[key], tf[key]]
        print("%-40s %16s %16s" % (label, fmt % values[0], fmt % values[1]))
    gb = klc["bytes"] / 1e9
    if gb > 0.1:
        print("%-40s %16s %16s" % ("read throughput", "%.2f GB/s" % (gb / klc["read_s"]),
                                   "%.2f GB/s" % (gb / tf["read_s"])))


def main():
    parser = arguments(__doc__, repeat=3)
    options = parser.parse_args()
    with work_directory(options.workdir, "klc-bench-numpy-") as workdir:
        count = 64
        many, large, elements = build_checkpoints(workdir, options.gb, count)
        for title, prefix in (("10,000 tensors of 4x4 float32", many),
                              ("%d float32 tensors of %.1f MB + global_step (%.2f GB)"
                               % (count, elements * 4 / 1e6, sum(os.path.getsize(f) for f in files_of(large)) / 1e9),
                               large)):
            warm(prefix)
            klc = measure(KLC, prefix, options.repeat)
            tf = measure(TF, prefix, options.repeat)
            assert klc["tensors"] == tf["tensors"] and klc["bytes"] == tf["bytes"]
            table(title, klc, tf)


if __name__ == "__main__":
    main()
