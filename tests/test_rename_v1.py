"""rename_checkpoint from a TF1 V1 checkpoint (Saver(write_version=SaverDef.V1): one table file, or
`-?????-of-NNNNN` shards) writes a V2 checkpoint.

Every source is written by a real TF1 program (tf.Graph, variable scopes, v1 layers, a partitioned
variable, Adam, a global step, string/int/float16/bool variables). The oracles: TensorFlow's own
readers (tf.train.load_checkpoint; RestoreV2 for V1 partitioned tensors, which the Python reader
refuses), TensorFlow's own V2 save of the same session, and a TF1 graph restoring the output with
tf.compat.v1.train.Saver next to the same graph restoring the V1 source.
"""

import os
import shutil
import uuid

import numpy as np
import pytest
import tensorflow as tf

import keras_legacy_ckpt as klc
from keras_legacy_ckpt import bundle_index, cli
from keras_legacy_ckpt.checkpoint_reader import CheckpointFile, ReadRequest, resolve_checkpoint
from keras_legacy_ckpt.rename import rename_checkpoint
from tests import tf1_programs
from tests.tf1_programs import v1, wide

V1_FORMAT = v1.train.SaverDef.V1
DATA = ".data-00000-of-00001"
EMBEDDING = "net/embedding"
# 8 weights, 2 batch-norm statistics, 14 Adam slots, 2 beta powers, the global step and 3 EXTRAS.
TENSORS = 30
EXTRAS = {"net/vocab": tf.string, "net/counts": tf.int32, "net/scale": tf.float16, "net/mask": tf.bool}


def network(x, training=False):
    """v1 layers and get_variable: a partitioned embedding on the second CPU (so that a sharded
    Saver writes two files), dense layers around a batch norm, and untrained variables of other dtypes."""
    with v1.variable_scope("net"):
        with tf.device("/cpu:1"):
            table = v1.get_variable("embedding", [10, 4], partitioner=v1.fixed_size_partitioner(3))
            v1.get_variable("vocab", initializer=tf.constant([b"alpha", b"", b"\x00\xff" * 100]), trainable=False)
        v1.get_variable("counts", initializer=tf.constant([[3, -1, 7]], tf.int32), trainable=False)
        v1.get_variable("scale", initializer=tf.constant([0.1, 65504.0, -0.0], tf.float16), trainable=False)
        v1.get_variable("mask", initializer=tf.constant([True, False]), trainable=False)
        ids = tf.cast(tf.abs(x[:, 0]) * 3, tf.int32) % 10
        h = tf.concat([x, tf.nn.embedding_lookup(table, ids)], 1)
        h = klc.v1_layers.dense(h, 6, activation=tf.nn.relu, name="hidden")
        h = klc.v1_layers.batch_normalization(h, training=training, name="bn")
        return klc.v1_layers.dense(h, 3, name="logits")


def build_training_graph():
    inputs = v1.placeholder(tf.float32, [None, 5])
    loss = v1.losses.sparse_softmax_cross_entropy(tf.constant([0, 1, 2, 1]), network(inputs, training=True))
    step = v1.train.get_or_create_global_step()
    with tf.control_dependencies(v1.get_collection(v1.GraphKeys.UPDATE_OPS)):
        train_op = v1.train.AdamOptimizer(0.05).minimize(loss, global_step=step)
    return inputs, train_op, step


def session():
    return v1.Session(config=v1.ConfigProto(device_count={"CPU": 2}))


def save_v1(directory, *, sharded=False, also_v2_in=None):
    """`network` trained 3 steps and saved in the V1 format: the path the Saver returned (with `also_v2_in`:
    and the V2 save of the same session)."""
    return tf1_programs.train_and_save(directory, network, 5, write_version=V1_FORMAT, sharded=sharded,
                                       also_v2_in=also_v2_in)


@pytest.fixture(scope="module")
def single(tmp_path_factory):
    path = save_v1(str(tmp_path_factory.mktemp("single")))
    assert sorted(os.listdir(os.path.dirname(path))) == ["checkpoint", "model.ckpt-3", "model.ckpt-3.meta"]
    return path


