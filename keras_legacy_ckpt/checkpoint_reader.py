"""Finding TF1 name-based checkpoints and reading their tensors in bounded batches."""

from __future__ import annotations

import bisect
import collections.abc
import dataclasses
import math
import difflib
import os
import re
from typing import Dict, Iterable, Iterator, List, Sequence, Tuple

import tensorflow as tf

from keras_legacy_ckpt.bundle_index import BundleIndex, read_bundle_index, tensor_names
from keras_legacy_ckpt.errors import CheckpointNotFoundError, CorruptCheckpointError

# Tensors are read and assigned this many bytes at a time (a tensor larger than this is
# read on its own), so memory stays bounded whatever the checkpoint's size.
DEFAULT_BATCH_BYTES = 64 * 1024 * 1024

_FILE_SUFFIX = re.compile(r"\.(index|meta|data-\d{5}-of-\d{5})$")


@dataclasses.dataclass(frozen=True)
class TensorInfo:
    shape: Tuple[int, ...]
    dtype: tf.dtypes.DType

    @property
    def nbytes(self) -> int:
        return math.prod(self.shape) * (self.dtype.size if self.dtype != tf.string else 1)


def _prefixes_in(directory: str) -> List[str]:
    try:
        names = tf.io.gfile.listdir(directory)
    except tf.errors.OpError:
        return []
    return sorted(os.path.join(directory, n[: -len(".index")]) for n in names if n.endswith(".index"))


def resolve_checkpoint(checkpoint: "str | os.PathLike[str]") -> str:
    """Returns the checkpoint prefix that `checkpoint` names.

    `checkpoint` may be a prefix (".../model.ckpt-1000"), one of its files
    (".index", ".data-00000-of-00001", ".meta"), or a directory holding a
    `checkpoint` state file, in which case the latest checkpoint is used.
    """
    path = os.fspath(checkpoint)
    if tf.io.gfile.isdir(path):
        latest = tf.train.latest_checkpoint(path)
        if latest is not None and tf.io.gfile.exists(latest + ".index"):
            return latest
        state = os.path.join(path, "checkpoint")
        found = _prefixes_in(path)
        if tf.io.gfile.exists(state):
            problem = "its state file %s names no checkpoint whose .index file exists" % state
        else:
            problem = "it has no 'checkpoint' state file"
        hint = ("pass one of these prefixes instead: %s" % ", ".join(found[-5:]) if found
                else "pass a checkpoint prefix such as %s" % os.path.join(path, "model.ckpt-1000"))
        raise CheckpointNotFoundError("No checkpoint found in directory %s: %s; %s." % (path, problem, hint))
    prefix = _FILE_SUFFIX.sub("", path)
    if tf.io.gfile.exists(prefix + ".index"):
        return prefix
    if tf.io.gfile.exists(prefix) and not tf.io.gfile.isdir(prefix):
        raise CheckpointNotFoundError(
            "%s is a file but not a V2 checkpoint prefix (no %s.index next to it). TF1's old V1 "
            "format is not supported: load it once with tf.compat.v1.train.Saver and save it again "
            "(write_version=tf.compat.v1.train.SaverDef.V2)." % (path, prefix))
    directory = os.path.dirname(prefix) or "."
    close = difflib.get_close_matches(prefix, _prefixes_in(directory), n=3)
    hint = (" Did you mean: %s?" % ", ".join(close)) if close else (
        " Pass a prefix like .../model.ckpt-1000 (the .index and .data-* files' common start) "
        "or a directory with a 'checkpoint' state file.")
    raise CheckpointNotFoundError("Checkpoint %s not found: there is no %s.index.%s" % (path, prefix, hint))


