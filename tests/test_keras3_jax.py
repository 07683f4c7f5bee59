"""Keras 3 on the JAX backend, with TensorFlow absent: `klc.warm_start` and `WarmStartFromTF1` in `fit`.

This process (which has TensorFlow) runs real TF1 graph programs (tf.compat.v1 dense layers, Adam, a
global step, an ExponentialMovingAverage) that write checkpoints with tf.compat.v1.train.Saver, and
the TF1 program's outputs on a test input. One child process, with KERAS_BACKEND=jax and a
sys.meta_path finder that makes `import tensorflow` and `import tf_keras` raise ImportError, runs
every check on Keras 3 models and writes what it saw (weights, outputs, errors, reports); the tests
compare it with the TF1 outputs and with tf.train.load_checkpoint's values.
"""

import json
import os
import shutil
import subprocess
import sys
import textwrap

import numpy as np
import pytest
import tensorflow as tf

from tests import tf_blocked
from tests import tf1_programs
from tests.tf1_programs import v1

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
RNG = np.random.default_rng(7)
X_TEST = RNG.normal(size=(8, 5)).astype(np.float32)
X_FIT = RNG.normal(size=(32, 5)).astype(np.float32)
Y_FIT = RNG.integers(0, 3, size=32)


def tf1_dense_program(directory):
    """tf1_programs.dense_only trained 3 Adam steps with a global step; saved; its outputs on X_TEST."""
    rng = np.random.default_rng(0)
    x = rng.normal(size=(16, 5)).astype(np.float32)
    y = rng.integers(0, 3, size=16)
    with tf.Graph().as_default():
        v1.set_random_seed(0)
        inputs = v1.placeholder(tf.float32, [None, 5])
        logits = tf1_programs.dense_only(inputs, training=True)
        loss = v1.losses.sparse_softmax_cross_entropy(y, logits)
        global_step = v1.train.get_or_create_global_step()
        train_op = v1.train.AdamOptimizer(0.05).minimize(loss, global_step=global_step)
        saver = v1.train.Saver()
        with v1.Session() as sess:
            sess.run(v1.global_variables_initializer())
            for _ in range(3):
                sess.run(train_op, {inputs: x})
            prefix = saver.save(sess, os.path.join(directory, "model.ckpt"), global_step=global_step)
            outputs = sess.run(logits, {inputs: X_TEST})
    return prefix, outputs


def tf1_big_values_program(directory):
    """A float64 variable "o/big" holding a value beyond float32's range."""
    with tf.Graph().as_default():
        with v1.variable_scope("o"):
            v1.get_variable("big", initializer=np.array([1e300, 1.5], np.float64))
        saver = v1.train.Saver()
        with v1.Session() as sess:
            sess.run(v1.global_variables_initializer())
            return saver.save(sess, os.path.join(directory, "big.ckpt"))