@pytest.fixture(scope="module")
def sharded(tmp_path_factory):
    path = save_v1(str(tmp_path_factory.mktemp("sharded")), sharded=True)
    assert path.endswith("model.ckpt-3-?????-of-00002")
    return path


@pytest.fixture(params=["single", "sharded"])
def source(request, single, sharded):
    return {"single": single, "sharded": sharded}[request.param]


# --- oracles -----------------------------------------------------------------------------------

def source_values(path):
    """Every tensor of checkpoint `path` as TensorFlow reads it: tf.train.load_checkpoint, or RestoreV2
    for the V1 tensors that TensorFlow's Python reader refuses (partitioned ones, "Sliced checkpoints
    are not supported"; float16, complex and uint16 ones, "Data type not supported")."""
    ckpt = CheckpointFile(path)
    reader = tf.train.load_checkpoint(path)
    values = {}
    for name in ckpt.tensors:
        try:
            values[name] = reader.get_tensor(name)
        except tf.errors.UnimplementedError:  # V1: partitioned, or float16, complex, uint16
            assert ckpt.format == "V1"
            values[name] = tf.raw_ops.RestoreV2(prefix=path, tensor_names=[name], shape_and_slices=[""],
                                                dtypes=[ckpt.tensors[name].dtype])[0].numpy()
    return values


def assert_bit_equal(actual, expected, name=""):
    actual, expected = np.asarray(actual), np.asarray(expected)
    assert actual.dtype == expected.dtype and actual.shape == expected.shape, name
    if actual.dtype == object:
        assert actual.tolist() == expected.tolist(), name
    else:
        assert np.ascontiguousarray(actual).tobytes() == np.ascontiguousarray(expected).tobytes(), name


def saver_restored(path, new_name=lambda name: name):
    """The oracle: the TF1 training graph restored from `path` by tf.compat.v1.train.Saver, each checkpoint
    key taken as `new_name(key)` (None: not restored); returns {variable name: value}."""
    with tf.Graph().as_default():
        build_training_graph()
        keys = {}
        for variable in v1.global_variables():
            info = variable._get_save_slice_info()  # a part of a partitioned variable: saved as slices of one key
            keys.setdefault(info.full_name if info else variable.op.name, []).append(variable)
        var_list = {new_name(key): parts if len(parts) > 1 else parts[0] for key, parts in keys.items()
                    if new_name(key) is not None}
        restored = [v for key, parts in keys.items() if new_name(key) is not None for v in parts]
        with session() as sess:
            sess.run(v1.global_variables_initializer())
            v1.train.Saver(var_list).restore(sess, path)
            return {v.op.name: sess.run(v) for v in restored}


def assert_saver_restores_alike(src, dst, new_name):
    expected = saver_restored(src)
    actual = saver_restored(dst, new_name)
    assert actual.keys() and set(actual) <= set(expected)
    for name, value in actual.items():
        assert_bit_equal(value, expected[name], name)
    return actual


def read_slice(path, name, spec, dtype):
    return tf.raw_ops.RestoreV2(prefix=path, tensor_names=[name], shape_and_slices=[spec], dtypes=[dtype])[0].numpy()


def slice_spec(shape, part):
    extents = ":".join("%d,%d" % (e.start, e.length) if e.HasField("length") else "-" for e in part.extent)
    return "%s %s" % (" ".join(map(str, shape)), extents)


# --- V1 in, V2 out ----------------------------------------------------------------------------------

