"""rename_checkpoint: every mapping form, zero-copy vs streaming, transforms, bad input."""

import os

import numpy as np
import pytest
import tensorflow as tf

import keras_legacy_ckpt as klc
from keras_legacy_ckpt import bundle_index
from keras_legacy_ckpt.rename import rename_checkpoint
from tests import tf1_programs
from tests.tf1_programs import v1


def with_partitioned_embedding(x, training=False):
    with v1.variable_scope("emb"):
        table = v1.get_variable("table", [12, 5], partitioner=v1.fixed_size_partitioner(3))
    return tf1_programs.mlp(tf.matmul(x, tf.concat(list(table), 0)), training)


@pytest.fixture(scope="module")
def ckpt(tmp_path_factory):
    return tf1_programs.save_tf1_checkpoint(str(tmp_path_factory.mktemp("src")), with_partitioned_embedding, 12)


def _snapshot(prefix):
    return {name: (info.shape, info.dtype) for name, info in klc.checkpoint_reader.CheckpointFile(prefix).tensors.items()}


def test_index_writer_is_byte_identical_to_tensorflows(ckpt):
    prefix, _ = ckpt
    index = bundle_index.read_bundle_index(prefix)
    with open(prefix + ".index", "rb") as f:
        assert bundle_index.encode_index(index.header, index.entries) == f.read()


def test_index_writer_many_blocks_byte_identical(tmp_path):
    # TensorFlow's own bundle writer (SaveV2) makes an index of several 256 KiB blocks.
    names = ["tower_%04d/" % i + "very_long_scope_name/" * 5 + "kernel" for i in range(4000)]
    prefix = str(tmp_path / "many")
    tf.raw_ops.SaveV2(prefix=prefix, tensor_names=names, shape_and_slices=[""] * len(names),
                      tensors=[tf.constant([float(i)]) for i in range(len(names))])
    index = bundle_index.read_bundle_index(prefix)
    assert len(index.entries) == 4000
    with open(prefix + ".index", "rb") as f:
        data = f.read()
    assert len(data) > 2 * 256 * 1024
    assert bundle_index.encode_index(index.header, index.entries) == data


@pytest.mark.parametrize("mode", ["zero_copy", "stream"])
def test_scope_rename_keeps_every_value_and_the_slices(tmp_path, ckpt, mode):
    prefix, values = ckpt
    dst = str(tmp_path / "out" / "model.ckpt")
    renames = rename_checkpoint(prefix, dst, {"/": "backbone/"}, mode=mode)
    assert renames["net/hidden/kernel"] == "backbone/net/hidden/kernel"
    assert renames["global_step"] == "backbone/global_step"
    out = tf1_programs.checkpoint_values(dst)
    assert sorted(out) == sorted("backbone/" + k for k in values)
    for old, new in renames.items():
        np.testing.assert_array_equal(out[new], values[old])
        assert out[new].dtype == values[old].dtype
    assert tf.train.latest_checkpoint(str(tmp_path / "out")) == dst
    sliced = bundle_index.read_bundle_index(dst).entries[b"backbone/emb/table"]
    assert len(sliced.slices) == 3
    part = tf.raw_ops.RestoreV2(prefix=dst, tensor_names=["backbone/emb/table"], shape_and_slices=["12 5 4,4:-"],
                                dtypes=[tf.float32])[0]
    np.testing.assert_array_equal(part.numpy(), values["emb/table"][4:8])


def test_zero_copy_and_streaming_outputs_are_equal_bit_for_bit(tmp_path, ckpt):
    prefix, _ = ckpt
    mapping = [(r"^net/", "tower/"), (r"^emb/", "embedding/")]
    rename_checkpoint(prefix, str(tmp_path / "z" / "m"), mapping, mode="zero_copy")
    rename_checkpoint(prefix, str(tmp_path / "s" / "m"), mapping, mode="stream")
    zero, stream = (tf1_programs.checkpoint_values(str(tmp_path / d / "m")) for d in "zs")
    assert zero.keys() == stream.keys()
    for name in zero:
        assert zero[name].tobytes() == stream[name].tobytes() and zero[name].dtype == stream[name].dtype
    z_index = bundle_index.read_bundle_index(str(tmp_path / "z" / "m"))
    s_index = bundle_index.read_bundle_index(str(tmp_path / "s" / "m"))
    assert {k: e.crc32c for k, e in z_index.entries.items()} == {k: e.crc32c for k, e in s_index.entries.items()}


def test_renamed_checkpoint_is_what_init_from_checkpoint_loads(tmp_path, ckpt):
    prefix, values = ckpt
    dst = str(tmp_path / "renamed")
    rename_checkpoint(prefix, dst, {"/": "backbone/"}, exclude=[r"/Adam(_1)?$", r"^beta\d_power$"])
    oracle = tf1_programs.tf1_init_from_checkpoint(dst, with_partitioned_embedding, 12, {"/": "/"})
    np.testing.assert_array_equal(oracle["backbone/net/hidden/kernel"], values["net/hidden/kernel"])
    np.testing.assert_array_equal(np.concatenate([oracle["backbone/emb/table/part_%d" % i] for i in range(3)]),
                                  values["emb/table"])


