"""Every TF1 checkpoint, wherever it lives: V1 files, moved directories, and what is not a TF1 checkpoint.

All files are written by real code: TF1 graph programs with tf.compat.v1.train.Saver (V1 and V2
formats), tf.train.Checkpoint, tf.saved_model.save, the TF1 SavedModel builder and tf_keras'
model.save / save_weights. Oracles: tf.train.load_checkpoint and TensorFlow's own
init_from_checkpoint in graph mode.
"""

import logging
import os
import shutil

import numpy as np
import pytest
import tensorflow as tf
import tf_keras

import keras_legacy_ckpt as klc
from keras_legacy_ckpt.checkpoint_reader import CheckpointFile, resolve_checkpoint
from tests import tf1_programs, tf2_models
from tests.tf1_programs import mlp, v1, wide

V1_FORMAT = v1.train.SaverDef.V1


save_tf1 = tf1_programs.train_and_save


def partitioned(x, training=False):
    """A TF1 partitioned embedding (3 parts, on the second CPU) and a weight, under scope "net"."""
    with v1.variable_scope("net"):
        with tf.device("/cpu:1"):
            table = v1.get_variable("embedding", [10, 4], partitioner=v1.fixed_size_partitioner(3))
        w = v1.get_variable("w", [4, 3])
        ids = tf.cast(tf.abs(x[:, 0]) * 3, tf.int32) % 10
        return tf.matmul(tf.nn.embedding_lookup(table, ids), w)


class PartsModule(tf.Module):
    """TF2 variables named as `partitioned` names its TF1 ones under "backbone" (part_0, part_1, ...)."""

    def __init__(self):
        super().__init__()
        self.parts = [tf.Variable(tf.zeros([rows, 4]), name="backbone/net/embedding/part_%d" % i)
                      for i, rows in enumerate([4, 3, 3])]
        self.w = tf.Variable(tf.zeros([4, 3]), name="backbone/net/w")


@pytest.fixture(scope="module")
def v1_ckpt(tmp_path_factory):
    """The TF-slim model zoo shape: one V1 file named model.ckpt (no step), with its .meta and state file."""
    path = save_tf1(str(tmp_path_factory.mktemp("v1")), write_version=V1_FORMAT, global_step=False)
    assert sorted(os.listdir(os.path.dirname(path))) == ["checkpoint", "model.ckpt", "model.ckpt.meta"]
    return path


@pytest.fixture(scope="module")
def v2_ckpt(tmp_path_factory):
    return save_tf1(str(tmp_path_factory.mktemp("v2")))


def _warm(network=mlp, input_dim=5):
    model = tf2_models.ShimModel(network, input_dim)
    model.warm_up()
    return model, tf2_models.values(model)


def _assert_matches_tf1(model, report, prefix, network=mlp, input_dim=5):
    """Each loaded variable holds what TF's own init_from_checkpoint assigns in graph mode."""
    oracle = tf1_programs.tf1_init_from_checkpoint(prefix, network, input_dim, {"/": "backbone/"})
    variables = model.legacy_variables()
    assert sorted(report.loaded) == sorted(n for n in oracle if n in variables)
    for name in report.loaded:
        np.testing.assert_array_equal(variables[name].numpy(), oracle[name], err_msg=name)


def _copy(path, directory):
    """Copies one checkpoint's files (prefix.*, or the V1 file) into `directory`."""
    os.makedirs(directory, exist_ok=True)
    base = os.path.basename(path)
    for name in os.listdir(os.path.dirname(path)):
        if name == base or name.startswith(base + "."):
            shutil.copy(os.path.join(os.path.dirname(path), name), directory)
    return os.path.join(directory, base)


# --- V1 format ------------------------------------------------------------------------------------


