"""Reading TF1 name-based checkpoints into numpy without TensorFlow: `open_checkpoint(path) -> TF1Checkpoint`.

```python
import keras_legacy_ckpt as klc

with klc.open_checkpoint("/old/model.ckpt-1000") as ckpt:
    for name in ckpt.keys():
        print(name, ckpt.shape(name), ckpt.dtype(name))
    kernel = ckpt.read("net/dense/kernel")      # a numpy array the caller owns
```

A V2 checkpoint (what `tf.compat.v1.train.Saver` writes: `prefix.index` and `prefix.data-*-of-*`) on a
local disk is read with numpy, google-crc32c and ml_dtypes only: this module imports no TensorFlow and
no protobuf library. The `.index` file is TensorFlow's sorted table (`core/lib/io/table`); its entries
are `BundleEntryProto`s, decoded here from the protobuf wire format. The data files hold each tensor's
memory as TensorFlow wrote it, so a read is a copy of those bytes into a fresh array, one tensor at a
time, with the entry's crc32c checked on every read (`CorruptCheckpointError` names the tensor and the
file). String tensors use TensorFlow's encoding (varint lengths, a masked crc32c of the lengths, then
the bytes); partitioned variables (TF1 partitioners) are assembled from their slices; a bundle written
on a machine of the other byte order is byte-swapped, as TensorFlow does.

What TensorFlow is still needed for, and imported then only: checkpoints on remote file systems (gs://,
s3://, ram://, ... go through `tf.io.gfile`), V1 checkpoints (`Saver(write_version=V1)`, read with
TensorFlow's RestoreV2), and the detailed error messages for paths that exist but are no V2 checkpoint
(a V1 file, a Keras file, data files without their index, ...). A missing path never imports it.
"""

from __future__ import annotations

import math
import os
import sys
import threading
import weakref
from typing import Dict, Iterator, List, Optional, Tuple

import google_crc32c
import numpy as np

from keras_legacy_ckpt import bundle_index, dtypes, file_access
from keras_legacy_ckpt._tf_protos import DT_RESOURCE, DT_STRING, DT_VARIANT
from keras_legacy_ckpt.bundle_index import Entry, decode_strings
from keras_legacy_ckpt.bundle_index import slice_key as _slice_key
from keras_legacy_ckpt.errors import CorruptCheckpointError, LegacyCheckpointError
from keras_legacy_ckpt.table_file import mask as _mask

__all__ = ["TF1Checkpoint", "open_checkpoint"]

_STRING, _RESOURCE, _VARIANT = DT_STRING, DT_RESOURCE, DT_VARIANT
_DTYPE_NAMES = dtypes.NAMES
_NUMPY_DTYPES = dtypes.NUMPY
_READ_CHUNK = 1 << 20  # bytes per pread: crc32c and the copy into the array run on cache-hot bytes


# --- resolving a path ------------------------------------------------------------------------------

def _resolve(path: str) -> Tuple[str, str]:
    """(prefix, "V2" or "V1") of the checkpoint `path` names, as everywhere in this library
    (checkpoint_reader: local paths without TensorFlow, other file systems through tf.io.gfile)."""
    from keras_legacy_ckpt import checkpoint_reader  # not at import: `import keras_legacy_ckpt` stays light

    prefix, format = checkpoint_reader.resolve_with_format(path)
    return (file_access.local_path(prefix) if file_access.is_local(prefix) else prefix), format


# --- reading --------------------------------------------------------------------------------------------

def _describe(key: bytes) -> str:
    return key.decode("utf-8", "backslashreplace")


def _close_readers(readers: Dict[int, file_access.Reader]) -> None:
    for reader in list(readers.values()):
        try:
            reader.close()
        except OSError:
            pass
    readers.clear()


