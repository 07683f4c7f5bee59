"""rename_checkpoint, v2 contract: state files, directory destinations, killed-run leftovers,
transforms that follow slots and EMA shadows, and tensors over 2 GiB."""

import os
import shutil
import signal
import subprocess
import sys
import threading
import time

import numpy as np
import pytest
import tensorflow as tf

import keras_legacy_ckpt as klc
from keras_legacy_ckpt import file_access
from keras_legacy_ckpt.rename import rename_checkpoint
from tests import tf1_programs
from tests.tf1_programs import v1

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SLOTS = ("Adam", "Adam_1", "ExponentialMovingAverage")


def assert_bit_equal(actual, expected, name=""):
    assert actual.dtype == expected.dtype and actual.shape == expected.shape, name
    assert np.ascontiguousarray(actual).tobytes() == np.ascontiguousarray(expected).tobytes(), name


@pytest.fixture(scope="module")
def adam_ema(tmp_path_factory):
    """A TF1 mlp trained with Adam and an ExponentialMovingAverage: (prefix, values)."""
    prefix, values = tf1_programs.save_tf1_checkpoint(str(tmp_path_factory.mktemp("adam_ema")), tf1_programs.mlp, 5,
                                                      ema_decay=0.9)
    assert {"net/hidden/kernel/" + s for s in SLOTS} <= set(values)
    return prefix, values


def trained_run(directory):
    """A fresh TF1 training directory: model.ckpt-3 and the `checkpoint` state file its Saver wrote."""
    return tf1_programs.save_tf1_checkpoint(str(directory), tf1_programs.mlp, 5)


def read_bytes(path):
    with open(path, "rb") as f:
        return f.read()


# --- the `checkpoint` state file -------------------------------------------------------------

@pytest.mark.parametrize("mode", ["zero_copy", "stream"])
def test_rename_into_the_source_directory_leaves_its_state_file_alone(tmp_path, mode):
    prefix, values = trained_run(tmp_path / "run")
    state_file = str(tmp_path / "run" / "checkpoint")
    before = read_bytes(state_file)
    dst = str(tmp_path / "run" / "renamed.ckpt-3")
    rename_checkpoint(prefix, dst, {"/": "backbone/"}, mode=mode)
    assert read_bytes(state_file) == before
    assert tf.train.latest_checkpoint(str(tmp_path / "run")) == prefix  # a restarted TF1 job resumes its own
    out = tf1_programs.checkpoint_values(dst)
    for name, value in values.items():
        assert_bit_equal(out["backbone/" + name], value, name)


def test_no_state_file_is_created_next_to_other_checkpoints(tmp_path):
    prefix, _ = trained_run(tmp_path / "run")
    os.remove(str(tmp_path / "run" / "checkpoint"))  # as Saver.save(..., write_state=False) leaves it
    rename_checkpoint(prefix, str(tmp_path / "run" / "renamed"), {"/": "x/"})
    assert not os.path.exists(str(tmp_path / "run" / "checkpoint"))
    assert tf.train.latest_checkpoint(str(tmp_path / "run")) is None
    assert "x/global_step" in tf1_programs.checkpoint_values(str(tmp_path / "run" / "renamed"))


def test_state_file_follows_renames_until_a_training_job_owns_the_directory(tmp_path, adam_ema):
    prefix, _ = adam_ema
    out = tmp_path / "out"
    rename_checkpoint(prefix, str(out / "a"), {"/": "a/"})
    rename_checkpoint(prefix, str(out / "b"), {"/": "b/"})
    state = tf.train.get_checkpoint_state(str(out))
    assert state.model_checkpoint_path == str(out / "b")
    assert list(state.all_model_checkpoint_paths) == [str(out / "a"), str(out / "b")]
    rename_checkpoint(prefix, str(out / "a"), {"/": "a2/"}, overwrite=True)
    assert tf.train.latest_checkpoint(str(out)) == str(out / "a")
    # A TF1 job now trains in that directory: its Saver rewrites the state file, which is then its own.
    job_prefix, _ = trained_run(out)
    before = read_bytes(str(out / "checkpoint"))
    rename_checkpoint(prefix, str(out / "c"), {"/": "c/"})
    assert read_bytes(str(out / "checkpoint")) == before
    assert tf.train.latest_checkpoint(str(out)) == job_prefix


# --- a directory as the destination ------------------------------------------------------------

