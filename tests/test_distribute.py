"""Warm start and object checkpoints under tf.distribute strategies.

The two logical CPUs come from conftest.py. MultiWorkerMirroredStrategy runs two worker
processes on loopback (marked `multiprocess`: `pytest -m multiprocess` runs them alone).
"""

import json
import os
import shutil
import socket
import subprocess
import sys
import textwrap

import numpy as np
import pytest
import tensorflow as tf
import tf_keras

import keras_legacy_ckpt as klc
from tests import tf2_models
from tests.tf1_programs import mlp, v1

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
RNG = np.random.default_rng(3)
X = RNG.normal(size=(16, 5)).astype(np.float32)
Y = RNG.integers(0, 3, size=16)


def _free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_mirrored_fit_sets_every_replica_and_saves_once(tmp_path, mlp_ckpt):
    prefix, values = mlp_ckpt
    strategy = tf.distribute.MirroredStrategy(["/cpu:0", "/cpu:1"])
    with strategy.scope():
        model = tf2_models.ShimModel(mlp, 5)
        model.compile(optimizer=tf_keras.optimizers.SGD(0.1),
                      loss=tf_keras.losses.SparseCategoricalCrossentropy(from_logits=True))
    save = klc.SaveObjectCheckpoint(str(tmp_path / "tf2"), save_on="train_begin")
    model.fit(X, Y, batch_size=8, epochs=1, verbose=0,
              callbacks=[save, klc.WarmStartFromTF1(prefix, {"/": "backbone/"}, verbose=0)])
    variables = model.legacy_variables()
    assert all(len(v.values) == 2 for v in variables.values())  # created in the strategy's scope
    assert sorted(f for f in os.listdir(tmp_path / "tf2") if f.endswith(".index")) == ["ckpt-1.index"]
    restored = tf2_models.ShimModel(mlp, 5)
    klc.restore_object_checkpoint(restored, save.latest_path)
    for name, variable in restored.legacy_variables().items():
        np.testing.assert_array_equal(variable.numpy(), values[name[len("backbone/"):]], err_msg=name)

    report = klc.warm_start(model, prefix, {"/": "backbone/"})  # again, after training moved them
    for name, key in report.loaded.items():
        for replica_value in variables[name].values:
            np.testing.assert_array_equal(replica_value.numpy(), values[key], err_msg=name)
    moving_mean = variables["backbone/net/bn/moving_mean"]
    assert isinstance(moving_mean, tf.distribute.DistributedValues)