def test_v1_renamed_is_a_v2_checkpoint_that_tf1_saver_restores_bit_for_bit(tmp_path, source):
    values = source_values(source)
    assert len(values) == TENSORS and values["net/vocab"].dtype == object
    assert {n: tf.as_dtype(values[n].dtype) for n in EXTRAS if n != "net/vocab"} == {
        n: d for n, d in EXTRAS.items() if n != "net/vocab"}
    out = tmp_path / "out"
    dst = str(out / "model.ckpt")
    renames = rename_checkpoint(source, dst, {"/": "backbone/"})
    assert renames == {name: "backbone/" + name for name in values}
    assert sorted(os.listdir(out)) == ["checkpoint", "model.ckpt" + DATA, "model.ckpt.index"]
    assert tf.train.latest_checkpoint(str(out)) == dst
    renamed = CheckpointFile(dst)
    assert renamed.format == "V2" and renamed.index.num_shards == 1
    assert klc.verify_checkpoint(dst) == len(values)
    written = tf.train.load_checkpoint(dst)
    for name, value in values.items():
        assert_bit_equal(written.get_tensor("backbone/" + name), value, name)
    # Partitioned tensors stay partitioned, with the source's slices, each read back as TF reads the source's.
    source_ckpt = CheckpointFile(source)
    partitioned = [n for n in values if source_ckpt.slices_of(n)]
    assert sorted(partitioned) == [EMBEDDING, EMBEDDING + "/Adam", EMBEDDING + "/Adam_1"]
    for name in partitioned:
        slices = source_ckpt.slices_of(name)
        assert len(slices) == 3
        assert renamed.slices_of("backbone/" + name) == slices
        for part in slices:
            spec = slice_spec(values[name].shape, part)
            assert_bit_equal(read_slice(dst, "backbone/" + name, spec, tf.float32),
                             source_ckpt.read([ReadRequest(name, spec)])[0].numpy(), spec)
    restored = assert_saver_restores_alike(source, dst, lambda key: "backbone/" + key)
    assert len(restored) == TENSORS - 3 + 3 * 3  # 3 parts for each of 3 partitioned keys


def test_v1_renamed_equals_tensorflows_own_v2_save_of_the_same_session(tmp_path):
    """Same entries as TensorFlow's V2 writer makes (dtype, shape, slices and their keys, size, crc32c):
    only the data offsets differ, as our data shard is in name order."""
    v1_path, v2_path = save_v1(str(tmp_path / "v1"), sharded=True, also_v2_in=str(tmp_path / "v2"))
    dst = str(tmp_path / "out" / "model.ckpt-3")
    rename_checkpoint(v1_path, dst, None)
    ours, theirs = bundle_index.read_bundle_index(dst), bundle_index.read_bundle_index(v2_path)
    assert ours.header == theirs.header and sorted(ours.entries) == sorted(theirs.entries)
    assert sum(1 for k in theirs.entries if bundle_index.slice_key_name(k) is not None) == 9
    for key, entry in theirs.entries.items():
        mine = type(entry).FromString(ours.entries[key].SerializeToString())
        mine.offset = entry.offset
        assert mine == entry, key


def test_slice_keys_are_tensorflows_for_any_offset(tmp_path):
    """Our encoding of slice keys (TensorFlow's OrderedCode) against TensorFlow's SaveV2, for extents of
    every encoded length."""
    starts = [0, 1, 63, 64, 127, 128, 8191, 8192, 1 << 20, (1 << 35) + 5, (1 << 55) + 3, (1 << 61) + 1]
    specs = ["%d 1 %d,1:-" % (1 << 62, s) for s in starts] + ["%d 1 %d,1:0,1" % (1 << 62, s) for s in starts[:3]]
    prefix = str(tmp_path / "slices")
    tf.raw_ops.SaveV2(prefix=prefix, tensor_names=["a\x01/t"] * len(specs), shape_and_slices=specs,
                      tensors=[tf.ones([1, 1]) for _ in specs])
    index = bundle_index.read_bundle_index(prefix)
    ours = {bundle_index.encode_slice_key("a\x01/t", part) for part in index.entries[b"a\x01/t"].slices}
    assert len(ours) == len(specs) and ours == set(index.entries) - {b"a\x01/t"}