def test_directory_destination_gets_the_source_basename(tmp_path, adam_ema):
    prefix, values = adam_ema
    basename = os.path.basename(prefix)  # model.ckpt-3
    (tmp_path / "existing").mkdir()
    rename_checkpoint(prefix, str(tmp_path / "existing"), {"/": "a/"})
    rename_checkpoint(prefix, str(tmp_path / "new") + os.sep, {"/": "b/"}, exclude=["Adam"])
    assert sorted(os.listdir(tmp_path)) == ["existing", "new"]
    for directory, scope in (("existing", "a/"), ("new", "b/")):
        dst = str(tmp_path / directory / basename)
        assert os.path.exists(dst + ".index")
        assert tf.train.latest_checkpoint(str(tmp_path / directory)) == dst
        out = tf1_programs.checkpoint_values(dst)
        for name, value in values.items():
            if scope == "a/" or "Adam" not in name:
                assert_bit_equal(out[scope + name], value, name)
    with pytest.raises(klc.LegacyCheckpointError, match="over its own source.*source's own directory"):
        rename_checkpoint(prefix, os.path.dirname(prefix), {"/": "c/"})


# --- temporaries of a killed rename ------------------------------------------------------------

BLOCKED_RENAMES = """
import os, sys, threading, time
os.environ["TF_CPP_MIN_LOG_LEVEL"] = "2"
import keras_legacy_ckpt as klc
src, dsts = sys.argv[1], sys.argv[2:]
printing = threading.Lock()

def block(done, total):  # stops each rename after its first tensor, temporaries in place
    with printing:
        print("blocked", flush=True)
    time.sleep(3600)

for dst in dsts:
    threading.Thread(target=klc.rename_checkpoint, args=(src, dst, {"/": "x/"}), daemon=True,
                     kwargs=dict(mode="stream", progress=block)).start()
time.sleep(3600)
"""


def start_blocked_renames(src, *dsts):
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="2", PYTHONPATH=ROOT)
    return subprocess.Popen([sys.executable, "-c", BLOCKED_RENAMES, src, *dsts], stdout=subprocess.PIPE,
                            stderr=subprocess.DEVNULL, text=True, env=env)


def wait_blocked(process, count):
    for _ in range(count):
        assert process.stdout.readline().strip() == "blocked", "the child process did not start its renames"


def temporaries(directory, pid):
    return sorted(n for n in os.listdir(directory) if n.startswith(".") and "-%d-" % pid in n)


class Stop(Exception):
    pass


def start_blocked_rename_in_thread(src, dst):
    """A live concurrent rename to `dst` (in this process), stopped after its first tensor until released."""
    blocked, release = threading.Event(), threading.Event()

    def block(done, total):
        blocked.set()
        release.wait()
        raise Stop()

    def run():
        try:
            rename_checkpoint(src, dst, {"/": "z/"}, mode="stream", progress=block)
        except Stop:
            pass

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    assert blocked.wait(60)
    return thread, release


def test_next_rename_removes_what_a_killed_rename_left_and_nothing_else(tmp_path, adam_ema):
    prefix, values = adam_ema
    out = tmp_path / "out"
    dst, other_dst = str(out / "model.ckpt"), str(out / "model.ckpt-2")
    killed = start_blocked_renames(prefix, dst, other_dst)
    try:
        wait_blocked(killed, 2)
    finally:
        killed.send_signal(signal.SIGKILL)
        killed.wait()
    left = temporaries(str(out), killed.pid)
    assert [n for n in left if n.startswith(".model.ckpt.tmp-")], left  # the data shard, partly written
    assert [n for n in left if n.startswith(".model.ckpt-2.tmp-")], left
    live, release = start_blocked_rename_in_thread(prefix, dst)  # a concurrent rename to the same destination
    try:
        live_files = temporaries(str(out), os.getpid())
        assert live_files
        rename_checkpoint(prefix, dst, {"/": "y/"}, mode="stream")
        assert temporaries(str(out), killed.pid) == [n for n in left if n.startswith(".model.ckpt-2.tmp-")]
        assert temporaries(str(out), os.getpid()) == live_files
    finally:
        release.set()
        live.join()
    renamed = tf1_programs.checkpoint_values(dst)
    assert sorted(renamed) == sorted("y/" + k for k in values)
    for name, value in values.items():
        assert_bit_equal(renamed["y/" + name], value, name)


# --- transforms follow slots and EMA shadows ---------------------------------------------------

def check_transformed(dst, values, new_name, transformed):
    """Every tensor of `dst` is TF's value of its source, transformed as `transformed` says."""
    out = tf1_programs.checkpoint_values(dst)
    assert len(out) == len(values)
    for old, value in values.items():
        expected = transformed[old](value) if old in transformed else value
        assert_bit_equal(out[new_name(old)], expected, old)


