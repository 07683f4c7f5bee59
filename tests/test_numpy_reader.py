"""klc.open_checkpoint: TF1 checkpoints read into numpy with TensorFlow absent.

A real TF1 program (tf.Graph, tf.compat.v1 variables of every dtype TensorFlow saves, a string and a
bfloat16 variable among them, partitioned variables, Adam, a global step, a sharded
tf.compat.v1.train.Saver on two devices) writes a checkpoint in this process. A child process in which
`import tensorflow` raises opens it with keras_legacy_ckpt.tf1_checkpoint and pickles every tensor; each
is compared bit for bit with what tf.train.load_checkpoint reads. Damaged tensors raise
CorruptCheckpointError at read (not at open), naming the tensor and the file; a missing path raises
CheckpointNotFoundError at open.
"""

import json
import os
import pickle
import shutil
import struct
import subprocess
import sys
import textwrap
import uuid
from concurrent.futures import ThreadPoolExecutor

import google_crc32c
import ml_dtypes
import numpy as np
import pytest
import tensorflow as tf

from keras_legacy_ckpt import bundle_index
from keras_legacy_ckpt.errors import CheckpointNotFoundError, CorruptCheckpointError, LegacyCheckpointError
from keras_legacy_ckpt.tf1_checkpoint import open_checkpoint

from tests import tf_blocked

v1 = tf.compat.v1
ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
PACKAGE = os.path.join(ROOT, "keras_legacy_ckpt")

# numpy dtype of each plain variable of the TF1 program; values are random bit patterns (NaNs with
# payloads, infinities, subnormals, -0.0 included).
BIT_DTYPES = {
    "f16": np.float16, "f32": np.float32, "f64": np.float64, "bf16": ml_dtypes.bfloat16, "i8": np.int8,
    "i16": np.int16, "i32": np.int32, "i64": np.int64, "u8": np.uint8, "u16": np.uint16, "u32": np.uint32,
    "u64": np.uint64, "c64": np.complex64, "c128": np.complex128,
}
STRINGS = [b"", b"x" * 300, bytes(range(256)), "\u00e9t\u00e9".encode(), b"\x00\xff", b"a" * 70000]


def random_bits(rng, dtype, shape):
    dtype = np.dtype(dtype)
    return np.frombuffer(rng.bytes(int(np.prod(shape)) * dtype.itemsize), dtype=dtype).reshape(shape).copy()


