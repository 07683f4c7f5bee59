"""Resume beats warm start: interrupted fits that resume never warm-start over their weights."""

import os
import subprocess
import sys
import time

import numpy as np
import pytest
import tensorflow as tf
import tf_keras

import keras_legacy_ckpt as klc
from tests import tf1_programs, tf2_models
from tests.tf1_programs import mlp

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
RNG = np.random.default_rng(7)
X = RNG.normal(size=(32, 5)).astype(np.float32)
Y = RNG.integers(0, 3, size=32)
EPOCHS = 3


class Preempted(Exception):
    pass


class PreemptMidEpoch(tf_keras.callbacks.Callback):
    """Raises in the middle of epoch 1, as a preempted job dies."""

    def on_train_batch_end(self, batch, logs=None):
        if self._epoch == 1 and batch == 1:
            raise Preempted()

    def on_epoch_begin(self, epoch, logs=None):
        self._epoch = epoch


def _model():
    model = tf2_models.ShimModel(mlp, 5)
    model.compile(optimizer=tf_keras.optimizers.Adam(0.01),
                  loss=tf_keras.losses.SparseCategoricalCrossentropy(from_logits=True))
    model.warm_up()
    return model


def _fit(model, callbacks, epochs=EPOCHS):
    return model.fit(X, Y, batch_size=8, epochs=epochs, shuffle=False, verbose=0, callbacks=callbacks)


@pytest.fixture(scope="module")
def uninterrupted(mlp_ckpt):
    """The weights of a run that was never interrupted: warm start, then EPOCHS epochs."""
    model = _model()
    _fit(model, [klc.WarmStartFromTF1(mlp_ckpt[0], {"/": "backbone/"}, verbose=0)])
    return tf2_models.values(model)


def _assert_values(model, expected):
    got = tf2_models.values(model)
    assert sorted(got) == sorted(expected)
    for name in expected:
        np.testing.assert_array_equal(got[name], expected[name], err_msg=name)


@pytest.mark.parametrize("warm_first", [True, False])
def test_backup_and_restore_resume_is_not_warm_started_again(tmp_path, mlp_ckpt, uninterrupted, warm_first):
    prefix, ckpt_values = mlp_ckpt

    def callbacks(warm):
        backup = tf_keras.callbacks.BackupAndRestore(str(tmp_path / "backup"))
        return [warm, backup] if warm_first else [backup, warm]

    first = klc.WarmStartFromTF1(prefix, {"/": "backbone/"}, verbose=0)
    with pytest.raises(Preempted):
        _fit(_model(), callbacks(first) + [PreemptMidEpoch()])
    assert first.report is not None and first.skip_reason is None

    restarted = _model()
    warm = klc.WarmStartFromTF1(prefix, {"/": "backbone/"}, verbose=0)
    _fit(restarted, callbacks(warm))
    assert warm.report is None and "optimizer" in warm.skip_reason, warm.skip_reason
    _assert_values(restarted, uninterrupted)
    kernel = restarted.legacy_variables()["backbone/net/hidden/kernel"].numpy()
    assert not np.array_equal(kernel, ckpt_values["net/hidden/kernel"])


@pytest.mark.parametrize("warm_first", [True, False])
def test_save_object_checkpoint_restore_resumes_an_interrupted_fit(tmp_path, mlp_ckpt, uninterrupted, warm_first):
    prefix, _ = mlp_ckpt
    directory = str(tmp_path / "tf2")

    def callbacks(warm):
        save = klc.SaveObjectCheckpoint(directory, restore=True)
        return ([warm, save] if warm_first else [save, warm]), save

    first = klc.WarmStartFromTF1(prefix, {"/": "backbone/"}, verbose=0)
    with pytest.raises(Preempted):
        _fit(_model(), callbacks(first)[0] + [PreemptMidEpoch()])
    assert tf.train.latest_checkpoint(directory).endswith("ckpt-1")

    restarted = _model()
    # The TF1 checkpoint has gone since (migrated): a resumed run must not need it, whatever the order.
    warm = klc.WarmStartFromTF1(str(tmp_path / "deleted" / "model.ckpt-3"), {"/": "backbone/"}, verbose=0)
    restart_callbacks, save = callbacks(warm)
    # SaveObjectCheckpoint resumes the weights and the optimizer step, not the epoch count.
    _fit(restarted, restart_callbacks, epochs=EPOCHS - 1)
    assert warm.report is None and "object checkpoint %s" % save.restored_path in warm.skip_reason
    assert save.restored_path.endswith("ckpt-1") and save.latest_path.endswith("ckpt-3")
    assert int(restarted.optimizer.iterations.numpy()) == EPOCHS * 4
    _assert_values(restarted, uninterrupted)