@pytest.mark.parametrize("slot_names", ["follow_the_scope", "renamed_apart"])
def test_transpose_and_reshape_apply_to_adam_slots_and_ema(tmp_path, adam_ema, slot_names):
    prefix, values = adam_ema
    if slot_names == "follow_the_scope":
        mapping, new_name = {"/": "backbone/"}, lambda old: "backbone/" + old
    else:  # "net/hidden/kernel_Adam": no rule matches the slots' new names; they follow their variable
        mapping = [(r"^(.*)/(Adam|Adam_1|ExponentialMovingAverage)$", r"\1_\2")]
        new_name = lambda old: "_".join(old.rsplit("/", 1)) if old.rsplit("/", 1)[-1] in SLOTS else old
    dst = str(tmp_path / "t")
    rename_checkpoint(prefix, dst, mapping, transpose={r"hidden/kernel$": (1, 0)}, reshape={r"logits/kernel$": (2, 9)})
    transformed = {}
    for suffix in ("",) + tuple("/" + s for s in SLOTS):
        transformed["net/hidden/kernel" + suffix] = np.transpose
        transformed["net/logits/kernel" + suffix] = lambda v: v.reshape(2, 9)
    check_transformed(dst, values, new_name, transformed)  # beta1_power and the rest: unchanged


def with_optimizer(optimizer):
    """A TF1 program: the mlp trained 3 steps with `optimizer`; returns (prefix, values)."""

    def save(directory):
        rng = np.random.default_rng(0)
        with tf.Graph().as_default():
            v1.set_random_seed(0)
            x = v1.placeholder(tf.float32, [None, 5])
            loss = tf.reduce_mean(tf1_programs.mlp(x, training=True) ** 2)
            with tf.control_dependencies(v1.get_collection(v1.GraphKeys.UPDATE_OPS)):
                train = optimizer().minimize(loss)
            saver = v1.train.Saver()
            with v1.Session() as sess:
                sess.run(v1.global_variables_initializer())
                for _ in range(3):
                    sess.run(train, {x: rng.normal(size=(8, 5)).astype(np.float32)})
                prefix = saver.save(sess, os.path.join(directory, "model.ckpt"))
        return prefix, tf1_programs.checkpoint_values(prefix)

    return save


@pytest.mark.parametrize("optimizer, slots", [
    (lambda: v1.train.MomentumOptimizer(0.1, 0.9), ("Momentum",)),
    (lambda: v1.train.RMSPropOptimizer(0.1, momentum=0.9), ("RMSProp", "RMSProp_1")),
    (lambda: v1.train.AdagradOptimizer(0.1), ("Adagrad",)),
], ids=["Momentum", "RMSProp", "Adagrad"])
def test_transpose_applies_to_momentum_rmsprop_and_adagrad_slots(tmp_path, optimizer, slots):
    prefix, values = with_optimizer(optimizer)(str(tmp_path / "src"))
    assert {"net/hidden/kernel/" + s for s in slots} <= set(values)
    dst = str(tmp_path / "t")
    rename_checkpoint(prefix, dst, None, transpose={r"^net/hidden/kernel$": (1, 0)})
    transformed = {"net/hidden/kernel" + suffix: np.transpose for suffix in ("",) + tuple("/" + s for s in slots)}
    check_transformed(dst, values, lambda old: old, transformed)


# --- reads and writes that move less than asked (Linux: at most 0x7ffff000 bytes a call) ----------

class ShortTransfers:
    """The os module, with reads, writes and copies capped at `cap` bytes a call as Linux caps
    them at 0x7ffff000: what a tensor over 2 GiB meets, on a small checkpoint."""

    def __init__(self, cap):
        self.cap = cap
        self.calls = 0

    def __getattr__(self, name):
        return getattr(os, name)

    def pread(self, fd, count, offset):
        self.calls += 1
        return os.pread(fd, min(count, self.cap), offset)

    def write(self, fd, data):
        self.calls += 1
        return os.write(fd, memoryview(data)[:self.cap])

    def copy_file_range(self, src, dst, count, offset_src=None, offset_dst=None):
        self.calls += 1
        return os.copy_file_range(src, dst, min(count, self.cap), offset_src, offset_dst)


def wide(x, training=False):
    """A TF1 program with a 112 KB kernel, so that capped transfers take a hundred calls."""
    with v1.variable_scope("wide"):
        kernel = v1.get_variable("kernel", [40, 700])
    return tf1_programs.mlp(tf.matmul(x, kernel)[:, :5], training)


