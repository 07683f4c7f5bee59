"""How warm_start reads large tensors: with os.pread into the new tensor's memory, crc32c checked,
read once when the mapped tensors fit in batch_bytes and twice (a check, then the reads that are
assigned) when they do not; bit-exact for every dtype, all or nothing either way."""

import importlib

import numpy as np
import pytest
import tensorflow as tf

import keras_legacy_ckpt as klc
from keras_legacy_ckpt import bundle_index
from keras_legacy_ckpt.bundle_index import read_bundle_index
from keras_legacy_ckpt.checkpoint_reader import DEFAULT_BATCH_BYTES, CheckpointFile

reader_module = importlib.import_module("keras_legacy_ckpt.checkpoint_reader")
warm_start = importlib.import_module("keras_legacy_ckpt.warm_start").warm_start

ONE_PASS, TWO_PASSES = DEFAULT_BATCH_BYTES, 1  # everything fits one batch | one tensor per batch

# name -> (dtype, shape): each 512 KiB, above the size read straight into a tensor's memory.
LARGE = {
    "big/bfloat16": (tf.bfloat16, [512, 512]), "big/bool": (tf.bool, [512, 1024]),
    "big/complex64": (tf.complex64, [256, 256]), "big/float16": (tf.float16, [512, 512]),
    "big/float32": (tf.float32, [256, 512]), "big/float64": (tf.float64, [256, 256]),
    "big/int8": (tf.int8, [512, 1024]), "big/uint64": (tf.uint64, [256, 256]),
}


def _random_values(rng):
    """Random bit patterns (NaNs with payloads, infinities, -0.0, subnormals included) of every LARGE dtype."""
    values = {}
    for name, (dtype, shape) in LARGE.items():
        if dtype == tf.bool:
            values[name] = rng.integers(0, 2, size=shape).astype(bool)
            continue
        count = int(np.prod(shape)) * dtype.size
        values[name] = rng.integers(0, 256, size=count, dtype=np.uint8).view(dtype.as_numpy_dtype).reshape(shape)
    values["small/bias"] = rng.normal(size=[7]).astype(np.float32)
    return values


def _save(prefix, values):
    names = sorted(values)
    tf.raw_ops.SaveV2(prefix=prefix, tensor_names=names, shape_and_slices=[""] * len(names),
                      tensors=[tf.constant(values[n]) for n in names])
    return prefix


@pytest.fixture(scope="module")
def large_ckpt(tmp_path_factory):
    values = _random_values(np.random.default_rng(7))
    return _save(str(tmp_path_factory.mktemp("large") / "model.ckpt"), values), values


def _module(values):
    module = tf.Module()
    module.vars = [tf.Variable(tf.zeros(np.shape(v), tf.as_dtype(np.asarray(v).dtype)), name=n)
                   for n, v in sorted(values.items())]
    return module


def _bits(array):
    array = np.asarray(array)
    return array.view(np.uint8) if array.dtype.itemsize else array


def _assert_loaded(module, values):
    for variable in module.vars:
        name = variable.name.split(":")[0]
        np.testing.assert_array_equal(_bits(variable.numpy()), _bits(values[name]), err_msg=name)


def _assert_zero(module):
    for variable in module.vars:
        assert not np.any(variable.numpy().astype(bool)), variable.name


