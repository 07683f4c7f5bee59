"""Checkpoints wherever tf.io.gfile reaches them: ram:// (TensorFlow's in-memory file system, standing in
for gs://, s3:// and hdfs://) and file:// URLs, through every entry point: warm_start, WarmStartFromTF1,
list_variables, verify_checkpoint, and rename_checkpoint with its source and destination on either side.

Values are compared bit for bit with what tf.train.load_checkpoint reads."""

import os
import subprocess
import sys
import uuid

import numpy as np
import pytest
import tensorflow as tf

import keras_legacy_ckpt as klc
from tests import tf1_programs, tf2_models
from tests.tf1_programs import mlp

gfile = tf.io.gfile
ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
DATA = ".data-00000-of-00001"
HIDDEN = ("net/hidden/kernel", "net/hidden/kernel/Adam", "net/hidden/kernel/Adam_1")  # what the transpose rule moves


def fresh_ram_dir():
    return "ram://klc-%s" % uuid.uuid4().hex[:12]


def ram_files(directory):
    """Every file under `directory` (ram:// globs match whole names, so hidden temporaries too)."""
    return sorted(p[len(directory) + 1:] for p in gfile.glob(directory + "/*") + gfile.glob(directory + "/*/*"))


def tf_values(path):
    """The oracle: every tensor as tf.train.load_checkpoint reads it (`path`: a prefix or directory)."""
    reader = tf.train.load_checkpoint(path)
    return {name: reader.get_tensor(name) for name in reader.get_variable_to_shape_map()}


def assert_bit_equal(actual, expected, name=""):
    actual, expected = np.asarray(actual), np.asarray(expected)
    assert actual.dtype == expected.dtype and actual.shape == expected.shape, name
    assert np.ascontiguousarray(actual).tobytes() == np.ascontiguousarray(expected).tobytes(), name


@pytest.fixture(scope="module")
def ram_ckpt():
    """A TF1 program whose Saver writes straight to ram://: (directory, prefix, values)."""
    directory = fresh_ram_dir() + "/run"
    with pytest.MonkeyPatch.context() as patch:
        # save_tf1_checkpoint reads its values back with tf.train.load_checkpoint(prefix), which takes a ram://
        # prefix for a directory (ram:// calls every prefix of a file name one): read them by directory below.
        patch.setattr(tf1_programs, "checkpoint_values", lambda prefix: None)
        prefix, _ = tf1_programs.save_tf1_checkpoint(directory, mlp, 5)
    assert prefix == directory + "/model.ckpt-3"
    assert {"checkpoint", "model.ckpt-3.index", "model.ckpt-3" + DATA} <= set(gfile.listdir(directory))
    return directory, prefix, tf_values(directory)


def file_url(path):
    return "file://" + os.path.abspath(path)


# --- warm start and the read-only entry points ---------------------------------------------------

def named_as(form, ram_ckpt, mlp_ckpt):
    """(path, values): the ram:// checkpoint, or the local one as a file:// URL, named as `form` says."""
    if form.startswith("ram_"):
        directory, prefix, values = ram_ckpt
        return {"ram_directory": directory, "ram_index_file": prefix + ".index", "ram_prefix": prefix}[form], values
    prefix, values = mlp_ckpt
    return file_url(prefix if form == "file_url_prefix" else os.path.dirname(prefix)), values


@pytest.mark.parametrize("form", ["ram_directory", "ram_index_file", "ram_prefix", "file_url_prefix",
                                  "file_url_directory"])
def test_warm_start_list_variables_and_verify(ram_ckpt, mlp_ckpt, form):
    path, values = named_as(form, ram_ckpt, mlp_ckpt)
    module = tf2_models.ShimModule(mlp, 5)
    report = klc.warm_start(module, path, {"/": "backbone/"})
    assert len(report.loaded) == 8 and report.missing == []
    variables = module.legacy_variables()
    for name, key in report.loaded.items():
        assert_bit_equal(variables[name].numpy(), values[key], name)
    expected = sorted((name, value.shape, tf.as_dtype(value.dtype).name) for name, value in values.items())
    assert klc.list_variables(path) == expected
    assert klc.verify_checkpoint(path) == len(values) == 23


def test_warm_start_from_tf1_callback_reads_ram(ram_ckpt):
    directory, _, values = ram_ckpt
    model = tf2_models.ShimModel(mlp, 5)
    callback = klc.WarmStartFromTF1(directory, {"/": "backbone/"}, verbose=0)
    model.predict(np.zeros((2, 5), np.float32), verbose=0, callbacks=[callback])  # predict changes no weight
    assert callback.skip_reason is None and len(callback.report.loaded) == 8
    for name, key in callback.report.loaded.items():
        assert_bit_equal(model.legacy_variables()[name].numpy(), values[key], name)


