"""Exporting a 1 GB TF1 checkpoint to safetensors: klc.export_safetensors vs safetensors.numpy.save_file.

Builds a TF1 checkpoint (default 1 GB: 64 float32 tensors of 16 MB and a global step, written by
tf.compat.v1.train.Saver), then runs each contender in a fresh process, `--repeat` times (medians printed):

  baseline:   `import keras_legacy_ckpt, safetensors.numpy` (which imports TensorFlow) and nothing else
  klc:        klc.export_safetensors(src, dst): streamed one tensor at a time, fsynced, renamed into place
  save_file:  tf.train.load_checkpoint + get_tensor of every tensor into a dict, then
              safetensors.numpy.save_file(dict, dst) (it needs every tensor in memory); "+ fsync" also
              fsyncs the file, as ours does

Seconds are for the operation alone (imports excluded); peak RSS is the whole process's (ru_maxrss). The
page cache is warm (the checkpoint is read once before). The two files are compared byte for byte.

Run: python benchmarks/bench_export.py [--gb 1] [--repeat 3] [--workdir /tmp/klc-bench-export]
"""

import hashlib
import os
import statistics
import sys

from fresh_process import WRITE_TF1_CHECKPOINT, arguments, run, warm, work_directory


BASELINE = """
    import keras_legacy_ckpt as klc
    import safetensors.numpy
    report(seconds=0.0)
"""

KLC = """
    import keras_legacy_ckpt as klc
    import safetensors.numpy
    start = time.perf_counter()
    klc.export_safetensors(args["src"], args["dst"], overwrite=True)
    report(seconds=time.perf_counter() - start)
"""

SAVE_FILE = """
    import keras_legacy_ckpt as klc
    import safetensors.numpy
    import tensorflow as tf
    start = time.perf_counter()
    reader = tf.train.load_checkpoint(args["src"])
    import numpy as np
    tensors = {name: np.asarray(reader.get_tensor(name)) for name in sorted(reader.get_variable_to_shape_map())}
    safetensors.numpy.save_file(tensors, args["dst"])
    saved = time.perf_counter()
    fd = os.open(args["dst"], os.O_RDONLY)
    os.fsync(fd)
    os.close(fd)
    report(seconds=saved - start, fsync_seconds=time.perf_counter() - start)
"""

def digest(path):
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(16 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def main():
    parser = arguments(__doc__, repeat=3)
    args = parser.parse_args()
    with work_directory(args.workdir, "klc-bench-export-") as workdir:
        count, elements = 64, int(args.gb * 1e9 / 64 / 4) // 1024 * 1024
        src = os.path.join(workdir, "ckpt", "model.ckpt")
        if not os.path.exists(src + ".index"):
            os.makedirs(os.path.dirname(src), exist_ok=True)
            run(WRITE_TF1_CHECKPOINT, dst=src, count=count, elements=elements)
        size = sum(os.path.getsize(os.path.join(os.path.dirname(src), n)) for n in os.listdir(os.path.dirname(src)))
        warm(src)
        dst = {"klc": os.path.join(workdir, "klc.safetensors"), "save_file": os.path.join(workdir, "st.safetensors")}
        results = {"baseline": [], "klc": [], "save_file": []}
        for _ in range(args.repeat):  # interleaved, so drifts in disk speed hit both alike
            results["baseline"].append(run(BASELINE))
            results["klc"].append(run(KLC, src=src, dst=dst["klc"]))
            results["save_file"].append(run(SAVE_FILE, src=src, dst=dst["save_file"]))
        same = digest(dst["klc"]) == digest(dst["save_file"])
        med = {name: {key: statistics.median(r[key] for r in runs) for key in runs[0]}
               for name, runs in results.items()}
        base = med["baseline"]["peak_rss_mb"]
        print("checkpoint: %d float32 tensors of %.1f MB + global_step, %.2f GB on disk (%s)"
              % (count, elements * 4 / 1e6, size / 1e9, src))
        print("median of %d fresh processes each; peak RSS is ru_maxrss of the whole process\n" % args.repeat)
        print("%-44s %10s %16s %14s" % ("", "seconds", "peak RSS (MB)", "over baseline"))
        print("%-44s %10s %16.0f %14s" % ("baseline: import keras_legacy_ckpt, safetensors", "-", base, "-"))
        rows = [("klc.export_safetensors (streams, fsyncs)", med["klc"]["seconds"], med["klc"]["peak_rss_mb"]),
                ("load_checkpoint + save_file", med["save_file"]["seconds"], med["save_file"]["peak_rss_mb"]),
                ("load_checkpoint + save_file + fsync", med["save_file"]["fsync_seconds"],
                 med["save_file"]["peak_rss_mb"])]
        for label, seconds, rss in rows:
            print("%-44s %10.2f %16.0f %+14.0f" % (label, seconds, rss, rss - base))
        print("\nruns (seconds): klc %s; save_file %s" % (
            ", ".join("%.2f" % r["seconds"] for r in results["klc"]),
            ", ".join("%.2f" % r["seconds"] for r in results["save_file"])))
        print("the two files are byte for byte identical: %s" % ("yes" if same else "NO"))
        if not same:
            sys.exit(1)


if __name__ == "__main__":
    main()
