"""klc.export_safetensors and klc.diff_checkpoints on checkpoints written by real TF1 programs.

The TF1 program (tf.Graph, tf.compat.v1 variables, Adam, a global step, Saver) has a partitioned kernel
(its Adam slots are partitioned too), float16 and bfloat16 variables, and a string and a complex64 variable
that safetensors cannot hold. Exports are read back with `safetensors.numpy.load_file` and compared bit for
bit with `tf.train.load_checkpoint`; they are also byte for byte the file `safetensors.numpy.save_file`
writes for the same tensors. Diffs are checked against numpy on the values TensorFlow reads.
"""

import errno
import os
import struct
import subprocess
import sys

import ml_dtypes
import numpy as np
import pytest
import safetensors.numpy
import tensorflow as tf

import keras_legacy_ckpt as klc
from keras_legacy_ckpt import cli, file_access
from keras_legacy_ckpt.diff import max_abs_diff
from keras_legacy_ckpt.tf1_checkpoint import TF1Checkpoint
from tests import tf1_programs
from tests.test_cli_and_flags import run_cli

v1 = tf.compat.v1
UNSUPPORTED = [r"^extra/words$", r"^extra/c64$"]  # the string and the complex64 variable


def mixed(x, training=False):
    """A partitioned kernel (3 parts of 5 rows) and a dense layer, trained; float16, bfloat16, string and
    complex64 variables beside them, not trained."""
    rng = np.random.default_rng(7)
    with v1.variable_scope("net"):
        kernel = v1.get_variable("kernel", shape=[5, 8], partitioner=v1.fixed_size_partitioner(3))
        hidden = tf.nn.relu(tf.matmul(x, kernel))
        logits = klc.v1_layers.dense(hidden, 3, name="logits")
    with v1.variable_scope("extra"):
        v1.get_variable("half", initializer=tf.constant(rng.normal(size=(4, 3)).astype(np.float16)), trainable=False)
        v1.get_variable("bf16", initializer=tf.constant(rng.normal(size=(2, 5)).astype(ml_dtypes.bfloat16)),
                        trainable=False)
        v1.get_variable("words", initializer=tf.constant(np.array([b"alpha", b"", b"\xff\x00"], dtype=object)),
                        dtype=tf.string, trainable=False)
        v1.get_variable("c64", initializer=tf.constant((rng.normal(size=3) + 1j).astype(np.complex64)),
                        trainable=False)
    return logits


@pytest.fixture(scope="module")
def ckpt(tmp_path_factory):
    """(prefix, {name: value as tf.train.load_checkpoint reads it})."""
    return tf1_programs.save_tf1_checkpoint(str(tmp_path_factory.mktemp("mixed")), mixed, 5)


@pytest.fixture(scope="module")
def retrained(tmp_path_factory):
    """The same program trained two more steps."""
    return tf1_programs.save_tf1_checkpoint(str(tmp_path_factory.mktemp("retrained")), mixed, 5, steps=5)


def bits(array):
    array = np.asarray(array)
    return array.dtype, array.shape, np.ascontiguousarray(array).tobytes()


def assert_bit_equal(actual, expected, name):
    assert bits(actual)[:2] == bits(expected)[:2], name
    assert bits(actual)[2] == bits(expected)[2], name


def save_file_bytes(tmp_path, tensors):
    """What safetensors' own writer makes of the same tensors (all in memory)."""
    path = str(tmp_path / "reference.safetensors")
    safetensors.numpy.save_file({k: np.array(v, order="C") for k, v in tensors.items()}, path)
    with open(path, "rb") as f:
        return f.read()


def files_in(directory):
    return sorted(os.listdir(directory))


# --- export ---------------------------------------------------------------------------------------------

def test_export_is_bit_exact_with_a_mapping_and_is_what_save_file_writes(tmp_path, ckpt):
    prefix, values = ckpt
    dst = str(tmp_path / "out" / "model.safetensors")
    renames = klc.export_safetensors(prefix, dst, {"/": "backbone/"}, exclude=UNSUPPORTED)
    kept = {k: v for k, v in values.items() if k not in ("extra/words", "extra/c64")}
    assert renames == {k: "backbone/" + k for k in sorted(kept)}
    loaded = safetensors.numpy.load_file(dst)
    assert sorted(loaded) == sorted(renames.values())
    for old, new in renames.items():
        assert_bit_equal(loaded[new], kept[old], old)
    # the partitioned kernel and its partitioned Adam slots come whole; bfloat16 / float16 keep their dtype
    for name in ("net/kernel", "net/kernel/Adam", "net/kernel/Adam_1"):
        assert loaded["backbone/" + name].shape == (5, 8)
    assert loaded["backbone/extra/bf16"].dtype == ml_dtypes.bfloat16
    assert loaded["backbone/extra/half"].dtype == np.float16
    assert loaded["backbone/global_step"].dtype == np.int64 and loaded["backbone/global_step"].shape == ()
    with open(dst, "rb") as f:
        assert f.read() == save_file_bytes(tmp_path, {renames[k]: v for k, v in kept.items()})
    assert files_in(tmp_path / "out") == ["model.safetensors"]