def damaged_copy(prefix, directory, value):
    """A copy of the checkpoint with one byte flipped in the middle of the stored bytes of `value`."""
    os.makedirs(directory)
    for name in os.listdir(os.path.dirname(prefix)):
        if name.startswith(os.path.basename(prefix) + "."):
            shutil.copy(os.path.join(os.path.dirname(prefix), name), directory)
    copy = os.path.join(directory, os.path.basename(prefix))
    (data,) = [os.path.join(directory, n) for n in os.listdir(directory) if ".data-" in n]
    raw = bytearray(open(data, "rb").read())
    needle = np.ascontiguousarray(value).tobytes()
    at = raw.find(needle)
    assert at >= 0 and raw.find(needle, at + 1) < 0
    raw[at + len(needle) // 2] ^= 0x10
    open(data, "wb").write(bytes(raw))
    return copy


CHILD = tf_blocked.preamble(("tensorflow", "tf_keras")) + textwrap.dedent(r'''
    import importlib.abc, json, sys

    try:
        import tensorflow
        raise SystemExit("the block did not work")
    except ImportError:
        pass

    request = json.loads(sys.argv[1])
    sys.path.insert(0, request["root"])
    import numpy as np
    import keras
    import keras_legacy_ckpt as klc
    from keras_legacy_ckpt.callbacks import WarmStartFromTF1

    prefix, x_test = request["prefix"], np.load(request["inputs"])["x_test"]
    arrays, out = {}, {"backend": keras.backend.backend(),
                       "keras3_callback": issubclass(WarmStartFromTF1, keras.callbacks.Callback),
                       "same_class": WarmStartFromTF1 is klc.WarmStartFromTF1}
    layers = keras.layers

    def weights(model):
        return {v.path: np.array(keras.ops.convert_to_numpy(v.value)) for v in model.weights}

    def save(tag, model):
        for path, value in weights(model).items():
            arrays["%s|%s" % (tag, path)] = value

    def report_of(report):
        return {"loaded": report.loaded, "missing": report.missing, "unused": report.unused,
                "skipped": sorted(report.skipped), "casts": report.casts, "ignored": report.ignored,
                "transforms": report.transforms, "ema_name": report.ema_name, "summary": report.summary()}

    def error_of(call, model=None):
        before = weights(model) if model is not None else {}
        try:
            call()
            result = {"type": "none", "message": ""}
        except Exception as e:
            result = {"type": type(e).__name__, "message": str(e)}
        after = weights(model) if model is not None else {}
        result["unchanged"] = all(np.array_equal(before[k], after[k]) for k in before)
        return result

    def net(hidden=6, logits=3, name="net", extra=False, built=True):
        stack = [keras.Input((5,))] if built else []
        stack += [layers.Dense(hidden, activation="relu", name="hidden"), layers.Dense(logits, name="logits")]
        if extra:
            stack.append(layers.Dense(2, name="extra"))
        return keras.Sequential(stack, name=name)

    # 1. A Sequential whose variable paths are the TF1 names, identity map.
    model = net()
    out["sequential"] = report_of(klc.warm_start(model, prefix))
    save("sequential", model)
    arrays["sequential_outputs"] = np.asarray(model(x_test))

    # 2. A functional model, loaded by regex rules; the same tensors by a dict map into an unbuilt
    #    Sequential warmed up on sample_input, and in batches smaller than any tensor.
    inputs = keras.Input((5,))
    hidden = layers.Dense(6, activation="relu", name="fc1")(inputs)
    student = keras.Model(inputs, layers.Dense(3, name="fc2")(hidden), name="student")
    out["functional"] = report_of(klc.warm_start(
        student, prefix, [(r"^net/hidden/", "fc1/"), (r"^net/logits/", "fc2/")]))
    save("functional", student)
    arrays["functional_outputs"] = np.asarray(student(x_test))
    tower = net(name="tower", built=False)
    out["unbuilt_without_input"] = error_of(lambda: klc.warm_start(tower, prefix, {"net/": "tower/"}))
    out["tower"] = report_of(klc.warm_start(tower, prefix, {"net/": "tower/"}, sample_input=x_test[:1]))
    save("tower", tower)
    batched = net()
    klc.warm_start(batched, prefix, batch_bytes=1)
    save("batched", batched)

    # 3. Damaged data: nothing assigned, whether read once or checked first and read again.
    for tag, options in (("damaged", {}), ("damaged_batched", {"batch_bytes": 1})):
        victim = net()
        out[tag] = error_of(lambda: klc.warm_start(victim, request["damaged"], **options), victim)

    # 4. Shapes, missing variables, options.
    wrong = net(hidden=7)
    out["shape_mismatch"] = error_of(lambda: klc.warm_start(wrong, prefix), wrong)
    other_head = net(logits=4)
    out["shape_skip"] = report_of(klc.warm_start(other_head, prefix, on_shape_mismatch="skip"))
    save("shape_skip", other_head)
    extended = net(extra=True)
    out["missing_strict"] = error_of(lambda: klc.warm_start(extended, prefix), extended)
    out["missing_lenient"] = report_of(klc.warm_start(extended, prefix, strict=False))
    out["missing_ignored"] = report_of(klc.warm_start(net(extra=True), prefix, ignore=["^net/extra/"]))
    fresh = net()
    out["empty_map"] = error_of(lambda: klc.warm_start(fresh, prefix, {}), fresh)
    out["nothing_loaded"] = error_of(lambda: klc.warm_start(fresh, prefix, {"nett/": "net/"}, strict=False), fresh)
    out["optimizer_state"] = error_of(lambda: klc.warm_start(fresh, prefix, optimizer_state=True), fresh)
    out["not_keras3"] = error_of(lambda: klc.warm_start(object(), prefix))
    out["vocab_remap"] = error_of(lambda: klc.warm_start(fresh, prefix, vocab_remap={
        "net/hidden/kernel": klc.VocabInfo("new.txt", "old.txt")}), fresh)
    out["mod_partitioned"] = error_of(lambda: klc.warm_start(fresh, prefix, mod_partitioned=["hidden"]), fresh)
    out["suggested"] = repr(klc.suggest_assignment_map(fresh, prefix).assignment_map)
    out["suggest_not_keras3"] = error_of(lambda: klc.suggest_assignment_map(object(), prefix))
    out["not_found"] = error_of(lambda: klc.warm_start(fresh, request["root"] + "/no/such/model.ckpt-1"), fresh)
    out["bad_callback_option"] = error_of(lambda: WarmStartFromTF1(prefix, on_dtype_mismatch="bogus"))

    # 5. Transpose and reshape.
    transposed = keras.Sequential([keras.Input((3,)), layers.Dense(6, name="t")], name="tt")
    out["transpose"] = report_of(klc.warm_start(
        transposed, prefix, {"net/logits/kernel": "tt/t/kernel", "net/hidden/bias": "tt/t/bias"},
        transpose={"t/kernel$": [1, 0]}))
    save("transpose", transposed)
    reshaped = keras.Sequential([keras.Input((1,)), layers.Dense(18, name="r")], name="rr")
    out["reshape"] = report_of(klc.warm_start(reshaped, prefix, {"net/logits/kernel": "rr/r/kernel"},
                                              reshape={"r/kernel": [1, -1]}))
    save("reshape", reshaped)

    # 6. A float64 checkpoint with moving averages: dtype policies and use_ema.
    ema_model = net()
    out["dtype_error"] = error_of(lambda: klc.warm_start(ema_model, request["ema"]), ema_model)
    out["ema_cast"] = report_of(klc.warm_start(ema_model, request["ema"], use_ema=True, on_dtype_mismatch="cast"))
    save("ema_cast", ema_model)

    class Holder(layers.Layer):
        def build(self, input_shape):
            self.big = self.add_weight(name="big", shape=(2,), initializer="zeros")

        def call(self, x):
            return x

    holder = Holder(name="o")
    holder.build(None)
    out["overflow"] = error_of(lambda: klc.warm_start(holder, request["big"], on_dtype_mismatch="cast"), holder)
    klc.warm_start(holder, request["big"], on_dtype_mismatch="unsafe_cast")
    arrays["unsafe_cast"] = keras.ops.convert_to_numpy(holder.big.value)

    # 7. WarmStartFromTF1 in model.fit; a second fit, after the optimizer stepped, is not warm-started.
    class Record(keras.callbacks.Callback):
        def on_train_begin(self, logs=None):
            self.weights = weights(self.model)

    fit_data = np.load(request["inputs"])
    model = net()
    model.compile(optimizer=keras.optimizers.SGD(0.1),
                  loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True))
    warm, first = WarmStartFromTF1(prefix), Record()
    model.fit(fit_data["x_fit"], fit_data["y_fit"], epochs=1, batch_size=8, verbose=0, callbacks=[warm, first])
    out["fit"] = {"report": report_of(warm.report), "skip_reason": warm.skip_reason,
                  "iterations": int(keras.ops.convert_to_numpy(model.optimizer.iterations.value))}
    for path, value in first.weights.items():
        arrays["fit_begin|" + path] = value
    save("fit_end", model)
    again, second = WarmStartFromTF1(prefix, verbose=0), Record()
    model.fit(fit_data["x_fit"], fit_data["y_fit"], epochs=1, batch_size=8, verbose=0, callbacks=[again, second])
    out["refit"] = {"report": None if again.report is None else report_of(again.report),
                    "skip_reason": again.skip_reason}
    for path, value in second.weights.items():
        arrays["refit_begin|" + path] = value

    np.savez(request["arrays"], **arrays)
    out["imported"] = sorted(m for m in sys.modules if m.split(".")[0] in ("tensorflow", "tf_keras"))
    print(json.dumps(out))
''')


@pytest.fixture(scope="module")
def jax_run(tmp_path_factory):
    """Runs CHILD once: (what it reported, its arrays, the TF1 checkpoint's values and outputs)."""
    tmp = tmp_path_factory.mktemp("keras3_jax")
    prefix, tf1_outputs = tf1_dense_program(str(tmp / "tf1"))
    values = tf1_programs.checkpoint_values(prefix)
    ema_prefix, ema_values = tf1_programs.save_tf1_checkpoint(
        str(tmp / "ema"), tf1_programs.dense_only, 5, ema_decay=0.9, dtype=tf.float64)
    big_prefix = tf1_big_values_program(str(tmp / "big"))
    damaged = damaged_copy(prefix, str(tmp / "damaged"), values["net/logits/kernel"])
    np.savez(tmp / "inputs.npz", x_test=X_TEST, x_fit=X_FIT, y_fit=Y_FIT)
    request = {"root": ROOT, "prefix": prefix, "damaged": damaged, "ema": ema_prefix, "big": big_prefix,
               "inputs": str(tmp / "inputs.npz"), "arrays": str(tmp / "arrays.npz")}
    env = dict(os.environ, KERAS_BACKEND="jax", TF_CPP_MIN_LOG_LEVEL="2", JAX_PLATFORMS="cpu")
    env.pop("PYTHONPATH", None)
    done = subprocess.run([sys.executable, "-c", CHILD, json.dumps(request)], capture_output=True, text=True,
                          env=env, cwd=str(tmp), timeout=300)
    assert done.returncode == 0, done.stderr[-5000:]
    out = json.loads(done.stdout.strip().splitlines()[-1])
    out["stdout"] = done.stdout
    with np.load(request["arrays"]) as arrays:
        arrays = dict(arrays)
    return out, arrays, values, ema_values, tf1_outputs


def tagged(arrays, tag):
    return {k.split("|", 1)[1]: v for k, v in arrays.items() if k.startswith(tag + "|")}


def assert_bit_equal(got, expected, what):
    assert got.dtype == expected.dtype and got.shape == expected.shape, what
    assert got.tobytes() == expected.tobytes(), what


KEYS = ["net/hidden/bias", "net/hidden/kernel", "net/logits/bias", "net/logits/kernel"]


def test_tensorflow_is_never_imported_and_the_callback_is_a_keras3_one(jax_run):
    out = jax_run[0]
    assert out["imported"] == []
    assert out["backend"] == "jax" and out["keras3_callback"] and out["same_class"]


def test_warm_started_models_compute_the_tf1_programs_outputs_with_the_checkpoints_bits(jax_run):
    out, arrays, values, _, tf1_outputs = jax_run
    assert out["sequential"]["loaded"] == {k: k for k in KEYS}
    assert "global_step" in out["sequential"]["unused"] and "net/hidden/kernel/Adam" in out["sequential"]["unused"]
    assert "loaded:  4 variables" in out["sequential"]["summary"]
    for path, value in tagged(arrays, "sequential").items():
        assert_bit_equal(value, values[path], path)
    # A functional model's layers are made before the model: their paths have no model scope.
    assert out["functional"]["loaded"] == {"fc1/kernel": "net/hidden/kernel", "fc1/bias": "net/hidden/bias",
                                           "fc2/kernel": "net/logits/kernel", "fc2/bias": "net/logits/bias"}
    for path, key in out["functional"]["loaded"].items():
        assert_bit_equal(arrays["functional|" + path], values[key], path)
    for outputs in (arrays["sequential_outputs"], arrays["functional_outputs"]):
        np.testing.assert_allclose(outputs, tf1_outputs, rtol=1e-6, atol=1e-6)


def test_unbuilt_model_is_built_from_sample_input_and_batches_give_the_same_bits(jax_run):
    out, arrays, values, _, _ = jax_run
    assert out["unbuilt_without_input"]["type"] == "MissingVariablesError"
    assert "sample_input" in out["unbuilt_without_input"]["message"]
    assert sorted(out["tower"]["loaded"]) == ["tower/hidden/bias", "tower/hidden/kernel", "tower/logits/bias",
                                              "tower/logits/kernel"]
    for path, key in out["tower"]["loaded"].items():
        assert_bit_equal(arrays["tower|" + path], values[key], path)
    for path, value in tagged(arrays, "batched").items():
        assert_bit_equal(value, values[path], path)


@pytest.mark.parametrize("tag", ["damaged", "damaged_batched"])
def test_damaged_data_file_raises_and_assigns_nothing(jax_run, tag):
    error = jax_run[0][tag]
    assert error["type"] == "CorruptCheckpointError", error
    assert "net/logits/kernel" in error["message"] and "data-00000-of-00001" in error["message"]
    assert error["unchanged"]


def test_shape_and_missing_variable_errors_change_nothing(jax_run):
    out, arrays, values, _, _ = jax_run
    error = out["shape_mismatch"]
    assert error["type"] == "ShapeMismatchError" and error["unchanged"]
    assert "net/hidden/kernel (5, 7) <- 'net/hidden/kernel' (5, 6)" in error["message"]
    assert out["shape_skip"]["skipped"] == ["net/logits/bias", "net/logits/kernel"]
    assert sorted(out["shape_skip"]["loaded"]) == ["net/hidden/bias", "net/hidden/kernel"]
    assert_bit_equal(arrays["shape_skip|net/hidden/kernel"], values["net/hidden/kernel"], "hidden")
    error = out["missing_strict"]
    assert error["type"] == "MissingVariablesError" and error["unchanged"]
    assert "net/extra/kernel <- 'net/extra/kernel' is not in the checkpoint" in error["message"]
    assert out["missing_lenient"]["missing"] == ["net/extra/bias", "net/extra/kernel"]
    assert len(out["missing_lenient"]["loaded"]) == 4
    assert out["missing_ignored"]["ignored"] == ["net/extra/bias", "net/extra/kernel"]
    assert out["empty_map"]["type"] == "AssignmentMapError" and "maps nothing" in out["empty_map"]["message"]
    assert out["nothing_loaded"]["type"] == "MissingVariablesError"
    assert "would assign no variable" in out["nothing_loaded"]["message"]
    assert "the checkpoint has no scope 'nett/' (closest: net/" in out["nothing_loaded"]["message"]
    error = out["optimizer_state"]
    assert error["type"] == "LegacyCheckpointError" and error["unchanged"]
    assert "optimizer_state" in error["message"] and "not supported on the jax backend" in error["message"]
    for option, hint in (("vocab_remap", "remap the rows once"), ("mod_partitioned", "reorder the rows once")):
        error = out[option]
        assert error["type"] == "LegacyCheckpointError" and error["unchanged"], error
        assert option in error["message"] and hint in error["message"] and "optimizer then" not in error["message"]
    assert out["suggested"] in ("None", "{'/': '/'}", "{}") or "net/" in out["suggested"], out["suggested"]
    assert out["suggest_not_keras3"]["type"] == "LegacyCheckpointError"
    assert "needs TensorFlow" in out["suggest_not_keras3"]["message"]
    error = out["not_keras3"]
    assert error["type"] == "LegacyCheckpointError" and "needs TensorFlow" in error["message"]
    assert "KERAS_BACKEND=jax" in error["message"]
    assert out["not_found"]["type"] == "CheckpointNotFoundError" and out["not_found"]["unchanged"]
    assert out["bad_callback_option"]["type"] == "LegacyCheckpointError"
    assert "on_dtype_mismatch='bogus'" in out["bad_callback_option"]["message"]


def test_transpose_and_reshape(jax_run):
    out, arrays, values, _, _ = jax_run
    assert out["transpose"]["transforms"] == {"tt/t/kernel": "transpose (1, 0)"}
    assert_bit_equal(arrays["transpose|tt/t/kernel"], np.ascontiguousarray(values["net/logits/kernel"].T), "T")
    assert_bit_equal(arrays["transpose|tt/t/bias"], values["net/hidden/bias"], "bias")
    assert out["reshape"]["transforms"] == {"rr/r/kernel": "reshape (1, 18)"}
    assert_bit_equal(arrays["reshape|rr/r/kernel"], values["net/logits/kernel"].reshape(1, 18), "reshape")


def test_dtype_policies_and_moving_averages(jax_run):
    out, arrays, _, ema_values, _ = jax_run
    error = out["dtype_error"]
    assert error["type"] == "DTypeMismatchError" and error["unchanged"]
    assert "net/hidden/kernel (float32) <- 'net/hidden/kernel' (float64)" in error["message"]
    report = out["ema_cast"]
    assert report["ema_name"] == "ExponentialMovingAverage"
    assert report["loaded"]["net/hidden/kernel"] == "net/hidden/kernel/ExponentialMovingAverage"
    assert report["casts"]["net/logits/bias"] == "float64 -> float32"
    for path, key in report["loaded"].items():
        assert_bit_equal(arrays["ema_cast|" + path], ema_values[key].astype(np.float32), path)
    assert not np.array_equal(ema_values["net/hidden/kernel/ExponentialMovingAverage"],
                              ema_values["net/hidden/kernel"])
    error = out["overflow"]
    assert error["type"] == "DTypeMismatchError" and error["unchanged"] and "would become inf" in error["message"]
    np.testing.assert_array_equal(arrays["unsafe_cast"], np.array([np.inf, 1.5], np.float32))


def test_warm_start_callback_in_jax_fit_then_a_resumed_fit_is_skipped(jax_run):
    out, arrays, values, _, _ = jax_run
    fit = out["fit"]
    assert fit["skip_reason"] is None and sorted(fit["report"]["loaded"]) == KEYS
    assert "Warm start from" in out["stdout"]  # verbose=1 printed the summary
    begin, end = tagged(arrays, "fit_begin"), tagged(arrays, "fit_end")
    assert sorted(begin) == KEYS
    for path in KEYS:
        assert_bit_equal(begin[path], values[path], path)
    assert fit["iterations"] == 4
    assert not np.array_equal(end["net/hidden/kernel"], values["net/hidden/kernel"])  # it trained
    refit = out["refit"]
    assert refit["report"] is None and "already taken 4 step(s)" in refit["skip_reason"]
    for path, value in tagged(arrays, "refit_begin").items():
        assert_bit_equal(value, end[path], path)  # the trained weights, not the checkpoint's


def test_option_names_are_the_tensorflow_routes():
    import inspect

    from keras_legacy_ckpt import numpy_warm_start
    from keras_legacy_ckpt.warm_start import warm_start

    keyword_only = {name for name, p in inspect.signature(warm_start).parameters.items()
                    if p.kind is inspect.Parameter.KEYWORD_ONLY}
    assert set(numpy_warm_start.WARM_START_OPTIONS) == keyword_only
    numpy_route = {name for name, p in inspect.signature(numpy_warm_start.warm_start_numpy).parameters.items()
                   if p.kind is inspect.Parameter.KEYWORD_ONLY}
    assert numpy_route == keyword_only


def test_cast_policies_agree_with_the_tensorflow_route():
    """numpy_warm_start._castable against warm_start._castable (tf.DType) on every pair of numeric dtypes."""
    import ml_dtypes

    from keras_legacy_ckpt import numpy_warm_start
    from keras_legacy_ckpt.warm_start import _castable as tensorflow_castable

    names = ["float16", "bfloat16", "float32", "float64", "int8", "int16", "int32", "int64", "uint8", "uint16",
             "uint32", "uint64", "complex64", "complex128", "bool"]
    for policy in ("error", "cast", "unsafe_cast"):
        for source in names:
            for target in names:
                ours = numpy_warm_start._castable(numpy_warm_start._numpy_dtype(source),
                                                  numpy_warm_start._numpy_dtype(target), policy)
                theirs = tensorflow_castable(tf.as_dtype(source), tf.as_dtype(target), policy)
                assert ours == theirs, (policy, source, target)
    assert numpy_warm_start._numpy_dtype("bfloat16") == np.dtype(ml_dtypes.bfloat16)
    assert numpy_warm_start._narrowing(np.dtype(np.float32), np.dtype(ml_dtypes.bfloat16))
    assert not numpy_warm_start._narrowing(np.dtype(np.float16), np.dtype(np.float32))


def test_parts_of_a_partitioned_variable_tile_the_tensor():
    from keras_legacy_ckpt.numpy_warm_start import _part_indices

    full = np.arange(24).reshape(6, 4)
    indices = _part_indices((6, 4), [(2, 4), (4, 4)])
    np.testing.assert_array_equal(np.concatenate([full[i] for i in indices]), full)
    indices = _part_indices((6, 4), [(6, 1), (6, 3)])
    np.testing.assert_array_equal(np.concatenate([full[i] for i in indices], axis=1), full)
    assert _part_indices((6, 4), [(6, 4)]) == [None]
    assert _part_indices((6, 4), [(4, 6)]) is None
    assert _part_indices((6, 4), [(2, 4), (3, 4)]) is None
