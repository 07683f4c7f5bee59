import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import pytest  # noqa: E402
import tensorflow as tf  # noqa: E402

tf.get_logger().setLevel("ERROR")


@pytest.fixture
def ckpt_dir(tmp_path):
    path = tmp_path / "tf1"
    path.mkdir()
    return str(path)
