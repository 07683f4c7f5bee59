"""Real TF1 graph programs that write checkpoints with tf.compat.v1.train.Saver."""

import os
from typing import Callable, Dict, Tuple

import numpy as np
import tensorflow as tf

import keras_legacy_ckpt as klc

v1 = tf.compat.v1


def mlp(x, training=False):
    """Two v1 dense layers around a batch norm, under scope "net"."""
    with v1.variable_scope("net"):
        h = klc.v1_layers.dense(x, 6, activation=tf.nn.relu, name="hidden")
        h = klc.v1_layers.batch_normalization(h, training=training, name="bn")
        return klc.v1_layers.dense(h, 3, name="logits")


def dense_only(x, training=False):
    """Two v1 dense layers under scope "net": the variables of a Keras 3 Sequential named "net"."""
    with v1.variable_scope("net"):
        h = klc.v1_layers.dense(x, 6, activation=tf.nn.relu, name="hidden")
        return klc.v1_layers.dense(h, 3, name="logits")


def scoped_variables(x, training=False):
    """Plain get_variable calls in nested scopes, with distinct shapes."""
    with v1.variable_scope("enc"):
        with v1.variable_scope("layer1"):
            w1 = v1.get_variable("w", [4, 5])
            b1 = v1.get_variable("b", [5], initializer=v1.random_normal_initializer())
        with v1.variable_scope("layer2"):
            w2 = v1.get_variable("w", [5, 2])
    with v1.variable_scope("head"):
        w3 = v1.get_variable("w", [2, 3])
    return tf.matmul(tf.matmul(tf.nn.relu(tf.matmul(x, w1) + b1), w2), w3)


def wide(x, training=False):
    """Dense layers big enough (300 x 300 floats) that a V1 file holds them in several table blocks."""
    with v1.variable_scope("net"):
        h = klc.v1_layers.dense(x, 300, activation=tf.nn.relu, name="big1")
        h = klc.v1_layers.dense(h, 300, activation=tf.nn.relu, name="big2")
        return klc.v1_layers.dense(h, 3, name="logits")


def train_and_save(directory: str, network: Callable = None, input_dim: int = 5, *,
                   write_version=None, name: str = "model.ckpt", global_step: bool = True, sharded: bool = False,
                   steps: int = 3, seed: int = 0, also_v2_in: str = None, outer_scope: str = None,
                   ema_decay: float = None, dtype=tf.float32):
    """A TF1 graph program (variable scopes, v1 layers, Adam, a global step) trained `steps` steps and
    saved by tf.compat.v1.train.Saver (V2 unless `write_version`); returns the path the Saver returned.
    With `also_v2_in`, the same session is also saved in the V2 format there, and both paths are returned.
    Two CPU devices, so that networks may place variables on /cpu:1 (a sharded Saver then writes two files)."""
    network = network or mlp
    os.makedirs(directory, exist_ok=True)
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(16, input_dim)).astype(np.float32)
    y = rng.integers(0, 3, size=16)
    with tf.Graph().as_default():
        v1.set_random_seed(seed)
        inputs = v1.placeholder(dtype, [None, input_dim])
        if outer_scope:
            with v1.variable_scope(outer_scope):
                logits = network(inputs, training=True)
        else:
            logits = network(inputs, training=True)
        loss = v1.losses.sparse_softmax_cross_entropy(y, tf.cast(logits, tf.float32))
        step = v1.train.get_or_create_global_step()
        with tf.control_dependencies(v1.get_collection(v1.GraphKeys.UPDATE_OPS)):
            train_op = v1.train.AdamOptimizer(0.05).minimize(loss, global_step=step)
        if ema_decay:
            ema = v1.train.ExponentialMovingAverage(ema_decay)
            with tf.control_dependencies([train_op]):
                train_op = ema.apply(v1.trainable_variables())
        saver = v1.train.Saver(write_version=write_version or v1.train.SaverDef.V2, sharded=sharded)
        with v1.Session(config=v1.ConfigProto(device_count={"CPU": 2})) as sess:
            sess.run(v1.global_variables_initializer())
            for _ in range(steps):
                sess.run(train_op, {inputs: x.astype(dtype.as_numpy_dtype)})
            path = saver.save(sess, os.path.join(directory, name), global_step=step if global_step else None)
            if also_v2_in is None:
                return path
            os.makedirs(also_v2_in, exist_ok=True)
            return path, v1.train.Saver().save(sess, os.path.join(also_v2_in, name),
                                               global_step=step if global_step else None)


def save_tf1_checkpoint(ckpt_dir: str, network: Callable, input_dim: int, steps: int = 3,
                        seed: int = 0, outer_scope: str = None, ema_decay: float = None,
                        dtype=tf.float32) -> Tuple[str, Dict[str, np.ndarray]]:
    """Trains `network` a few steps with Adam and a global step; saves; returns (prefix, values)."""
    prefix = train_and_save(ckpt_dir, network, input_dim, steps=steps, seed=seed, outer_scope=outer_scope,
                            ema_decay=ema_decay, dtype=dtype)
    return prefix, checkpoint_values(prefix)


def checkpoint_values(prefix: str) -> Dict[str, np.ndarray]:
    reader = tf.train.load_checkpoint(prefix)
    return {name: reader.get_tensor(name) for name in reader.get_variable_to_shape_map()}


def tf1_init_from_checkpoint(prefix: str, network: Callable, input_dim: int, assignment_map,
                             outer_scope: str = "backbone") -> Dict[str, np.ndarray]:
    """The oracle: TF's own init_from_checkpoint in graph mode; returns name -> value."""
    with tf.Graph().as_default():
        inputs = v1.placeholder(tf.float32, [None, input_dim])
        with v1.variable_scope(outer_scope):
            network(inputs)
        v1.train.init_from_checkpoint(prefix, assignment_map)
        with v1.Session() as sess:
            sess.run(v1.global_variables_initializer())
            return {v.name[:-2]: sess.run(v) for v in v1.global_variables()}