class CheckpointFile:
    """A resolved checkpoint: its tensors' names, shapes and dtypes, and batched reads.

    Opening parses and checks the `.index` file (every entry's shard, offset and size
    against the data files), so that a damaged checkpoint fails before any read.
    """

    def __init__(self, checkpoint: "str | os.PathLike[str]"):
        self.prefix = resolve_checkpoint(checkpoint)
        self.index: BundleIndex = read_bundle_index(self.prefix)
        tensor_names(self.index)  # a name TensorFlow's Python reader cannot decode is not "corruption"
        try:
            reader = tf.train.load_checkpoint(self.prefix)
            shapes = reader.get_variable_to_shape_map()
            dtypes = reader.get_variable_to_dtype_map()
        except (tf.errors.OpError, IndexError, ValueError) as e:
            raise CorruptCheckpointError(
                "TensorFlow cannot read checkpoint %s: %s. Copy the checkpoint again from its "
                "source." % (self.prefix, _first_line(e))) from None
        self.tensors: Dict[str, TensorInfo] = {
            name: TensorInfo(tuple(shapes[name]), dtypes[name]) for name in sorted(shapes)}

    def __contains__(self, name: str) -> bool:
        return name in self.tensors

    def keys(self) -> List[str]:
        return list(self.tensors)

    def read(self, requests: Sequence["ReadRequest"]) -> List[tf.Tensor]:
        """Reads the requested tensors (or slices) in one RestoreV2 call."""
        if not requests:
            return []
        try:
            with tf.device("CPU:0"):
                return tf.raw_ops.RestoreV2(
                    prefix=self.prefix,
                    tensor_names=[r.key for r in requests],
                    shape_and_slices=[r.slice_spec for r in requests],
                    dtypes=[self.tensors[r.key].dtype for r in requests])
        except (tf.errors.OpError, IndexError) as e:
            names = ", ".join(r.key for r in requests[:5])
            raise CorruptCheckpointError(
                "Reading %s from checkpoint %s failed: %s. The data files are damaged (bit rot or a "
                "partial copy); copy the checkpoint again from its source."
                % (names, self.prefix, _first_line(e))) from None


@dataclasses.dataclass(frozen=True)
class ReadRequest:
    """One tensor, or one slice of it ("10 4 0,5:-" in TF's shape-and-slice syntax)."""

    key: str
    slice_spec: str = ""
    nbytes: int = 0


def batches(requests: Iterable[ReadRequest], max_bytes: int = DEFAULT_BATCH_BYTES) -> Iterator[List[ReadRequest]]:
    batch: List[ReadRequest] = []
    size = 0
    for request in requests:
        if batch and size + request.nbytes > max_bytes:
            yield batch
            batch, size = [], 0
        batch.append(request)
        size += request.nbytes
    if batch:
        yield batch


def list_variables(checkpoint: "str | os.PathLike[str]") -> List[Tuple[str, Tuple[int, ...], str]]:
    """Lists a checkpoint's tensors as sorted (name, shape, dtype name) tuples."""
    ckpt = CheckpointFile(checkpoint)
    return [(name, info.shape, info.dtype.name) for name, info in ckpt.tensors.items()]


def verify_checkpoint(checkpoint: "str | os.PathLike[str]") -> int:
    """Checks a checkpoint completely: its index and the crc32c of every tensor's bytes.

    Returns the number of tensors checked; raises CorruptCheckpointError naming the file
    and the damage, or CheckpointNotFoundError.
    """
    ckpt = CheckpointFile(checkpoint)
    ckpt.index.verify(ckpt.tensors)
    return len(ckpt.tensors)


def _first_line(error: BaseException) -> str:
    message = getattr(error, "message", None) or str(error) or type(error).__name__
    return message.strip().splitlines()[0] if message.strip() else type(error).__name__


def slice_spec(full_shape: Sequence[int], axis: int, start: int, length: int) -> str:
    dims = " ".join(str(d) for d in full_shape)
    parts = ["%d,%d" % (start, length) if i == axis else "-" for i in range(len(full_shape))]
    return "%s %s" % (dims, ":".join(parts))


def human_bytes(n: float) -> str:
    """1536 -> "1.5 KiB"."""
    for unit in ("B", "KiB", "MiB", "GiB", "TiB"):
        if n < 1024 or unit == "TiB":
            return "%d %s" % (n, unit) if unit == "B" else "%.1f %s" % (n, unit)
        n /= 1024.0
    return ""