def write_tf1_checkpoint(directory, *, write_version=v1.train.SaverDef.V2, sharded=True, skip=()):
    """A TF1 graph program with variables of every dtype, trained one Adam step; returns the prefix."""
    rng = np.random.default_rng(0)
    with tf.Graph().as_default():
        with v1.variable_scope("dtypes"):
            for name, dtype in BIT_DTYPES.items():
                if name in skip:
                    continue
                v1.get_variable(name, initializer=tf.constant(random_bits(rng, dtype, (3, 5))),
                                dtype=tf.as_dtype(dtype))
            v1.get_variable("bool", initializer=tf.constant(rng.integers(0, 2, (2, 7)).astype(bool)))
            v1.get_variable("string", initializer=tf.constant(b"a TF1 string scalar"), dtype=tf.string)
            v1.get_variable("strings", initializer=tf.constant(np.array(STRINGS, dtype=object).reshape(2, 3)),
                            dtype=tf.string)
            words = [("w%d" % i).encode() * (i % 50) for i in range(3000)]  # one- and two-byte varint lengths
            v1.get_variable("vocab", initializer=tf.constant(np.array(words, dtype=object)), dtype=tf.string)
            v1.get_variable("short_strings", initializer=tf.constant(np.array([b"ab", b"c"] * 500, dtype=object)),
                            dtype=tf.string)
            v1.get_variable("empty", shape=[0, 4])
            v1.get_variable("empty_strings", initializer=tf.constant(np.zeros([0], dtype=object).astype(bytes)),
                            dtype=tf.string)
            if "bf16" not in skip:
                v1.get_variable("bf16_scalar", initializer=tf.constant(1.5, tf.bfloat16))
        with v1.variable_scope("net"):
            w = v1.get_variable("w", shape=[700, 1000])  # 2.8 MB: reads span several chunks
            b = v1.get_variable("b", shape=[1000], initializer=v1.random_normal_initializer())
            with tf.device("/cpu:1"):  # the second device: its own data shard
                emb = v1.get_variable("embedding", shape=[10, 3], partitioner=v1.fixed_size_partitioner(3))
                cols = v1.get_variable("columns", shape=[4, 7], dtype=tf.float64,
                                       partitioner=v1.fixed_size_partitioner(3, axis=1))
                cube = v1.get_variable("cube", shape=[6, 2, 2], partitioner=v1.fixed_size_partitioner(4))
        loss = (tf.reduce_sum(tf.square(w)) + tf.reduce_sum(b) + tf.reduce_sum(tf.concat(list(emb), 0))
                + tf.cast(tf.reduce_sum(tf.concat(list(cols), 1)), tf.float32)
                + tf.reduce_sum(tf.concat(list(cube), 0)))
        global_step = v1.train.get_or_create_global_step()
        optimizer = v1.train.AdamOptimizer(0.1)
        train_op = optimizer.minimize(loss, global_step=global_step)
        # Every variable as the program holds it (partitioned ones and their Adam slots put together).
        whole = {v.op.name: v.value() for v in v1.global_variables() if getattr(v, "_save_slice_info", None) is None}
        for variable, axis in ((emb, 0), (cols, 1), (cube, 0)):
            whole[variable.name] = tf.concat(list(variable), axis)
            for slot, suffix in (("m", "Adam"), ("v", "Adam_1")):
                whole[variable.name + "/" + suffix] = tf.concat([optimizer.get_slot(p, slot) for p in variable], axis)
        saver = v1.train.Saver(sharded=sharded, write_version=write_version)
        with v1.Session(config=v1.ConfigProto(device_count={"CPU": 2})) as sess:
            sess.run(v1.global_variables_initializer())
            sess.run(train_op)
            prefix = saver.save(sess, os.path.join(directory, "model.ckpt"), global_step=global_step)
            return prefix, sess.run(whole)


@pytest.fixture(scope="module")
def tf1_ckpt(tmp_path_factory):
    directory = str(tmp_path_factory.mktemp("tf1_numpy"))
    prefix, whole = write_tf1_checkpoint(directory)
    with open(os.path.join(directory, "whole.pkl"), "wb") as f:
        pickle.dump(whole, f)
    assert prefix == os.path.join(directory, "model.ckpt-1")
    assert os.path.exists(prefix + ".data-00001-of-00002")  # sharded across the two devices
    return prefix


def tf_values(path):
    """The oracle: every tensor as tf.train.load_checkpoint reads it."""
    reader = tf.train.load_checkpoint(path)
    return {name: reader.get_tensor(name) for name in reader.get_variable_to_shape_map()}


def assert_bit_exact(ours, expected, name):
    if isinstance(expected, bytes):  # TensorFlow returns a string scalar as bytes
        expected = np.array(expected, dtype=object)
    expected = np.asarray(expected)
    assert isinstance(ours, np.ndarray), name
    assert ours.dtype == expected.dtype and ours.shape == expected.shape, (name, ours.dtype, ours.shape)
    if ours.dtype == object:
        assert all(type(x) is bytes for x in ours.reshape(-1)), name
        assert ours.tolist() == expected.tolist(), name
    else:
        assert ours.tobytes() == np.ascontiguousarray(expected).tobytes(), name


# --- a child process without TensorFlow --------------------------------------------------------------------

