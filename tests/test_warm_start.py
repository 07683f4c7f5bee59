"""warm_start: all or nothing, reports, errors that name the variable and suggest a fix."""

import os
import shutil

import numpy as np
import pytest
import tensorflow as tf

import keras_legacy_ckpt as klc
from keras_legacy_ckpt.bundle_index import read_bundle_index
from tests import tf1_programs, tf2_models
from tests.tf1_programs import mlp, scoped_variables, v1


@pytest.fixture(scope="module")
def scoped_ckpt(tmp_path_factory):
    return tf1_programs.save_tf1_checkpoint(str(tmp_path_factory.mktemp("scoped")), scoped_variables, 4)


def _warm(network, input_dim, outer_scope="backbone"):
    model = tf2_models.ShimModule(network, input_dim, outer_scope=outer_scope)
    model.warm_up()
    return model, tf2_models.values(model)


def test_loads_every_weight_and_reports_optimizer_state_unused(mlp_ckpt):
    prefix, ckpt_values = mlp_ckpt
    model = tf2_models.ShimModel(mlp, 5)
    report = klc.warm_start(model, prefix, {"/": "backbone/"})
    assert len(report.loaded) == 8 and report.missing == []
    for name, key in report.loaded.items():
        np.testing.assert_array_equal(model.legacy_variables()[name].numpy(), ckpt_values[key])
    assert "global_step" in report.unused and "net/hidden/kernel/Adam" in report.unused
    summary = report.summary()
    assert "loaded:  8 variables" in summary and "optimizer/step tensors" in summary


def test_directory_with_state_file_uses_latest(mlp_ckpt):
    prefix, _ = mlp_ckpt
    model = tf2_models.ShimModel(mlp, 5)
    report = klc.warm_start(model, os.path.dirname(prefix), {"/": "backbone/"})
    assert report.checkpoint == prefix


def test_missing_variables_raise_with_suggested_map_and_change_nothing(mlp_ckpt):
    prefix, _ = mlp_ckpt
    model, before = _warm(mlp, 5)
    with pytest.raises(klc.MissingVariablesError) as err:
        klc.warm_start(model, prefix)  # identity map: the model has an extra "backbone" scope
    message = str(err.value)
    assert "backbone/net/hidden/kernel" in message and "Nothing was assigned" in message
    assert "{'/': 'backbone/'}" in message
    tf2_models.assert_unchanged(model, before)


def test_strict_false_loads_what_matches_and_lists_the_rest(scoped_ckpt):
    prefix, _ = scoped_ckpt
    model, before = _warm(scoped_variables, 4)
    report = klc.warm_start(model, prefix, {"enc/": "backbone/enc/", "nothere/": "backbone/head/"}, strict=False)
    assert report.missing == ["backbone/head/w"]
    assert sorted(report.loaded) == ["backbone/enc/layer1/b", "backbone/enc/layer1/w", "backbone/enc/layer2/w"]
    np.testing.assert_array_equal(model.legacy_variables()["backbone/head/w"].numpy(), before["backbone/head/w"])


def test_ignore_leaves_variables_alone(scoped_ckpt):
    prefix, ckpt_values = scoped_ckpt
    model, before = _warm(scoped_variables, 4)
    report = klc.warm_start(model, prefix, {"/": "backbone/"}, ignore=[r"backbone/head/"])
    assert report.ignored == ["backbone/head/w"] and "backbone/head/w" not in report.loaded
    np.testing.assert_array_equal(model.legacy_variables()["backbone/head/w"].numpy(), before["backbone/head/w"])
    np.testing.assert_array_equal(model.legacy_variables()["backbone/enc/layer2/w"].numpy(),
                                  ckpt_values["enc/layer2/w"])


def test_shape_mismatch_names_both_sides_and_changes_nothing(ckpt_dir, scoped_ckpt):
    prefix, _ = scoped_ckpt

    def wider_head(x, training=False):
        with v1.variable_scope("enc"):
            with v1.variable_scope("layer1"):
                w1 = v1.get_variable("w", [4, 5])
                b1 = v1.get_variable("b", [5])
            with v1.variable_scope("layer2"):
                w2 = v1.get_variable("w", [5, 2])
        with v1.variable_scope("head"):
            w3 = v1.get_variable("w", [2, 7])  # the checkpoint's head is [2, 3]
        return tf.matmul(tf.matmul(tf.matmul(x, w1) + b1, w2), w3)

    model, before = _warm(wider_head, 4)
    with pytest.raises(klc.ShapeMismatchError) as err:
        klc.warm_start(model, prefix, {"/": "backbone/"})
    assert "backbone/head/w (2, 7) <- 'head/w' (2, 3)" in str(err.value)
    assert "ignore=" in str(err.value)
    tf2_models.assert_unchanged(model, before)
    report = klc.warm_start(model, prefix, {"/": "backbone/"}, ignore=["backbone/head/"])
    assert len(report.loaded) == 3


