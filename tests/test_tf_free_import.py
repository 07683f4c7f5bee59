"""`import keras_legacy_ckpt` imports no TensorFlow; the numpy reader works without it."""

import os
import subprocess
import sys
import textwrap

import numpy as np

from tests import tf_blocked

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

PROGRAM = tf_blocked.preamble() + textwrap.dedent('''
    import importlib.abc, json, sys
    sys.path.insert(0, sys.argv[2])
    import keras_legacy_ckpt as klc
    with klc.open_checkpoint(sys.argv[1]) as ckpt:
        kernel = ckpt.read("net/hidden/kernel")
    try:
        klc.warm_start
        needs_tf = "no"
    except ImportError as e:
        needs_tf = str(e)
    print(json.dumps({"tf_loaded": "tensorflow" in sys.modules, "kernel": kernel.tolist(), "needs_tf": needs_tf,
                      "errors": issubclass(klc.CorruptCheckpointError, klc.LegacyCheckpointError)}))
''')


def test_import_needs_no_tensorflow_and_names_that_do_import_it_on_first_use(mlp_ckpt):
    import json

    prefix, values = mlp_ckpt
    result = subprocess.run([sys.executable, "-c", PROGRAM, prefix, ROOT], capture_output=True, text=True,
                            timeout=120, env=dict(os.environ, TF_CPP_MIN_LOG_LEVEL="2"))
    assert result.returncode == 0, result.stderr[-3000:]
    out = json.loads(result.stdout.strip().splitlines()[-1])
    assert out["tf_loaded"] is False and out["errors"] is True
    assert "tensorflow" in out["needs_tf"]
    np.testing.assert_array_equal(np.array(out["kernel"], np.float32), values["net/hidden/kernel"])