CHILD = tf_blocked.preamble() + textwrap.dedent("""
    import importlib.abc, json, os, pickle, sys, time, types

    try:
        import tensorflow
        raise SystemExit("the block did not work")
    except ImportError:
        pass
    # keras_legacy_ckpt/__init__.py imports TensorFlow today: load the package without running it.
    package = types.ModuleType("keras_legacy_ckpt")
    package.__path__ = [sys.argv[1]]
    sys.modules["keras_legacy_ckpt"] = package
    from keras_legacy_ckpt import tf1_checkpoint
    from keras_legacy_ckpt.errors import LegacyCheckpointError

    request = json.loads(sys.argv[2])
    result = {}
    if "dump" in request:
        with tf1_checkpoint.open_checkpoint(request["dump"]["path"]) as ckpt:
            tensors = {name: (ckpt.shape(name), ckpt.dtype(name), ckpt.read(name)) for name in ckpt.keys()}
            result["prefix"] = ckpt.prefix
            result["dtype_names"] = {name: ckpt.dtype_name(name) for name in ckpt.keys()}
        with open(request["dump"]["out"], "wb") as f:
            pickle.dump(tensors, f)
    result["resolved"] = {}
    for path in request.get("resolve", []):
        with tf1_checkpoint.open_checkpoint(path) as ckpt:
            result["resolved"][path] = [ckpt.prefix, len(ckpt.keys())]
    result["errors"] = {}
    for path, name in request.get("errors", []):
        step = "open"
        try:
            with tf1_checkpoint.open_checkpoint(path) as ckpt:
                step = "read"
                if name is not None:
                    ckpt.read(name)
            result["errors"][path] = ["none", step, ""]
        except LegacyCheckpointError as e:
            result["errors"][path] = [type(e).__name__, step, str(e)]
    result["tensorflow_imported"] = sorted(m for m in sys.modules if m.split(".")[0] in ("tensorflow", "tf_keras"))
    print(json.dumps(result))
""")


def run_without_tensorflow(tmp_path, request):
    script = tmp_path / ("child_%s.py" % uuid.uuid4().hex[:8])
    script.write_text(CHILD)
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="2")
    env.pop("PYTHONPATH", None)
    done = subprocess.run([sys.executable, str(script), PACKAGE, json.dumps(request)], capture_output=True, text=True,
                          env=env, cwd=str(tmp_path), timeout=600)
    assert done.returncode == 0, done.stderr[-3000:]
    result = json.loads(done.stdout.strip().splitlines()[-1])
    assert result["tensorflow_imported"] == [], result["tensorflow_imported"]
    return result


def test_every_tensor_bit_exact_without_tensorflow(tf1_ckpt, tmp_path):
    out = tmp_path / "tensors.pkl"
    result = run_without_tensorflow(tmp_path, {"dump": {"path": tf1_ckpt, "out": str(out)}})
    assert result["prefix"] == tf1_ckpt
    with open(out, "rb") as f:
        ours = pickle.load(f)
    expected = tf_values(tf1_ckpt)
    assert sorted(ours) == sorted(expected)  # slices of partitioned variables are not names
    tf_dtypes = tf.train.load_checkpoint(tf1_ckpt).get_variable_to_dtype_map()
    assert result["dtype_names"] == {name: dtype.name for name, dtype in tf_dtypes.items()}
    names = set(ours)
    assert {"global_step", "beta1_power", "beta2_power", "net/w/Adam", "net/embedding/Adam_1",
            "net/columns", "net/cube/Adam"} <= names
    for name, (shape, dtype, value) in ours.items():
        assert_bit_exact(value, expected[name], name)
        assert shape == value.shape and dtype == value.dtype, name
    # every dtype came through as TensorFlow's numpy dtype
    for short, dtype in BIT_DTYPES.items():
        assert ours["dtypes/" + short][1] == np.dtype(dtype)
    assert ours["dtypes/bf16"][1] == np.dtype(ml_dtypes.bfloat16)
    assert ours["dtypes/bool"][1] == np.dtype(bool)
    string = ours["dtypes/string"][2]
    assert string.shape == () and string.dtype == object and string[()] == b"a TF1 string scalar"
    assert ours["dtypes/strings"][2].reshape(-1).tolist() == STRINGS
    assert ours["dtypes/empty"][2].shape == (0, 4)
    assert ours["net/embedding"][0] == (10, 3) and ours["net/columns"][0] == (4, 7)
    # and what the program held (partitioned variables put together from their slices)
    with open(os.path.join(os.path.dirname(tf1_ckpt), "whole.pkl"), "rb") as f:
        whole = pickle.load(f)
    assert sorted(whole) == sorted(ours)
    for name, value in whole.items():
        assert_bit_exact(ours[name][2], value, name)


