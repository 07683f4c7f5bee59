"""Disk full and read-only destinations: a clear error, nothing half-written, nothing damaged."""

import os
import subprocess

import numpy as np
import pytest
import tf_keras

import keras_legacy_ckpt as klc
from fuzz import crash
from tests import tf1_programs


@pytest.fixture(scope="module")
def source(tmp_path_factory):
    prefix = crash.write_source(str(tmp_path_factory.mktemp("disk")))  # about 8 MB
    return prefix, tf1_programs.checkpoint_values(prefix)


def _mount_tmpfs(path, size):
    path.mkdir()
    result = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=%s" % size, "tmpfs", str(path)],
                            capture_output=True, text=True)
    if result.returncode != 0:
        pytest.skip("cannot mount a tmpfs here (needs root): %s" % result.stderr.strip())


@pytest.fixture
def tiny_disk(tmp_path):
    path = tmp_path / "tiny"
    _mount_tmpfs(path, "1m")
    yield path
    subprocess.run(["umount", str(path)], check=False)


@pytest.fixture
def read_only_disk(tmp_path):
    path = tmp_path / "ro"
    _mount_tmpfs(path, "8m")
    (path / "existing.txt").write_text("keep me")
    subprocess.run(["mount", "-o", "remount,ro", str(path)], check=True)
    yield path
    subprocess.run(["umount", str(path)], check=False)


def _files_under(path):
    return sorted(os.path.relpath(os.path.join(root, f), path) for root, _, files in os.walk(path) for f in files)


@pytest.mark.parametrize("mode", ["stream", "zero_copy"])
def test_rename_onto_a_full_disk_fails_clearly_and_leaves_nothing(tiny_disk, source, mode):
    prefix, expected = source
    with pytest.raises(klc.LegacyCheckpointError, match="No space left on device.*free space"):
        klc.rename_checkpoint(prefix, str(tiny_disk / "out" / "model.ckpt"), {"/": "x/"}, mode=mode)
    assert _files_under(tiny_disk) == []
    assert klc.verify_checkpoint(prefix) == len(expected)


def test_rename_onto_a_read_only_disk_fails_clearly(read_only_disk, source):
    prefix, _ = source
    with pytest.raises(klc.LegacyCheckpointError, match="Read-only file system"):
        klc.rename_checkpoint(prefix, str(read_only_disk / "model.ckpt"), {"/": "x/"})
    assert _files_under(read_only_disk) == ["existing.txt"]


class FillDisk(tf_keras.callbacks.Callback):
    def __init__(self, path, at_epoch):
        super().__init__()
        self.path, self.at_epoch = path, at_epoch

    def on_epoch_end(self, epoch, logs=None):
        if epoch == self.at_epoch:
            try:
                with open(self.path, "wb") as f:
                    while True:
                        f.write(b"\0" * 65536)
            except OSError:
                pass


def test_save_onto_a_full_disk_keeps_the_earlier_checkpoint(tmp_path):
    disk = tmp_path / "disk"
    _mount_tmpfs(disk, "16m")
    try:
        model = crash.build_model()
        model.compile(optimizer="sgd", loss="mse")
        save = klc.SaveObjectCheckpoint(str(disk / "tf2"), save_on="epoch_end")
        x, y = np.ones((4, 256), np.float32), np.zeros((4, 256), np.float32)
        with pytest.raises(klc.LegacyCheckpointError, match="No space left.*intact.*ckpt-1"):
            model.fit(x, y, epochs=3, verbose=0, callbacks=[FillDisk(str(disk / "filler"), 1), save])
        assert sorted(_files_under(disk)) == ["filler", "tf2/checkpoint", "tf2/ckpt-1.data-00000-of-00001",
                                              "tf2/ckpt-1.index"]
        os.remove(disk / "filler")
        klc.restore_object_checkpoint(crash.build_model(), str(disk / "tf2"))
    finally:
        subprocess.run(["umount", str(disk)], check=False)


def test_save_onto_a_read_only_disk_fails_clearly(read_only_disk):
    model = crash.build_model()
    model.compile(optimizer="sgd", loss="mse")
    with pytest.raises(klc.LegacyCheckpointError, match="Saving the object checkpoint to .* failed"):
        model.fit(np.ones((4, 256)), np.zeros((4, 256)), epochs=1, verbose=0,
                  callbacks=[klc.SaveObjectCheckpoint(str(read_only_disk / "tf2"))])
    assert _files_under(read_only_disk) == ["existing.txt"]


def test_verify_finds_damaged_data_and_rename_verify_refuses_it(tmp_path, source):
    prefix, _ = source
    copy = tmp_path / "copy"
    copy.mkdir()
    for suffix in (".index", ".data-00000-of-00001"):
        (copy / ("model.ckpt" + suffix)).write_bytes(open(prefix + suffix, "rb").read())
    damaged = str(copy / "model.ckpt")
    entry = klc.bundle_index.read_bundle_index(damaged).entries[b"layer_3/kernel"]
    with open(damaged + ".data-00000-of-00001", "r+b") as f:
        f.seek(entry.offset + 100)
        f.write(b"\xff\xff")
    with pytest.raises(klc.CorruptCheckpointError, match=r"layer_3/kernel.*crc32c"):
        klc.verify_checkpoint(damaged)
    with pytest.raises(klc.CorruptCheckpointError, match="layer_3/kernel"):
        klc.rename_checkpoint(damaged, str(tmp_path / "out" / "m"), {"/": "x/"}, verify=True)
    assert not (tmp_path / "out").exists() or _files_under(tmp_path / "out") == []