def test_every_mapping_form_exclude_and_dry_run(tmp_path, single):
    values = source_values(single)
    forms = {
        "exact": {"net/hidden/kernel": "renamed/kernel", EMBEDDING: "emb/table", "global_step": None},
        "scope": {"net/hidden/": "renamed/", EMBEDDING: "emb/table", "global_step": None},
        "rules": [(r"^net/hidden/kernel$", "renamed/kernel"), (r"^net/embedding$", "emb/table"),
                  (r"^global_step$", None)],
        "callable": lambda n: {"net/hidden/kernel": "renamed/kernel", EMBEDDING: "emb/table",
                               "global_step": None}.get(n, n),
    }
    for label, mapping in forms.items():
        dst = str(tmp_path / label / "m")
        expected = rename_checkpoint(single, dst, mapping, exclude=["/Adam"], dry_run=True)
        assert not (tmp_path / label).exists()
        renames = rename_checkpoint(single, dst, mapping, exclude=["/Adam"])
        assert renames == expected, label
        assert renames["net/hidden/kernel"] == "renamed/kernel" and renames[EMBEDDING] == "emb/table", label
        assert renames["net/logits/bias"] == "net/logits/bias" and renames["net/vocab"] == "net/vocab", label
        kept = {n for n in values if "/Adam" not in n and n != "global_step"}
        if label == "scope":
            assert renames["net/hidden/bias"] == "renamed/bias"
        assert set(renames) == kept, label
        out = source_values(dst)
        assert set(out) == set(renames.values())
        for old, new in renames.items():
            assert_bit_equal(out[new], values[old], old)
        assert len(CheckpointFile(dst).slices_of("emb/table")) == 3


def test_transpose_and_reshape_follow_the_slots(tmp_path, single):
    values = source_values(single)
    dst = str(tmp_path / "t")
    rename_checkpoint(single, dst, {"/": "m/"}, transpose={r"^m/net/hidden/kernel$": (1, 0)},
                      reshape={r"^m/net/logits/kernel$": (2, 9), r"^m/net/counts$": (3,)})
    out = source_values(dst)
    assert len(out) == len(values)
    for name, value in values.items():
        if name.startswith("net/hidden/kernel"):  # the kernel, its Adam slots
            value = value.T
        elif name.startswith("net/logits/kernel"):
            value = value.reshape(2, 9)
        elif name == "net/counts":
            value = value.reshape(3)
        assert_bit_equal(out["m/" + name], value, name)
    with pytest.raises(klc.AssignmentMapError, match="partitioned"):
        rename_checkpoint(single, str(tmp_path / "x"), None, transpose={r"^net/embedding$": (1, 0)})
    with pytest.raises(klc.AssignmentMapError, match="holds strings"):
        rename_checkpoint(single, str(tmp_path / "x"), None, reshape={r"^net/vocab$": (3, 1)})
    assert not (tmp_path / "x").exists()


def test_zero_copy_is_refused_and_auto_streams(tmp_path, single):
    with pytest.raises(klc.LegacyCheckpointError, match="Zero-copy mode cannot rename .*V1 checkpoint.*mode='stream'"):
        rename_checkpoint(single, str(tmp_path / "z" / "m"), {"/": "x/"}, mode="zero_copy")
    assert not (tmp_path / "z").exists()
    for mode in ("auto", "stream"):
        dst = str(tmp_path / mode / "m")
        rename_checkpoint(single, dst, {"/": "x/"}, mode=mode)
        assert os.stat(dst + DATA).st_nlink == 1
        assert klc.verify_checkpoint(dst) == TENSORS


def test_one_tensor_or_slice_read_at_a_time(tmp_path, single, monkeypatch):
    """Memory: whole tensors come one get_tensor call each (float16 ones one RestoreV2 each), slices one
    single-slice RestoreV2 each."""
    reads = []  # the RestoreV2 calls; every other tensor comes from one CheckpointReader
    original = CheckpointFile._restore

    def restore(self, requests):
        reads.append([(r.key, r.slice_spec) for r in requests])
        return original(self, requests)

    monkeypatch.setattr(CheckpointFile, "_restore", restore)
    progress = []
    rename_checkpoint(single, str(tmp_path / "m"), None, progress=lambda done, total: progress.append((done, total)))
    assert all(len(batch) == 1 for batch in reads)
    partitioned = [EMBEDDING + suffix for suffix in ("", "/Adam", "/Adam_1")]
    assert sorted(key for [(key, spec)] in reads if spec) == sorted(partitioned * 3)  # 3 slices each
    assert [key for [(key, spec)] in reads if not spec] == ["net/scale"]  # float16: not for get_tensor
    assert len(progress) == TENSORS - 3 + 9 and progress[-1][0] == progress[-1][1] > 0
    assert [d for d, _ in progress] == sorted(d for d, _ in progress)