def test_paths_resolve_like_the_library_without_tensorflow(tf1_ckpt, tmp_path):
    directory = os.path.dirname(tf1_ckpt)
    moved = str(tmp_path / "moved")  # the Saver's state file names absolute paths of the old place
    shutil.copytree(directory, moved)
    lone = tmp_path / "lone"  # no state file, one checkpoint
    lone.mkdir()
    for name in os.listdir(directory):
        if name.startswith("model.ckpt-1.") and not name.endswith(".meta"):
            shutil.copy(os.path.join(directory, name), lone / name)
    escaped = tmp_path / "escaped"  # a relative state file written by TensorFlow, its name needing escapes
    escaped.mkdir()
    odd = 'mod\u00e8le "v2".ckpt-1'
    for name in os.listdir(lone):
        shutil.copy(lone / name, escaped / name.replace("model.ckpt-1", odd))
    tf.compat.v1.train.update_checkpoint_state(str(escaped), odd, [odd])
    octal = tmp_path / "octal"  # protobuf's text_format without as_utf8: octal escapes of the UTF-8 bytes
    shutil.copytree(escaped, octal)
    (octal / "checkpoint").write_text('# written by hand\nmodel_checkpoint_path: "nothing"\n'
                                      'model_checkpoint_path: "mod\\303\\250le \\"v2\\".ckpt-1"\n')
    paths = [tf1_ckpt, tf1_ckpt + ".index", tf1_ckpt + ".data-00001-of-00002", tf1_ckpt + ".meta", directory,
             directory + "/", "file://" + tf1_ckpt, moved, str(lone), str(escaped), str(octal)]
    result = run_without_tensorflow(tmp_path, {"resolve": paths})
    count = len(tf.train.list_variables(tf1_ckpt))
    for path in paths[:7]:
        assert result["resolved"][path] == [tf1_ckpt, count], path
    assert result["resolved"][moved] == [os.path.join(moved, "model.ckpt-1"), count]
    assert result["resolved"][str(lone)] == [str(lone / "model.ckpt-1"), count]
    assert result["resolved"][str(escaped)] == [str(escaped / odd), count]
    assert result["resolved"][str(octal)] == [str(octal / odd), count]  # the last model_checkpoint_path wins
    for state_dir in (escaped, octal):  # what TensorFlow resolves too
        assert tf.train.latest_checkpoint(str(state_dir)) == str(state_dir / odd)


def test_missing_path_raises_at_open_without_tensorflow(tf1_ckpt, tmp_path):
    missing = [str(tmp_path / "nothing" / "model.ckpt-5"), tf1_ckpt[:-1] + "7", str(tmp_path / "empty_dir")]
    os.mkdir(missing[2])
    result = run_without_tensorflow(tmp_path, {"errors": [[path, None] for path in missing]})
    for path in missing:
        kind, step, message = result["errors"][path]
        assert kind == "CheckpointNotFoundError" and step == "open", (path, message)
    assert "Did you mean: %s" % tf1_ckpt in result["errors"][missing[1]][2]
    with pytest.raises(CheckpointNotFoundError, match="not found"):
        open_checkpoint(missing[0])


# --- damage ------------------------------------------------------------------------------------------------

def copy_checkpoint(prefix, directory):
    os.makedirs(directory, exist_ok=True)
    for name in os.listdir(os.path.dirname(prefix)):
        if name.startswith(os.path.basename(prefix) + "."):
            shutil.copy(os.path.join(os.path.dirname(prefix), name), directory)
    return os.path.join(directory, os.path.basename(prefix))


def flip_byte(prefix, key, where=0.5):
    """Flips one byte of the stored bytes of index key `key`, `where` of the way in."""
    index = bundle_index.read_bundle_index(prefix)
    entry = index.entries[key]
    path = bundle_index.data_file_path(prefix, entry.shard_id, index.num_shards)
    offset = entry.offset + min(int(entry.size * where), entry.size - 1)
    with open(path, "r+b") as f:
        f.seek(offset)
        byte = f.read(1)
        f.seek(offset)
        f.write(bytes([byte[0] ^ 0x10]))
    return path


def slice_keys_of(prefix, name):
    index = bundle_index.read_bundle_index(prefix)
    return sorted(k for k in index.entries if bundle_index.slice_key_name(k) == name)


