"""transpose=, reshape=, ema_name= and vocab_remap= in warm_start, against TF's own warm_start in graph mode."""

import os

import numpy as np
import pytest
import tensorflow as tf
import tf_keras

import keras_legacy_ckpt as klc
from tests import tf1_programs
from tests.tf1_programs import v1

OLD_VOCAB = ["the", "cat", "sat", "on", "mat"]
NEW_VOCAB = ["mat", "the", "dog", "sat", "ran"]


def embedding_program(x, training=False):
    """A TF1 model with a word embedding and a class output layer, trained with Adam."""
    with v1.variable_scope("emb"):
        words = v1.get_variable("words", [5, 3])
    with v1.variable_scope("logits"):
        kernel = v1.get_variable("kernel", [3, 5])
    ids = tf.cast(tf.abs(x[:, :1]) * 3, tf.int32) % 5
    return tf.matmul(tf.reshape(tf.nn.embedding_lookup(words, ids), [-1, 3]), kernel)[:, :3]


@pytest.fixture(scope="module")
def vocab_setup(tmp_path_factory):
    directory = tmp_path_factory.mktemp("vocab")
    prefix, values = tf1_programs.save_tf1_checkpoint(str(directory / "tf1"), embedding_program, 2)
    paths = {}
    for name, words in (("old", OLD_VOCAB), ("new", NEW_VOCAB)):
        paths[name] = str(directory / ("%s.txt" % name))
        with open(paths[name], "w") as f:
            f.write("\n".join(words) + "\n")
    return prefix, values, paths


def _tf_warm_start(prefix, name, shape, tf_vocab_info, partitions=None):
    """The oracle: tf.compat.v1.train.warm_start in graph mode; returns the variable's value."""
    with tf.Graph().as_default():
        partitioner = v1.fixed_size_partitioner(partitions) if partitions else None
        variable = v1.get_variable(name, shape, initializer=v1.ones_initializer(), partitioner=partitioner)
        v1.train.warm_start(prefix, vars_to_warm_start=[name], var_name_to_vocab_info={name: tf_vocab_info})
        with v1.Session() as sess:
            sess.run(v1.global_variables_initializer())
            return sess.run(tf.concat(list(variable), 0) if partitions else variable)


def _module(**variables):
    module = tf.Module()
    module.vars = [tf.Variable(tf.ones(shape), name=name) for name, shape in variables.items()]
    return module


@pytest.mark.parametrize("oov,backup", [(0, False), (2, False), (1, True)])
def test_vocab_remap_of_embedding_rows_equals_tf_warm_start(vocab_setup, oov, backup):
    prefix, _, paths = vocab_setup
    rows = 4 + oov  # the first 4 new words, then the OOV buckets
    initializer = v1.ones_initializer() if backup else None
    expected = _tf_warm_start(prefix, "emb/words", [rows, 3], v1.train.VocabInfo(
        paths["new"], 4, oov, paths["old"], backup_initializer=initializer))
    module = tf.Module()
    module.words = tf.Variable(tf.fill([rows, 3], 7.0), name="emb/words")
    report = klc.warm_start(module, prefix, {"emb/words": "emb/words"}, vocab_remap={
        "emb/words": klc.VocabInfo(paths["new"], paths["old"], num_oov_buckets=oov, backup_initializer=initializer)})
    np.testing.assert_array_equal(module.words.numpy(), expected)
    assert "vocab_remap (3 of 4 words found" in report.transforms["emb/words"]
    assert not np.any(module.words.numpy() == 7.0)  # new words take the backup, not the starting value


def test_vocab_remap_of_output_columns_equals_tf_warm_start(vocab_setup):
    prefix, _, paths = vocab_setup
    expected = _tf_warm_start(prefix, "logits/kernel", [3, 4], v1.train.VocabInfo(
        paths["new"], 4, 0, paths["old"], axis=1))
    module = tf.Module()
    module.kernel = tf.Variable(tf.ones([3, 4]), name="logits/kernel")
    klc.warm_start(module, prefix, {"logits/kernel": "logits/kernel"}, vocab_remap={
        "logits/kernel": klc.VocabInfo(paths["new"], paths["old"], axis=1)})
    np.testing.assert_array_equal(module.kernel.numpy(), expected)
    # TF ignores old_vocab_size for columns; we apply it: "mat" (old word 4) is then a new word.
    klc.warm_start(module, prefix, {"logits/kernel": "logits/kernel"}, vocab_remap={
        "logits/kernel": klc.VocabInfo(paths["new"], paths["old"], old_vocab_size=4, axis=1)})
    np.testing.assert_array_equal(module.kernel.numpy()[:, 0], np.zeros(3))
    np.testing.assert_array_equal(module.kernel.numpy()[:, 1:], expected[:, 1:])