class TF1Checkpoint:
    """An open TF1 name-based checkpoint: tensor names, shapes and dtypes, and reads into numpy.

    Made by `open_checkpoint`. `keys()` are the tensor names, sorted (a partitioned variable is one
    name with its full shape); `shape(name)` a tuple; `dtype(name)` a numpy dtype (bfloat16 and the
    float8 types from ml_dtypes, strings as `object`), `dtype_name(name)` TensorFlow's name of it
    ("bfloat16", "string", ...); `read(name)` a fresh array the caller owns,
    bit for bit what TensorFlow wrote, its crc32c checked (strings: an object array of `bytes`, a 0-d
    one for a scalar). Data files are opened on first read and closed by `close()` or at the end of
    a `with` block (names, shapes and dtypes stay available). Reads may run in several threads.

    `prefix` is the resolved checkpoint prefix, `format` "V2" or "V1" (a V1 checkpoint is read through
    TensorFlow), `files` the checkpoint's files.
    """

    def __init__(self, prefix: str, format: str) -> None:
        self.prefix = prefix
        self.format = format
        self._closed = False
        self._lock = threading.Lock()
        self._readers: Dict[int, file_access.Reader] = {}
        self._reader_locks: Dict[int, threading.Lock] = {}
        self._finalizer = weakref.finalize(self, _close_readers, self._readers)
        self._tf_reader = None
        if format == "V2":
            self._open_v2()
        else:
            self._open_v1()

    # -- opening --

    def _open_v2(self) -> None:
        # The index's structure, every entry's metadata and place in its data file, checked at open.
        index = bundle_index.read_bundle_index(self.prefix)
        self._num_shards = index.num_shards
        self._big_endian = index.big_endian
        self._swap = index.big_endian != (sys.byteorder == "big")
        self.files = [self.prefix + ".index"] + index.data_files()
        self._entries: Dict[bytes, Entry] = index.records
        self._names: Dict[str, bytes] = {
            key.decode("utf-8", "surrogateescape"): key for key in index.records
            if bundle_index.slice_key_name(key) is None}

    def _open_v1(self) -> None:
        tf = file_access.tensorflow_for("V1 checkpoint %s (Saver(write_version=SaverDef.V1))" % self.prefix)
        try:
            self._tf_reader = tf.compat.v1.train.NewCheckpointReader(self.prefix)
            shapes = self._tf_reader.get_variable_to_shape_map()
            dtypes = self._tf_reader.get_variable_to_dtype_map()
        except (tf.errors.OpError, IndexError, ValueError) as e:
            raise CorruptCheckpointError("TensorFlow cannot read V1 checkpoint %s: %s. Copy the checkpoint again from "
                                         "its source." % (self.prefix, str(e).strip().splitlines()[0])) from None
        from keras_legacy_ckpt import checkpoint_kinds

        self.files = checkpoint_kinds.v1_shard_files(self.prefix)
        self._v1_info = {name: (tuple(shapes[name]), np.dtype(dtypes[name].as_numpy_dtype), dtypes[name])
                         for name in shapes}
        self._names = {name: name.encode("utf-8", "surrogateescape") for name in shapes}

    def _data_path(self, shard: int) -> str:
        return "%s.data-%05d-of-%05d" % (self.prefix, shard, self._num_shards)

    # -- names, shapes, dtypes --

    def keys(self) -> List[str]:
        """The tensor names, sorted."""
        return sorted(self._names)

    def __iter__(self) -> Iterator[str]:
        return iter(self.keys())

    def __len__(self) -> int:
        return len(self._names)

    def __contains__(self, name: object) -> bool:
        return name in self._names

    def _key(self, name: str) -> bytes:
        try:
            return self._names[name]
        except (KeyError, TypeError):
            raise KeyError("Checkpoint %s has no tensor %r (it has %d tensors; see keys())."
                           % (self.prefix, name, len(self._names))) from None

    def shape(self, name: str) -> Tuple[int, ...]:
        """The tensor's shape (a partitioned variable's full shape)."""
        key = self._key(name)
        if self._tf_reader is not None:
            return self._v1_info[name][0]
        return self._entries[key].shape

    def dtype(self, name: str) -> np.dtype:
        """The tensor's numpy dtype: ml_dtypes' for bfloat16, float8 and int4; object for strings (and for
        TensorFlow's variant tensors, which only TensorFlow can read)."""
        key = self._key(name)
        if self._tf_reader is not None:
            return self._v1_info[name][1]
        enum = self._entries[key].dtype
        if enum in _NUMPY_DTYPES:
            return _NUMPY_DTYPES[enum]
        if enum in (_RESOURCE, _VARIANT):
            return np.dtype(object)
        raise LegacyCheckpointError("Tensor %r of checkpoint %s has dtype enum %d, which this reader does not know "
                                    "(a newer TensorFlow's type?)." % (name, self.prefix, enum))

    def dtype_name(self, name: str) -> str:
        """TensorFlow's name of the tensor's dtype ("float32", "bfloat16", "string", ...): what
        list_variables reports, with or without TensorFlow."""
        key = self._key(name)
        if self._tf_reader is not None:
            return self._v1_info[name][2].name
        enum = self._entries[key].dtype
        return _DTYPE_NAMES.get(enum, "dtype enum %d" % enum)

    # -- reading --

    def read(self, name: str) -> np.ndarray:
        """The tensor's value: a fresh array the caller owns, bit-exact, its crc32c checked.

        Raises KeyError for a name not in the checkpoint, CorruptCheckpointError (naming the tensor and
        the data file) when its bytes are damaged."""
        key = self._key(name)
        if self._closed:
            raise ValueError("TF1Checkpoint %s is closed." % self.prefix)
        if self._tf_reader is not None:
            return self._read_v1(name)
        entry = self._entries[key]
        if entry.dtype in (_RESOURCE, _VARIANT):
            raise LegacyCheckpointError(
                "Tensor %r of checkpoint %s is a TensorFlow %s (e.g. a dataset iterator's state), which only "
                "TensorFlow can read: tf.train.load_checkpoint(%r).get_tensor(%r)."
                % (name, self.prefix, _DTYPE_NAMES[entry.dtype], self.prefix, name))
        dtype = _NUMPY_DTYPES.get(entry.dtype)
        if dtype is None:
            dtype = self.dtype(name)  # raises: a dtype this reader does not know
        if entry.slices:
            return self._read_partitioned(name, key, entry, dtype)
        return self._read_entry(repr(name), entry, dtype)

    def _reader(self, shard: int) -> Tuple[file_access.Reader, Optional[threading.Lock]]:
        reader = self._readers.get(shard)
        if reader is None:
            with self._lock:
                if self._closed:
                    raise ValueError("TF1Checkpoint %s is closed." % self.prefix)
                reader = self._readers.get(shard)
                if reader is None:
                    path = self._data_path(shard)
                    try:
                        reader = file_access.open_reader(path)
                    except FileNotFoundError:
                        raise CorruptCheckpointError("Checkpoint data file %s is missing. Copy every %s.data-* file "
                                                     "along with the .index file." % (path, self.prefix)) from None
                    # Local reads are os.pread (no shared position); a remote file is one GFile: one read at a time.
                    self._reader_locks[shard] = None if hasattr(reader, "fd") else threading.Lock()
                    self._readers[shard] = reader
        return reader, self._reader_locks[shard]

    def _damaged(self, what: str, entry: Entry, detail: str = "fails its crc32c check") -> CorruptCheckpointError:
        return CorruptCheckpointError(
            "Checkpoint data file %s is damaged: tensor %s (bytes %d..%d) %s. Copy the checkpoint again from its "
            "source." % (self._data_path(entry.shard_id), what, entry.offset, entry.offset + entry.size, detail))

    def _read_bytes(self, entry: Entry, out: Optional[memoryview], what: str) -> Tuple[Optional[bytes], int]:
        """Reads the entry's bytes into `out` (or returns them when `out` is None) and their crc32c."""
        reader, lock = self._reader(entry.shard_id)
        crc, done, pieces = 0, 0, []
        try:
            while done < entry.size:
                count = min(_READ_CHUNK, entry.size - done)
                if lock is None:
                    chunk = reader.pread(count, entry.offset + done)
                else:
                    with lock:
                        chunk = reader.pread(count, entry.offset + done)
                if not chunk:
                    break
                crc = google_crc32c.extend(crc, chunk)
                if out is None:
                    pieces.append(chunk)
                else:
                    out[done:done + len(chunk)] = chunk
                done += len(chunk)
        except OSError as e:
            raise CorruptCheckpointError("Cannot read tensor %s from checkpoint data file %s: %s."
                                         % (what, self._data_path(entry.shard_id), e)) from None
        if done != entry.size:
            raise self._damaged(what, entry, "runs past the end of the file (truncated?)")
        return (b"".join(pieces) if out is None else None), crc

    def _read_entry(self, what: str, entry: Entry, dtype: np.dtype, out: Optional[np.ndarray] = None) -> np.ndarray:
        """One saved tensor (or slice): into `out` (a C-contiguous array of its shape) or a new array."""
        if entry.dtype == _STRING:
            raw, crc = self._read_bytes(entry, None, what)
            count = math.prod(entry.shape)
            strings, crc = decode_strings(raw, count, self._big_endian)
            if strings is None or _mask(crc) != entry.crc32c:
                raise self._damaged(what, entry)
            array = np.empty(entry.shape, dtype=object) if out is None else out
            if array.ndim == 0:
                array[()] = strings[0]
            else:
                array.reshape(-1)[:] = strings
            return array
        if out is None and entry.size <= _READ_CHUNK:  # one pread: its bytes become the array
            raw, crc = self._read_bytes(entry, None, what)
            if _mask(crc) != entry.crc32c:
                raise self._damaged(what, entry)
            array = np.frombuffer(raw, dtype=dtype).reshape(entry.shape).copy()
        else:  # chunk by chunk straight into the array
            array = np.empty(entry.shape, dtype=dtype) if out is None else out
            _, crc = self._read_bytes(entry, memoryview(array.reshape(-1).view(np.uint8)), what)
            if _mask(crc) != entry.crc32c:
                raise self._damaged(what, entry)
        if self._swap and dtype.itemsize > 1:
            if dtype.kind == "c":
                array.view(np.dtype("u%d" % (dtype.itemsize // 2))).byteswap(inplace=True)
            else:
                array.view(np.dtype("u%d" % dtype.itemsize)).byteswap(inplace=True)
        return array

    def _read_partitioned(self, name: str, key: bytes, entry: Entry, dtype: np.dtype) -> np.ndarray:
        """A tensor TF1 saved in slices (a partitioned variable): its slices' entries put together."""
        full = np.empty(entry.shape, dtype=dtype)
        boxes = []
        for extents in entry.slices:
            box = tuple((start, dim - start if length < 0 else length)
                        for (start, length), dim in zip(extents, entry.shape))
            boxes.append(box)
        if not _exact_cover(entry.shape, boxes):
            raise CorruptCheckpointError(
                "Checkpoint index %s.index is damaged: the slices of partitioned tensor %r do not cover its shape %s "
                "exactly once. Copy the checkpoint again from its source." % (self.prefix, name, list(entry.shape)))
        for extents, box in zip(entry.slices, boxes):
            spec = ":".join("-" if length < 0 else "%d,%d" % (start, length) for start, length in extents)
            what = "%r (slice %s)" % (name, spec)
            part = self._entries.get(_slice_key(key, extents))
            if part is None:
                raise CorruptCheckpointError("Checkpoint index %s.index is damaged: it has no entry for slice %s of "
                                             "partitioned tensor %r. Copy the checkpoint again from its source."
                                             % (self.prefix, spec, name))
            shape = tuple(length for _, length in box)
            if part.dtype != entry.dtype or part.shape != shape:
                raise CorruptCheckpointError(
                    "Checkpoint index %s.index is damaged: slice %s of partitioned tensor %r holds %s %s, not %s %s. "
                    "Copy the checkpoint again from its source." % (
                        self.prefix, spec, name, _DTYPE_NAMES.get(part.dtype, part.dtype), list(part.shape),
                        _DTYPE_NAMES.get(entry.dtype, entry.dtype), list(shape)))
            target = full[tuple(slice(start, start + length) for start, length in box)]
            if target.flags.c_contiguous and entry.dtype != _STRING:
                self._read_entry(what, part, dtype, out=target)  # straight into place (partitions along axis 0)
            else:
                target[...] = self._read_entry(what, part, dtype)
        return full

    def _read_v1(self, name: str) -> np.ndarray:
        import tensorflow as tf

        _, dtype, tf_dtype = self._v1_info[name]
        try:
            # RestoreV2, not the reader's get_tensor: it also puts together a tensor V1 saved in slices, and
            # reads the float16 and complex tensors get_tensor refuses in V1 files.
            with tf.device("CPU:0"):
                (value,) = tf.raw_ops.RestoreV2(prefix=self.prefix, tensor_names=[name], shape_and_slices=[""],
                                                dtypes=[tf_dtype])
            value = value.numpy()
        except (tf.errors.OpError, IndexError, ValueError) as e:
            raise CorruptCheckpointError(
                "Reading %r from V1 checkpoint %s failed: %s. The files are damaged (bit rot or a partial copy); copy "
                "the checkpoint again from its source." % (name, self.prefix, str(e).strip().splitlines()[0])) from None
        if dtype == object:
            array = np.empty(np.shape(value), dtype=object)
            array[...] = value
            return array
        return np.array(value, dtype=dtype, copy=True)

    # -- life cycle --

    def close(self) -> None:
        """Closes the data files; names, shapes and dtypes stay available, reads raise ValueError."""
        with self._lock:
            self._closed = True
            _close_readers(self._readers)

    @property
    def closed(self) -> bool:
        return self._closed

    def __enter__(self) -> "TF1Checkpoint":
        return self

    def __exit__(self, *exc_info) -> None:
        self.close()

    def __repr__(self) -> str:
        return "<TF1Checkpoint %s (%s, %d tensors%s)>" % (self.prefix, self.format, len(self._names),
                                                          ", closed" if self._closed else "")


def _exact_cover(shape: Tuple[int, ...], boxes: List[Tuple[Tuple[int, int], ...]]) -> bool:
    """Whether the slices' boxes ((start, length) per dimension) cover `shape` exactly once: counted on the
    grid their edges cut the shape into (one cell per partition for TF1's partitioners)."""
    if sum(math.prod(length for _, length in box) for box in boxes) != math.prod(shape):
        return False
    edges = [sorted({0, dim} | {p for box in boxes for p in (box[d][0], box[d][0] + box[d][1])})
             for d, dim in enumerate(shape)]
    if math.prod(len(e) - 1 for e in edges) > 10_000_000:
        return True  # a pathological grid: the volume check above must do
    where = [{point: i for i, point in enumerate(e)} for e in edges]
    grid = np.zeros([len(e) - 1 for e in edges], dtype=np.int32)
    for box in boxes:
        grid[tuple(slice(w[start], w[start + length]) for w, (start, length) in zip(where, box))] += 1
    return bool((grid == 1).all())


def open_checkpoint(path: "str | os.PathLike[str]") -> TF1Checkpoint:
    """Opens a TF1 name-based checkpoint for reading into numpy; local V2 checkpoints without TensorFlow.

    `path` is what the rest of keras_legacy_ckpt accepts: a prefix (".../model.ckpt-1000"), one of its
    files (".index", ".data-00000-of-00001", ".meta"), or a directory (its `checkpoint` state file's
    latest checkpoint, also when the state file names paths of the machine that wrote it, or the only
    checkpoint in it). The index is parsed and every entry checked against the data files now, so a
    damaged or incomplete checkpoint fails here; a tensor's bytes are checked when it is read.

    Raises CheckpointNotFoundError when nothing is at `path` (without importing TensorFlow),
    CorruptCheckpointError for a damaged index or missing data files.
    """
    prefix, kind = _resolve(os.fspath(path))
    return TF1Checkpoint(prefix, kind)