PS_PROGRAM = textwrap.dedent('''
    import os, socket, sys
    os.environ["TF_CPP_MIN_LOG_LEVEL"] = "2"
    import numpy as np
    import tensorflow as tf
    import tf_keras
    sys.path.insert(0, os.environ["KLC_ROOT"])
    import keras_legacy_ckpt as klc
    from tests import tf1_programs
    from tests.test_distribute import partitioned_dense

    def free_port():
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            return s.getsockname()[1]

    workdir = sys.argv[1]
    prefix, values = tf1_programs.save_tf1_checkpoint(os.path.join(workdir, "tf1"), partitioned_dense, 6)
    cluster = {"worker": ["localhost:%d" % free_port()], "ps": ["localhost:%d" % free_port() for _ in range(2)]}
    spec = tf.train.ClusterSpec(cluster)
    servers = [tf.distribute.Server(spec, job_name=job, task_index=i, protocol="grpc", start=True)
               for job, addresses in cluster.items() for i in range(len(addresses))]
    strategy = tf.distribute.experimental.ParameterServerStrategy(
        tf.distribute.cluster_resolver.SimpleClusterResolver(spec, rpc_layer="grpc"),
        variable_partitioner=tf.distribute.experimental.partitioners.FixedShardsPartitioner(3))

    def build():
        with strategy.scope():  # TF1 wrote 2 slices; the model gets 3 shards
            return tf_keras.Sequential([tf_keras.Input([6]), tf_keras.layers.Dense(4, name="hidden"),
                                        tf_keras.layers.Dense(3, use_bias=False, name="logits")])

    model = build()
    assert "hidden/kernel/part_2:0" in [v.name for v in model.weights]  # sharded on the parameter servers
    report = klc.warm_start(model, prefix)
    assert report.loaded["hidden/kernel/part_1"] == "hidden/kernel", report.loaded
    for name in ("hidden/kernel", "logits/kernel"):
        shards = [v.numpy() for v in model.weights if v.name.startswith(name + "/part_")]
        assert len(shards) == 3
        np.testing.assert_array_equal(np.concatenate(shards), values[name])

    with strategy.scope():  # a tf.Module's tf.Variable becomes a ShardedVariable
        module = tf.Module()
        module.kernel = tf.Variable(tf.zeros([6, 4]), name="hidden/kernel")
    assert type(module.kernel).__name__ == "ShardedVariable"
    klc.warm_start(module, prefix, {"hidden/kernel": "hidden/kernel"})
    np.testing.assert_array_equal(np.concatenate([v.numpy() for v in module.kernel.variables]),
                                  values["hidden/kernel"])

    save = klc.SaveObjectCheckpoint(os.path.join(workdir, "tf2"), save_on="train_end")
    save.set_model(model)
    save.on_train_end()
    fresh = build()
    klc.restore_object_checkpoint(fresh, save.latest_path)
    for a, b in zip(model.weights, fresh.weights):
        np.testing.assert_array_equal(a.numpy(), b.numpy())

    # A shim model's get_variable weights become ShardedVariables too: warm-up, warm start, next calls.
    from tests import tf2_models
    from tests.tf1_programs import mlp
    mlp_prefix, mlp_values = tf1_programs.save_tf1_checkpoint(os.path.join(workdir, "mlp"), mlp, 5)
    with strategy.scope():
        shim = tf2_models.ShimModel(mlp, 5)
    report = klc.warm_start(shim, mlp_prefix, {"/": "backbone/"})
    assert report.loaded["backbone/net/hidden/kernel/part_1"] == "net/hidden/kernel", report.loaded
    for key in ("net/hidden/kernel", "net/bn/moving_variance", "net/logits/bias"):
        shards = [v.numpy() for n, v in sorted(shim.legacy_variables().items())
                  if n.startswith("backbone/" + key + "/part_")]
        assert len(shards) == 3, key
        np.testing.assert_array_equal(np.concatenate(shards), mlp_values[key])
    reference = tf2_models.ShimModel(mlp, 5)
    klc.warm_start(reference, mlp_prefix, {"/": "backbone/"})
    x = np.random.default_rng(0).normal(size=(4, 5)).astype(np.float32)
    np.testing.assert_allclose(shim(x).numpy(), reference(x).numpy(), rtol=1e-6, atol=1e-6)
    print("PS-OK", flush=True)
''')


def partitioned_dense(x, training=False):
    """TF1: a dense layer whose kernel is a partitioned variable (saved as slices)."""
    with v1.variable_scope("hidden"):
        kernel = v1.get_variable("kernel", [6, 4], partitioner=v1.fixed_size_partitioner(2))
        bias = v1.get_variable("bias", [4])
    with v1.variable_scope("logits"):
        out = v1.get_variable("kernel", [4, 3])
    return tf.matmul(tf.matmul(x, tf.concat(list(kernel), 0)) + bias, out)


def test_parameter_server_shards_get_their_slices_and_round_trip(tmp_path):
    # A fresh process: connecting to a cluster changes the whole process's eager context.
    env = dict(os.environ, KLC_ROOT=ROOT, TF_CPP_MIN_LOG_LEVEL="2")
    result = subprocess.run([sys.executable, "-c", PS_PROGRAM, str(tmp_path)], env=env, capture_output=True,
                            text=True, timeout=300)
    assert "PS-OK" in result.stdout, result.stderr[-3000:]


WORKER = textwrap.dedent('''
    import hashlib, json, os, sys
    os.environ["TF_CPP_MIN_LOG_LEVEL"] = "2"
    import numpy as np
    import tensorflow as tf
    import tf_keras
    sys.path.insert(0, os.environ["KLC_ROOT"])
    import keras_legacy_ckpt as klc
    from tests import tf2_models
    from tests.tf1_programs import mlp
    ckpt, out_dir = sys.argv[1], sys.argv[2]
    strategy = tf.distribute.MultiWorkerMirroredStrategy(
        communication_options=tf.distribute.experimental.CommunicationOptions(timeout_seconds=60))
    with strategy.scope():
        model = tf2_models.ShimModel(mlp, 5)
        model.compile(optimizer=tf_keras.optimizers.SGD(0.0),
                      loss=tf_keras.losses.SparseCategoricalCrossentropy(from_logits=True))
    x = np.ones((8, 5), np.float32)
    y = np.zeros((8,), np.int64)
    captured = {}

    class Capture(tf_keras.callbacks.Callback):
        def on_train_begin(self, logs=None):  # runs right after the warm start
            captured.update({n: v.numpy().tolist() for n, v in sorted(model.legacy_variables().items())})

    try:
        model.fit(x, y, batch_size=4, epochs=1, verbose=0, callbacks=[
            klc.WarmStartFromTF1(ckpt, {"/": "backbone/"}, verbose=0), Capture(), klc.SaveObjectCheckpoint(out_dir)])
    except klc.LegacyCheckpointError as e:
        print(json.dumps({"error": type(e).__name__, "message": str(e)[:300]}), flush=True)
        sys.exit(3)
    print(json.dumps({"values": captured}), flush=True)
''')


