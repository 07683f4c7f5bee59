"""WarmStartFromTF1 and SaveObjectCheckpoint inside tf_keras and Keras 3 fit."""

import os

import numpy as np
import pytest
import tensorflow as tf
import tf_keras

import keras_legacy_ckpt as klc
from tests import tf1_programs, tf2_models
from tests.tf1_programs import mlp, v1

RNG = np.random.default_rng(1)
X = RNG.normal(size=(32, 5)).astype(np.float32)
Y = RNG.integers(0, 3, size=32)


def _compiled(model):
    model.compile(optimizer=tf_keras.optimizers.SGD(0.1),
                  loss=tf_keras.losses.SparseCategoricalCrossentropy(from_logits=True))
    return model


@pytest.mark.parametrize("save_first", [True, False])
def test_train_begin_checkpoint_holds_warm_started_values_whatever_the_order(tmp_path, mlp_ckpt, save_first):
    prefix, ckpt_values = mlp_ckpt
    model = _compiled(tf2_models.ShimModel(mlp, 5))
    warm = klc.WarmStartFromTF1(prefix, {"/": "backbone/"}, verbose=0)
    save = klc.SaveObjectCheckpoint(str(tmp_path / "tf2"), save_on="train_begin")
    model.fit(X, Y, epochs=2, batch_size=8, verbose=0, callbacks=[save, warm] if save_first else [warm, save])
    assert len(warm.report.loaded) == 8
    assert save.latest_path.endswith("ckpt-1") and tf.train.latest_checkpoint(str(tmp_path / "tf2")) == save.latest_path
    restored = tf2_models.ShimModel(mlp, 5)
    klc.restore_object_checkpoint(restored, save.latest_path)
    for name, key in warm.report.loaded.items():
        np.testing.assert_array_equal(restored.legacy_variables()[name].numpy(), ckpt_values[key], err_msg=name)
    trained = model.legacy_variables()["backbone/net/hidden/kernel"].numpy()
    assert not np.array_equal(trained, ckpt_values["net/hidden/kernel"])


def test_epoch_end_rotation_and_restore_from_directory(tmp_path, mlp_ckpt):
    prefix, _ = mlp_ckpt
    model = _compiled(tf2_models.ShimModel(mlp, 5))
    save = klc.SaveObjectCheckpoint(str(tmp_path / "tf2"), save_on="epoch_end", max_to_keep=2)
    model.fit(X, Y, epochs=3, batch_size=8, verbose=0,
              callbacks=[klc.WarmStartFromTF1(prefix, {"/": "backbone/"}, verbose=0), save])
    assert save.latest_path.endswith("ckpt-3")
    assert sorted(f for f in os.listdir(tmp_path / "tf2") if f.endswith(".index")) == ["ckpt-2.index", "ckpt-3.index"]
    restored = tf2_models.ShimModel(mlp, 5)
    klc.restore_object_checkpoint(restored, str(tmp_path / "tf2"))
    for name, variable in model.legacy_variables().items():
        np.testing.assert_array_equal(restored.legacy_variables()[name].numpy(), variable.numpy())


def test_train_end_saves_optimizer_state(tmp_path, mlp_ckpt):
    prefix, _ = mlp_ckpt
    model = _compiled(tf2_models.ShimModel(mlp, 5))
    save = klc.SaveObjectCheckpoint(str(tmp_path / "tf2"), save_on="train_end")
    model.fit(X, Y, epochs=1, batch_size=8, verbose=0,
              callbacks=[klc.WarmStartFromTF1(prefix, {"/": "backbone/"}, verbose=0), save])
    keys = [name for name, _ in tf.train.list_variables(save.latest_path)]
    assert any(k.startswith("optimizer/") for k in keys)
    weights_only = klc.SaveObjectCheckpoint(str(tmp_path / "weights"), save_on="train_end", include_optimizer=False)
    weights_only.set_model(model)
    weights_only.on_train_end()
    keys = [name for name, _ in tf.train.list_variables(weights_only.latest_path)]
    assert not any("optimizer" in k for k in keys) and any("kernel" in k for k in keys)
    klc.restore_object_checkpoint(tf2_models.ShimModel(mlp, 5), weights_only.latest_path)
    assert tf.train.load_checkpoint(save.latest_path).get_tensor("optimizer/_iterations/.ATTRIBUTES/VARIABLE_VALUE") == 4


def test_failed_warm_start_stops_fit_and_changes_nothing(mlp_ckpt):
    prefix, _ = mlp_ckpt
    model = _compiled(tf2_models.ShimModel(mlp, 5))
    model.warm_up()
    before = tf2_models.values(model)
    with pytest.raises(klc.MissingVariablesError):
        model.fit(X, Y, epochs=1, verbose=0, callbacks=[klc.WarmStartFromTF1(prefix, verbose=0)])
    after = tf2_models.values(model)
    assert all(np.array_equal(before[k], after[k]) for k in before)