def test_missing_ram_checkpoints_raise_checkpoint_not_found(ram_ckpt, tmp_path):
    directory, _, _ = ram_ckpt
    module = tf2_models.ShimModule(mlp, 5)
    for missing in (fresh_ram_dir() + "/model.ckpt-1", directory + "/model.ckpt-99", fresh_ram_dir()):
        for call in (lambda: klc.list_variables(missing), lambda: klc.verify_checkpoint(missing),
                     lambda: klc.warm_start(module, missing, {"/": "backbone/"}),
                     lambda: klc.rename_checkpoint(missing, str(tmp_path / "out"), {"/": "x/"})):
            with pytest.raises(klc.CheckpointNotFoundError):
                call()
    assert not (tmp_path / "out").exists()


# --- a damaged ram:// checkpoint -----------------------------------------------------------------

@pytest.fixture
def damaged_ram(ram_ckpt):
    """A copy of ram_ckpt with one byte of net/logits/kernel flipped: (directory, prefix)."""
    source_dir, source, _ = ram_ckpt
    directory = fresh_ram_dir()
    gfile.makedirs(directory)
    for suffix in (".index", DATA):
        gfile.copy(source + suffix, directory + "/model.ckpt-3" + suffix)
    with gfile.GFile(directory + "/checkpoint", "w") as f:
        f.write(gfile.GFile(source_dir + "/checkpoint").read())  # relative names: this directory's copy
    prefix = directory + "/model.ckpt-3"
    entry = klc.bundle_index.read_bundle_index(prefix).entries[b"net/logits/kernel"]
    data = bytearray(gfile.GFile(prefix + DATA, "rb").read())
    data[entry.offset + entry.size // 2] ^= 0x40
    gfile.remove(prefix + DATA)  # ram:// appends to a file opened for writing
    with gfile.GFile(prefix + DATA, "wb") as f:
        f.write(bytes(data))
    return directory, prefix


def test_damaged_ram_checkpoint_is_reported_corrupt_naming_the_file(damaged_ram, tmp_path):
    directory, prefix = damaged_ram
    data_file = (prefix + DATA).replace(".", r"\.")
    with pytest.raises(klc.CorruptCheckpointError, match=r"data file %s is damaged: tensor 'net/logits/kernel'"
                       % data_file):
        klc.verify_checkpoint(directory)
    module = tf2_models.ShimModule(mlp, 5)
    module.warm_up()
    before = tf2_models.values(module)
    with pytest.raises(klc.CorruptCheckpointError, match=data_file):
        klc.warm_start(module, directory, {"/": "backbone/"})
    after = tf2_models.values(module)
    for name in before:
        assert_bit_equal(after[name], before[name], name)  # all or nothing
    out = fresh_ram_dir()
    with pytest.raises(klc.CorruptCheckpointError, match="net/logits/kernel"):
        klc.rename_checkpoint(directory, out + "/m", {"/": "x/"}, verify=True)
    assert ram_files(out) == []


def test_string_tensors_are_checked_on_both_sides(tmp_path):
    """String tensors have their own checksum layout (lengths, then bytes); both readers check it."""
    for prefix in (str(tmp_path / "strings"), fresh_ram_dir() + "/strings"):
        tf.raw_ops.SaveV2(prefix=prefix, tensor_names=["words", "w"], shape_and_slices=["", ""],
                          tensors=[tf.constant([b"alpha", b"beta" * 50]), tf.constant([1.5, 2.5])])
        assert klc.verify_checkpoint(prefix + ".index") == 2
        entry = klc.bundle_index.read_bundle_index(prefix).entries[b"words"]
        data = bytearray(gfile.GFile(prefix + DATA, "rb").read())
        data[entry.offset + entry.size - 3] ^= 0x01  # inside "beta..."
        gfile.remove(prefix + DATA)
        with gfile.GFile(prefix + DATA, "wb") as f:
            f.write(bytes(data))
        with pytest.raises(klc.CorruptCheckpointError, match="tensor 'words'"):
            klc.verify_checkpoint(prefix + ".index")


# --- rename_checkpoint, source and destination on either side --------------------------------------

def _place(kind, tmp_path, label):
    """A destination prefix of `kind`, in a fresh directory: (prefix as passed, its directory as TF names it)."""
    if kind == "ram":
        directory = fresh_ram_dir() + "/" + label
        return directory + "/model.ckpt", directory
    directory = str(tmp_path / label)
    return (file_url(directory) if kind == "file" else directory) + "/model.ckpt", directory


@pytest.mark.parametrize("mode", ["zero_copy", "stream"])
@pytest.mark.parametrize("src_kind, dst_kind", [("local", "ram"), ("ram", "ram"), ("ram", "local"), ("file", "file")])
def test_rename_between_local_and_remote(tmp_path, ram_ckpt, mlp_ckpt, src_kind, dst_kind, mode):
    if src_kind == "ram":
        src, values = ram_ckpt[1] if mode == "zero_copy" else ram_ckpt[0], ram_ckpt[2]  # prefix, directory
    else:
        src, values = (file_url(mlp_ckpt[0]) if src_kind == "file" else mlp_ckpt[0]), mlp_ckpt[1]
    dst, dst_dir = _place(dst_kind, tmp_path, "out")
    transpose = {r"^backbone/net/hidden/kernel$": (1, 0)} if mode == "stream" else None
    renames = klc.rename_checkpoint(src, dst, {"/": "backbone/"}, mode=mode, transpose=transpose)
    assert renames == {name: "backbone/" + name for name in values}
    written = dst_dir + "/model.ckpt"
    assert tf.train.latest_checkpoint(dst_dir) == written  # the destination directory's state file names it
    out = tf_values(dst_dir)
    assert sorted(out) == sorted(renames.values())
    for old, new in renames.items():
        assert_bit_equal(out[new], values[old].T if mode == "stream" and old in HIDDEN else values[old], old)
    files = ram_files(dst_dir) if dst_kind == "ram" else sorted(os.listdir(dst_dir))
    assert files == ["checkpoint", "model.ckpt" + DATA, "model.ckpt.index"]  # no temporaries left
    assert klc.verify_checkpoint(dst) == klc.verify_checkpoint(dst_dir) == len(values)
    if src_kind == "ram":
        assert tf_values(ram_ckpt[0]).keys() == values.keys()  # the source is untouched


def test_rename_to_ram_into_a_directory_and_overwrite(ram_ckpt, mlp_ckpt):
    prefix, values = mlp_ckpt
    out = fresh_ram_dir() + "/out"
    klc.rename_checkpoint(prefix, out + "/", {"/": "a/"})  # a trailing "/" means: into this directory
    written = out + "/" + os.path.basename(prefix)
    assert tf.train.latest_checkpoint(out) == written
    assert sorted(tf_values(out)) == sorted("a/" + k for k in values)
    with pytest.raises(klc.LegacyCheckpointError, match="already exists"):
        klc.rename_checkpoint(prefix, written, {"/": "b/"})
    klc.rename_checkpoint(prefix, out, {"/": "b/"}, exclude=["Adam"], overwrite=True)  # an existing directory
    assert sorted(tf_values(out)) == sorted("b/" + k for k in values if "Adam" not in k)
    base = os.path.basename(prefix)
    assert ram_files(out) == ["checkpoint", base + DATA, base + ".index"]
    with pytest.raises(klc.LegacyCheckpointError, match="over its own source"):
        klc.rename_checkpoint(ram_ckpt[1] + ".index", ram_ckpt[0], {"/": "c/"})


@pytest.mark.parametrize("mode", ["zero_copy", "stream"])
def test_failed_rename_to_ram_leaves_nothing(monkeypatch, ram_ckpt, mode):
    from keras_legacy_ckpt import file_access

    def half_written(*args):
        writer_or_dst = args[1]
        if isinstance(writer_or_dst, str):  # share_file(src, dst): a partial copy, then the failure
            with gfile.GFile(writer_or_dst, "wb") as f:
                f.write(b"partial")
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(file_access, "share_file" if mode == "zero_copy" else "copy_range", half_written)
    out = fresh_ram_dir()
    with pytest.raises(klc.LegacyCheckpointError, match="No space left.*Nothing was written"):
        klc.rename_checkpoint(ram_ckpt[0], out + "/m", {"/": "x/"}, mode=mode)
    assert ram_files(out) == []


# --- the file layer itself --------------------------------------------------------------------------

def test_paths_and_the_ram_directory_quirk(tmp_path):
    from keras_legacy_ckpt import file_access as fa

    assert fa.local_path("file:///data/x") == fa.local_path("file://localhost/data/x") == "/data/x"
    assert fa.is_local("/data/x") and fa.is_local("file:///x") and not fa.is_local("gs://b/x")
    assert fa.scheme("GS://b/x") == "gs" and fa.dirname("ram://x") == "ram://" and fa.dirname("gs://b/x") == "gs://b"
    assert fa.absolute("file://" + str(tmp_path) + "/a/../b") == str(tmp_path / "b")
    assert fa.same_file("file://" + str(tmp_path), str(tmp_path)) and not fa.same_file("ram://a", "/a")
    directory = fresh_ram_dir()
    with gfile.GFile(directory + "/run/model.ckpt-3.index", "wb") as f:
        f.write(b"x")
    with gfile.GFile(directory + "/runs.txt", "wb") as f:  # a sibling whose name starts like the directory's
        f.write(b"y")
    prefix = directory + "/run/model.ckpt-3"
    assert gfile.isdir(prefix) and gfile.exists(prefix)  # TensorFlow's answer: every prefix is a directory
    assert not fa.isdir(prefix) and not fa.exists(prefix) and fa.exists(prefix + ".index")
    assert fa.isdir(directory + "/run") and fa.isdir(directory + "/run/") and fa.isdir(directory)
    assert fa.listdir(directory + "/run") == ["model.ckpt-3.index"]  # gfile.listdir also lists "s.txt"
    gfile.makedirs(directory + "/empty")
    assert fa.isdir(directory + "/empty") and not fa.isdir(directory + "/emp")
    with pytest.raises(FileNotFoundError):
        fa.size(directory + "/run/model.ckpt-3")
    with pytest.raises(FileNotFoundError):
        fa.read_file(directory + "/nothing")


def test_reads_copies_and_atomic_writes_on_both_sides(tmp_path, monkeypatch):
    from keras_legacy_ckpt import file_access as fa

    monkeypatch.setattr(fa, "IO_CHUNK", 7)  # every transfer takes many chunks
    payload = bytes(range(256)) * 5
    local, ram = str(tmp_path / "a.bin"), fresh_ram_dir() + "/a.bin"
    fa.write_file(local, payload)
    fa.share_file(local, ram)  # local -> remote: streamed
    fa.share_file(ram, ram + ".copy")  # one remote file system: tf.io.gfile.copy
    fa.share_file(ram + ".copy", str(tmp_path / "back.bin"))  # remote -> local: streamed
    assert fa.read_file(str(tmp_path / "back.bin")) == payload and fa.size(ram + ".copy") == len(payload)
    for path in (local, "file://" + local, ram):
        with fa.open_reader(path) as reader:
            assert reader.size == len(payload)
            assert reader.read(100, 300) == payload[100:400]
            assert reader.read(len(payload) - 5, 100) == payload[-5:]  # short only at the end
            assert reader.pread(10, len(payload) + 3) == b""
            assert all(len(c) <= 7 for c in reader.chunks(0, 100))
    with fa.open_reader(ram) as reader:
        writer = fa.open_writer(str(tmp_path / "short.bin"))
        with pytest.raises(klc.CorruptCheckpointError, match="Unexpected end of ram://"):
            fa.copy_range(reader, writer, len(payload) - 10, 20)
        writer.discard()
    (tmp_path / "state_dir").mkdir()
    for path in (str(tmp_path / "state_dir" / "state"), fresh_ram_dir() + "/state"):
        fa.atomic_write(path, b"old")
        fa.atomic_write(path, b"new")
        assert fa.read_file(path) == b"new"
        directory = fa.dirname(path)
        assert fa.listdir(directory) == ["state"]  # no temporary left beside it
        fa.write_file(path, b"truncated")
        assert fa.read_file(path) == b"truncated"  # (ram:// itself appends to a file opened for writing)
    empty = fresh_ram_dir() + "/empty"
    fa.write_file(empty, b"")
    assert fa.exists(empty) and fa.size(empty) == 0  # GFile creates a file at its first write only


TF_FREE = r"""
import importlib, os, sys, types
root = sys.argv[1]
package = types.ModuleType("keras_legacy_ckpt")  # the package's __init__ imports TensorFlow (until it is TF-free)
package.__path__ = [os.path.join(root, "keras_legacy_ckpt")]
sys.modules["keras_legacy_ckpt"] = package
fa = importlib.import_module("keras_legacy_ckpt.file_access")
tmp = sys.argv[2]
fa.atomic_write(os.path.join(tmp, "a"), b"x" * 100)
fa.share_file("file://" + os.path.join(tmp, "a"), os.path.join(tmp, "b"))
with fa.open_reader(os.path.join(tmp, "b")) as r:
    assert r.read(0, 1000) == b"x" * 100
writer = fa.open_writer(os.path.join(tmp, "c"))
with fa.open_reader(os.path.join(tmp, "a")) as r:
    fa.copy_range(r, writer, 10, 50)
writer.close()
assert fa.size(os.path.join(tmp, "c")) == 50 and fa.isdir(tmp) and fa.exists(os.path.join(tmp, "c"))
assert sorted(fa.listdir(tmp)) == ["a", "b", "c"]
print("tensorflow" in sys.modules)
"""


def test_local_files_need_no_tensorflow(tmp_path):
    result = subprocess.run([sys.executable, "-c", TF_FREE, ROOT, str(tmp_path)], capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "False"