def test_restore_object_checkpoint_then_fit_keeps_the_restored_weights_unless_forced(tmp_path, mlp_ckpt):
    prefix, ckpt_values = mlp_ckpt
    trained = _model()
    save = klc.SaveObjectCheckpoint(str(tmp_path / "tf2"), save_on="train_end", include_optimizer=False)
    _fit(trained, [save], epochs=1)  # no warm start: values unlike the TF1 checkpoint's

    model = _model()
    klc.restore_object_checkpoint(model, save.latest_path)
    restored = tf2_models.values(model)
    warm = klc.WarmStartFromTF1(prefix, {"/": "backbone/"}, verbose=0)
    model.evaluate(X, Y, verbose=0, callbacks=[warm])
    assert warm.report is None and save.latest_path in warm.skip_reason
    _assert_values(model, restored)

    forced = klc.WarmStartFromTF1(prefix, {"/": "backbone/"}, force=True, verbose=0)
    model.evaluate(X, Y, verbose=0, callbacks=[forced])
    assert forced.skip_reason is None and len(forced.report.loaded) == 8
    np.testing.assert_array_equal(model.legacy_variables()["backbone/net/hidden/kernel"].numpy(),
                                  ckpt_values["net/hidden/kernel"])


def test_a_model_that_has_trained_is_not_warm_started_by_a_new_callback(mlp_ckpt, capsys):
    prefix, _ = mlp_ckpt
    model = _model()
    _fit(model, [], epochs=1)
    before = tf2_models.values(model)
    warm = klc.WarmStartFromTF1(prefix, {"/": "backbone/"})
    model.evaluate(X, Y, verbose=0, callbacks=[warm])
    assert "already taken 4 step(s)" in warm.skip_reason and "not warm-starting" in capsys.readouterr().out
    _assert_values(model, before)


@pytest.mark.parametrize("how", ["evaluate", "predict"])
def test_warm_start_in_evaluate_and_predict(mlp_ckpt, how):
    prefix, ckpt_values = mlp_ckpt
    model = _model()
    warm = klc.WarmStartFromTF1(prefix, {"/": "backbone/"}, verbose=0)
    getattr(model, how)(X, verbose=0, callbacks=[warm], **({"y": Y} if how == "evaluate" else {}))
    assert warm.report is not None and len(warm.report.loaded) == 8
    for name, key in warm.report.loaded.items():
        np.testing.assert_array_equal(model.legacy_variables()[name].numpy(), ckpt_values[key], err_msg=name)


def test_validation_inside_fit_does_not_warm_start_again(mlp_ckpt):
    prefix, ckpt_values = mlp_ckpt
    model = _model()
    warm = klc.WarmStartFromTF1(prefix, {"/": "backbone/"}, verbose=0)
    _fit(model, [warm], epochs=2)
    reference = tf2_models.values(model)
    model = _model()
    warm = klc.WarmStartFromTF1(prefix, {"/": "backbone/"}, verbose=0)
    model.fit(X, Y, batch_size=8, epochs=2, shuffle=False, verbose=0, validation_data=(X, Y), callbacks=[warm])
    _assert_values(model, reference)