def test_dtype_mismatch_changes_nothing(scoped_ckpt):
    prefix, _ = scoped_ckpt

    def float64_net(x, training=False):
        with v1.variable_scope("head"):
            return tf.matmul(tf.cast(x[:, :2], tf.float64), v1.get_variable("w", [2, 3], dtype=tf.float64))

    model, before = _warm(float64_net, 4)
    with pytest.raises(klc.DTypeMismatchError, match=r"backbone/head/w \(float64\) <- 'head/w' \(float32\)"):
        klc.warm_start(model, prefix, {"head/": "backbone/head/"})
    tf2_models.assert_unchanged(model, before)


def test_two_keys_for_one_variable_is_an_assignment_map_error(scoped_ckpt):
    prefix, _ = scoped_ckpt
    model, before = _warm(scoped_variables, 4)
    with pytest.raises(klc.AssignmentMapError, match="backbone/enc/layer2/w"):
        klc.warm_start(model, prefix, {"/": "backbone/", "head/w": "backbone/enc/layer2/w"})
    with pytest.raises(klc.AssignmentMapError, match="not a valid regular expression"):
        klc.warm_start(model, prefix, [("(unclosed", "x")])
    with pytest.raises(klc.AssignmentMapError, match="Unsupported assignment map"):
        klc.warm_start(model, prefix, 42)
    with pytest.raises(klc.AssignmentMapError, match="Did you mean 'backbone/enc/'"):
        klc.warm_start(model, prefix, {"enc/": "backbone/encc/"})
    with pytest.raises(klc.AssignmentMapError, match="neither a variable"):
        klc.warm_start(model, prefix, {"enc/": "backbone/enc"})
    with pytest.raises(klc.AssignmentMapError):
        klc.warm_start(model, prefix, {"/": "backbone/"}, ignore=["(bad"])
    tf2_models.assert_unchanged(model, before)


def test_missing_checkpoint_paths(tmp_path):
    model = tf2_models.ShimModule(scoped_variables, 4)
    with pytest.raises(klc.CheckpointNotFoundError, match="no .*nope.index"):
        klc.warm_start(model, str(tmp_path / "nope"))
    with pytest.raises(klc.CheckpointNotFoundError, match="no 'checkpoint' state file"):
        klc.warm_start(model, str(tmp_path))
    (tmp_path / "checkpoint").write_text('model_checkpoint_path: "gone.ckpt-1"\n')
    with pytest.raises(klc.CheckpointNotFoundError, match="names no checkpoint"):
        klc.warm_start(model, str(tmp_path))
    assert not model.variables  # nothing was even created


def test_list_variables_matches_tensorflow(mlp_ckpt):
    prefix, ckpt_values = mlp_ckpt
    ours = klc.list_variables(prefix)
    assert [(n, list(s)) for n, s, _ in ours] == tf.train.list_variables(prefix)
    assert dict((n, d) for n, _, d in ours)["global_step"] == "int64"
    assert klc.list_variables(prefix + ".index") == ours


def _copy_checkpoint(prefix, directory):
    os.makedirs(directory, exist_ok=True)
    for name in os.listdir(os.path.dirname(prefix)):
        if name.startswith(os.path.basename(prefix) + "."):
            shutil.copy(os.path.join(os.path.dirname(prefix), name), directory)
    return os.path.join(directory, os.path.basename(prefix))


def _data_file(prefix):
    return prefix + ".data-00000-of-00001"


@pytest.mark.parametrize("damage", ["truncate_data", "flip_data", "truncate_index", "garbage_index"])
@pytest.mark.parametrize("batch_bytes", [1 << 28, 64])
def test_corrupt_checkpoints_raise_and_change_nothing(tmp_path, mlp_ckpt, damage, batch_bytes):
    prefix = _copy_checkpoint(mlp_ckpt[0], str(tmp_path / "copy"))
    if damage == "truncate_data":
        size = os.path.getsize(_data_file(prefix))
        with open(_data_file(prefix), "r+b") as f:
            f.truncate(size - 10)
    elif damage == "flip_data":
        entry = read_bundle_index(prefix).entries[b"net/logits/kernel"]  # a tensor the map loads
        with open(_data_file(prefix), "r+b") as f:
            f.seek(entry.offset + entry.size // 2)
            byte = f.read(1)
            f.seek(-1, 1)
            f.write(bytes([byte[0] ^ 0x40]))
    elif damage == "truncate_index":
        with open(prefix + ".index", "r+b") as f:
            f.truncate(os.path.getsize(prefix + ".index") // 2)
    else:
        with open(prefix + ".index", "wb") as f:
            f.write(os.urandom(300))
    model = tf2_models.ShimModel(mlp, 5)
    model.warm_up()
    before = tf2_models.values(model)
    with pytest.raises(klc.CorruptCheckpointError) as err:
        klc.warm_start(model, prefix, {"/": "backbone/"}, batch_bytes=batch_bytes)
    assert prefix in str(err.value)
    tf2_models.assert_unchanged(model, before)