def test_transform_and_copy_loop_over_short_reads_and_writes(tmp_path, monkeypatch):
    prefix, values = tf1_programs.save_tf1_checkpoint(str(tmp_path / "src"), wide, 40)
    short = ShortTransfers(cap=1000)
    monkeypatch.setattr(file_access, "os", short)  # every local read, write and copy goes through file_access
    monkeypatch.setattr(file_access, "IO_CHUNK", 4099)  # not a multiple of the cap either
    dst = str(tmp_path / "t")
    rename_checkpoint(prefix, dst, {"/": "m/"}, transpose={r"^m/wide/kernel$": (1, 0)}, mode="stream")
    monkeypatch.undo()
    assert short.calls > 3 * 112000 // 1000
    transformed = {"wide/kernel" + suffix: np.transpose for suffix in ("", "/Adam", "/Adam_1")}
    check_transformed(dst, values, lambda old: "m/" + old, transformed)
    assert klc.verify_checkpoint(dst) == len(values)


# --- a real tensor over 2 GiB (opt-in: KLC_BIG_TESTS=1; 4.4 GB of disk, 5 GB of memory) -------

@pytest.mark.slow
@pytest.mark.skipif(os.environ.get("KLC_BIG_TESTS") != "1", reason="set KLC_BIG_TESTS=1 to write a 2.2 GB checkpoint")
def test_transpose_of_a_tensor_over_2_gib(tmp_path):
    rows, cols = 40000, 13500  # 2.16e9 bytes of float32: more than one read or write can move
    try:
        with tf.Graph().as_default():
            v1.get_variable("big/kernel", [rows, cols], initializer=v1.random_uniform_initializer(seed=1))
            v1.get_variable("small/bias", [cols], initializer=v1.random_uniform_initializer(seed=2))
            saver = v1.train.Saver()
            with v1.Session() as sess:
                sess.run(v1.global_variables_initializer())
                prefix = saver.save(sess, str(tmp_path / "src" / "model.ckpt"))
        dst = str(tmp_path / "t")
        start = time.perf_counter()
        rename_checkpoint(prefix, dst, {"/": "x/"}, transpose={r"big/kernel$": (1, 0)})
        print("transposed %.2f GB in %.1f s" % (rows * cols * 4 / 1e9, time.perf_counter() - start))
        source, renamed = tf.train.load_checkpoint(prefix), tf.train.load_checkpoint(dst)  # TF checks the crc32c
        assert_bit_equal(renamed.get_tensor("x/small/bias"), source.get_tensor("small/bias"))
        expected = source.get_tensor("big/kernel")
        actual = renamed.get_tensor("x/big/kernel")
        assert actual.shape == (cols, rows) and actual.dtype == expected.dtype
        for start in range(0, cols, 1000):  # blockwise: no full-size temporaries
            assert np.array_equal(actual[start:start + 1000], expected[:, start:start + 1000].T)
    finally:
        shutil.rmtree(str(tmp_path), ignore_errors=True)  # pytest would keep 4.4 GB around


def test_reshape_with_minus_one_in_rename_and_export(mlp_ckpt, tmp_path):
    """-1 in a reshape takes the rest of the elements, in rename and export as in warm_start; slots follow."""
    from safetensors.numpy import load_file

    prefix, values = mlp_ckpt
    dst = str(tmp_path / "r" / "model.ckpt")
    klc.rename_checkpoint(prefix, dst, None, reshape={"logits/kernel$": (-1,)}, mode="stream")
    reader = tf.train.load_checkpoint(dst)
    for name in ("net/logits/kernel", "net/logits/kernel/Adam", "net/logits/kernel/Adam_1"):
        np.testing.assert_array_equal(reader.get_tensor(name), values[name].reshape(-1))
    exported = str(tmp_path / "m.safetensors")
    klc.export_safetensors(prefix, exported, reshape={"logits/kernel$": (2, -1)}, exclude=["Adam", "power$"])
    kernel = values["net/logits/kernel"]
    np.testing.assert_array_equal(load_file(exported)["net/logits/kernel"], kernel.reshape(2, -1))
    with pytest.raises(klc.AssignmentMapError, match="element counts differ"):
        klc.rename_checkpoint(prefix, str(tmp_path / "bad" / "m"), None, reshape={"logits/kernel$": (4, -1)})
    with pytest.raises(klc.AssignmentMapError, match="at most one -1"):
        klc.rename_checkpoint(prefix, str(tmp_path / "bad" / "m"), None, reshape={"logits/kernel$": (-1, -1)})