def test_vocab_remap_of_a_partitioned_variable_by_its_full_name(vocab_setup):
    prefix, _, paths = vocab_setup
    expected = _tf_warm_start(prefix, "emb/words", [6, 3], v1.train.VocabInfo(paths["new"], 4, 2, paths["old"]),
                              partitions=2)
    module = tf.Module()
    module.parts = [tf.Variable(tf.ones([3, 3]), name="emb/words/part_%d" % i) for i in range(2)]
    klc.warm_start(module, prefix, {"emb/words": "emb/words"}, vocab_remap={
        "emb/words": klc.VocabInfo(paths["new"], paths["old"], num_oov_buckets=2)})
    np.testing.assert_array_equal(np.concatenate([p.numpy() for p in module.parts]), expected)


def test_vocab_remap_errors_change_nothing(vocab_setup):
    prefix, _, paths = vocab_setup
    module = tf.Module()
    module.words = tf.Variable(tf.ones([6, 4]), name="emb/words")  # 4 columns: the checkpoint has 3
    info = klc.VocabInfo(paths["new"], paths["old"], num_oov_buckets=2)
    with pytest.raises(klc.ShapeMismatchError, match=r"after vocab_remap .*: \(6, 3\)"):
        klc.warm_start(module, prefix, {"emb/words": "emb/words"}, vocab_remap={"emb/words": info})
    with pytest.raises(klc.AssignmentMapError, match="'emb/wrods', which is no variable"):
        klc.warm_start(module, prefix, {"emb/words": "emb/words"}, vocab_remap={"emb/wrods": info})
    with pytest.raises(klc.AssignmentMapError, match="Cannot read vocabulary file"):
        klc.warm_start(module, prefix, {"emb/words": "emb/words"}, vocab_remap={
            "emb/words": klc.VocabInfo(paths["new"] + ".missing", paths["old"])})
    assert np.all(module.words.numpy() == 1.0)


def test_transpose_and_reshape_with_minus_one(mlp_ckpt):
    prefix, values = mlp_ckpt
    module = _module(**{"net/hidden/kernel": [6, 5], "net/logits/kernel": [18], "net/logits/bias": [1, 3]})
    report = klc.warm_start(module, prefix, {"net/hidden/kernel": "net/hidden/kernel",
                                             "net/logits/": "net/logits/"},
                            transpose={"hidden/kernel$": [1, 0]}, reshape={"logits/kernel$": [-1], "bias$": [1, -1]})
    hidden, logits, bias = module.vars
    np.testing.assert_array_equal(hidden.numpy(), values["net/hidden/kernel"].T)
    np.testing.assert_array_equal(logits.numpy(), values["net/logits/kernel"].reshape(-1))
    np.testing.assert_array_equal(bias.numpy(), values["net/logits/bias"].reshape(1, -1))
    assert report.transforms == {"net/hidden/kernel": "transpose (1, 0)", "net/logits/bias": "reshape (1, 3)",
                                 "net/logits/kernel": "reshape (18,)"}
    with pytest.raises(klc.AssignmentMapError, match="Cannot reshape"):
        klc.warm_start(module, prefix, {"net/logits/kernel": "net/logits/kernel"}, reshape={"kernel": [-1, 7]})
    with pytest.raises(klc.AssignmentMapError, match="not a permutation"):
        klc.warm_start(module, prefix, {"net/hidden/kernel": "net/hidden/kernel"}, transpose={"kernel": [0, 0]})


class TransposedDense(tf_keras.layers.Layer):
    """Keeps its kernel as [units, inputs]: TF1's [inputs, units] must be transposed into it."""

    def build(self, input_shape):
        self.kernel = self.add_weight("kernel", shape=[6, int(input_shape[-1])])

    def call(self, x):
        return tf.matmul(x, self.kernel, transpose_b=True)


def test_transposed_weights_take_transposed_optimizer_slots(mlp_ckpt):
    prefix, values = mlp_ckpt
    inputs = tf_keras.Input([5])
    model = tf_keras.Model(inputs, TransposedDense(name="hidden")(inputs))
    model.compile(optimizer=tf_keras.optimizers.Adam(0.01, epsilon=1e-8), loss="mse")
    klc.warm_start(model, prefix, {"net/hidden/kernel": "hidden/kernel"}, transpose={"kernel": [1, 0]},
                   optimizer_state=True)
    kernel = model.get_layer("hidden").kernel
    np.testing.assert_array_equal(kernel.numpy(), values["net/hidden/kernel"].T)
    slot_m = model.optimizer._momentums[model.optimizer._index_dict[model.optimizer._var_key(kernel)]]
    np.testing.assert_array_equal(slot_m.numpy(), values["net/hidden/kernel/Adam"].T)