def test_exclude_transpose_and_reshape_follow_the_slots(tmp_path, ckpt):
    prefix, values = ckpt
    dst = str(tmp_path / "t.safetensors")
    renames = klc.export_safetensors(prefix, dst, [(r"^net/", "model/")],
                                     exclude=UNSUPPORTED + [r"^beta[12]_power$"],
                                     transpose={r"logits/kernel$": [1, 0]}, reshape={r"^extra/half$": [12]},
                                     metadata={"format": "np"})
    assert "beta1_power" not in renames and renames["net/logits/kernel/Adam"] == "model/logits/kernel/Adam"
    loaded = safetensors.numpy.load_file(dst)
    expected = {}
    for old, new in renames.items():
        value = values[old]
        if old.startswith("net/logits/kernel"):  # the kernel and its two Adam slots
            value = value.T
        if old == "extra/half":
            value = value.reshape(12)
        expected[new] = value
        assert_bit_equal(loaded[new], value, old)
    assert loaded["model/logits/kernel/Adam_1"].shape == (3, 8)
    reference = str(tmp_path / "reference.safetensors")
    safetensors.numpy.save_file({k: np.array(v, order="C") for k, v in expected.items()}, reference,
                                metadata={"format": "np"})
    with open(dst, "rb") as ours, open(reference, "rb") as theirs:
        assert ours.read() == theirs.read()


def test_strings_and_complex_are_refused_by_name_and_nothing_is_written(tmp_path, ckpt):
    dst = tmp_path / "out.safetensors"
    with pytest.raises(klc.LegacyCheckpointError) as raised:
        klc.export_safetensors(ckpt[0], str(dst))
    message = str(raised.value)
    assert "'extra/words' (string)" in message and "'extra/c64' (complex64)" in message
    assert "exclude" in message and "Nothing was written" in message
    assert files_in(tmp_path) == []
    with pytest.raises(klc.LegacyCheckpointError, match="extra/c64"):  # one left: still refused
        klc.export_safetensors(ckpt[0], str(dst), exclude=[r"words"])
    assert files_in(tmp_path) == []


