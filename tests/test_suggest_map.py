"""suggest_assignment_map: the smallest map, never pairing tensors of different shapes."""

import pytest
import tensorflow as tf

import keras_legacy_ckpt as klc
from keras_legacy_ckpt.assignment_map import suggest_map
from tests import tf1_programs, tf2_models
from tests.tf1_programs import mlp, scoped_variables, v1


def test_extra_outer_scope_gives_the_root_map_and_it_loads(mlp_ckpt):
    prefix, _ = mlp_ckpt
    model = tf2_models.ShimModel(mlp, 5, outer_scope="backbone")
    suggestion = klc.suggest_assignment_map(model, prefix)
    assert suggestion.assignment_map == {"/": "backbone/"} and suggestion.unmatched == []
    assert "global_step" in suggestion.unused
    report = klc.warm_start(model, prefix, suggestion.assignment_map)
    assert report.loaded == suggestion.matched


def test_renamed_top_scope(mlp_ckpt):
    prefix, _ = mlp_ckpt

    def tower(x, training=False):
        with v1.variable_scope("tower"):  # was "net" in TF1
            h = tf1_programs.klc.v1_layers.dense(x, 6, activation=tf.nn.relu, name="hidden")
            h = tf1_programs.klc.v1_layers.batch_normalization(h, training=training, name="bn")
            return tf1_programs.klc.v1_layers.dense(h, 3, name="logits")

    model = tf2_models.ShimModel(tower, 5, outer_scope="model")
    suggestion = klc.suggest_assignment_map(model, prefix)
    assert suggestion.assignment_map == {"net/": "model/tower/"} and len(suggestion.matched) == 8
    klc.warm_start(model, prefix, suggestion.assignment_map)


def test_never_proposes_a_shape_incompatible_pair(tmp_path):
    prefix, _ = tf1_programs.save_tf1_checkpoint(str(tmp_path), scoped_variables, 4)
    model = {"backbone/enc/layer1/w": (4, 5), "backbone/enc/layer1/b": (5,), "backbone/enc/layer2/w": (5, 2),
             "backbone/head/w": (2, 7)}  # a new head with 7 classes
    ckpt = {n: tuple(s) for n, s in tf.train.list_variables(prefix)}
    suggestion = suggest_map(model, ckpt)
    assert suggestion.unmatched == ["backbone/head/w"]
    for name, key in suggestion.matched.items():
        assert ckpt[key] == model[name]
    assert suggestion.assignment_map == {"enc/": "backbone/enc/"}


def test_missing_variables_error_suggests_the_map(mlp_ckpt):
    prefix, _ = mlp_ckpt
    model = tf2_models.ShimModel(mlp, 5, outer_scope="backbone")
    with pytest.raises(klc.MissingVariablesError, match=r"the assignment map \{'/': 'backbone/'\} would match"):
        klc.warm_start(model, prefix)