# difflib compares a name with at most this many keys per call; cheap scans pick them.
_DIFFLIB_CANDIDATES = 32
_SIMILAR = 0.5  # difflib ratio a hint needs unless it shares two or more trailing path components


def closest_keys(name: str, keys: Iterable[str], n: int = 3) -> List[str]:
    """Up to `n` keys that look most like `name`, best first (for "closest: ..." hints).

    A wrong scope changes the front of a name, so keys sharing its last two or more path
    components come first, the most shared first ("backbone/tower/dense/kernel" finds
    "tower/dense/kernel" before "backbone/tower/dense_1/kernel"), then by difflib similarity.
    Otherwise the keys with the same or a similar last component, or in the same scope, that
    difflib finds similar enough. difflib only ever sees a few keys, so a hint costs a few
    scans of the keys, not one difflib comparison per key (seconds on 10,000 keys).
    """
    keys = keys if isinstance(keys, collections.abc.Collection) else list(keys)  # scanned more than once
    chosen: List[str] = []
    levels = _keys_sharing_tail(name.split("/"), keys)
    for shared in range(len(levels), 1, -1):
        fresh = [k for k in levels[shared - 1] if k not in chosen]
        chosen += _most_similar(name, fresh, n - len(chosen))
        if len(chosen) == n:
            return chosen
    weak = [k for k in _weak_candidates(name, keys, levels[0] if levels else []) if k not in chosen]
    return chosen + [k for k in _most_similar(name, weak, n - len(chosen)) if _similarity(name, k) >= _SIMILAR]


def _keys_sharing_tail(pieces: List[str], keys: Iterable[str]) -> List[List[str]]:
    """levels[k - 1]: the keys whose last k path components are the last k of `pieces`."""
    levels: List[List[str]] = []
    candidates = keys
    for kept in range(1, len(pieces) + 1):
        tail = "/".join(pieces[-kept:])
        slash_tail = "/" + tail
        candidates = [k for k in candidates if k.endswith(slash_tail) or k == tail]
        if not candidates:
            break
        levels.append(candidates)
    return levels


def _weak_candidates(name: str, keys: Iterable[str], same_last: List[str]) -> List[str]:
    """Keys with the same last component as `name`, a similar one, or in the same scope."""
    scope, _, last = name.rpartition("/")
    by_last: Dict[str, List[str]] = {}
    same_scope = []
    for key in keys:
        key_scope, _, key_last = key.rpartition("/")
        by_last.setdefault(key_last, []).append(key)
        if key_scope == scope:
            same_scope.append(key)
    near = difflib.get_close_matches(last, _most_alike(last, list(by_last), 8 * _DIFFLIB_CANDIDATES), n=3,
                                     cutoff=0.6)
    similar_last = [k for near_last in near if near_last != last for k in by_last[near_last]]
    return list(dict.fromkeys(same_last + same_scope + similar_last))


def _most_similar(name: str, keys: List[str], n: int) -> List[str]:
    keys = _most_alike(name, keys, _DIFFLIB_CANDIDATES)
    return sorted(keys, key=lambda k: (-_similarity(name, k), k))[:n]


def _most_alike(name: str, keys: List[str], limit: int) -> List[str]:
    """About `limit` keys sharing the longest common prefix or suffix with `name`: a cheap
    stand-in for difflib to choose the few keys difflib then ranks. They are the neighbours
    of `name` in sorted order, and of its reverse among the reversed keys."""
    if len(keys) <= limit:
        return keys
    by_prefix = _neighbours(name, sorted(keys), limit // 2)
    by_suffix = [k[::-1] for k in _neighbours(name[::-1], sorted(k[::-1] for k in keys), limit // 2)]
    return list(dict.fromkeys(by_prefix + by_suffix))


def _neighbours(name: str, ordered: List[str], count: int) -> List[str]:
    at = bisect.bisect_left(ordered, name)
    start = max(0, min(at - count // 2, len(ordered) - count))
    return ordered[start:start + count]


def _similarity(name: str, key: str) -> float:
    return difflib.SequenceMatcher(None, name, key).ratio()
