"""Our assignment maps against TensorFlow's own init_from_checkpoint in graph mode."""

import numpy as np
import pytest
import tensorflow as tf

import keras_legacy_ckpt as klc
from tests import tf1_programs, tf2_models
from tests.tf1_programs import scoped_variables, v1

MAPS = [
    {"/": "backbone/"},
    {"enc/": "backbone/enc/"},
    {"enc/layer1/": "backbone/enc/layer1/", "head/w": "backbone/head/w"},
    {"enc/layer1/w": "backbone/enc/layer1/w"},
    {"enc/": "backbone/enc/", "head/": "backbone/head/"},
    {"enc/layer2/w": "backbone/enc/layer2/w", "enc/layer1/": "backbone/enc/layer1/"},
]


def _assignment_by_value(model_values, ckpt_values):
    """Which checkpoint key each model variable holds, identified by its (unique) value."""
    found = {}
    for name, value in model_values.items():
        keys = [k for k, c in ckpt_values.items() if c.shape == value.shape and np.array_equal(c, value)]
        assert len(keys) <= 1, (name, keys)
        if keys:
            found[name] = keys[0]
    return found


@pytest.fixture(scope="module")
def scoped_ckpt(tmp_path_factory):
    return tf1_programs.save_tf1_checkpoint(str(tmp_path_factory.mktemp("scoped")), scoped_variables, 4)


@pytest.fixture(scope="module")
def old_scoped_ckpt(tmp_path_factory):
    return tf1_programs.save_tf1_checkpoint(str(tmp_path_factory.mktemp("old")), scoped_variables, 4,
                                            outer_scope="old")


def _ours(prefix, assignment_map, outer_scope="backbone"):
    model = tf2_models.ShimModule(scoped_variables, 4, outer_scope=outer_scope)
    report = klc.warm_start(model, prefix, assignment_map, strict=False)
    return report, tf2_models.values(model)


@pytest.mark.parametrize("assignment_map", MAPS, ids=lambda m: repr(m))
def test_same_tensor_to_same_variable_as_tensorflow(scoped_ckpt, assignment_map):
    prefix, ckpt_values = scoped_ckpt
    expected = _assignment_by_value(
        tf1_programs.tf1_init_from_checkpoint(prefix, scoped_variables, 4, assignment_map), ckpt_values)
    report, values = _ours(prefix, assignment_map)
    assert expected  # the oracle assigned something
    assert report.loaded == expected
    for name, key in expected.items():
        np.testing.assert_array_equal(values[name], ckpt_values[key])


@pytest.mark.parametrize("assignment_map", [{"old/": "backbone/"}, {"old/enc/": "backbone/enc/"},
                                            {"old/head/w": "backbone/head/w"}], ids=repr)
def test_checkpoint_scope_renames_match_tensorflow(old_scoped_ckpt, assignment_map):
    prefix, ckpt_values = old_scoped_ckpt
    expected = _assignment_by_value(
        tf1_programs.tf1_init_from_checkpoint(prefix, scoped_variables, 4, assignment_map), ckpt_values)
    report, _ = _ours(prefix, assignment_map)
    assert expected and report.loaded == expected


def test_identity_map_matches_tensorflow_root_map(old_scoped_ckpt):
    prefix, ckpt_values = old_scoped_ckpt
    expected = _assignment_by_value(
        tf1_programs.tf1_init_from_checkpoint(prefix, scoped_variables, 4, {"/": "/"}, outer_scope="old"),
        ckpt_values)
    report, _ = _ours(prefix, None, outer_scope="old")
    assert len(expected) == 4 and report.loaded == expected


@pytest.mark.parametrize("assignment_map,ours", [
    ({"enc/": "backbone/enc/layer1/w"}, klc.AssignmentMapError),
    ({"enc/layer1/w": "backbone/enc/"}, klc.AssignmentMapError),
    ({"nope/": "backbone/"}, klc.MissingVariablesError),
    ({"enc/layer1/nope": "backbone/enc/layer1/w"}, klc.MissingVariablesError),
    ({"enc/layer2/w": "backbone/enc/layer1/w"}, klc.ShapeMismatchError),
], ids=repr)
def test_where_tensorflow_raises_we_raise_and_assign_nothing(scoped_ckpt, assignment_map, ours):
    prefix, _ = scoped_ckpt
    with pytest.raises(ValueError):
        tf1_programs.tf1_init_from_checkpoint(prefix, scoped_variables, 4, assignment_map)
    model = tf2_models.ShimModule(scoped_variables, 4)
    model.warm_up()
    before = tf2_models.values(model)
    with pytest.raises(ours):
        klc.warm_start(model, prefix, assignment_map)
    after = tf2_models.values(model)
    assert all(np.array_equal(before[k], after[k]) for k in before)


