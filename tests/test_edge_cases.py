"""Edge cases found in review: each once let a warm start half-apply, or loaded a wrong value."""

import os

import numpy as np
import pytest
import tensorflow as tf
import tf_keras

import keras_legacy_ckpt as klc
from keras_legacy_ckpt import bundle_index
from tests.tf1_programs import v1


def _save(prefix, **tensors):
    tf.raw_ops.SaveV2(prefix=prefix, tensor_names=list(tensors), shape_and_slices=[""] * len(tensors),
                      tensors=list(tensors.values()))
    return prefix


def test_damaged_string_tensor_fails_before_any_assignment(tmp_path):
    prefix = _save(str(tmp_path / "m"), a=tf.constant([5.0]), s=tf.constant(["hello world", "x" * 300]))
    module = tf.Module()
    module.a, module.s = tf.Variable([0.0], name="a"), tf.Variable(["", ""], name="s")
    assert klc.verify_checkpoint(prefix) == 2  # our string checksum agrees with TensorFlow's
    entry = bundle_index.read_bundle_index(prefix).entries[b"s"]
    with open(prefix + ".data-00000-of-00001", "r+b") as f:
        f.seek(entry.offset + entry.size - 1)
        f.write(b"!")
    with pytest.raises(klc.CorruptCheckpointError, match="'s'"):
        klc.warm_start(module, prefix, batch_bytes=4)
    assert module.a.numpy().tolist() == [0.0]


def _parts_module():
    module = tf.Module()
    module.parts = [tf.Variable(tf.zeros([2, 2]), name="emb/part_%d" % i) for i in range(2)]
    return module


def test_an_ignored_part_of_a_partitioned_variable_is_not_loaded(tmp_path):
    prefix = _save(str(tmp_path / "m"), emb=tf.reshape(tf.range(8.0), [4, 2]))
    module = _parts_module()
    report = klc.warm_start(module, prefix, ignore=[r"emb/part_1$"])
    assert report.loaded == {"emb/part_0": "emb"} and report.ignored == ["emb/part_1"]
    np.testing.assert_array_equal(module.parts[0].numpy(), [[0, 1], [2, 3]])
    assert not np.any(module.parts[1].numpy())


def test_two_keys_for_one_part_is_an_assignment_map_error(tmp_path):
    prefix = _save(str(tmp_path / "m"), emb=tf.zeros([4, 2]), other=tf.ones([2, 2]))
    module = _parts_module()
    with pytest.raises(klc.AssignmentMapError, match="emb/part_0"):
        klc.warm_start(module, prefix, {"emb": "emb", "other": "emb/part_0"})


def test_failed_object_restore_on_a_shape_mismatch_restores_nothing(tmp_path):
    source = tf.Module()
    source.a, source.b = tf.Variable([1.0, 2.0]), tf.Variable([3.0, 4.0])
    path = tf.train.Checkpoint(model=source).save(str(tmp_path / "ckpt"))
    target = tf.Module()
    target.a, target.b = tf.Variable([0.0, 0.0]), tf.Variable([0.0, 0.0, 0.0])
    with pytest.raises(klc.ShapeMismatchError, match="nothing was restored"):
        klc.restore_object_checkpoint(target, path)
    assert target.a.numpy().tolist() == [0.0, 0.0]


def test_a_warm_up_that_raises_changes_no_value():
    class Failing(klc.LegacyCheckpointMixin, tf.Module):
        warm_up_input_spec = tf.TensorSpec([None, 2])

        def __init__(self):
            super().__init__()
            self.counter = tf.Variable(1.0, name="counter")

        @klc.track_tf1_style_variables
        def __call__(self, x):
            self.counter.assign(123.0)
            raise RuntimeError("boom")

    module = Failing()
    with pytest.raises(RuntimeError, match="boom"):
        module.warm_up()
    assert module.counter.numpy() == 1.0


def test_a_built_shim_layer_still_warms_up():
    class Layer(klc.LegacyCheckpointMixin, tf_keras.layers.Layer):
        warm_up_input_spec = tf.TensorSpec([None, 3])

        @klc.track_tf1_style_variables
        def call(self, x):
            with v1.variable_scope("b"):
                return klc.v1_layers.dense(x, 2)

    layer = Layer()
    layer.build((None, 3))  # build() does not run the shim
    layer.warm_up()
    assert sorted(layer.legacy_variables()) == ["b/dense/bias", "b/dense/kernel"]


def test_mod_partitioned_adam_slots_get_the_same_row_order(tmp_path):
    ids = np.arange(6)
    with tf.Graph().as_default():
        table = v1.get_variable("table", [6, 2], partitioner=v1.fixed_size_partitioner(2))
        loss = tf.reduce_sum(v1.nn.embedding_lookup(table, ids, partition_strategy="mod") * np.arange(12.0).reshape(6, 2))
        train = v1.train.AdamOptimizer(0.1).minimize(loss)
        saver = v1.train.Saver()
        with v1.Session() as sess:
            sess.run(v1.global_variables_initializer())
            sess.run(train)
            weights = sess.run(v1.nn.embedding_lookup(table, ids, partition_strategy="mod"))
            prefix = saver.save(sess, str(tmp_path / "model.ckpt"))
    model = tf_keras.Sequential([tf_keras.layers.Embedding(6, 2, name="emb")])
    model.build((None,))
    table_var = model.weights[0]
    model.compile(optimizer=tf_keras.optimizers.Adam(0.1, epsilon=1e-8), loss="mse")
    klc.warm_start(model, prefix, {"table": table_var.name[:-2]}, mod_partitioned=["^table$"],
                   optimizer_state=True, strict=False)
    np.testing.assert_array_equal(table_var.numpy(), weights)
    first_moment = model.optimizer._momentums[0].numpy()
    # Adam's first step: m = (1 - beta1) * grad, and grad[i] is row i of the multiplier: id order.
    np.testing.assert_allclose(first_moment, 0.1 * np.arange(12.0).reshape(6, 2), rtol=1e-6)


def test_a_non_utf8_tensor_name_is_a_clear_error_not_corruption(tmp_path):
    prefix = _save(str(tmp_path / "m"), z=tf.constant([2.0]))
    tf.raw_ops.SaveV2(prefix=prefix, tensor_names=[b"a\xff\xfeb", b"z"], shape_and_slices=["", ""],
                      tensors=[tf.constant([1.0]), tf.constant([2.0])])
    for call in (lambda: klc.list_variables(prefix), lambda: klc.rename_checkpoint(prefix, str(tmp_path / "o"), None)):
        with pytest.raises(klc.LegacyCheckpointError, match="not UTF-8") as err:
            call()
        assert not isinstance(err.value, klc.CorruptCheckpointError)
    assert not os.path.exists(tmp_path / "o.index")