def test_v1_list_variables_matches_tensorflow(v1_ckpt):
    expected = tf.train.list_variables(v1_ckpt)
    assert len(expected) == 23  # 8 weights, 2 batch-norm statistics, Adam slots, beta powers, global step
    ours = klc.list_variables(v1_ckpt)
    assert [(n, list(s)) for n, s, _ in ours] == expected
    reader = tf.train.load_checkpoint(v1_ckpt)
    assert {n: d for n, _, d in ours} == {n: d.name for n, d in reader.get_variable_to_dtype_map().items()}
    for other in (v1_ckpt + ".meta", os.path.dirname(v1_ckpt)):
        assert klc.list_variables(other) == ours
    ckpt = CheckpointFile(v1_ckpt)
    assert (ckpt.format, ckpt.index, ckpt.files) == ("V1", None, [v1_ckpt])


def test_v1_warm_start_matches_tensorflow_init_from_checkpoint(v1_ckpt):
    model = tf2_models.ShimModel(mlp, 5)
    report = klc.warm_start(model, v1_ckpt, {"/": "backbone/"})
    assert report.checkpoint == v1_ckpt and len(report.loaded) == 8 and report.missing == []
    assert "global_step" in report.unused and "net/hidden/kernel/Adam" in report.unused
    _assert_matches_tf1(model, report, v1_ckpt)
    values = tf1_programs.checkpoint_values(v1_ckpt)
    for name, key in report.loaded.items():
        np.testing.assert_array_equal(model.legacy_variables()[name].numpy(), values[key])


def test_v1_and_v2_saves_of_one_session_warm_start_alike(tmp_path):
    v1_path, v2_path = save_tf1(str(tmp_path / "a"), write_version=V1_FORMAT, also_v2_in=str(tmp_path / "b"))
    assert not os.path.exists(v1_path + ".index") and os.path.exists(v2_path + ".index")
    reports = []
    for path in (v1_path, v2_path):
        model = tf2_models.ShimModel(mlp, 5)
        reports.append((klc.warm_start(model, path, {"/": "backbone/"}), tf2_models.values(model)))
    (r1, m1), (r2, m2) = reports
    assert r1.loaded == r2.loaded and r1.unused == r2.unused
    assert r1.summary().splitlines()[1:] == r2.summary().splitlines()[1:]
    for name in m1:
        np.testing.assert_array_equal(m1[name], m2[name])


def test_v1_zoo_file_alone_in_a_directory(v1_ckpt, tmp_path, caplog):
    """A published V1 checkpoint: the file only (no .meta, no state file), passed as its directory."""
    zoo = tmp_path / "resnet_v1_50"
    zoo.mkdir()
    shutil.copy(v1_ckpt, zoo / "resnet_v1_50.ckpt")
    with pytest.raises((ValueError, tf.errors.OpError)):
        tf.train.load_checkpoint(str(zoo))
    model = tf2_models.ShimModel(mlp, 5)
    with caplog.at_level(logging.INFO, logger="absl"):
        report = klc.warm_start(model, str(zoo), {"/": "backbone/"})
    assert report.checkpoint == str(zoo / "resnet_v1_50.ckpt")
    assert "using the only checkpoint in it, %s" % (zoo / "resnet_v1_50.ckpt") in caplog.text
    _assert_matches_tf1(model, report, v1_ckpt)


def _module_values(module):
    return {v.name: v.numpy().copy() for v in module.variables}