def _flip_byte(prefix, key):
    entry = read_bundle_index(prefix).entries[key.encode()]
    with open(prefix + ".data-00000-of-00001", "r+b") as f:
        f.seek(entry.offset + entry.size // 2)
        byte = f.read(1)
        f.seek(entry.offset + entry.size // 2)
        f.write(bytes([byte[0] ^ 0x20]))


def _copy(prefix, tmp_path):
    copy = str(tmp_path / "copy" / "model.ckpt")
    (tmp_path / "copy").mkdir()
    for suffix in (".index", ".data-00000-of-00001"):
        with open(prefix + suffix, "rb") as source, open(copy + suffix, "wb") as target:
            target.write(source.read())
    return copy


@pytest.mark.parametrize("batch_bytes", [ONE_PASS, TWO_PASSES])
def test_every_dtype_loads_bit_exact(large_ckpt, batch_bytes):
    prefix, values = large_ckpt
    module = _module(values)
    report = warm_start(module, prefix, batch_bytes=batch_bytes)
    assert sorted(report.loaded) == sorted(values)
    _assert_loaded(module, values)


@pytest.mark.parametrize("batch_bytes, reads", [(ONE_PASS, [False]), (TWO_PASSES, [True, False])])
def test_mapped_bytes_that_fit_a_batch_are_read_once(large_ckpt, monkeypatch, batch_bytes, reads):
    """One pass: each large tensor's bytes are read once, into the tensor that is assigned. Two passes:
    a crc32c check (through the reused buffer), then the read into the tensor that is assigned."""
    prefix, values = large_ckpt
    seen = {}
    original = bundle_index.DataFiles.read_into

    def recording(self, name, entry, out):
        seen.setdefault(name, []).append(out is None)
        return original(self, name, entry, out)

    monkeypatch.setattr(bundle_index.DataFiles, "read_into", recording)
    warm_start(_module(values), prefix, batch_bytes=batch_bytes)
    assert seen == dict({name: reads for name in LARGE}, **{"small/bias": [True]})  # small: a check, then RestoreV2


@pytest.mark.parametrize("batch_bytes", [ONE_PASS, TWO_PASSES])
def test_damaged_large_tensor_fails_before_any_assignment(large_ckpt, tmp_path, batch_bytes):
    prefix, values = large_ckpt
    damaged = _copy(prefix, tmp_path)
    _flip_byte(damaged, "big/uint64")  # the last large tensor assigned
    module = _module(values)
    with pytest.raises(klc.CorruptCheckpointError, match="'big/uint64'.*crc32c"):
        warm_start(module, damaged, batch_bytes=batch_bytes)
    _assert_zero(module)


def _change_after_the_check(monkeypatch, changed):
    """Flips a byte of big/uint64 in `changed` right after the warm start's crc32c check."""
    original = CheckpointFile.verify_requests

    def check_then_change(self, requests, keep_bytes=0, progress=None):
        original(self, requests, keep_bytes, progress)
        _flip_byte(changed, "big/uint64")

    monkeypatch.setattr(CheckpointFile, "verify_requests", check_then_change)


def test_a_file_changed_after_the_check_is_not_assigned_unchecked(large_ckpt, tmp_path, monkeypatch):
    """Two passes: the bytes assigned are checked again as they are read, so a data file changed
    between the check and the read fails, saying how many variables were assigned."""
    prefix, values = large_ckpt
    changed = _copy(prefix, tmp_path)
    _change_after_the_check(monkeypatch, changed)
    module = _module(values)
    with pytest.raises(klc.CorruptCheckpointError, match=r"changed while it was being read: \d+ variable"):
        warm_start(module, changed, batch_bytes=TWO_PASSES)
    assert not np.any(module.vars[-2].numpy())  # big/uint64 (then small/bias) was not assigned


def test_one_pass_assigns_the_bytes_it_checked(large_ckpt, tmp_path, monkeypatch):
    """One pass: what was checked is what is assigned, whatever happens to the file afterwards."""
    prefix, values = large_ckpt
    changed = _copy(prefix, tmp_path)
    _change_after_the_check(monkeypatch, changed)
    module = _module(values)
    warm_start(module, changed, batch_bytes=ONE_PASS)
    _assert_loaded(module, values)


@pytest.mark.parametrize("batch_bytes", [ONE_PASS, TWO_PASSES])
def test_casts_transforms_and_parts_of_large_tensors(tmp_path, batch_bytes):
    rng = np.random.default_rng(3)
    values = {"w64": rng.normal(size=[256, 384]), "emb": rng.normal(size=[256, 1024]).astype(np.float32),
              "k": rng.normal(size=[384, 256]).astype(np.float32)}
    prefix = _save(str(tmp_path / "model.ckpt"), values)
    module = tf.Module()
    module.w = tf.Variable(tf.zeros([256, 384], tf.float32), name="w64")  # cast float64 -> float32
    module.k = tf.Variable(tf.zeros([256, 384]), name="k")  # transposed
    module.parts = [tf.Variable(tf.zeros([128, 1024]), name="emb/part_%d" % i) for i in range(2)]
    report = warm_start(module, prefix, on_dtype_mismatch="cast", transpose={"^k$": [1, 0]},
                        batch_bytes=batch_bytes)
    assert report.casts == {"w64": "float64 -> float32"} and "k" in report.transforms
    np.testing.assert_array_equal(module.w.numpy(), values["w64"].astype(np.float32))
    np.testing.assert_array_equal(module.k.numpy(), values["k"].T)
    np.testing.assert_array_equal(module.parts[0].numpy(), values["emb"][:128])
    np.testing.assert_array_equal(module.parts[1].numpy(), values["emb"][128:])


@pytest.mark.parametrize("keep_bytes", [ONE_PASS, TWO_PASSES])
def test_a_key_requested_twice_is_read_for_both(tmp_path, keep_bytes):
    values = {"shared": np.arange(256 * 1024, dtype=np.float32).reshape(256, 1024)}
    prefix = _save(str(tmp_path / "model.ckpt"), values)
    ckpt = CheckpointFile(prefix)
    request = reader_module.ReadRequest("shared", "", values["shared"].nbytes)
    ckpt.verify_requests([request, request], keep_bytes)
    assert len(ckpt._kept) == (1 if keep_bytes == ONE_PASS else 0)
    for _ in range(3):  # twice kept (one pass), then read again
        np.testing.assert_array_equal(ckpt.read([request])[0].numpy(), values["shared"])
    assert not ckpt._kept
