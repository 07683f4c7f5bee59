"""suggest_assignment_map: the smallest map, pairing by name, never pairing tensors of different shapes."""

import numpy as np
import pytest
import tensorflow as tf
from hypothesis import assume, given, settings
from hypothesis import strategies as st

import keras_legacy_ckpt as klc
from keras_legacy_ckpt.assignment_map import plan_assignment_map, suggest_map
from keras_legacy_ckpt.checkpoint_reader import closest_keys
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


# Repeated same-shaped blocks. The TF1 program writes encoder/layer_0/dense/{kernel,bias} ...
# encoder/layer_3/... and encoder/head/...; the TF2 models rebuild them under "enc_v2".
LAYERS = ("layer_0", "layer_1", "layer_2", "layer_3")
BLOCK_VARIABLES = ["%s/dense/%s" % (layer, leaf) for layer in LAYERS for leaf in ("kernel", "bias")]


def encoder_blocks(x, training=False, blocks=LAYERS, classes=3):
    """TF1 graph code: one v1 dense layer (4 -> 4) per block scope, then a dense head."""
    for block in blocks:
        with v1.variable_scope(block):
            x = klc.v1_layers.dense(x, 4, activation=tf.nn.tanh, name="dense")
    return klc.v1_layers.dense(x, classes, name="head")


def new_head(x, training=False):
    """The same blocks with a 5-class head: {"encoder/": "enc_v2/"} would pair (4, 5) with (4, 3)."""
    return encoder_blocks(x, training, classes=5)


def renamed_blocks(x, training=False):
    """block_a..block_d: nothing in the names says which layer_i each one was."""
    return encoder_blocks(x, training, blocks=("block_a", "block_b", "block_c", "block_d"))


def renamed_blocks_new_head(x, training=False):
    return encoder_blocks(x, training, blocks=("block_a", "block_b", "block_c", "block_d"), classes=5)


@pytest.fixture(scope="module")
def blocks_ckpt(tmp_path_factory):
    return tf1_programs.save_tf1_checkpoint(str(tmp_path_factory.mktemp("blocks")), encoder_blocks, 4,
                                            outer_scope="encoder")


def assert_loads_what_tf_loads(model, network, prefix, suggestion):
    """warm_start with the suggested map gives every variable TF's own init_from_checkpoint value."""
    before = tf2_models.values(model)
    report = klc.warm_start(model, prefix, suggestion.assignment_map)  # strict: every mapped variable loads
    assert report.loaded == suggestion.matched
    after = tf2_models.values(model)
    oracle = tf1_programs.tf1_init_from_checkpoint(prefix, network, 4, suggestion.assignment_map,
                                                   outer_scope="enc_v2")
    assert set(oracle) == set(after)
    values = tf1_programs.checkpoint_values(prefix)
    for name, key in report.loaded.items():
        np.testing.assert_array_equal(after[name], oracle[name], err_msg=name)
        np.testing.assert_array_equal(after[name], values[key], err_msg=name)
    for name in set(after) - set(report.loaded):
        np.testing.assert_array_equal(after[name], before[name], err_msg=name)  # left as initialised


@pytest.mark.parametrize("model_class", [tf2_models.ShimModel, tf2_models.ShimModule])
def test_repeated_blocks_pair_by_name_and_load_what_tf_loads(blocks_ckpt, model_class):
    prefix, values = blocks_ckpt
    model = model_class(new_head, 4, outer_scope="enc_v2")
    suggestion = klc.suggest_assignment_map(model, prefix)
    assert suggestion.matched == {"enc_v2/" + rest: "encoder/" + rest for rest in BLOCK_VARIABLES}
    assert suggestion.unmatched == ["enc_v2/head/bias", "enc_v2/head/kernel"]  # (5,) and (4, 5) now
    assert suggestion.ambiguous == {}
    assert_loads_what_tf_loads(model, new_head, prefix, suggestion)
    loaded = tf2_models.values(model)
    for i, layer in enumerate(LAYERS):
        for j, other in enumerate(LAYERS):
            same = np.array_equal(loaded["enc_v2/%s/dense/kernel" % layer], values["encoder/%s/dense/kernel" % other])
            assert same == (i == j), (layer, other)