def test_warm_start_callback_uses_sample_input_and_prints_summary(mlp_ckpt, capsys):
    prefix, _ = mlp_ckpt
    inputs = tf_keras.Input([5])
    outputs = tf2_models.ShimLayer(mlp, 5)(inputs)
    model = _compiled(tf_keras.Model(inputs, outputs))
    warm = klc.WarmStartFromTF1(prefix, {"/": "backbone/"}, sample_input=X[:1])
    model.fit(X, Y, epochs=1, verbose=0, callbacks=[warm])
    assert "loaded:  8 variables" in capsys.readouterr().out


def test_restore_into_a_different_model_raises_and_restores_nothing(tmp_path, mlp_ckpt):
    prefix, _ = mlp_ckpt
    model = _compiled(tf2_models.ShimModel(mlp, 5))
    save = klc.SaveObjectCheckpoint(str(tmp_path / "tf2"))
    model.fit(X, Y, epochs=1, verbose=0, callbacks=[klc.WarmStartFromTF1(prefix, {"/": "backbone/"}, verbose=0), save])

    class Bigger(tf2_models.ShimModel):
        @klc.track_tf1_style_variables
        def call(self, x, training=None):
            out = super().call(x, training=training)
            return out * v1.get_variable("extra_scale", [3])

    other = Bigger(mlp, 5)
    other.warm_up()
    before = tf2_models.values(other)
    with pytest.raises(klc.MissingVariablesError, match="nothing was restored"):
        klc.restore_object_checkpoint(other, save.latest_path)
    after = tf2_models.values(other)
    assert all(np.array_equal(before[k], after[k]) for k in before)


def test_keras3_model_warm_starts_by_variable_path(tmp_path, ckpt_dir):
    import keras

    prefix, values = tf1_programs.save_tf1_checkpoint(ckpt_dir, tf1_programs.dense_only, 5)

    def build():
        return keras.Sequential([keras.Input((5,)), keras.layers.Dense(6, activation="relu", name="hidden"),
                                 keras.layers.Dense(3, name="logits")], name="net")

    model = build()
    model.compile(optimizer="sgd", loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True))
    warm = klc.WarmStartFromTF1(prefix, verbose=0)
    save = klc.SaveObjectCheckpoint(str(tmp_path / "tf2"), save_on="train_begin")
    model.fit(X, Y, epochs=1, verbose=0, callbacks=[save, warm])
    assert sorted(warm.report.loaded) == ["net/hidden/bias", "net/hidden/kernel", "net/logits/bias", "net/logits/kernel"]

    restored = build()
    klc.restore_object_checkpoint(restored, save.latest_path)
    hidden = np.maximum(X @ values["net/hidden/kernel"] + values["net/hidden/bias"], 0)
    expected = hidden @ values["net/logits/kernel"] + values["net/logits/bias"]
    np.testing.assert_allclose(restored(X).numpy(), expected, rtol=1e-5, atol=1e-5)

    fresh = build()
    report = klc.warm_start(fresh, prefix, {"net/": "net/"})
    assert report.loaded == warm.report.loaded
    np.testing.assert_array_equal(fresh.get_layer("logits").kernel.numpy(), values["net/logits/kernel"])


def test_restore_weights_into_a_trained_model_and_the_optimizer_into_a_fresh_one(tmp_path, mlp_ckpt):
    prefix, values = mlp_ckpt
    model = tf2_models.ShimModel(mlp, 5)
    model.compile(optimizer=tf_keras.optimizers.Adam(0.01),
                  loss=tf_keras.losses.SparseCategoricalCrossentropy(from_logits=True))
    begin = klc.SaveObjectCheckpoint(str(tmp_path / "begin"), save_on="train_begin")
    end = klc.SaveObjectCheckpoint(str(tmp_path / "end"), save_on="train_end")
    model.fit(X, Y, batch_size=8, epochs=1, verbose=0,
              callbacks=[klc.WarmStartFromTF1(prefix, {"/": "backbone/"}, verbose=0), begin, end])
    # The trained model's Adam has slots the train_begin checkpoint lacks: the weights still restore.
    klc.restore_object_checkpoint(model, begin.latest_path)
    for name, variable in model.legacy_variables().items():
        np.testing.assert_array_equal(variable.numpy(), values[name[len("backbone/"):]], err_msg=name)
    fresh = tf2_models.ShimModel(mlp, 5)
    fresh.compile(optimizer=tf_keras.optimizers.Adam(0.01), loss="mse")
    klc.restore_object_checkpoint(fresh, end.latest_path, include_optimizer=True)
    assert int(fresh.optimizer.iterations.numpy()) == 4