@pytest.mark.parametrize("name, where", [
    ("net/w", 0.7), ("dtypes/bf16", 0.5), ("dtypes/strings", 0.0), ("dtypes/strings", 0.9), ("dtypes/vocab", 0.99),
    ("net/embedding", 0.5),
])
def test_damaged_tensor_raises_at_read_naming_tensor_and_file(tf1_ckpt, tmp_path, name, where):
    prefix = copy_checkpoint(tf1_ckpt, str(tmp_path / "damaged"))
    key = slice_keys_of(prefix, name)[1] if name == "net/embedding" else name.encode()
    data_file = flip_byte(prefix, key, where)
    with open_checkpoint(prefix) as ckpt:  # opening checks the index and the data files' sizes, not the bytes
        with pytest.raises(CorruptCheckpointError) as raised:
            ckpt.read(name)
        message = str(raised.value)
        assert repr(name) in message and data_file in message and "crc32c" in message, message
        if name == "net/embedding":
            assert "slice 4,3:0,3" in message, message  # rows 4..6, all columns
        # every other tensor still reads, bit-exact
        expected = tf_values(tf1_ckpt)
        for other in ckpt.keys():
            if other != name:
                assert_bit_exact(ckpt.read(other), expected[other], other)


def test_damaged_tensor_in_child_without_tensorflow(tf1_ckpt, tmp_path):
    prefix = copy_checkpoint(tf1_ckpt, str(tmp_path / "damaged"))
    data_file = flip_byte(prefix, b"dtypes/c128")
    result = run_without_tensorflow(tmp_path, {"errors": [[prefix, "dtypes/c128"]]})
    kind, step, message = result["errors"][prefix]
    assert (kind, step) == ("CorruptCheckpointError", "read"), message
    assert "'dtypes/c128'" in message and data_file in message


def test_damaged_index_and_missing_shard_raise_at_open(tf1_ckpt, tmp_path):
    prefix = copy_checkpoint(tf1_ckpt, str(tmp_path / "index"))
    with open(prefix + ".index", "r+b") as f:
        f.truncate(os.path.getsize(prefix + ".index") - 10)
    with pytest.raises(CorruptCheckpointError, match="index .* is damaged"):
        open_checkpoint(prefix)
    prefix = copy_checkpoint(tf1_ckpt, str(tmp_path / "shard"))
    os.remove(prefix + ".data-00001-of-00002")
    with pytest.raises(CorruptCheckpointError, match=r"data-00001-of-00002 is missing"):
        open_checkpoint(prefix)
    prefix = copy_checkpoint(tf1_ckpt, str(tmp_path / "truncated"))
    with open(prefix + ".data-00000-of-00002", "r+b") as f:
        f.truncate(100)
    with pytest.raises(CorruptCheckpointError, match="truncated"):
        open_checkpoint(prefix)


# --- the object's behaviour --------------------------------------------------------------------------------

def test_reads_are_fresh_arrays_and_threads_agree(tf1_ckpt):
    expected = tf_values(tf1_ckpt)
    with open_checkpoint(tf1_ckpt) as ckpt:
        assert len(ckpt) == len(expected) and "net/w" in ckpt and "net/embedding/part_0" not in ckpt
        first = ckpt.read("net/w")
        first[...] = 0  # the caller owns it: writable, and not shared with the next read
        assert first.flags.writeable and first.flags.owndata
        assert_bit_exact(ckpt.read("net/w"), expected["net/w"], "net/w")
        with ThreadPoolExecutor(4) as pool:
            values = dict(zip(ckpt.keys(), pool.map(ckpt.read, ckpt.keys())))
        for name, value in values.items():
            assert_bit_exact(value, expected[name], name)
        with pytest.raises(KeyError, match="no tensor 'net/nope'"):
            ckpt.read("net/nope")
    assert ckpt.closed and ckpt.shape("net/w") == (700, 1000)  # metadata outlives close()
    with pytest.raises(ValueError, match="closed"):
        ckpt.read("net/w")