def test_what_names_cannot_decide_is_ambiguous_and_unmatched(blocks_ckpt):
    prefix, _ = blocks_ckpt
    model = tf2_models.ShimModel(renamed_blocks, 4, outer_scope="enc_v2")
    suggestion = klc.suggest_assignment_map(model, prefix)
    # The head's names decide; block_a could be any of layer_0..layer_3. {"encoder/": "enc_v2/"}
    # would send block_a to encoder/block_a/..., which is not there: TF and strict=True raise.
    assert suggestion.assignment_map == {"encoder/head/": "enc_v2/head/"}
    assert suggestion.matched == {"enc_v2/head/kernel": "encoder/head/kernel", "enc_v2/head/bias": "encoder/head/bias"}
    assert suggestion.ambiguous == {
        "enc_v2/%s/dense/%s" % (block, leaf): ["encoder/%s/dense/%s" % (layer, leaf) for layer in LAYERS]
        for block in ("block_a", "block_b", "block_c", "block_d") for leaf in ("kernel", "bias")}
    assert set(suggestion.ambiguous) <= set(suggestion.unmatched)
    assert_loads_what_tf_loads(model, renamed_blocks, prefix, suggestion)


def test_no_map_is_proposed_when_nothing_can_be_decided(blocks_ckpt):
    prefix, _ = blocks_ckpt
    model = tf2_models.ShimModel(renamed_blocks_new_head, 4, outer_scope="enc_v2")
    suggestion = klc.suggest_assignment_map(model, prefix)
    assert suggestion.assignment_map == {} and suggestion.matched == {}
    assert len(suggestion.ambiguous) == 8 and len(suggestion.unmatched) == 10


def test_two_variables_one_key_is_ambiguous():
    model = {"tower_a/dense/kernel": (4, 4), "tower_b/dense/kernel": (4, 4)}
    suggestion = suggest_map(model, {"dense/kernel": (4, 4), "global_step": ()})
    assert suggestion.assignment_map == {} and suggestion.matched == {}
    assert suggestion.ambiguous == {"tower_a/dense/kernel": ["dense/kernel"], "tower_b/dense/kernel": ["dense/kernel"]}


def _blocks(scope, count, head):
    shapes = {"%s/layer_%d/dense/%s" % (scope, i, leaf): shape for i in range(count)
              for leaf, shape in (("kernel", (4, 4)), ("bias", (4,)))}
    shapes["%s/head/kernel" % scope] = head
    return shapes


MATCHED_IS_WHAT_THE_MAP_ASSIGNS = {
    "new head": (_blocks("enc_v2", 12, (4, 5)), _blocks("encoder", 12, (4, 3))),
    "more blocks than the checkpoint": (_blocks("enc_v2", 6, (4, 3)), _blocks("encoder", 4, (4, 3))),
    "partitioned": ({"new/emb/part_0": (5, 8), "new/emb/part_1": (5, 8), "new/dense/kernel": (8, 2)},
                    {"old/emb": (10, 8), "old/dense/kernel": (8, 2), "old/dense/kernel/Adam": (8, 2)}),
    "two towers from one": ({"a/dense/kernel": (4, 4), "a/out/kernel": (4, 2), "b/dense/kernel": (4, 4),
                             "b/out/kernel": (4, 2)},
                            {"dense/kernel": (4, 4), "out/kernel": (4, 2)}),
    "scope per block, leftovers exact": (
        {**_blocks("m", 20, (4, 5)), "m/extra/w": (3, 3), "other/v": (2,)},
        {**_blocks("c", 20, (4, 3)), "c/extra/w": (3, 3), "v": (2,), "global_step": ()}),
}


@pytest.mark.parametrize("case", sorted(MATCHED_IS_WHAT_THE_MAP_ASSIGNS))
def test_matched_is_exactly_what_the_map_assigns(case):
    model, ckpt = MATCHED_IS_WHAT_THE_MAP_ASSIGNS[case]
    suggestion = suggest_map(model, ckpt, max_entries=4)
    matches = []
    if suggestion.assignment_map:  # (None would be the identity map)
        plan = plan_assignment_map(suggestion.assignment_map, model, ckpt)
        assert plan.not_found == {} and plan.missing() == []  # it loads with strict=True
        matches = list(plan.matches.values())
    assigned = {part: m.key for m in matches for part in m.parts}
    assert suggestion.matched == assigned
    for match in matches:
        shapes = [model[p] for p in match.parts]
        joined = (sum(s[0] for s in shapes),) + shapes[0][1:]
        assert joined == ckpt[match.key], match  # never a shape-incompatible pair
    for name, key in suggestion.matched.items():  # never crosswise: block i <- block i
        assert name.split("/")[1:2] == key.split("/")[1:2] or "layer_" not in name
    assert suggestion.unmatched == sorted(set(model) - set(assigned))
    assert suggestion.unused == sorted(set(ckpt) - set(assigned.values()))
    assert set(suggestion.ambiguous) <= set(suggestion.unmatched)


