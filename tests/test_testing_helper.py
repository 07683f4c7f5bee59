"""keras_legacy_ckpt.testing: the TF1-vs-TF2 equivalence check in one call."""

import numpy as np

import keras_legacy_ckpt as klc
from keras_legacy_ckpt import testing
from tests import tf1_programs, tf2_models
from tests.tf1_programs import mlp, v1

X = np.random.default_rng(5).normal(size=(7, 5)).astype(np.float32)


def tf1_inference(x):
    with v1.variable_scope("backbone"):
        return mlp(x, training=False)


def test_warm_started_model_matches_tf1_and_a_cold_one_does_not(ckpt_dir):
    prefix, _ = tf1_programs.save_tf1_checkpoint(ckpt_dir, mlp, 5, outer_scope="backbone")
    model = tf2_models.ShimModel(mlp, 5)
    model.warm_up()
    cold = testing.compare_with_tf1(tf1_inference, prefix, model, X)
    assert cold.max_abs > 1e-2
    klc.warm_start(model, prefix)
    result = testing.compare_with_tf1(tf1_inference, prefix, model, X)
    assert result.max_abs <= 1e-6 and result.max_rel <= 1e-5
    assert result.outputs[0].shape == (7, 3)
    assert "output 0 (7, 3): max |diff|" in result.summary()