def _run_workers(ckpts, out_dir):
    ports = [_free_port(), _free_port()]
    cluster = {"worker": ["localhost:%d" % p for p in ports]}
    processes = []
    for index, ckpt in enumerate(ckpts):
        env = dict(os.environ, KLC_ROOT=ROOT, TF_CPP_MIN_LOG_LEVEL="2",
                   TF_CONFIG=json.dumps({"cluster": cluster, "task": {"type": "worker", "index": index}}))
        processes.append(subprocess.Popen([sys.executable, "-c", WORKER, ckpt, out_dir], env=env,
                                          stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True))
    results = []
    try:
        for process in processes:
            out, err = process.communicate(timeout=240)
            last = [line for line in out.splitlines() if line.startswith("{")]
            results.append((process.returncode, json.loads(last[-1]) if last else None, err[-2000:]))
    finally:
        for process in processes:
            if process.poll() is None:
                process.kill()
    return results


@pytest.mark.multiprocess
def test_multi_worker_mirrored_identical_weights_and_chief_only_checkpoint(tmp_path, mlp_ckpt):
    prefix, values = mlp_ckpt
    out_dir = str(tmp_path / "tf2")
    results = _run_workers([prefix, prefix], out_dir)
    for code, result, err in results:
        assert code == 0 and result and "values" in result, err
    assert results[0][1]["values"] == results[1][1]["values"]
    for name, value in results[0][1]["values"].items():
        np.testing.assert_array_equal(np.array(value, np.float32), values[name[len("backbone/"):]], err_msg=name)
    assert sorted(os.listdir(out_dir)) == ["checkpoint", "ckpt-1.data-00000-of-00001", "ckpt-1.index"]


@pytest.mark.multiprocess
def test_multi_worker_unreadable_checkpoint_fails_every_worker_without_hanging(tmp_path, mlp_ckpt):
    prefix, _ = mlp_ckpt
    results = _run_workers([prefix, str(tmp_path / "missing" / "model.ckpt")], str(tmp_path / "tf2"))
    (code0, result0, err0), (code1, result1, err1) = results
    assert code1 == 3 and result1["error"] == "CheckpointNotFoundError", err1
    assert code0 == 3 and "failed on 1 other replica" in result0["message"], err0
    assert not os.path.exists(tmp_path / "tf2")


@pytest.mark.multiprocess
def test_multi_worker_bad_crc_on_one_worker_fails_every_worker_before_assigning(tmp_path, mlp_ckpt):
    prefix, _ = mlp_ckpt
    damaged = str(tmp_path / "damaged" / os.path.basename(prefix))
    os.makedirs(os.path.dirname(damaged))
    for suffix in (".index", ".data-00000-of-00001"):
        shutil.copy(prefix + suffix, damaged + suffix)
    entry = klc.bundle_index.read_bundle_index(damaged).entries[b"net/hidden/kernel"]
    with open(damaged + ".data-00000-of-00001", "r+b") as f:  # same size, one bit flipped
        f.seek(entry.offset + entry.size // 2)
        byte = f.read(1)
        f.seek(-1, 1)
        f.write(bytes([byte[0] ^ 0x10]))
    (code0, result0, err0), (code1, result1, err1) = _run_workers([prefix, damaged], str(tmp_path / "tf2"))
    assert code1 == 3 and result1["error"] == "CorruptCheckpointError" and "crc" in result1["message"].lower(), err1
    assert code0 == 3 and "failed on 1 other replica" in result0["message"], err0
    assert not os.path.exists(tmp_path / "tf2")
