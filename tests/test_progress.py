"""Progress bars: drawn for warm start, rename, export and verify over 256 MiB with verbose=1 on a terminal,
never in a stream that is not a terminal, never with verbose=0, never under 256 MiB."""

import io
import os

import numpy as np
import pytest
import tensorflow as tf

import keras_legacy_ckpt as klc
from keras_legacy_ckpt import progress


class Terminal(io.StringIO):
    def isatty(self):
        return True


def terminal_stderr(monkeypatch):
    """A terminal as sys.stderr (set in the test itself: pytest's capture replaces it after fixtures run)."""
    stream = Terminal()
    monkeypatch.setattr("sys.stderr", stream)
    return stream


@pytest.fixture
def small_threshold(monkeypatch):
    monkeypatch.setattr(progress, "MIN_BYTES", 100)  # the mlp checkpoint has about 1 KiB of weights


def test_bar_only_on_a_terminal_with_verbose_and_over_the_threshold(monkeypatch):
    total = progress.MIN_BYTES + 1
    for stream, verbose, size, drawn in ((Terminal(), 1, total, True), (io.StringIO(), 1, total, False),
                                         (Terminal(), 0, total, False), (Terminal(), 1, progress.MIN_BYTES, False)):
        bar = progress.ProgressBar("work", verbose, stream=stream)
        for done in (0, size // 2, size):
            bar(done, size)
        assert ("work" in stream.getvalue() and "100%" in stream.getvalue()) == drawn, (verbose, size, drawn)


def test_a_callback_given_replaces_the_bar(mlp_ckpt, monkeypatch, small_threshold):
    prefix, _ = mlp_ckpt
    stderr = terminal_stderr(monkeypatch)
    calls = []
    klc.verify_checkpoint(prefix, progress=lambda done, total: calls.append((done, total)))
    assert calls and calls[-1][0] == calls[-1][1] and all(a[0] <= b[0] for a, b in zip(calls, calls[1:]))
    assert stderr.getvalue() == ""


def test_verify_rename_export_and_warm_start_draw_bars(mlp_ckpt, tmp_path, monkeypatch, small_threshold):
    prefix, values = mlp_ckpt
    stderr = terminal_stderr(monkeypatch)
    klc.verify_checkpoint(prefix)
    assert "verify" in stderr.getvalue() and "100%" in stderr.getvalue()
    for name, call in (
            ("rename", lambda: klc.rename_checkpoint(prefix, str(tmp_path / "r" / "model.ckpt"), {"net/": "x/"},
                                                     mode="stream", verify=True)),
            ("export", lambda: klc.export_safetensors(prefix, str(tmp_path / "model.safetensors")))):
        stderr.seek(0)
        stderr.truncate()
        call()
        assert name in stderr.getvalue() and "100%" in stderr.getvalue(), (name, stderr.getvalue())
    stderr.seek(0)
    stderr.truncate()
    weights = {k: v for k, v in values.items() if k.startswith("net/") and "Adam" not in k}
    module = tf.Module()
    module.vars = [tf.Variable(np.zeros_like(v), name=k) for k, v in weights.items()]
    klc.warm_start(module, prefix, strict=False)
    text = stderr.getvalue()
    assert "warm start: crc32c check" in text and "warm start: assign" in text, text
    for variable in module.vars:
        np.testing.assert_array_equal(variable.numpy(), values[variable.name[:-2]])


def test_nothing_drawn_with_verbose_0_or_when_stderr_is_not_a_terminal(mlp_ckpt, tmp_path, monkeypatch,
                                                                       small_threshold):
    prefix, _ = mlp_ckpt
    stream = io.StringIO()
    monkeypatch.setattr("sys.stderr", stream)
    klc.verify_checkpoint(prefix)
    klc.export_safetensors(prefix, str(tmp_path / "a.safetensors"))
    assert stream.getvalue() == ""
    terminal = Terminal()
    monkeypatch.setattr("sys.stderr", terminal)
    klc.verify_checkpoint(prefix, verbose=0)
    klc.export_safetensors(prefix, str(tmp_path / "b.safetensors"), verbose=0)
    klc.rename_checkpoint(prefix, str(tmp_path / "c" / "model.ckpt"), None, mode="stream", verbose=0)
    assert terminal.getvalue() == ""
    assert os.path.exists(tmp_path / "b.safetensors")
