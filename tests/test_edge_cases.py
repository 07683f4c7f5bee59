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


# --- second review: callbacks, CLI, flags ---------------------------------------------------

def test_fit_twice_with_the_same_warm_start_callback_keeps_training(mlp_ckpt):
    from tests import tf2_models
    from tests.tf1_programs import mlp

    prefix, values = mlp_ckpt
    model = tf2_models.ShimModel(mlp, 5)
    model.compile(optimizer=tf_keras.optimizers.SGD(0.5),
                  loss=tf_keras.losses.SparseCategoricalCrossentropy(from_logits=True))
    x, y = np.ones((8, 5), np.float32), np.zeros((8,), np.int64)
    warm = klc.WarmStartFromTF1(prefix, {"/": "backbone/"}, verbose=0)
    model.fit(x, y, epochs=1, verbose=0, callbacks=[warm])
    trained = model.legacy_variables()["backbone/net/logits/bias"].numpy().copy()
    model.fit(x, y, epochs=1, verbose=0, callbacks=[warm])
    now = model.legacy_variables()["backbone/net/logits/bias"].numpy()
    assert not np.array_equal(trained, values["net/logits/bias"])
    assert np.abs(now - values["net/logits/bias"]).max() > np.abs(trained - values["net/logits/bias"]).max()


def test_a_reused_save_callback_saves_the_model_being_trained(tmp_path):
    save = klc.SaveObjectCheckpoint(str(tmp_path / "tf2"), save_on="train_end")
    models = []
    for fill in (1.0, 2.0):
        model = tf_keras.Sequential([tf_keras.Input([2]), tf_keras.layers.Dense(1, kernel_initializer="zeros")])
        model.compile(optimizer=tf_keras.optimizers.SGD(0.0), loss="mse")
        model.layers[0].bias.assign([fill])
        model.fit(np.zeros((2, 2)), np.zeros((2, 1)), epochs=1, verbose=0, callbacks=[save])
        models.append(model)
    fresh = tf_keras.Sequential([tf_keras.Input([2]), tf_keras.layers.Dense(1)])
    klc.restore_object_checkpoint(fresh, save.latest_path)
    assert fresh.layers[0].bias.numpy().tolist() == [2.0]


def test_a_module_mixin_with_plain_variables_warm_starts(mlp_ckpt):
    prefix, values = mlp_ckpt

    class Plain(klc.LegacyCheckpointMixin, tf.Module):
        def __init__(self):
            super().__init__()
            self.k = tf.Variable(tf.zeros([5, 6]), name="k")

        def legacy_name(self, variable):
            return "net/hidden/kernel" if variable is self.k else super().legacy_name(variable)

    module = Plain()
    klc.warm_start(module, prefix, {"net/hidden/": "net/hidden/"})
    np.testing.assert_array_equal(module.k.numpy(), values["net/hidden/kernel"])


def test_restore_into_an_unbuilt_model_says_to_pass_sample_input(tmp_path):
    model = tf_keras.Sequential([tf_keras.Input([2]), tf_keras.layers.Dense(1)])
    path = tf.train.Checkpoint(model=model).save(str(tmp_path / "c"))
    with pytest.raises(klc.MissingVariablesError, match="sample_input"):
        klc.restore_object_checkpoint(tf_keras.Sequential([tf_keras.layers.Dense(1)]), path)


def test_warm_up_input_problems_are_our_errors():
    class Extra(klc.LegacyCheckpointMixin, tf.Module):
        warm_up_input_spec = tf.TensorSpec([None, 2])

        @klc.track_tf1_style_variables
        def __call__(self, x, mask):
            return x * v1.get_variable("w", [2])

    with pytest.raises(klc.LegacyCheckpointError, match="warm_up"):
        Extra().warm_up()

    class BadSpec(Extra):
        warm_up_input_spec = (None, 2)

    with pytest.raises(klc.LegacyCheckpointError, match="tf.TensorSpec"):
        BadSpec().warm_up()


def test_callback_arguments_are_checked_when_constructed():
    with pytest.raises(TypeError, match="bogus"):
        klc.WarmStartFromTF1("/x", bogus=1)
    with pytest.raises(klc.LegacyCheckpointError, match="save_on"):
        klc.SaveObjectCheckpoint("/x", save_on="sometimes")


def test_maps_that_cannot_work_fail_at_flag_parsing(tmp_path):
    from absl import flags

    from keras_legacy_ckpt import flags as klc_flags

    cases = {"empty.json": "{}", "regex.json": '[["(", "x"]]', "none.json": '{"net/": null}'}
    for name, text in cases.items():
        (tmp_path / name).write_text(text)
    for value in [str(tmp_path / n) for n in cases] + ["net/=other", "k=a,k=b"]:
        values = flags.FlagValues()
        klc_flags.define_flags(values)
        with pytest.raises(flags.IllegalFlagValueError):
            values(["train", "--warm_start_assignment_map=%s" % value])


def test_cli_usage_errors_exit_2(tmp_path, mlp_ckpt):
    import subprocess
    import sys

    names = tmp_path / "names.txt"
    names.write_text("x 4,a\n")
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="2")
    for args in (["inspect", mlp_ckpt[0], "--mapp=x"], ["plan", mlp_ckpt[0], "--model", str(names)]):
        result = subprocess.run([sys.executable, "-m", "keras_legacy_ckpt"] + args, capture_output=True, text=True,
                                env=env, timeout=120)
        assert result.returncode == 2 and "usage error" in result.stderr, result.stderr[-1500:]
