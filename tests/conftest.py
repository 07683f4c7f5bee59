import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import pytest  # noqa: E402
import tensorflow as tf  # noqa: E402

tf.get_logger().setLevel("ERROR")

# Two logical CPUs for the tf.distribute tests; this must happen before TensorFlow
# initialises its devices, so it is done once for the whole session.
_cpus = tf.config.list_physical_devices("CPU")
tf.config.set_logical_device_configuration(_cpus[0], [tf.config.LogicalDeviceConfiguration()] * 2)


@pytest.fixture
def ckpt_dir(tmp_path):
    path = tmp_path / "tf1"
    path.mkdir()
    return str(path)


@pytest.fixture(scope="session")
def mlp_ckpt(tmp_path_factory):
    """A real TF1 checkpoint of tf1_programs.mlp (Adam, global step): (prefix, values)."""
    from tests import tf1_programs

    return tf1_programs.save_tf1_checkpoint(str(tmp_path_factory.mktemp("mlp")), tf1_programs.mlp, 5)