def test_scope_map_shape_mismatch_is_caught_although_tensorflow_loads_it(scoped_ckpt):
    prefix, _ = scoped_ckpt
    model = tf2_models.ShimModule(scoped_variables, 4)
    with pytest.raises(klc.ShapeMismatchError, match="backbone/enc/layer2/w"):
        klc.warm_start(model, prefix, {"enc/layer1/": "backbone/enc/layer2/"}, strict=False)


@pytest.mark.parametrize("form", ["rules", "callable"])
def test_rules_and_callables_match_the_equivalent_dict(scoped_ckpt, form):
    prefix, _ = scoped_ckpt
    mapping = [(r"^", "backbone/")] if form == "rules" else (lambda key: "backbone/" + key)
    report, _ = _ours(prefix, mapping)
    dict_report, _ = _ours(prefix, {"/": "backbone/"})
    assert report.loaded == dict_report.loaded and len(report.loaded) == 4


def partitioned(x, training=False):
    with v1.variable_scope("emb_net"):
        emb = v1.get_variable("emb", [10, 4], partitioner=v1.fixed_size_partitioner(2))
        return tf.matmul(x, tf.concat(list(emb), 0))[:, :3]


class PartsModule(tf.Module):
    """A TF2 module holding TF1-style partition variables "backbone/emb_net/emb/part_N"."""

    def __init__(self, shapes, base="backbone/emb_net/emb"):
        super().__init__()
        self.base = base
        self.parts = [tf.Variable(tf.zeros(s), name=(self.base + "/part_%d") % i)
                      for i, s in enumerate(shapes)]


@pytest.fixture(scope="module")
def partitioned_ckpt(tmp_path_factory):
    return tf1_programs.save_tf1_checkpoint(str(tmp_path_factory.mktemp("part")), partitioned, 10)


def test_partitioned_parts_get_the_same_slices_as_tensorflow(partitioned_ckpt):
    prefix, ckpt_values = partitioned_ckpt
    oracle = tf1_programs.tf1_init_from_checkpoint(prefix, partitioned, 10, {"/": "backbone/"})
    module = PartsModule([(5, 4), (5, 4)])
    report = klc.warm_start(module, prefix, {"/": "backbone/"})
    assert report.loaded == {"backbone/emb_net/emb/part_0": "emb_net/emb",
                             "backbone/emb_net/emb/part_1": "emb_net/emb"}
    for i, part in enumerate(module.parts):
        np.testing.assert_array_equal(part.numpy(), oracle["backbone/emb_net/emb/part_%d" % i])
    np.testing.assert_array_equal(np.concatenate([p.numpy() for p in module.parts]), ckpt_values["emb_net/emb"])


def test_partitioned_tensor_loads_into_one_unpartitioned_variable(partitioned_ckpt):
    prefix, ckpt_values = partitioned_ckpt
    module = tf.Module()
    module.emb = tf.Variable(tf.zeros([10, 4]), name="backbone/emb_net/emb")
    klc.warm_start(module, prefix, {"emb_net/emb": "backbone/emb_net/emb"})
    np.testing.assert_array_equal(module.emb.numpy(), ckpt_values["emb_net/emb"])


def test_parts_that_do_not_tile_the_tensor_are_a_shape_mismatch(partitioned_ckpt):
    prefix, _ = partitioned_ckpt
    module = PartsModule([(5, 4), (4, 4)])
    with pytest.raises(klc.ShapeMismatchError, match="emb_net/emb"):
        klc.warm_start(module, prefix, {"/": "backbone/"})
    assert not np.any(module.parts[0].numpy())


def mod_embedding(ids, training=False):
    with v1.variable_scope("emb_net"):
        table = v1.get_variable("table", [10, 4], partitioner=v1.fixed_size_partitioner(3))
        return v1.nn.embedding_lookup(table, ids, partition_strategy="mod")


def test_mod_partitioned_embedding_rows_are_reordered_for_an_unpartitioned_table(ckpt_dir):
    ids = np.arange(10)
    with tf.Graph().as_default():
        lookup = mod_embedding(tf.constant(ids))
        saver = v1.train.Saver()
        with v1.Session() as sess:
            sess.run(v1.global_variables_initializer())
            expected = sess.run(lookup)  # what TF1 returned for ids 0..9
            prefix = saver.save(sess, ckpt_dir + "/model.ckpt")
    module = tf.Module()
    module.table = tf.Variable(tf.zeros([10, 4]), name="emb_net/table")
    klc.warm_start(module, prefix)
    assert not np.array_equal(tf.gather(module.table, ids).numpy(), expected)  # same key, other row layout
    klc.warm_start(module, prefix, mod_partitioned=[r"^emb_net/table$"])
    np.testing.assert_array_equal(tf.gather(module.table, ids).numpy(), expected)
    parts = PartsModule([(4, 4), (3, 4), (3, 4)], base="backbone/emb_net/table")
    with pytest.raises(klc.AssignmentMapError, match="loaded in parts"):
        klc.warm_start(parts, prefix, {"emb_net/": "backbone/emb_net/"}, mod_partitioned=["table"])