def test_v1_checkpoint_through_tensorflow(tmp_path):
    # the V1 format has no bfloat16 and no unsigned types wider than 8 bits
    prefix, whole = write_tf1_checkpoint(str(tmp_path), write_version=v1.train.SaverDef.V1, sharded=False,
                                         skip=("bf16", "u16", "u32", "u64"))
    # tf.train.load_checkpoint cannot read V1 slices, float16 or complex: the program's values are the oracle.
    expected = whole
    assert sorted(tf.train.load_checkpoint(prefix).get_variable_to_shape_map()) == sorted(expected)
    with open_checkpoint(prefix) as ckpt:
        assert ckpt.format == "V1" and sorted(ckpt.keys()) == sorted(expected)
        for name in ckpt.keys():
            value = ckpt.read(name)
            assert_bit_exact(value, expected[name], name)
            assert ckpt.dtype(name) == value.dtype and ckpt.shape(name) == value.shape
            assert ckpt.dtype_name(name) == tf.as_dtype(value.dtype if value.dtype != object else tf.string).name
    result = run_without_tensorflow(tmp_path, {"errors": [[prefix, None]]})
    kind, step, message = result["errors"][prefix]
    assert (kind, step) == ("CheckpointNotFoundError", "open") and "TensorFlow" in message, message


def test_remote_checkpoint_through_tf_io_gfile(tf1_ckpt):
    directory = "ram://klc-numpy-%s" % uuid.uuid4().hex[:8]
    tf.io.gfile.makedirs(directory)
    for name in os.listdir(os.path.dirname(tf1_ckpt)):
        if name.startswith("model.ckpt-1."):
            tf.io.gfile.copy(os.path.join(os.path.dirname(tf1_ckpt), name), directory + "/" + name)
    expected = tf_values(tf1_ckpt)
    with open_checkpoint(directory + "/model.ckpt-1.index") as ckpt:
        assert ckpt.prefix == directory + "/model.ckpt-1" and ckpt.format == "V2"
        for name in ckpt.keys():
            assert_bit_exact(ckpt.read(name), expected[name], name)


def _masked(crc):
    return (((crc >> 15) | (crc << 17)) + 0xA282EAD8) & 0xFFFFFFFF


def write_big_endian_copy(prefix, out_prefix):
    """The bundle a big-endian machine writes for the same tensors: header BIG, every element byte-swapped,
    string length checksums in big-endian order, every crc32c recomputed."""
    from tensorflow.core.framework import types_pb2
    from tensorflow.core.protobuf import tensor_bundle_pb2

    index = bundle_index.read_bundle_index(prefix)
    shards = [bytearray(open(path, "rb").read()) for path in index.data_files()]
    entries = {}
    for key, entry in index.entries.items():
        entry = tensor_bundle_pb2.BundleEntryProto.FromString(entry.SerializeToString())
        entries[key] = entry
        if entry.slices and entry.size == 0:
            continue
        raw = bytes(shards[entry.shard_id][entry.offset:entry.offset + entry.size])
        if entry.dtype == types_pb2.DT_STRING:
            count = int(np.prod([d.size for d in entry.shape.dim]))
            pos, crc = 0, 0
            for _ in range(count):
                length, pos = bundle_index._varint(raw, pos)
                crc = google_crc32c.extend(crc, struct.pack(">I", length))
            checksum = struct.pack(">I", _masked(crc))
            new = raw[:pos] + checksum + raw[pos + 4:]
            crc = google_crc32c.extend(google_crc32c.extend(crc, checksum), raw[pos + 4:])
        else:
            dtype = tf.as_dtype(entry.dtype)
            width = dtype.size // 2 if dtype.is_complex else dtype.size
            new = raw if width == 1 else np.frombuffer(raw, np.dtype("u%d" % width)).byteswap().tobytes()
            crc = google_crc32c.value(new)
        shards[entry.shard_id][entry.offset:entry.offset + entry.size] = new
        entry.crc32c = _masked(crc)
    header = tensor_bundle_pb2.BundleHeaderProto.FromString(index.header.SerializeToString())
    header.endianness = tensor_bundle_pb2.BundleHeaderProto.BIG
    for i, data in enumerate(shards):
        with open(bundle_index.data_file_path(out_prefix, i, len(shards)), "wb") as f:
            f.write(data)
    with open(out_prefix + ".index", "wb") as f:
        f.write(bundle_index.encode_index(header, entries))