def test_v1_sharded_and_partitioned(tmp_path):
    """Saver(sharded=True, write_version=V1): one file per device, named by a '?????' pattern; a
    partitioned variable's parts get the slices TensorFlow's init_from_checkpoint gives them."""
    pattern = save_tf1(str(tmp_path / "s"), partitioned, 5, write_version=V1_FORMAT, sharded=True)
    assert pattern.endswith("-?????-of-00002")
    base = pattern[:-len("-?????-of-00002")]
    listed = klc.list_variables(pattern)
    assert [(n, list(s)) for n, s, _ in listed] == tf.train.list_variables(pattern)
    for other in (base, base + ".meta", base + "-00001-of-00002", str(tmp_path / "s")):
        assert resolve_checkpoint(other) == pattern
    module = PartsModule()
    report = klc.warm_start(module, str(tmp_path / "s"), {"/": "backbone/"})
    assert report.checkpoint == pattern
    assert report.loaded == {"backbone/net/embedding/part_%d" % i: "net/embedding" for i in range(3)} | {
        "backbone/net/w": "net/w"}
    oracle = tf1_programs.tf1_init_from_checkpoint(pattern, partitioned, 5, {"/": "backbone/"})
    for variable in module.variables:
        np.testing.assert_array_equal(variable.numpy(), oracle[variable.name[:-2]], err_msg=variable.name)
    os.remove(base + "-00001-of-00002")  # a partial copy
    module = PartsModule()
    before = _module_values(module)
    with pytest.raises(klc.CorruptCheckpointError, match="00001-of-00002 is missing"):
        klc.warm_start(module, pattern, {"/": "backbone/"})
    after = _module_values(module)
    assert all(np.array_equal(before[n], after[n]) for n in before)


def test_v1_slices_of_partitioned_variables_match_v2(tmp_path):
    v1_path, v2_path = save_tf1(str(tmp_path / "a"), partitioned, 5, write_version=V1_FORMAT,
                                also_v2_in=str(tmp_path / "b"))
    a, b = CheckpointFile(v1_path), CheckpointFile(v2_path)
    assert a.tensors == b.tensors
    for name in a.tensors:
        assert sorted(s.SerializeToString() for s in a.slices_of(name)) == \
            sorted(s.SerializeToString() for s in b.slices_of(name)), name
    assert len(a.slices_of("net/embedding")) == 3 and a.slices_of("net/w") == []
    # Reading one part through a shape-and-slice spec agrees with TF's reader.
    from keras_legacy_ckpt.checkpoint_reader import ReadRequest

    part = a.read([ReadRequest("net/embedding", "10 4 4,3:-", 48)])[0].numpy()
    # (TF's Python reader refuses V1 partitioned tensors: "Sliced checkpoints are not supported".)
    np.testing.assert_array_equal(part, tf.train.load_checkpoint(v2_path).get_tensor("net/embedding")[4:7])
    a.verify(a.tensors)


def test_v1_mod_partitioned_embedding_into_one_table(tmp_path):
    """mod_partitioned needs the checkpoint's slices: a V1 file gives them too."""
    ids = np.arange(10)
    with tf.Graph().as_default():
        with v1.variable_scope("emb_net"):
            table = v1.get_variable("table", [10, 4], partitioner=v1.fixed_size_partitioner(3))
        lookup = v1.nn.embedding_lookup(table, tf.constant(ids), partition_strategy="mod")
        saver = v1.train.Saver(write_version=V1_FORMAT)
        with v1.Session() as sess:
            sess.run(v1.global_variables_initializer())
            expected = sess.run(lookup)  # what TF1 returned for ids 0..9
            path = saver.save(sess, str(tmp_path / "model.ckpt"))
    module = tf.Module()
    module.table = tf.Variable(tf.zeros([10, 4]), name="emb_net/table")
    klc.warm_start(module, path, mod_partitioned=[r"^emb_net/table$"])
    np.testing.assert_array_equal(tf.gather(module.table, ids).numpy(), expected)