_PATHS = st.builds(lambda scopes, leaf: "/".join(scopes + [leaf]),
                   st.lists(st.sampled_from(["enc", "encoder", "layer_0", "layer_1", "dense", "dense_1"]), max_size=3),
                   st.sampled_from(["kernel", "bias", "w"]))
_SHAPES = st.sampled_from([(2,), (3,), (2, 2), (4, 2)])


@st.composite
def models_and_checkpoints(draw):
    """A checkpoint; a model with some of its names under another scope (a few reshaped), names
    of its own, and maybe a partitioned variable."""
    ckpt = draw(st.dictionaries(_PATHS, _SHAPES, min_size=1, max_size=12))
    model = {}
    for key, shape in ckpt.items():
        if draw(st.booleans()):
            scope = draw(st.sampled_from(["", "new/", "m/enc/", "enc/"]))
            model[scope + key] = draw(st.sampled_from([shape, shape, shape, (5,)]))
    model.update(draw(st.dictionaries(_PATHS, _SHAPES, max_size=4)))
    if draw(st.booleans()):
        model.update({"p/emb/part_0": (2, 2), "p/emb/part_1": (2, 2)})
        ckpt["q/emb"] = (4, 2)
    return model, ckpt


@settings(max_examples=300, deadline=None, derandomize=True)
@given(case=models_and_checkpoints(), max_entries=st.sampled_from([1, 4, 16]))
def test_any_suggestion_loads_exactly_what_it_says(case, max_entries):
    model, ckpt = case
    assume(model)
    suggestion = suggest_map(model, ckpt, max_entries=max_entries)
    assigned = {}
    if suggestion.assignment_map:
        plan = plan_assignment_map(suggestion.assignment_map, model, ckpt)
        assert plan.not_found == {} and plan.missing() == []
        assigned = {part: m.key for m in plan.matches.values() for part in m.parts}
        for match in plan.matches.values():
            shapes = [model[p] for p in match.parts]
            assert (sum(s[0] for s in shapes),) + shapes[0][1:] == ckpt[match.key], match
    assert suggestion.matched == assigned
    assert set(suggestion.ambiguous) <= set(suggestion.unmatched)


def test_wrong_map_error_names_the_same_block_and_a_map_that_pairs_by_name(blocks_ckpt):
    prefix, _ = blocks_ckpt
    model = tf2_models.ShimModel(new_head, 4, outer_scope="enc_v2")
    with pytest.raises(klc.MissingVariablesError) as error:
        klc.warm_start(model, prefix)  # the identity map: every enc_v2/... key is missing
    message = str(error.value)
    assert ("enc_v2/layer_2/dense/kernel <- 'enc_v2/layer_2/dense/kernel' is not in the checkpoint "
            "(closest: encoder/layer_2/dense/kernel, ") in message
    expected = {"encoder/%s/" % layer: "enc_v2/%s/" % layer for layer in LAYERS}
    assert "the assignment map %r would match" % (expected,) in message


def test_closest_keys_prefer_the_same_trailing_path():
    # TF1 auto-names dense, dense_1, ...: the key under a scope the map forgot is the same layer,
    # although difflib finds "dense_1/kernel" (another layer) more similar.
    keys = {"model/dense/kernel": None, "model/dense_1/kernel": None, "dense_1/kernel": None}
    assert closest_keys("dense/kernel", keys)[0] == "model/dense/kernel"
    assert closest_keys("model/dense/kernl", keys)[0] == "model/dense/kernel"  # a typo: difflib still helps
    assert closest_keys("head/logits/weights", iter(keys)) == []  # nothing alike: no hint