def test_every_mapping_form_and_exclude(tmp_path, ckpt):
    prefix, values = ckpt
    forms = {
        "exact": {"net/hidden/kernel": "renamed/kernel", "global_step": None},
        "rules": [(r"^net/hidden/kernel$", "renamed/kernel"), (r"^global_step$", None)],
        "callable": lambda n: {"net/hidden/kernel": "renamed/kernel", "global_step": None}.get(n, n),
    }
    for label, mapping in forms.items():
        dst = str(tmp_path / label)
        renames = rename_checkpoint(prefix, dst, mapping, exclude=["/Adam"])
        assert renames["net/hidden/kernel"] == "renamed/kernel"
        assert renames["net/logits/bias"] == "net/logits/bias"  # not covered: kept
        assert "global_step" not in renames and not any("/Adam" in k for k in renames)
        out = tf1_programs.checkpoint_values(dst)
        assert set(out) == set(renames.values())
        np.testing.assert_array_equal(out["renamed/kernel"], values["net/hidden/kernel"])


def test_transpose_and_reshape(tmp_path, ckpt):
    prefix, values = ckpt
    dst = str(tmp_path / "t")
    rename_checkpoint(prefix, dst, None, transpose={r"^net/hidden/kernel$": (1, 0)},
                      reshape={r"^net/logits/kernel$": (2, 9)})
    out = tf1_programs.checkpoint_values(dst)
    np.testing.assert_array_equal(out["net/hidden/kernel"], values["net/hidden/kernel"].T)
    np.testing.assert_array_equal(out["net/logits/kernel"], values["net/logits/kernel"].reshape(2, 9))
    np.testing.assert_array_equal(out["net/bn/gamma"], values["net/bn/gamma"])
    assert out.keys() == values.keys()


def test_streaming_reports_progress_up_to_the_total(tmp_path, ckpt):
    prefix, _ = ckpt
    calls = []
    rename_checkpoint(prefix, str(tmp_path / "p"), None, exclude=["Adam"], progress=lambda d, t: calls.append((d, t)))
    assert calls and calls[-1][0] == calls[-1][1] > 0
    assert [d for d, _ in calls] == sorted(d for d, _ in calls)


def test_dry_run_writes_nothing(tmp_path, ckpt):
    prefix, _ = ckpt
    renames = rename_checkpoint(prefix, str(tmp_path / "dry" / "m"), {"/": "x/"}, dry_run=True)
    assert renames["global_step"] == "x/global_step"
    assert not (tmp_path / "dry").exists()


def _files(directory):
    return {p: os.path.getsize(os.path.join(directory, p)) for p in os.listdir(directory)}


def test_bad_renames_raise_and_leave_files_alone(tmp_path, ckpt):
    prefix, _ = ckpt
    source_files = _files(os.path.dirname(prefix))
    out = tmp_path / "out"
    with pytest.raises(klc.AssignmentMapError, match="renames both 'net/bn/beta' and 'net/bn/gamma' to 'same'"):
        rename_checkpoint(prefix, str(out / "m"), {"net/bn/beta": "same", "net/bn/gamma": "same"})
    with pytest.raises(klc.AssignmentMapError, match="scope to a plain name"):
        rename_checkpoint(prefix, str(out / "m"), {"net/": "tower"})
    with pytest.raises(klc.AssignmentMapError, match="not a valid regular expression"):
        rename_checkpoint(prefix, str(out / "m"), [("(", "x")])
    with pytest.raises(klc.AssignmentMapError, match="not a permutation"):
        rename_checkpoint(prefix, str(out / "m"), None, transpose={"net/hidden/kernel$": (0, 0)})
    with pytest.raises(klc.AssignmentMapError, match="partitioned"):
        rename_checkpoint(prefix, str(out / "m"), None, transpose={"emb/table$": (1, 0)})
    with pytest.raises(klc.AssignmentMapError, match="Zero-copy mode only renames"):
        rename_checkpoint(prefix, str(out / "m"), None, exclude=["Adam"], mode="zero_copy")
    with pytest.raises(klc.LegacyCheckpointError, match="over its own source"):
        rename_checkpoint(prefix, prefix, {"/": "x/"})
    with pytest.raises(klc.CheckpointNotFoundError):
        rename_checkpoint(str(tmp_path / "missing"), str(out / "m"), None)
    assert not out.exists()
    assert _files(os.path.dirname(prefix)) == source_files
    tf1_programs.checkpoint_values(prefix)  # the source still loads


def test_existing_destination_needs_overwrite(tmp_path, ckpt):
    prefix, values = ckpt
    dst = str(tmp_path / "m")
    rename_checkpoint(prefix, dst, {"/": "a/"})
    before = tf1_programs.checkpoint_values(dst)
    with pytest.raises(klc.LegacyCheckpointError, match="already exists"):
        rename_checkpoint(prefix, dst, {"/": "b/"})
    assert tf1_programs.checkpoint_values(dst).keys() == before.keys()
    rename_checkpoint(prefix, dst, {"/": "b/"}, overwrite=True, exclude=["Adam"])
    after = tf1_programs.checkpoint_values(dst)
    assert all(k.startswith("b/") for k in after)
    assert sorted(p for p in os.listdir(tmp_path) if not p.startswith("checkpoint")) == [
        "m.data-00000-of-00001", "m.index"]


def test_write_failure_leaves_no_partial_output(tmp_path, ckpt, monkeypatch):
    prefix, _ = ckpt
    from keras_legacy_ckpt import file_access

    def fail(*args, **kwargs):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(file_access, "copy_range", fail)
    with pytest.raises(klc.LegacyCheckpointError, match="No space left"):
        rename_checkpoint(prefix, str(tmp_path / "m"), None, exclude=["Adam"])
    assert os.listdir(tmp_path) == []