def test_big_endian_bundle_is_byte_swapped_like_tensorflow(tf1_ckpt, tmp_path):
    out = str(tmp_path / "be" / "model.ckpt-1")
    os.makedirs(os.path.dirname(out))
    write_big_endian_copy(tf1_ckpt, out)
    expected = tf_values(tf1_ckpt)
    swapped_by_tf = tf_values(out)
    with open_checkpoint(out) as ckpt:
        for name in ckpt.keys():
            value = ckpt.read(name)
            assert_bit_exact(value, expected[name], name)
            assert_bit_exact(value, swapped_by_tf[name], name)


def test_unsupported_tensors_are_named(tmp_path):
    """A variant tensor (a dataset iterator's state) is listed but only TensorFlow reads it."""
    prefix = str(tmp_path / "variant")
    tf.raw_ops.SaveV2(prefix=prefix, tensor_names=["list", "x"], shape_and_slices=["", ""],
                      tensors=[tf.raw_ops.EmptyTensorList(element_shape=tf.constant(-1), max_num_elements=2,
                                                          element_dtype=tf.float32), tf.constant([1.0, 2.0])])
    with open_checkpoint(prefix) as ckpt:
        assert ckpt.keys() == ["list", "x"] and ckpt.dtype("list") == np.dtype(object)
        with pytest.raises(LegacyCheckpointError, match="only TensorFlow can read"):
            ckpt.read("list")
        assert ckpt.read("x").tolist() == [1.0, 2.0]


def test_slices_with_large_offsets_and_whole_dimensions(tmp_path):
    """Slice keys encode starts and lengths in TensorFlow's OrderedCode (1 to 3 bytes here, and -1 for a
    whole dimension, "-"): every slice must be found and put in its place."""
    prefix = str(tmp_path / "slices")
    t = np.arange(30000 * 2, dtype=np.float32).reshape(30000, 2)
    u = np.arange(5 * 70, dtype=np.int64).reshape(5, 70)
    specs = [("t", "30000 2 0,63:-", t[:63]), ("t", "30000 2 63,64:-", t[63:127]),
             ("t", "30000 2 127,10000:-", t[127:10127]), ("t", "30000 2 10127,19873:0,2", t[10127:]),
             ("u", "5 70 -:0,64", u[:, :64]), ("u", "5 70 -:64,6", u[:, 64:])]
    tf.raw_ops.SaveV2(prefix=prefix, tensor_names=[n for n, _, _ in specs], shape_and_slices=[s for _, s, _ in specs],
                      tensors=[tf.constant(v) for _, _, v in specs])
    expected = tf_values(prefix)
    with open_checkpoint(prefix) as ckpt:
        assert ckpt.keys() == ["t", "u"] and ckpt.shape("t") == (30000, 2)
        assert_bit_exact(ckpt.read("t"), expected["t"], "t")
        assert_bit_exact(ckpt.read("u"), expected["u"], "u")
        assert_bit_exact(ckpt.read("t"), t, "t")


def test_damaged_index_bytes_never_pass_silently(tf1_ckpt, tmp_path):
    """One flipped byte anywhere in the .index: a CorruptCheckpointError at open, or (in the footer's
    unused bytes) a checkpoint that reads exactly as before."""
    prefix = copy_checkpoint(tf1_ckpt, str(tmp_path / "flips"))
    original = open(prefix + ".index", "rb").read()
    with open_checkpoint(tf1_ckpt) as ckpt:
        before = {name: (ckpt.shape(name), ckpt.dtype(name)) for name in ckpt.keys()}
    rng = np.random.default_rng(1)
    footer = set(range(len(original) - 48, len(original)))
    positions = sorted(set(rng.integers(0, len(original), 150).tolist()) | footer)
    for position in positions:
        damaged = bytearray(original)
        damaged[position] ^= 1 << int(rng.integers(0, 8))
        with open(prefix + ".index", "wb") as f:
            f.write(damaged)
        try:
            with open_checkpoint(prefix) as ckpt:
                assert {name: (ckpt.shape(name), ckpt.dtype(name)) for name in ckpt.keys()} == before, position
        except CorruptCheckpointError:
            pass
