"""list_variables, verify_checkpoint and every CLI command work on local V2 checkpoints with TensorFlow absent.

Each child process blocks `import tensorflow` (and tf_keras, keras) before anything else; the parent,
which has TensorFlow, is the oracle: `tf.train.list_variables` / `load_checkpoint` of the same files.
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

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

BLOCK = tf_blocked.preamble() + textwrap.dedent('''
    import importlib.abc, sys
    sys.path.insert(0, sys.argv.pop(1))
''')

CLI = BLOCK + textwrap.dedent('''
    sys.argv[0] = "keras-legacy-ckpt"
    from keras_legacy_ckpt import cli
    try:
        cli.run()
    finally:
        print("TENSORFLOW IMPORTED" if "tensorflow" in sys.modules else "", file=sys.stderr)
''')

LIBRARY = BLOCK + textwrap.dedent('''
    import json
    import keras_legacy_ckpt as klc
    good, damaged, v1 = sys.argv[1:4]
    out = {"variables": [[n, list(s), d] for n, s, d in klc.list_variables(good)],
           "verified": klc.verify_checkpoint(good)}
    for key, path in (("damaged", damaged), ("v1", v1)):
        try:
            klc.verify_checkpoint(path)
            out[key] = "no error"
        except klc.LegacyCheckpointError as e:
            out[key] = [type(e).__name__, str(e)]
    out["tensorflow"] = "tensorflow" in sys.modules
    print(json.dumps(out))
''')


def _env():
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="2")
    env.pop("PYTHONPATH", None)
    return env


def run_cli(*args, cwd=None):
    done = subprocess.run([sys.executable, "-c", CLI, ROOT, *args], capture_output=True, text=True, timeout=300,
                          env=_env(), cwd=cwd)
    assert "TENSORFLOW IMPORTED" not in done.stderr, done.stderr[-2000:]
    return done


@pytest.fixture(scope="module")
def checkpoints(tmp_path_factory):
    """A real TF1 checkpoint (Adam, global step), a copy with one flipped data byte, and a V1 one."""
    root = tmp_path_factory.mktemp("tf_free")
    prefix, values = tf1_programs.save_tf1_checkpoint(str(root / "good"), tf1_programs.mlp, 8)
    damaged_dir = root / "damaged"
    shutil.copytree(os.path.dirname(prefix), damaged_dir)
    damaged = str(damaged_dir / os.path.basename(prefix))
    data = damaged + ".data-00000-of-00001"
    kernel_offset = 0  # any byte of the data file belongs to some tensor
    with open(data, "r+b") as f:
        f.seek(kernel_offset)
        byte = f.read(1)
        f.seek(kernel_offset)
        f.write(bytes([byte[0] ^ 0x10]))
    v1_dir = root / "v1"
    v1_dir.mkdir()
    graph = tf.Graph()
    with graph.as_default():
        tf.compat.v1.get_variable("w", initializer=np.arange(6, dtype=np.float32).reshape(2, 3))
        saver = tf.compat.v1.train.Saver(write_version=tf.compat.v1.train.SaverDef.V1)
        with tf.compat.v1.Session() as session:
            session.run(tf.compat.v1.global_variables_initializer())
            v1 = saver.save(session, str(v1_dir / "model.ckpt"), write_meta_graph=False)
    return prefix, values, damaged, v1


def test_list_and_verify_without_tensorflow(checkpoints):
    prefix, _, damaged, v1 = checkpoints
    done = subprocess.run([sys.executable, "-c", LIBRARY, ROOT, prefix, damaged, v1], capture_output=True, text=True,
                          timeout=300, env=_env())
    assert done.returncode == 0, done.stderr[-3000:]
    out = json.loads(done.stdout.strip().splitlines()[-1])
    assert out["tensorflow"] is False
    reader = tf.train.load_checkpoint(prefix)
    dtypes = reader.get_variable_to_dtype_map()
    assert out["variables"] == [[n, list(s), dtypes[n].name] for n, s in tf.train.list_variables(prefix)]
    assert out["verified"] == len(dtypes)
    kind, message = out["damaged"]
    assert kind == "CorruptCheckpointError" and "crc32c" in message and damaged in message
    kind, message = out["v1"]  # V1 needs TensorFlow: said so, not an ImportError
    assert kind == "CheckpointNotFoundError" and "TensorFlow" in message and "V1" in message, message


def test_every_cli_command_without_tensorflow(checkpoints, tmp_path):
    prefix, values, damaged, _ = checkpoints
    reader = tf.train.load_checkpoint(prefix)
    names = sorted(reader.get_variable_to_shape_map())

    inspect = run_cli("inspect", prefix)
    assert inspect.returncode == 0, inspect.stderr
    for name in names:
        assert name in inspect.stdout
    assert "%d tensors" % len(names) in inspect.stdout

    assert run_cli("verify", prefix).returncode == 0
    bad = run_cli("verify", damaged)
    assert bad.returncode == 1 and "crc32c" in bad.stderr and "error:" in bad.stderr

    names_file = tmp_path / "model_names.txt"
    names_file.write_text("".join("backbone/%s %s\n" % (n, ",".join(map(str, reader.get_variable_to_shape_map()[n])))
                                  for n in names if n.startswith("net/")))
    plan = run_cli("plan", prefix, "--model", str(names_file), "--map", "net/=backbone/net/")
    assert plan.returncode == 0, plan.stdout + plan.stderr
    assert "backbone/net/hidden/kernel <- net/hidden/kernel" in plan.stdout

    renamed = str(tmp_path / "renamed" / "model.ckpt-8")
    rename = run_cli("rename", prefix, renamed, "--map", "net/=backbone/net/", "--mode", "zero_copy")
    assert rename.returncode == 0, rename.stderr
    renamed_reader = tf.train.load_checkpoint(renamed)
    for name in names:
        new = "backbone/" + name if name.startswith("net/") else name
        np.testing.assert_array_equal(renamed_reader.get_tensor(new), reader.get_tensor(name))

    exported = str(tmp_path / "model.safetensors")
    export = run_cli("export", prefix, exported, "--exclude", "/Adam(_1)?$|global_step|_power$")
    assert export.returncode == 0, export.stderr
    from safetensors.numpy import load_file

    loaded = load_file(exported)
    assert sorted(loaded) == sorted(n for n in names if n.startswith("net/") and "Adam" not in n)
    for name, array in loaded.items():
        assert array.dtype == reader.get_tensor(name).dtype
        np.testing.assert_array_equal(array, reader.get_tensor(name))

    assert run_cli("diff", prefix, renamed, "--map", "net/=backbone/net/").returncode == 0
    differ = run_cli("diff", prefix, damaged)
    assert differ.returncode == 1  # a damaged tensor is an error, also an exit status 1