class _FailingWriter:
    """Wraps a file_access writer; its `fail_at`-th write raises ENOSPC after writing half of it."""

    def __init__(self, inner, fail_at):
        self.inner, self.fail_at, self.writes = inner, fail_at, 0
        self.path = inner.path

    def write(self, data):
        self.writes += 1
        if self.writes == self.fail_at:
            view = memoryview(data).cast("B")
            self.inner.write(view[:len(view) // 2])
            raise OSError(errno.ENOSPC, "No space left on device", self.path)
        self.inner.write(data)

    def close(self):
        self.inner.close()

    def discard(self):
        self.inner.discard()


def test_a_failure_mid_write_leaves_no_file_and_no_temporary(tmp_path, ckpt, monkeypatch):
    real_open_writer = file_access.open_writer
    monkeypatch.setattr(file_access, "open_writer", lambda path: _FailingWriter(real_open_writer(path), 5))
    dst = tmp_path / "model.safetensors"
    with pytest.raises(klc.LegacyCheckpointError, match="No space left on device.*Nothing was written"):
        klc.export_safetensors(ckpt[0], str(dst), exclude=UNSUPPORTED)
    assert files_in(tmp_path) == []
    # over an existing file (overwrite=True): the old file stays as it was
    dst.write_bytes(b"old content")
    with pytest.raises(klc.LegacyCheckpointError):
        klc.export_safetensors(ckpt[0], str(dst), exclude=UNSUPPORTED, overwrite=True)
    assert files_in(tmp_path) == ["model.safetensors"] and dst.read_bytes() == b"old content"
    monkeypatch.undo()

    # any other exception while reading (here the 4th tensor read) cleans up too, and propagates as it is
    real_read, reads = TF1Checkpoint.read, []

    def failing_read(self, name):
        reads.append(name)
        if len(reads) == 4:
            raise RuntimeError("interrupted")
        return real_read(self, name)

    monkeypatch.setattr(TF1Checkpoint, "read", failing_read)
    with pytest.raises(RuntimeError, match="interrupted"):
        klc.export_safetensors(ckpt[0], str(tmp_path / "other.safetensors"), exclude=UNSUPPORTED)
    assert files_in(tmp_path) == ["model.safetensors"]


def test_destinations_existing_files_directories_and_stale_temporaries(tmp_path, ckpt):
    prefix = ckpt[0]
    dst = tmp_path / "model.safetensors"
    dst.write_bytes(b"keep me")
    with pytest.raises(klc.LegacyCheckpointError, match="already exists; pass overwrite=True"):
        klc.export_safetensors(prefix, str(dst), exclude=UNSUPPORTED)
    assert dst.read_bytes() == b"keep me"
    klc.export_safetensors(prefix, str(dst), exclude=UNSUPPORTED, overwrite=True)
    assert "net/kernel" in safetensors.numpy.load_file(str(dst))
    # a directory gets <prefix basename>.safetensors
    klc.export_safetensors(prefix, str(tmp_path / "dir") + "/", exclude=UNSUPPORTED)
    assert files_in(tmp_path / "dir") == [os.path.basename(prefix) + ".safetensors"]
    # never over a file of the source
    with pytest.raises(klc.LegacyCheckpointError, match="file of the source checkpoint"):
        klc.export_safetensors(prefix, prefix + ".index", exclude=UNSUPPORTED, overwrite=True)
    # the temporary file of a killed export (a dead pid of this host) is removed by the next export
    from keras_legacy_ckpt.export import _host_tag

    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    stale = tmp_path / (".model.safetensors.tmp-%s-%d-0123abcd" % (_host_tag(), dead.pid))
    alive = tmp_path / (".model.safetensors.tmp-%s-%d-0123abcd" % (_host_tag(), os.getpid()))
    stale.write_bytes(b"partial")
    alive.write_bytes(b"in use")
    klc.export_safetensors(prefix, str(dst), exclude=UNSUPPORTED, overwrite=True)
    assert not stale.exists() and alive.exists()


def test_header_layout_is_aligned_and_sorted_like_safetensors(tmp_path, ckpt):
    dst = str(tmp_path / "m.safetensors")
    klc.export_safetensors(ckpt[0], dst, exclude=UNSUPPORTED)
    with open(dst, "rb") as f:
        raw = f.read()
    (length,) = struct.unpack("<Q", raw[:8])
    assert (8 + length) % 8 == 0 and raw[8:9] == b"{"
    import json

    header = json.loads(raw[8:8 + length])
    offsets = [tuple(v["data_offsets"]) for v in header.values()]
    assert offsets[0][0] == 0 and offsets[-1][1] == len(raw) - 8 - length
    assert all(a[1] == b[0] for a, b in zip(offsets, offsets[1:]))  # contiguous, in file order
    sizes = {"I64": 8, "F32": 4, "BF16": 2, "F16": 2}
    assert all(v["data_offsets"][0] % sizes[v["dtype"]] == 0 for v in header.values())


def test_float8_tensors_and_a_v1_checkpoint(tmp_path):
    # float8 (TensorFlow saves them; safetensors' numpy loader cannot load them, so bytes are compared)
    values = {"e5m2": np.linspace(-3, 3, 12).astype(ml_dtypes.float8_e5m2).reshape(3, 4),
              "e4m3": np.linspace(-3, 3, 6).astype(ml_dtypes.float8_e4m3fn), "f32": np.arange(3, dtype=np.float32)}
    prefix = str(tmp_path / "f8" / "ckpt")
    tf.raw_ops.SaveV2(prefix=prefix, tensor_names=list(values), shape_and_slices=[""] * 3,
                      tensors=[tf.constant(v) for v in values.values()])
    dst = str(tmp_path / "f8.safetensors")
    klc.export_safetensors(prefix, dst)
    with open(dst, "rb") as f:
        assert f.read() == save_file_bytes(tmp_path, values)

    # V1 (Saver(write_version=V1)): read through TensorFlow's reader, the same file comes out
    directory = tmp_path / "v1"
    directory.mkdir()
    with tf.Graph().as_default():
        inputs = v1.placeholder(tf.float32, [None, 5])
        with v1.variable_scope("net"):
            kernel = v1.get_variable("kernel", shape=[5, 8], partitioner=v1.fixed_size_partitioner(2))
            loss = tf.reduce_sum(klc.v1_layers.dense(tf.matmul(inputs, kernel), 3, name="logits"))
        step = v1.train.get_or_create_global_step()
        train = v1.train.AdamOptimizer(0.1).minimize(loss, global_step=step)
        saver = v1.train.Saver(write_version=v1.train.SaverDef.V1)
        with v1.Session() as sess:
            sess.run(v1.global_variables_initializer())
            sess.run(train, {inputs: np.ones((2, 5), np.float32)})
            v1_prefix = saver.save(sess, str(directory / "model.ckpt"), write_meta_graph=False)
    assert not os.path.exists(v1_prefix + ".index")
    from tests.test_rename_v1 import source_values  # RestoreV2 for the partitioned V1 tensors

    expected = source_values(v1_prefix)
    dst = str(tmp_path / "v1.safetensors")
    renames = klc.export_safetensors(v1_prefix, dst, {"net/": "tower/"})
    loaded = safetensors.numpy.load_file(dst)
    for old, new in renames.items():
        assert_bit_equal(loaded[new], expected[old], old)
    assert loaded["tower/kernel/Adam"].shape == (5, 8)


def test_remote_source_and_destination(tmp_path, ckpt):
    """ram:// (TensorFlow's in-memory file system, standing in for gs:// and s3://) on either side."""
    import uuid

    gfile = tf.io.gfile
    directory = "ram://klc-export-%s" % uuid.uuid4().hex[:12]
    local = str(tmp_path / "local.safetensors")
    klc.export_safetensors(ckpt[0], local, exclude=UNSUPPORTED)
    klc.export_safetensors(ckpt[0], directory + "/out/m.safetensors", exclude=UNSUPPORTED)
    with gfile.GFile(directory + "/out/m.safetensors", "rb") as f, open(local, "rb") as g:
        assert f.read() == g.read()
    assert gfile.listdir(directory + "/out") == ["m.safetensors"]  # no temporary left
    remote_prefix = directory + "/ckpt/" + os.path.basename(ckpt[0])
    gfile.makedirs(directory + "/ckpt")
    for suffix in (".index", ".data-00000-of-00001"):
        gfile.copy(ckpt[0] + suffix, remote_prefix + suffix)
    klc.export_safetensors(remote_prefix, str(tmp_path / "from_ram.safetensors"), exclude=UNSUPPORTED)
    with open(tmp_path / "from_ram.safetensors", "rb") as f, open(local, "rb") as g:
        assert f.read() == g.read()
    assert klc.diff_checkpoints(remote_prefix, ckpt[0]).identical


# --- diff -----------------------------------------------------------------------------------------------

def test_a_checkpoint_is_identical_to_itself_and_to_its_rename(tmp_path, ckpt):
    prefix, values = ckpt
    same = klc.diff_checkpoints(prefix, prefix)
    assert same.identical and same.max_abs_diff == {name: 0.0 for name in values}
    assert not (same.only_in_a or same.only_in_b or same.shape_changed or same.dtype_changed)
    assert same.summary().splitlines()[-1].startswith("identical (%d compared: %d equal, 0 differ" %
                                                       (len(values), len(values)))

    renamed = str(tmp_path / "renamed" / "model.ckpt")
    klc.rename_checkpoint(prefix, renamed, {"/": "backbone/"})
    diff = klc.diff_checkpoints(prefix, renamed, {"/": "backbone/"})
    assert diff.identical and diff.max_abs_diff == {"backbone/" + name: 0.0 for name in values}
    assert diff.pairs["backbone/net/kernel"] == "net/kernel"
    unmapped = klc.diff_checkpoints(prefix, renamed)  # without the map nothing pairs up
    assert not unmapped.identical and unmapped.max_abs_diff == {}
    assert unmapped.only_in_a == sorted(values) and unmapped.only_in_b == sorted("backbone/" + n for n in values)
    # the rule forms work as in rename, and a name mapped to None is left out
    rules = klc.diff_checkpoints(prefix, renamed, [(r"^extra/", None), (r"^(.*)$", r"backbone/\1")])
    assert rules.ignored == sorted(n for n in values if n.startswith("extra/"))
    assert rules.only_in_b == sorted("backbone/" + n for n in values if n.startswith("extra/"))


def test_a_retrained_checkpoint_differs_by_what_numpy_computes(ckpt, retrained):
    (prefix_a, a), (prefix_b, b) = ckpt, retrained
    diff = klc.diff_checkpoints(prefix_a, prefix_b)
    assert not diff.identical and sorted(diff.max_abs_diff) == sorted(a)
    for name in a:
        if a[name].dtype == object:
            expected = 0.0 if list(a[name].reshape(-1)) == list(b[name].reshape(-1)) else np.inf
        else:
            wide = np.complex128 if a[name].dtype.kind == "c" else np.float64
            expected = float(np.max(np.abs(a[name].astype(wide) - b[name].astype(wide))))
        assert diff.max_abs_diff[name] == expected, name
    assert diff.max_abs_diff["global_step"] == 2.0  # 3 steps against 5
    assert diff.max_abs_diff["net/kernel"] > 0 and diff.max_abs_diff["net/kernel/Adam"] > 0
    assert all(diff.max_abs_diff[n] == 0.0 for n in a if n.startswith("extra/"))  # not trained
    summary = diff.summary()
    assert "~ net/kernel   max abs diff %.6g" % diff.max_abs_diff["net/kernel"] in summary
    assert "~ extra/half" not in summary and summary.splitlines()[-1].startswith("different (")


def test_shape_and_dtype_changes_and_names_on_one_side(tmp_path, ckpt):
    prefix, values = ckpt
    # shapes: a rename that transposes the logits kernel (and its slots) and drops beta1_power
    changed = str(tmp_path / "changed" / "model.ckpt")
    klc.rename_checkpoint(prefix, changed, None, transpose={r"logits/kernel$": [1, 0]}, exclude=[r"^beta1_power$"])
    diff = klc.diff_checkpoints(prefix, changed)
    assert diff.shape_changed == {n: ((8, 3), (3, 8)) for n in
                                  ("net/logits/kernel", "net/logits/kernel/Adam", "net/logits/kernel/Adam_1")}
    assert diff.only_in_a == ["beta1_power"] and diff.only_in_b == [] and not diff.identical
    assert "net/logits/kernel" not in diff.max_abs_diff and diff.max_abs_diff["net/kernel"] == 0.0
    reverse = klc.diff_checkpoints(changed, prefix)
    assert reverse.only_in_b == ["beta1_power"] and reverse.only_in_a == []
    assert "! net/logits/kernel   shape (3, 8) -> (8, 3)" in reverse.summary()
    # exclude leaves names out on both sides
    assert klc.diff_checkpoints(prefix, changed, exclude=[r"^beta1_power$", r"logits/kernel"]).identical

    # dtypes: the same TF1 program built in float16 (v1 layers take the input's dtype), saved before training
    # (its float16 Adam steps overflow to NaN, which would make every difference inf)
    a_prefix, a = tf1_programs.save_tf1_checkpoint(str(tmp_path / "f32"), tf1_programs.mlp, 5, steps=0)
    b_prefix, b = tf1_programs.save_tf1_checkpoint(str(tmp_path / "f16"), tf1_programs.mlp, 5, steps=0,
                                                   dtype=tf.float16)
    diff = klc.diff_checkpoints(a_prefix, b_prefix)
    assert diff.dtype_changed["net/hidden/kernel"] == ("float32", "float16")
    assert "global_step" not in diff.dtype_changed and not diff.shape_changed
    for name in diff.dtype_changed:
        assert diff.max_abs_diff[name] == float(np.max(np.abs(a[name].astype(np.float64) - b[name].astype(np.float64))))
    assert diff.max_abs_diff["net/hidden/kernel"] > 0  # float16 initial values are drawn differently
    assert "! net/hidden/kernel   dtype float32 -> float16, max abs diff" in diff.summary()


def test_max_abs_diff_nan_inf_zero_signs_integers_and_strings():
    nan, inf = np.nan, np.inf
    a = np.array([1.0, nan, inf, -0.0, 5.0], np.float32)
    assert max_abs_diff(a, a.copy()) == 0.0
    assert max_abs_diff(a, np.array([1.0, nan, inf, 0.0, 5.0], np.float32)) == 0.0  # -0.0 == 0.0, NaN == NaN
    assert max_abs_diff(a, np.array([1.0, 2.0, inf, 0.0, 5.0], np.float32)) == inf  # NaN against a number
    assert max_abs_diff(a, np.array([1.0, nan, -inf, 0.0, 5.0], np.float32)) == inf
    assert max_abs_diff(a, np.array([1.5, nan, inf, 0.0, 5.0], np.float32)) == 0.5
    payload = np.array([0x7FC00001], np.uint32).view(np.float32)  # another NaN payload: still equal
    assert max_abs_diff(np.array([nan], np.float32), payload) == 0.0
    big = np.array([2**62 + 1, -2**63, 2**63 - 1], np.int64)  # exact, where float64 would give 0
    assert max_abs_diff(big, np.array([2**62, -2**63, 2**63 - 1], np.int64)) == 1.0
    assert max_abs_diff(np.array([-2**63], np.int64), np.array([2**63 - 1], np.int64)) == float(2**64 - 1)
    assert max_abs_diff(np.array([2**64 - 1], np.uint64), np.array([-1], np.int64)) == float(2**64)
    assert max_abs_diff(np.array([True, False]), np.array([True, True])) == 1.0
    assert max_abs_diff(np.array([1 + 1j], np.complex64), np.array([1 + 4j], np.complex64)) == 3.0
    assert max_abs_diff(np.zeros((0, 3), np.float32), np.zeros((0, 3), np.float32)) == 0.0
    words = np.array([b"a", b"bc"], dtype=object)
    assert max_abs_diff(words, words.copy()) == 0.0
    assert max_abs_diff(words, np.array([b"a", b"bd"], dtype=object)) == inf
    assert max_abs_diff(words, np.zeros(2, np.float32)) is None
    bf16 = np.array([1.0, 2.0], ml_dtypes.bfloat16)
    assert max_abs_diff(bf16, np.array([1.0, 2.015625], ml_dtypes.bfloat16)) == 0.015625


# --- CLI ------------------------------------------------------------------------------------------------

def test_cli_export_and_diff(capsys, tmp_path, ckpt, retrained):
    prefix, values = ckpt
    dst = str(tmp_path / "m.safetensors")
    code, out, err = run_cli(capsys, "export", prefix, dst, "--map", "/=backbone/", "--exclude", "^extra/(words|c64)$",
                             "--transpose", "logits/kernel$=1,0")
    assert code == 0 and err == "", err
    assert "net/kernel -> backbone/net/kernel" in out
    assert out.splitlines()[-1].startswith("wrote %d tensors (" % (len(values) - 2)) and "dropped 2" in out
    loaded = safetensors.numpy.load_file(dst)
    assert_bit_equal(loaded["backbone/net/logits/kernel/Adam"], values["net/logits/kernel/Adam"].T, "slot")
    # refused: one error line naming the tensors, nothing written
    code, out, err = run_cli(capsys, "export", prefix, str(tmp_path / "bad.safetensors"))
    assert code == 1 and err.count("\n") == 1 and err.startswith("error: ") and "'extra/words' (string)" in err
    assert not os.path.exists(tmp_path / "bad.safetensors")
    code, _, err = run_cli(capsys, "export", prefix, dst, "--exclude", "^extra/(words|c64)$")
    assert code == 1 and "already exists" in err
    code, _, err = run_cli(capsys, "export", prefix, dst, "--dry_run")
    assert code == 2 and err.startswith("usage error: export does not take --dry_run")

    code, out, err = run_cli(capsys, "diff", prefix, prefix)
    assert code == 0 and out.splitlines()[-1].startswith("identical (")
    renamed = str(tmp_path / "renamed" / "model.ckpt")
    klc.rename_checkpoint(prefix, renamed, {"/": "backbone/"})
    assert run_cli(capsys, "diff", prefix, renamed, "--map", "/=backbone/")[0] == 0
    code, out, _ = run_cli(capsys, "diff", prefix, renamed)
    assert code == 1 and "- net/kernel   only in A" in out and "+ backbone/net/kernel   only in B" in out
    code, out, err = run_cli(capsys, "diff", prefix, retrained[0])
    assert code == 1 and err == "" and "~ net/kernel   max abs diff" in out and "~ global_step   max abs diff 2" in out
    code, _, err = run_cli(capsys, "diff", prefix, str(tmp_path / "nothing"))
    assert code == 1 and err.startswith("error: ")
    code, _, err = run_cli(capsys, "diff", prefix)
    assert code == 2 and "diff takes A B" in err


def test_help_lists_export_and_diff():
    text = cli.help_text()
    lines = text.splitlines()
    for command in ("export", "diff"):
        where = [i for i, line in enumerate(lines) if line.startswith("  %s " % command)]
        assert len(where) == 1 and lines[where[0] + 1].strip().startswith("keras-legacy-ckpt %s /" % command)
    assert max(len(line) for line in lines) <= 104