def _flip_byte_of(path, value):
    """Flips one byte inside the stored bytes of `value` (a tensor's data, not the metadata)."""
    raw = bytearray(open(path, "rb").read())
    at = raw.find(value.tobytes())
    assert at > 0
    raw[at + len(value.tobytes()) // 2] ^= 0x40
    open(path, "wb").write(bytes(raw))


@pytest.fixture(scope="module")
def wide_v1_ckpt(tmp_path_factory):
    return save_tf1(str(tmp_path_factory.mktemp("wide")), wide, 5, write_version=V1_FORMAT, steps=1)


@pytest.mark.parametrize("batch_bytes", [1 << 28, 64])
def test_v1_damaged_data_raises_before_any_assignment(wide_v1_ckpt, tmp_path, batch_bytes):
    """V1 has no index of checksums: TF's reader checks each table block's crc32c as it reads, so
    every mapped tensor is read once before the first assignment (all or nothing)."""
    path = _copy(wide_v1_ckpt, str(tmp_path / "copy"))
    _flip_byte_of(path, tf1_programs.checkpoint_values(wide_v1_ckpt)["net/logits/kernel"])
    # The file's first table block (its metadata, then tensors up to net/big2/kernel) is intact,
    # so opening works; net/logits/kernel is in the last block.
    ckpt = CheckpointFile(path)
    ckpt.verify(["net/big1/kernel", "net/big2/kernel"])
    with pytest.raises(klc.CorruptCheckpointError, match="net/logits/kernel.*damaged"):
        ckpt.verify(["net/logits/kernel"])
    model, before = _warm(wide)
    with pytest.raises(klc.CorruptCheckpointError, match="damaged"):
        klc.warm_start(model, path, {"/": "backbone/"}, batch_bytes=batch_bytes)
    tf2_models.assert_unchanged(model, before)
    report = klc.warm_start(model, wide_v1_ckpt, {"/": "backbone/"}, batch_bytes=batch_bytes)
    assert len(report.loaded) == 6


@pytest.mark.parametrize("damage", ["truncate", "flip_metadata", "garbage"])
def test_v1_damaged_file_raises_corrupt_and_changes_nothing(v1_ckpt, tmp_path, damage):
    path = _copy(v1_ckpt, str(tmp_path / "copy"))
    raw = open(path, "rb").read()
    if damage == "truncate":
        raw = raw[:len(raw) // 2]
    elif damage == "flip_metadata":
        raw = raw[:40] + bytes([raw[40] ^ 1]) + raw[41:]
    else:
        raw = raw[:8] + os.urandom(len(raw) - 8)
    open(path, "wb").write(raw)
    model, before = _warm()
    with pytest.raises(klc.CorruptCheckpointError, match="Copy the checkpoint again"):
        klc.warm_start(model, path, {"/": "backbone/"})
    tf2_models.assert_unchanged(model, before)


# --- what is not a TF1 checkpoint -----------------------------------------------------------------


@pytest.fixture(scope="module")
def other_kinds(tmp_path_factory, v2_ckpt):
    root = tmp_path_factory.mktemp("kinds")
    keras_model = tf_keras.Sequential([tf_keras.layers.Dense(2, input_shape=(3,), name="d")])
    paths = {}
    paths["object"] = tf.train.Checkpoint(model=keras_model).save(str(root / "object" / "ckpt"))
    manager = tf.train.CheckpointManager(tf.train.Checkpoint(model=keras_model), str(root / "manager"), 3)
    manager.save()
    paths["manager_dir"] = str(root / "manager")
    keras_model.save_weights(str(root / "tf_weights" / "weights"))
    paths["save_weights_tf"] = str(root / "tf_weights" / "weights")
    module = tf.Module()
    module.v = tf.Variable([1.0, 2.0])
    tf.saved_model.save(module, str(root / "saved_model"))
    paths["saved_model"] = str(root / "saved_model")
    paths["saved_model_pb"] = str(root / "saved_model" / "saved_model.pb")
    paths["saved_model_variables"] = str(root / "saved_model" / "variables" / "variables")
    keras_model.save(str(root / "model.keras"))
    paths["keras"] = str(root / "model.keras")
    keras_model.save(str(root / "model.h5"))
    paths["h5"] = str(root / "model.h5")
    keras_model.save_weights(str(root / "model.weights.h5"))
    paths["weights_h5"] = str(root / "model.weights.h5")
    lone = root / "lone"
    lone.mkdir()
    shutil.copy(v2_ckpt + ".meta", lone)
    paths["lone_meta"] = str(lone / os.path.basename(v2_ckpt + ".meta"))
    paths["lone_meta_prefix"] = str(lone / os.path.basename(v2_ckpt))
    paths["lone_meta_dir"] = str(lone)
    return paths


WRONG_KINDS = {
    "object": ("object-based", ["klc.restore_object_checkpoint", "tf.train.Checkpoint(model=model).restore"]),
    "manager_dir": ("object-based", ["klc.restore_object_checkpoint"]),
    "save_weights_tf": ("object-based", ["model.load_weights"]),
    "saved_model": ("SavedModel", ["tf.saved_model.load"]),
    "saved_model_pb": ("SavedModel", ["tf.saved_model.load"]),
    "saved_model_variables": ("SavedModel", ["tf.saved_model.load"]),
    "keras": ("Keras", ["keras.models.load_model", "model.load_weights"]),
    "h5": ("Keras", ["keras.models.load_model", "model.load_weights"]),
    "weights_h5": ("Keras", ["model.load_weights"]),
    "lone_meta": ("MetaGraph", ["data is missing", ".index and .data-*"]),
    "lone_meta_prefix": ("MetaGraph", ["data is missing"]),
    "lone_meta_dir": ("MetaGraph", ["data is missing"]),
}


@pytest.mark.parametrize("kind", sorted(WRONG_KINDS))
def test_wrong_kind_names_what_it_is_and_what_to_use(other_kinds, kind):
    path = other_kinds[kind]
    what, advice = WRONG_KINDS[kind]
    model, before = _warm()
    with pytest.raises(klc.CheckpointNotFoundError) as err:
        klc.warm_start(model, path, {"/": "backbone/"})
    message = str(err.value)
    assert what in message and all(a in message for a in advice), message
    assert "corrupt" not in message.lower() and "not found:" not in message
    tf2_models.assert_unchanged(model, before)
    with pytest.raises(klc.CheckpointNotFoundError, match=what):
        klc.list_variables(path)


def test_tf1_saved_model_points_at_its_name_based_variables(tmp_path):
    """A SavedModel written by TF1's builder holds a name-based checkpoint: the message says where."""
    directory = str(tmp_path / "tf1_saved_model")
    with tf.Graph().as_default():
        inputs = v1.placeholder(tf.float32, [None, 5])
        mlp(inputs)
        with v1.Session() as sess:
            sess.run(v1.global_variables_initializer())
            builder = v1.saved_model.Builder(directory)
            builder.add_meta_graph_and_variables(sess, ["serve"])
            builder.save()
    variables = os.path.join(directory, "variables", "variables")
    with pytest.raises(klc.CheckpointNotFoundError, match="SavedModel") as err:
        klc.list_variables(directory)
    assert "pass %s as the checkpoint" % variables in str(err.value)
    model = tf2_models.ShimModel(mlp, 5)
    report = klc.warm_start(model, variables, {"/": "backbone/"})
    assert len(report.loaded) == 8
    _assert_matches_tf1(model, report, variables)


@pytest.mark.parametrize("suffix", [".meta", ".index", ".data-00000-of-00001"])
def test_a_file_of_a_complete_checkpoint_still_means_it(v2_ckpt, suffix):
    assert resolve_checkpoint(v2_ckpt + suffix) == v2_ckpt
    assert klc.list_variables(v2_ckpt + suffix) == klc.list_variables(v2_ckpt)


def test_data_without_index_says_the_index_is_missing(v2_ckpt, tmp_path):
    path = _copy(v2_ckpt, str(tmp_path / "copy"))
    os.remove(path + ".index")
    with pytest.raises(klc.CheckpointNotFoundError, match=r"\.index does not"):
        klc.list_variables(path + ".data-00000-of-00001")


# --- checkpoints that moved -----------------------------------------------------------------------


def _moved(original_dir, new_dir):
    shutil.copytree(original_dir, new_dir)
    shutil.rmtree(original_dir)
    return new_dir


@pytest.mark.parametrize("write_version", ["V1", "V2"])
def test_directory_copied_from_another_machine(tmp_path, caplog, write_version):
    """Saver state files name absolute paths; the copy's own checkpoint of that name is used."""
    version = getattr(v1.train.SaverDef, write_version)
    old_prefix = save_tf1(str(tmp_path / "cluster" / "train"), write_version=version)
    with open(os.path.join(os.path.dirname(old_prefix), "checkpoint")) as f:
        assert 'model_checkpoint_path: "%s"' % old_prefix in f.read()  # absolute
    new_dir = _moved(str(tmp_path / "cluster"), str(tmp_path / "laptop" / "copy"))
    directory = os.path.join(new_dir, "train")
    expected = os.path.join(directory, os.path.basename(old_prefix))
    assert tf.train.latest_checkpoint(directory) is None  # TensorFlow finds nothing
    with pytest.raises((ValueError, tf.errors.OpError)):
        tf.train.load_checkpoint(directory)
    model = tf2_models.ShimModel(mlp, 5)
    with caplog.at_level(logging.INFO, logger="absl"):
        report = klc.warm_start(model, directory, {"/": "backbone/"})
    assert report.checkpoint == expected
    assert "names %s" % old_prefix in caplog.text and "using %s" % expected in caplog.text
    _assert_matches_tf1(model, report, expected)
    assert klc.list_variables(directory) == klc.list_variables(expected)


def test_state_file_written_on_windows_resolves_by_basename(v2_ckpt, tmp_path):
    directory = tmp_path / "copy"
    prefix = _copy(v2_ckpt, str(directory))
    (directory / "checkpoint").write_text(
        'model_checkpoint_path: "C:\\\\Users\\\\me\\\\train\\\\%s"\n' % os.path.basename(prefix))
    assert resolve_checkpoint(str(directory)) == prefix


def test_bert_style_directory_without_state_file(v2_ckpt, tmp_path, caplog):
    """Published checkpoints (bert_model.ckpt.index, .data-*, .meta) come without a state file."""
    directory = tmp_path / "uncased_L-12_H-768_A-12"
    directory.mkdir()
    for suffix in (".index", ".data-00000-of-00001", ".meta"):
        shutil.copy(v2_ckpt + suffix, directory / ("bert_model.ckpt" + suffix))
    (directory / "vocab.txt").write_text("[PAD]\n")
    (directory / "bert_config.json").write_text("{}")
    with pytest.raises((ValueError, tf.errors.OpError)):
        tf.train.load_checkpoint(str(directory))
    model = tf2_models.ShimModel(mlp, 5)
    with caplog.at_level(logging.INFO, logger="absl"):
        report = klc.warm_start(model, str(directory), {"/": "backbone/"})
    assert report.checkpoint == str(directory / "bert_model.ckpt")
    assert "no 'checkpoint' state file; using the only checkpoint in it" in caplog.text
    _assert_matches_tf1(model, report, v2_ckpt)


def test_directory_that_is_itself_the_prefix(tmp_path):
    """Saver.save(sess, "model_dir/") writes model_dir/.index and model_dir/.data-*."""
    directory = str(tmp_path / "model_dir")
    prefix = save_tf1(directory, name="", global_step=False)
    assert prefix == directory + "/" and os.path.exists(os.path.join(directory, ".index"))
    os.remove(os.path.join(directory, "checkpoint"))  # published without its state file
    with pytest.raises((ValueError, tf.errors.OpError)):
        tf.train.load_checkpoint(directory)
    assert resolve_checkpoint(directory) == prefix
    model = tf2_models.ShimModel(mlp, 5)
    report = klc.warm_start(model, directory, {"/": "backbone/"})
    assert report.checkpoint == prefix
    # TensorFlow's init_from_checkpoint cannot take this prefix either: the oracle reads a copy.
    oracle_prefix = str(tmp_path / "oracle" / "model.ckpt")
    os.makedirs(os.path.dirname(oracle_prefix))
    for suffix in (".index", ".data-00000-of-00001"):
        shutil.copy(prefix + suffix, oracle_prefix + suffix)
    _assert_matches_tf1(model, report, oracle_prefix)
    # A state file naming a checkpoint that is gone: the answer never suggests the path passed.
    with open(os.path.join(directory, "checkpoint"), "w") as f:
        f.write('model_checkpoint_path: "/elsewhere/model.ckpt-9"\n')
    model, before = _warm()
    with pytest.raises(klc.CheckpointNotFoundError) as err:
        klc.warm_start(model, directory, {"/": "backbone/"})
    message = str(err.value)
    assert "pass one of these prefixes" not in message and "the directory itself is also a checkpoint" in message
    tf2_models.assert_unchanged(model, before)


def test_directory_with_several_checkpoints_and_no_state_file(tmp_path):
    directory = str(tmp_path / "several")
    first = save_tf1(directory, steps=1)
    second = save_tf1(directory, steps=10)
    os.remove(os.path.join(directory, "checkpoint"))
    model, before = _warm()
    with pytest.raises(klc.CheckpointNotFoundError, match="no 'checkpoint' state file and holds 2 checkpoints") as err:
        klc.warm_start(model, directory, {"/": "backbone/"})
    assert "pass one of these prefixes instead: %s, %s." % (first, second) in str(err.value)
    tf2_models.assert_unchanged(model, before)


def test_state_file_naming_a_missing_checkpoint(v2_ckpt, tmp_path):
    directory = tmp_path / "copy"
    prefix = _copy(v2_ckpt, str(directory))
    (directory / "checkpoint").write_text('model_checkpoint_path: "/old/place/model.ckpt-999"\n')
    with pytest.raises(klc.CheckpointNotFoundError, match="names no checkpoint that exists") as err:
        resolve_checkpoint(str(directory))
    assert "model.ckpt-999" in str(err.value) and "pass one of these prefixes instead: %s." % prefix in str(err.value)


def test_remote_filesystem_paths(v1_ckpt, v2_ckpt):
    """Resolution uses tf.io.gfile only: a moved directory and a V1 file on ram:// (in-memory)."""
    remote = "ram://klc_kinds/moved"
    tf.io.gfile.makedirs(remote)
    for name in os.listdir(os.path.dirname(v2_ckpt)):
        tf.io.gfile.copy(os.path.join(os.path.dirname(v2_ckpt), name), remote + "/" + name, overwrite=True)
    prefix = remote + "/" + os.path.basename(v2_ckpt)
    assert resolve_checkpoint(remote) == prefix  # the state file names the local path it was saved at
    for other in (prefix, prefix + ".meta", prefix + ".index"):
        assert resolve_checkpoint(other) == prefix
    zoo = "ram://klc_kinds/zoo"
    tf.io.gfile.makedirs(zoo)
    tf.io.gfile.copy(v1_ckpt, zoo + "/inception_v3.ckpt", overwrite=True)
    assert resolve_checkpoint(zoo) == zoo + "/inception_v3.ckpt"
    assert klc.list_variables(zoo) == klc.list_variables(v1_ckpt)
    tf.io.gfile.copy(v1_ckpt + ".meta", zoo + "/inception_v3.ckpt.meta", overwrite=True)
    for other in (zoo + "/inception_v3.ckpt", zoo + "/inception_v3.ckpt.meta"):
        assert klc.list_variables(other) == klc.list_variables(v1_ckpt)
    with pytest.raises(klc.CheckpointNotFoundError, match="MetaGraph"):
        tf.io.gfile.copy(v1_ckpt + ".meta", zoo + "/lone.ckpt.meta", overwrite=True)
        resolve_checkpoint(zoo + "/lone.ckpt.meta")