def test_ema_name_for_a_custom_named_moving_average(tmp_path):
    with tf.Graph().as_default():
        weights = v1.get_variable("net/w", [4, 2])
        loss = tf.reduce_sum(tf.matmul(tf.ones([1, 4]), weights) ** 2)
        step = v1.train.get_or_create_global_step()
        train = v1.train.AdamOptimizer(0.1).minimize(loss, global_step=step)
        ema = v1.train.ExponentialMovingAverage(0.5, name="swa")
        with tf.control_dependencies([train]):
            train = ema.apply([weights])
        with v1.Session() as sess:
            sess.run(v1.global_variables_initializer())
            for _ in range(3):
                sess.run(train)
            prefix = v1.train.Saver().save(sess, os.path.join(str(tmp_path), "model.ckpt"), global_step=step)
    shadow = tf.train.load_checkpoint(prefix).get_tensor("net/w/swa")
    module = tf.Module()
    module.w = tf.Variable(tf.zeros([4, 2]), name="net/w")
    with pytest.raises(klc.MissingVariablesError, match="ExponentialMovingAverage"):
        klc.warm_start(module, prefix, use_ema=True)
    report = klc.warm_start(module, prefix, use_ema=True, ema_name="swa")
    assert report.loaded == {"net/w": "net/w/swa"} and "took their swa" in report.summary()
    np.testing.assert_array_equal(module.w.numpy(), shadow)


def test_a_transpose_or_reshape_pattern_that_matches_nothing_is_an_error(mlp_ckpt):
    prefix, _ = mlp_ckpt
    module = _module(**{"net/hidden/kernel": [6, 5]})
    for options in ({"transpose": {"hiden/kernel$": [1, 0]}}, {"reshape": {"nothing": [-1]}}):
        with pytest.raises(klc.AssignmentMapError, match="matches no model variable name"):
            klc.warm_start(module, prefix, {"net/hidden/kernel": "net/hidden/kernel"}, **options)
    assert np.all(module.vars[0].numpy() == 1.0)


def test_vocab_remap_refuses_what_tf_warm_start_refuses(vocab_setup, tmp_path):
    prefix, _, paths = vocab_setup
    duplicated = str(tmp_path / "dup.txt")
    with open(duplicated, "w") as f:
        f.write("mat\nthe\nmat\nsat\n")
    module = tf.Module()
    module.words = tf.Variable(tf.ones([4, 3]), name="emb/words")
    for info, message in ((klc.VocabInfo(duplicated, paths["old"]), "lists 'mat' more than once"),
                          (klc.VocabInfo(paths["new"], paths["old"], old_vocab_size=9), "old_vocab_size=9, but")):
        with pytest.raises(klc.AssignmentMapError, match=message):
            klc.warm_start(module, prefix, {"emb/words": "emb/words"}, vocab_remap={"emb/words": info})
    assert np.all(module.words.numpy() == 1.0)


def test_use_ema_points_to_a_custom_ema_name_and_fallback_needs_some_ema(tmp_path):
    with tf.Graph().as_default():
        weights = v1.get_variable("net/w", [4, 2])
        step = v1.train.get_or_create_global_step()
        train = v1.train.AdamOptimizer(0.1).minimize(tf.reduce_sum(weights ** 2), global_step=step)
        with tf.control_dependencies([train]):
            train = v1.train.ExponentialMovingAverage(0.5, name="swa").apply([weights])
        with v1.Session() as sess:
            sess.run(v1.global_variables_initializer())
            sess.run(train)
            prefix = v1.train.Saver().save(sess, os.path.join(str(tmp_path), "model.ckpt"), global_step=step)
    module = tf.Module()
    module.w = tf.Variable(tf.zeros([4, 2]), name="net/w")
    with pytest.raises(klc.MissingVariablesError, match=r"copies named X/swa: pass ema_name='swa'"):
        klc.warm_start(module, prefix, use_ema=True)
    with pytest.raises(klc.MissingVariablesError, match="no variable has one"):
        klc.warm_start(module, prefix, use_ema=True, ema_fallback=True)  # would load raw values as "EMA"
    assert not module.w.numpy().any()
