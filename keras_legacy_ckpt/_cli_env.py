"""Keeps TensorFlow's start-up logs off the `keras-legacy-ckpt` command line's stderr (and only there).

Importing TensorFlow 2.16+ prints lines that TF_CPP_MIN_LOG_LEVEL does not silence, because they are
written by absl's C++ logging before TensorFlow installs its own (tensorflow/tensorflow#100442):

    WARNING: All log messages before absl::InitializeLog() is called are written to STDERR
    I0000 00:00:1795655018.140801   24742 cudart_stub.cc:31] Could not find cuda drivers on your machine, ...

`quiet_tensorflow_if_cli()` runs first thing in `keras_legacy_ckpt/__init__.py`. In the CLI's own process
(the console script, or `python -m keras_legacy_ckpt`) and only there, it sets TF_CPP_MIN_LOG_LEVEL=3 and
CUDA_VISIBLE_DEVICES="" when the user has not set them. Most commands on local V2 checkpoints never import
TensorFlow; when one does, TensorFlow's module code runs with file descriptor 2
sent to a temporary file (an import hook); afterwards it writes back every line except TensorFlow's log lines below
TF_CPP_MIN_LOG_LEVEL (I < 1 <= W < 2 <= E < 3 <= F), so that variable means for these lines what it means
for TensorFlow's others. Library users importing keras_legacy_ckpt in their own programs are unaffected.
"""

from __future__ import annotations

import contextlib
import importlib
import importlib.abc
import importlib.machinery
import os
import re
import sys
import tempfile
from typing import Iterator

CLI_NAME = "keras-legacy-ckpt"
PACKAGE = "keras_legacy_ckpt"

# Set by the CLI only when the user has not set them: the CLI never needs a GPU (and must not take one).
ENV_DEFAULTS = {"TF_CPP_MIN_LOG_LEVEL": "3", "CUDA_VISIBLE_DEVICES": ""}

# absl's format ("I0000 00:00:1795655018.140801   24742 cudart_stub.cc:31] ...": seconds since the epoch
# before absl::InitializeLog, "I0520 14:03:07.123456 ..." after) and TensorFlow's older
# one ("2023-08-25 11:11:47.521702: I tensorflow/tsl/cuda/cudart_stub.cc:28] ...").
_LOG_LINE = re.compile(r"^(?:([IWEF])\d{4} \d\d:\d\d:\d+\.\d+ +\d+ [^ \]]+:\d+\] "
                       r"|\d{4}-\d\d-\d\d \d\d:\d\d:\d\d\.\d+: ([IWEF]) [^ \]]+:\d+\] )")
_ABSL_PREAMBLE = "WARNING: All log messages before absl::InitializeLog() is called are written to STDERR"
# Second lines of multi-line messages (cpu_feature_guard.cc's).
_CONTINUATIONS = ("To enable the following instructions:",)
_SEVERITY = {"I": 0, "W": 1, "E": 2, "F": 3}
# Interpreter options that take a separate value (python -X dev -m keras_legacy_ckpt).
_OPTIONS_WITH_VALUE = ("-W", "-X", "--check-hash-based-pycs")


def is_cli_process() -> bool:
    """True in the console script's process and in `python -m keras_legacy_ckpt`."""
    if sys.argv and os.path.basename(sys.argv[0]).startswith(CLI_NAME):
        return True
    args = list(getattr(sys, "orig_argv", ()))[1:]
    i = 0
    while i < len(args):
        arg = args[i]
        if arg == "-m":
            return args[i + 1:i + 2] == [PACKAGE]
        if arg.startswith("-m"):
            return arg[2:] == PACKAGE
        if arg == "-c" or arg == "-" or not arg.startswith("-"):
            return False
        i += 2 if arg in _OPTIONS_WITH_VALUE else 1
    return False


def min_log_level() -> int:
    try:
        return int(os.environ.get("TF_CPP_MIN_LOG_LEVEL", "0"))
    except ValueError:
        return 0


def filter_tensorflow_logs(text: str, level: int) -> str:
    """`text` without TensorFlow's log lines of a severity below `level` (and absl's preamble for them)."""
    kept, dropped_previous = [], False
    for line in text.splitlines(keepends=True):
        match = _LOG_LINE.match(line)
        if match:
            drop = _SEVERITY[match.group(1) or match.group(2)] < level
        elif line.rstrip("\r\n") == _ABSL_PREAMBLE:
            drop = level >= 1
        else:
            drop = dropped_previous and line.startswith(_CONTINUATIONS)
        if not drop:
            kept.append(line)
        dropped_previous = drop
    return "".join(kept)


@contextlib.contextmanager
def filtered_stderr(level: int) -> Iterator[None]:
    """File descriptor 2 goes to a temporary file; on exit, what was written there is written back to
    stderr without TensorFlow's log lines below `level` (everything, unfiltered, if the block raised)."""
    try:
        sys.stderr.flush()
        saved = os.dup(2)
    except (OSError, ValueError, AttributeError):  # no fd 2 (a daemon, pythonw): nothing to filter
        yield
        return
    # A file, not a pipe: a pipe nobody reads would block the writer once 64 KiB were written.
    with tempfile.TemporaryFile() as capture:
        os.dup2(capture.fileno(), 2)
        failed = True
        try:
            yield
            failed = False
        finally:
            with contextlib.suppress(Exception):
                sys.stderr.flush()
            os.dup2(saved, 2)
            os.close(saved)
            capture.seek(0)
            text = capture.read().decode("utf-8", "replace")
            if not failed:
                text = filter_tensorflow_logs(text, level)
            if text:
                sys.stderr.write(text)
                sys.stderr.flush()


class _QuietTensorFlowImport(importlib.abc.MetaPathFinder):
    """Finds `tensorflow` as the other finders do, and runs its module code under `filtered_stderr`: the
    CLI imports TensorFlow only when a command needs it (a V1 or remote checkpoint, a warm start), and
    then quietly. Removes itself at the first `import tensorflow`."""

    def find_spec(self, name, path=None, target=None):
        if name != "tensorflow":
            return None
        with contextlib.suppress(ValueError):
            sys.meta_path.remove(self)
        spec = importlib.machinery.PathFinder.find_spec(name, path)
        if spec is None or spec.loader is None:
            return spec
        spec.loader = _QuietLoader(spec.loader)
        return spec


class _QuietLoader(importlib.abc.Loader):
    def __init__(self, loader) -> None:
        self._loader = loader

    def create_module(self, spec):
        return self._loader.create_module(spec)

    def exec_module(self, module) -> None:
        module.__loader__ = self._loader
        if module.__spec__ is not None:
            module.__spec__.loader = self._loader
        with filtered_stderr(min_log_level()):
            self._loader.exec_module(module)

    def __getattr__(self, name):  # get_resource_reader, is_package, ... as the real loader answers
        return getattr(self._loader, name)


def quiet_tensorflow_if_cli() -> None:
    """In the CLI's process, before TensorFlow is imported: env defaults, and TensorFlow's import (if a
    command needs TensorFlow at all) with its log lines filtered."""
    if "tensorflow" in sys.modules or not is_cli_process():
        return
    for name, value in ENV_DEFAULTS.items():
        os.environ.setdefault(name, value)
    if not any(isinstance(finder, _QuietTensorFlowImport) for finder in sys.meta_path):
        sys.meta_path.insert(0, _QuietTensorFlowImport())