def test_keras3_backup_and_restore_resume_is_not_warm_started_again(tmp_path, ckpt_dir):
    import keras

    prefix, values = tf1_programs.save_tf1_checkpoint(ckpt_dir, tf1_programs.dense_only, 5)

    def build():
        model = keras.Sequential([keras.Input((5,)), keras.layers.Dense(6, activation="relu", name="hidden"),
                                  keras.layers.Dense(3, name="logits")], name="net")
        model.compile(optimizer=keras.optimizers.Adam(0.01),
                      loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True))
        return model

    class Preempt(keras.callbacks.Callback):
        def on_train_batch_end(self, batch, logs=None):
            if batch == 1 and self.epoch == 1:
                raise Preempted()

        def on_epoch_begin(self, epoch, logs=None):
            self.epoch = epoch

    def fit(model, callbacks):
        model.fit(X, Y, batch_size=8, epochs=EPOCHS, shuffle=False, verbose=0, callbacks=callbacks)

    reference = build()
    fit(reference, [klc.WarmStartFromTF1(prefix, verbose=0)])
    backup = str(tmp_path / "backup")
    with pytest.raises(Preempted):
        fit(build(), [klc.WarmStartFromTF1(prefix, verbose=0), keras.callbacks.BackupAndRestore(backup), Preempt()])
    restarted = build()
    warm = klc.WarmStartFromTF1(prefix, verbose=0)
    fit(restarted, [keras.callbacks.BackupAndRestore(backup), warm])
    assert warm.report is None and warm.skip_reason
    for got, want in zip(restarted.weights, reference.weights):
        np.testing.assert_array_equal(got.numpy(), want.numpy(), err_msg=got.path)
    assert not np.array_equal(restarted.get_layer("hidden").kernel.numpy(), values["net/hidden/kernel"])


def _latest_number(directory):
    latest = tf.train.latest_checkpoint(directory)
    return int(latest.rsplit("-", 1)[1]) if latest else 0


def _run_until(args, directory, past, env):
    """Starts the training binary and SIGKILLs it once it has written a checkpoint numbered > past."""
    process = subprocess.Popen(args, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=env)
    deadline = time.time() + 240
    while _latest_number(directory) <= past and process.poll() is None and time.time() < deadline:
        time.sleep(0.05)
    process.kill()
    output = process.communicate()[0]
    return _latest_number(directory), output


def test_killed_training_binary_resumes_from_its_object_checkpoints(tmp_path):
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="2", PYTHONUNBUFFERED="1")
    tf2_dir = str(tmp_path / "tf2")
    tf1_dir = str(tmp_path / "tf1")
    args = [sys.executable, os.path.join(ROOT, "examples", "train_binary.py"), "--write_tf1_checkpoint=%s" % tf1_dir,
            "--warm_start_from=%s" % tf1_dir,
            "--warm_start_assignment_map=/=backbone/", "--object_checkpoint_dir=%s" % tf2_dir, "--epochs=100000"]
    killed_at, first = _run_until(args, tf2_dir, 2, env)
    assert "loaded:  8 variables" in first, first[-3000:]
    _, second = _run_until(args, tf2_dir, killed_at, env)
    assert "not warm-starting" in second and "ckpt-%d" % killed_at in second, second[-3000:]
    assert "loaded:  8 variables" not in second
    # Numbering and the optimizer's step continue where the killed run stopped (4 steps an epoch).
    reader = tf.train.load_checkpoint(os.path.join(tf2_dir, "ckpt-%d" % (killed_at + 1)))
    assert reader.get_tensor("optimizer/_iterations/.ATTRIBUTES/VARIABLE_VALUE") == 4 * (killed_at + 1)