# --- damaged sources -------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def wide_v1(tmp_path_factory):
    with tf.Graph().as_default():
        loss = tf.reduce_sum(wide(tf.ones([2, 5])) ** 2)
        train_op = v1.train.AdamOptimizer(0.01).minimize(loss)
        with v1.Session() as sess:
            sess.run(v1.global_variables_initializer())
            sess.run(train_op)
            return v1.train.Saver(write_version=V1_FORMAT).save(sess, str(tmp_path_factory.mktemp("wide") / "m"))


def damaged_copy(path, directory, name):
    """A copy of V1 file `path` with one byte of tensor `name`'s stored data flipped."""
    os.makedirs(directory)
    copy = os.path.join(directory, os.path.basename(path))
    shutil.copy(path, copy)
    value = tf.train.load_checkpoint(path).get_tensor(name)
    raw = bytearray(open(copy, "rb").read())
    at = raw.find(value.tobytes())
    assert at > 0
    raw[at + len(value.tobytes()) // 2] ^= 0x40
    open(copy, "wb").write(bytes(raw))
    return copy


@pytest.mark.parametrize("verify", [True, False])
def test_damaged_v1_data_raises_and_writes_nothing(tmp_path, wide_v1, verify):
    """The damage is in the file's last table block: the file opens, and the tensor fails its read."""
    copy = damaged_copy(wide_v1, str(tmp_path / "src"), "net/logits/kernel")
    tensors = len(CheckpointFile(copy).tensors)
    out = tmp_path / "out"
    # TensorFlow fails the whole block: net/logits/bias, the first tensor read from it, names the damage.
    with pytest.raises(klc.CorruptCheckpointError, match="Reading net/logits/bias from .*/src/m failed.*damaged"):
        rename_checkpoint(copy, str(out / "m"), {"/": "x/"}, verify=verify)
    assert not out.exists() if verify else os.listdir(out) == []  # verify fails before anything is created
    renames = rename_checkpoint(copy, str(out / "m"), {"/": "x/"}, exclude=["^net/logits/"], verify=verify)
    assert len(renames) == tensors - 6 and klc.verify_checkpoint(str(out / "m")) == tensors - 6


# --- destinations and state files ------------------------------------------------------------------

def test_destinations_never_take_over_a_v1_checkpoint_silently(tmp_path, single, sharded):
    base = sharded[:-len("-?????-of-00002")]
    # A directory destination gets the checkpoint's name, not the shard pattern.
    rename_checkpoint(sharded, str(tmp_path / "d") + "/", None)
    assert sorted(os.listdir(tmp_path / "d")) == ["checkpoint", "model.ckpt-3" + DATA, "model.ckpt-3.index"]
    # The source's own name: the V2 files would make it mean the copy (V2 is found first).
    for src, dst in ((sharded, base), (sharded, os.path.dirname(sharded)), (single, single),
                     (single, os.path.dirname(single) + "/")):
        with pytest.raises(klc.LegacyCheckpointError, match="over its own source"):
            rename_checkpoint(src, dst, {"/": "x/"})
    assert not os.path.exists(base + ".index") and not os.path.exists(single + ".index")
    # Another V1 checkpoint at the destination is replaced only with overwrite=True.
    other = str(tmp_path / "other" / "zoo.ckpt")
    os.makedirs(os.path.dirname(other))
    shutil.copy(single, other)
    with pytest.raises(klc.LegacyCheckpointError, match="already exists"):
        rename_checkpoint(sharded, other, {"/": "x/"})
    assert resolve_checkpoint(other) == other and not os.path.exists(other + ".index")
    rename_checkpoint(sharded, other, {"/": "x/"}, overwrite=True)
    assert sorted(os.listdir(tmp_path / "other")) == ["checkpoint", "zoo.ckpt" + DATA, "zoo.ckpt.index"]
    assert "x/global_step" in source_values(other)
    # The same for the shards of a sharded one.
    shards = str(tmp_path / "shards" / "old")
    os.makedirs(os.path.dirname(shards))
    for i in range(2):
        shutil.copy("%s-%05d-of-00002" % (base, i), "%s-%05d-of-00002" % (shards, i))
    with pytest.raises(klc.LegacyCheckpointError, match="already exists"):
        rename_checkpoint(single, shards, None)
    rename_checkpoint(single, shards, None, overwrite=True)
    assert sorted(os.listdir(tmp_path / "shards")) == ["checkpoint", "old" + DATA, "old.index"]


def test_state_files_of_v1_directories_are_left_alone(tmp_path, single):
    # A TF1 run saved V1 checkpoints here: its state file keeps naming its own checkpoint.
    run = tmp_path / "run"
    path = save_v1(str(run))
    before = open(run / "checkpoint", "rb").read()
    rename_checkpoint(path, str(run / "renamed"), {"/": "x/"})
    assert open(run / "checkpoint", "rb").read() == before
    assert tf.train.latest_checkpoint(str(run)) == path
    # A published V1 file alone in its directory (no state file): no state file appears next to it, so the
    # directory still means the V1 checkpoint.
    zoo = tmp_path / "zoo"
    zoo.mkdir()
    shutil.copy(single, zoo / "resnet.ckpt")
    rename_checkpoint(str(zoo), str(zoo / "resnet_v2_format.ckpt"), {"/": "x/"})
    assert sorted(os.listdir(zoo)) == ["resnet.ckpt", "resnet_v2_format.ckpt" + DATA, "resnet_v2_format.ckpt.index"]
    # (Now that the directory holds two checkpoints, it names none; each loads by its path.)
    assert CheckpointFile(str(zoo / "resnet.ckpt")).format == "V1"
    assert "x/global_step" in source_values(str(zoo / "resnet_v2_format.ckpt"))


# --- remote places (ram://) and the CLI -------------------------------------------------------------

def ram_files(directory):
    return sorted(p[len(directory) + 1:] for p in tf.io.gfile.glob(directory + "/*"))


@pytest.mark.parametrize("src_kind, dst_kind", [("local", "ram"), ("ram", "ram"), ("ram", "local")])
def test_v1_rename_between_local_and_ram(tmp_path, sharded, src_kind, dst_kind):
    values = source_values(sharded)
    root = "ram://klc-v1-%s" % uuid.uuid4().hex[:12]
    src = sharded
    if src_kind == "ram":
        tf.io.gfile.makedirs(root + "/src")
        for i in range(2):
            shard = sharded.replace("?????", "%05d" % i)
            tf.io.gfile.copy(shard, root + "/src/" + os.path.basename(shard))
        src = root + "/src/model.ckpt-3"  # the base name: the V1 shards it names
    out = root + "/out" if dst_kind == "ram" else str(tmp_path / "out")
    rename_checkpoint(src, out + "/", {"/": "b/"}, transpose={r"^b/net/hidden/kernel$": (1, 0)}, verify=True)
    dst = out + "/model.ckpt-3"
    files = ram_files(out) if dst_kind == "ram" else sorted(os.listdir(out))
    assert files == ["checkpoint", "model.ckpt-3" + DATA, "model.ckpt-3.index"]  # no temporaries left
    assert tf.train.latest_checkpoint(out) == dst
    assert klc.verify_checkpoint(dst) == len(values)
    reader = tf.train.load_checkpoint(out)
    for name, value in values.items():
        assert_bit_equal(reader.get_tensor("b/" + name), value.T if name.startswith("net/hidden/kernel") else value,
                         name)


def test_cli_renames_a_v1_checkpoint(tmp_path, single, capsys):
    cli.FLAGS.unparse_flags()
    try:
        remaining = cli.FLAGS(["keras-legacy-ckpt", "rename", single, str(tmp_path / "m"), "--map", "/=backbone/",
                               "--exclude", "/Adam(_1)?$"])
        code = cli.main(remaining)
    finally:
        cli.FLAGS.unparse_flags()
    out, err = capsys.readouterr()
    assert code == 0, err
    assert "net/embedding -> backbone/net/embedding" in out and "wrote 16 tensors" in out
    assert sorted(source_values(str(tmp_path / "m"))) == sorted(
        "backbone/" + n for n in source_values(single) if not n.endswith(("/Adam", "/Adam_1")))