def test_a_later_training_phase_after_a_recompile_is_not_reset_to_the_tf1_checkpoint(mlp_ckpt):
    prefix, _ = mlp_ckpt
    model = _model()
    _fit(model, [klc.WarmStartFromTF1(prefix, {"/": "backbone/"}, verbose=0)], epochs=1)
    phase_one = tf2_models.values(model)
    model.compile(optimizer=tf_keras.optimizers.SGD(0.0),  # phase 2: a new optimizer that has not stepped
                  loss=tf_keras.losses.SparseCategoricalCrossentropy(from_logits=True))
    warm = klc.WarmStartFromTF1(prefix, {"/": "backbone/"}, verbose=0)
    _fit(model, [warm], epochs=1)
    assert warm.report is None and "warm-started from %s before" % prefix in warm.skip_reason
    # Learning rate 0: phase two kept phase one's weights (batch norm's moving statistics still move).
    trained = {name: value for name, value in phase_one.items() if "moving_" not in name}
    for name, value in trained.items():
        np.testing.assert_array_equal(model.legacy_variables()[name].numpy(), value, err_msg=name)


def test_two_warm_starts_of_one_fresh_model_both_load(mlp_ckpt):
    prefix, ckpt_values = mlp_ckpt
    model = _model()
    hidden = klc.WarmStartFromTF1(prefix, {"net/hidden/": "backbone/net/hidden/"}, strict=False, verbose=0)
    rest = klc.WarmStartFromTF1(prefix, {"net/bn/": "backbone/net/bn/", "net/logits/": "backbone/net/logits/"},
                                strict=False, verbose=0)
    model.evaluate(X, Y, verbose=0, callbacks=[hidden, rest])
    assert len(hidden.report.loaded) == 2 and len(rest.report.loaded) == 6 and rest.skip_reason is None
    for name, variable in model.legacy_variables().items():
        np.testing.assert_array_equal(variable.numpy(), ckpt_values[name[len("backbone/"):]], err_msg=name)


def test_a_pending_restore_survives_the_warm_up_and_counts_as_a_resume(tmp_path, mlp_ckpt):
    prefix, ckpt_values = mlp_ckpt
    trained = _model()
    _fit(trained, [], epochs=1)
    path = tf.train.Checkpoint(model=trained).save(str(tmp_path / "tf2" / "ckpt"))
    expected = tf2_models.values(trained)

    def restored_unbuilt():
        model = tf2_models.ShimModel(mlp, 5)
        tf.train.Checkpoint(model=model).restore(path)  # deferred: the shim weights do not exist yet
        return model

    model = restored_unbuilt()
    model.warm_up()
    _assert_values(model, expected)

    model = restored_unbuilt()  # a partial warm start keeps the restored values of everything else
    report = klc.warm_start(model, prefix, {"net/logits/": "backbone/net/logits/"}, strict=False)
    assert sorted(report.loaded) == ["backbone/net/logits/bias", "backbone/net/logits/kernel"]
    for name, value in tf2_models.values(model).items():
        want = ckpt_values[name[len("backbone/"):]] if "logits" in name else expected[name]
        np.testing.assert_array_equal(value, want, err_msg=name)

    model = restored_unbuilt()
    warm = klc.WarmStartFromTF1(prefix, {"/": "backbone/"}, verbose=0)
    model.predict(X, verbose=0, callbacks=[warm])
    assert warm.report is None and "pending" in warm.skip_reason
    _assert_values(model, expected)


def test_bad_options_fail_when_the_callback_is_built():
    with pytest.raises(klc.LegacyCheckpointError, match="on_dtype_mismatch='bogus' is not one of"):
        klc.WarmStartFromTF1("/old/model.ckpt-1", on_dtype_mismatch="bogus")
    with pytest.raises(klc.LegacyCheckpointError, match="on_shape_mismatch='skipp'"):
        klc.WarmStartFromTF1("/old/model.ckpt-1", on_shape_mismatch="skipp")
    with pytest.raises(klc.AssignmentMapError, match="maps nothing"):
        klc.WarmStartFromTF1("/old/model.ckpt-1", {})
    with pytest.raises(klc.AssignmentMapError):
        klc.WarmStartFromTF1("/old/model.ckpt-1", ignore=["(unclosed"])
    with pytest.raises(klc.AssignmentMapError):
        klc.WarmStartFromTF1("/old/model.ckpt-1", [("(bad", "x")])
