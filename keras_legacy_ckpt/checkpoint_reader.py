"""Finding TF1 name-based checkpoints and reading their tensors in bounded batches.

Resolving a path, listing a checkpoint and checking its crc32c's need no TensorFlow for local V2
checkpoints (`list_variables`, `verify_checkpoint` and the CLI run with TensorFlow absent); reading
tensors for a warm start (`read`, `read_each`), V1 checkpoints and remote paths import it when first used.
"""

from __future__ import annotations

import bisect
import collections
import collections.abc
import dataclasses
import math
import difflib
import os
import re
import sys
from typing import TYPE_CHECKING, Any, Dict, Iterable, Iterator, List, NamedTuple, Optional, Sequence, Tuple

from absl import logging

from keras_legacy_ckpt import checkpoint_kinds, dtypes, file_access
from keras_legacy_ckpt._tf_protos import (DT_BFLOAT16, DT_BOOL, DT_COMPLEX64, DT_COMPLEX128, DT_DOUBLE, DT_FLOAT,
                                          DT_HALF, DT_INT8, DT_INT16, DT_INT32, DT_INT64, DT_RESOURCE, DT_STRING,
                                          DT_UINT8, DT_UINT16, DT_UINT32, DT_UINT64, DT_VARIANT)
from keras_legacy_ckpt.bundle_index import BundleIndex, DataFiles, Entry, aligned_empty, read_bundle_index, tensor_names
from keras_legacy_ckpt.errors import CheckpointNotFoundError, CorruptCheckpointError
from keras_legacy_ckpt.progress import Progress, ProgressBar

if TYPE_CHECKING:
    import numpy as np  # imported where tensors are read: listing and checking never need it
    import tensorflow as tf

# Tensors are read and assigned this many bytes at a time (a tensor larger than this is
# read on its own), so memory stays bounded whatever the checkpoint's size.
DEFAULT_BATCH_BYTES = 64 * 1024 * 1024

_FILE_SUFFIX = re.compile(r"\.(index|meta|data-\d{5}-of-\d{5})$")


def _tf():
    """TensorFlow, imported on first use (reads into tf.Tensors, V1 checkpoints, remote paths)."""
    import tensorflow as tf

    return tf


class TensorInfo(NamedTuple):
    """A checkpoint tensor's shape and dtype (TensorFlow's DataType number). A NamedTuple: a checkpoint of
    10,000 tensors makes 10,000 of them when it opens."""

    shape: Tuple[int, ...]
    dtype_enum: int

    @property
    def dtype(self) -> "tf.dtypes.DType":
        """The TensorFlow dtype (imports TensorFlow)."""
        return _tf().as_dtype(self.dtype_enum)

    @property
    def dtype_name(self) -> str:
        return dtypes.dtype_name(self.dtype_enum)

    @property
    def numpy_dtype(self) -> np.dtype:
        return dtypes.NUMPY[self.dtype_enum]

    @property
    def nbytes(self) -> int:
        """Bytes of the tensor's data (one per string element, as a rough count)."""
        return math.prod(self.shape) * (dtypes.itemsize(self.dtype_enum) or 1)


def _prefixes_in(directory: str) -> List[str]:
    """The checkpoints in `directory`, oldest step first: V2 prefixes (one per `.index` file; a
    Saver given the directory itself as prefix writes `.index` and `.data-*` files, whose prefix is
    "directory/") and V1 checkpoints (single files and "-?????-of-NNNNN" shard patterns)."""
    try:
        names = file_access.listdir(directory)
    except OSError:
        return []
    found = [os.path.join(directory, n[: -len(".index")]) for n in names if n.endswith(".index")]
    found += checkpoint_kinds.v1_candidates(directory, names)
    return sorted(found, key=checkpoint_kinds.natural_key)


def _listdir(path: str) -> List[str]:
    try:
        return file_access.listdir(path)
    except OSError:
        return []


def resolve_checkpoint(checkpoint: "str | os.PathLike[str]") -> str:
    """Returns the checkpoint prefix that `checkpoint` names.

    `checkpoint` may be a prefix (".../model.ckpt-1000"), one of its files
    (".index", ".data-00000-of-00001", ".meta"), a V1 checkpoint file (or shard pattern),
    or a directory: its `checkpoint` state file's latest checkpoint (looked up by name in
    that directory when the state file names absolute paths of another machine), or, with no
    state file, the only checkpoint in it. What else the path is (a SavedModel, a Keras file,
    a lone .meta) raises CheckpointNotFoundError saying what to use instead.
    """
    return _resolve(checkpoint)[0]


def resolve_with_format(checkpoint: "str | os.PathLike[str]") -> Tuple[str, str]:
    """(prefix, "V1" or "V2") of the checkpoint that `checkpoint` names (see `resolve_checkpoint`)."""
    return _resolve(checkpoint)


def _resolve(checkpoint: "str | os.PathLike[str]") -> Tuple[str, str]:
    """(prefix, "V1" or "V2") of the checkpoint that `checkpoint` names."""
    path = os.fspath(checkpoint)
    checkpoint_kinds.refuse_other_kinds(path)
    prefix = _FILE_SUFFIX.sub("", path)
    # The checkpoint's own files first: some file systems (ram://) call every prefix of a file
    # name a directory. A path ending in "/" means the directory (and its state file).
    found = None if path.endswith("/") else _checkpoint_at(prefix)
    if found is not None:
        return found
    if checkpoint_kinds.is_directory(path):
        return _resolve_directory(path)
    incomplete = checkpoint_kinds.missing_data_message(prefix)
    if incomplete:
        raise CheckpointNotFoundError(incomplete)
    for candidate in dict.fromkeys((path, prefix)):
        if checkpoint_kinds.path_exists(candidate) and not checkpoint_kinds.is_directory(candidate):
            raise CheckpointNotFoundError(
                "%s is a file but not a TF1 checkpoint: there is no %s.index beside it (the V2 format), and it "
                "is not a V1 checkpoint file (what Saver(write_version=SaverDef.V1) writes: a table file). Pass a "
                "checkpoint prefix (.../model.ckpt-1000), one of its files, or its directory." % (candidate, prefix))
    directory = os.path.dirname(prefix) or "."
    close = [p for p in difflib.get_close_matches(prefix, _prefixes_in(directory), n=3)
             if not checkpoint_kinds.same_path(p, path)]
    hint = (" Did you mean: %s?" % ", ".join(close)) if close else (
        " Pass a prefix like .../model.ckpt-1000 (the .index and .data-* files' common start) "
        "or a directory with a 'checkpoint' state file.")
    raise CheckpointNotFoundError("Checkpoint %s not found: there is no %s.index.%s" % (path, prefix, hint))


def _checkpoint_at(prefix: str) -> Optional[Tuple[str, str]]:
    """(prefix, format) if a V2 (`prefix.index`) or V1 checkpoint is at `prefix`, else None."""
    if checkpoint_kinds.path_exists(prefix + ".index"):
        return prefix, "V2"
    v1 = checkpoint_kinds.v1_checkpoint(prefix)
    if v1 is None:
        return None
    if v1 != prefix:
        logging.info("Checkpoint %s: using the V1 checkpoint %s (all its shards).", prefix, v1)
    return v1, "V1"


def _same_directory(a: str, b: str) -> bool:
    if file_access.is_local(a) and file_access.is_local(b):  # "/x" and "file:///x" are one place
        return os.path.realpath(file_access.local_path(a)) == os.path.realpath(file_access.local_path(b))
    return checkpoint_kinds.same_path(a, b)


def _resolve_directory(path: str) -> Tuple[str, str]:
    """A directory's checkpoint, as Saver.restore(tf.train.latest_checkpoint(dir)) means it, and
    also when the checkpoint was copied from another machine or has no state file."""
    state = checkpoint_kinds.read_state_file(path)
    found: Optional[List[str]] = None
    if state is not None and state.latest is not None:
        named = state.latest
        if not checkpoint_kinds.is_absolute(named):
            candidates = [(os.path.join(path, named), None)]
        elif _same_directory(os.path.dirname(named), path):
            candidates = [(named, None)]
        else:  # written on another machine or in another directory; the copy here is the one meant
            here = os.path.join(path, checkpoint_kinds.basename(named))
            candidates = [(here, "here"), (named, "there")]
        for candidate, where in candidates:
            hit = _checkpoint_at(candidate)
            if hit is None:
                continue
            if where == "here":
                logging.info("Checkpoint state file %s names %s, a path where the checkpoint was written; using "
                             "%s, the checkpoint of that name in %s.", state.path, named, hit[0], path)
            elif where == "there":
                logging.info("Checkpoint state file %s names %s outside %s; using it.", state.path, named, path)
            return hit
        for candidate, _ in candidates:
            incomplete = checkpoint_kinds.missing_data_message(candidate)
            if incomplete:
                raise CheckpointNotFoundError("The state file %s names %s: %s" % (state.path, named, incomplete))
        problem = "its state file %s names no checkpoint that exists (it names %s%s)" % (
            state.path, named, ", not found in this directory either" if len(candidates) > 1 else "")
    elif state is not None:
        problem = state.problem
    else:
        found = _prefixes_in(path)
        if len(found) == 1:
            hit = _checkpoint_at(found[0])
            if hit is not None:
                logging.info("Checkpoint directory %s has no 'checkpoint' state file; using the only checkpoint "
                             "in it, %s.", path, hit[0])
                return hit
        problem = "it has no 'checkpoint' state file" + (
            " and holds %d checkpoints" % len(found) if found else " and holds no checkpoint")
        metas = [n for n in _listdir(path) if n.endswith(".meta")] if not found else []
        if len(metas) == 1:
            meta = os.path.join(path, metas[0])
            raise CheckpointNotFoundError("No checkpoint found in directory %s, only a MetaGraph: %s" % (
                path, checkpoint_kinds.missing_data_message(meta[:-5])))
        if metas:
            problem += " (only MetaGraph files, %s: their checkpoints' .index and .data-* files are missing)" % (
                ", ".join(sorted(metas, key=checkpoint_kinds.natural_key)[-3:]))
    if found is None:
        found = _prefixes_in(path)
    others = [p for p in found if not checkpoint_kinds.same_path(p, path)]
    if others:
        hint = "pass one of these prefixes instead: %s" % ", ".join(others[-5:])
    else:
        hint = "pass a checkpoint prefix such as %s" % os.path.join(path, "model.ckpt-1000")
    if len(others) < len(found):
        hint += ("; the directory itself is also a checkpoint prefix (its files are named .index and "
                 ".data-*), which the state file does not name: delete or fix the state file to use it")
    raise CheckpointNotFoundError("No checkpoint found in directory %s: %s; %s." % (path, problem, hint))


class CheckpointFile:
    """A resolved checkpoint: its tensors' names, shapes and dtypes, and batched reads.

    `format` is "V2" (an `.index` and `.data-*` files; `index` is the parsed BundleIndex) or
    "V1" (`Saver(write_version=SaverDef.V1)`: one table file per shard, no index; `index` is
    None). `files` lists the checkpoint's files; `verify(names)` and `slices_of(name)` work for
    both formats. Opening a V2 checkpoint parses and checks its `.index` file (every entry's
    shard, offset and size against the data files), so that a damaged checkpoint fails before
    any read; a V1 checkpoint must have all its shards and TensorFlow must open them. A TF2
    object-based checkpoint raises CheckpointNotFoundError saying how to restore it.
    """

    def __init__(self, checkpoint: "str | os.PathLike[str]"):
        self.prefix, self.format = _resolve(checkpoint)
        self.index: Optional[BundleIndex] = None
        self._v1_slices: Optional[Dict[str, list]] = None
        self._v1_reader = None  # a TensorFlow CheckpointReader, opened on the first V1 read
        # key -> [value, reads left]: tensors read and checked by verify_requests, for read() to return
        self._kept: Dict[str, List[Any]] = {}
        if self.format == "V2":
            self.index = read_bundle_index(self.prefix)
            # a name TensorFlow's Python reader cannot decode is not "corruption"
            names = tensor_names(self.index)
            if checkpoint_kinds.is_object_based(names):
                raise CheckpointNotFoundError(checkpoint_kinds.object_based_message(self.prefix))
            self.files: List[str] = [self.prefix + ".index"] + self.index.data_files()
            records = self.index.records
            self.tensors: Dict[str, TensorInfo] = {}
            for name in names:
                record = records[name.encode("utf-8")]
                self.tensors[name] = TensorInfo(record.shape, record.dtype)
            return
        self.files = checkpoint_kinds.v1_shard_files(self.prefix)
        tf = file_access.tensorflow_for("V1 checkpoint %s (Saver(write_version=SaverDef.V1))" % self.prefix)
        try:
            # Not tf.train.load_checkpoint: it treats a path tf.io.gfile calls a directory as one, and
            # ram:// calls every prefix of a file name a directory.
            reader = tf.compat.v1.train.NewCheckpointReader(self.prefix)
            shapes = reader.get_variable_to_shape_map()
            dtypes_by_name = reader.get_variable_to_dtype_map()
        except (tf.errors.OpError, IndexError, ValueError) as e:
            raise CorruptCheckpointError(
                "TensorFlow cannot read checkpoint %s: %s. Copy the checkpoint again from its "
                "source." % (self.prefix, _first_line(e))) from None
        self.tensors = {name: TensorInfo(tuple(shapes[name]), dtypes_by_name[name].as_datatype_enum)
                        for name in sorted(shapes)}

    def __contains__(self, name: str) -> bool:
        return name in self.tensors

    def keys(self) -> List[str]:
        return list(self.tensors)

    def verify(self, names: Iterable[str], batch_bytes: int = DEFAULT_BATCH_BYTES,
               progress: Optional[Progress] = None) -> None:
        """Checks that tensors `names` read back intact; raises CorruptCheckpointError if not.

        V2: the crc32c of each tensor's bytes, against its `.index` entry (`BundleIndex.verify`: local
        files with os.pread through one reused 1 MiB buffer, so that the check runs on cache-hot bytes;
        remote ones through tf.io.gfile). V1 files have no index of checksums; their table
        blocks carry crc32c's that TensorFlow's reader checks as it reads, so each tensor is
        read once here (in batches of at most `batch_bytes`, or one tensor if larger) and
        dropped: what would fail later fails now. `progress(done, total)` gets the bytes checked.
        """
        if self.index is not None:
            self.index.verify(names, progress)
            return
        requests = [ReadRequest(name, "", self.tensors[name].nbytes) for name in sorted(set(names))
                    if self.tensors[name].dtype_enum not in (DT_VARIANT, DT_RESOURCE)]
        total, done = sum(r.nbytes for r in requests), 0
        for batch in batches(requests, batch_bytes):
            self.read(batch)
            done += sum(r.nbytes for r in batch)
            if progress is not None:
                progress(done, total)

    def verify_requests(self, requests: Sequence["ReadRequest"], keep_bytes: int = 0,
                        progress: Optional[Progress] = None) -> None:
        """`verify` of every tensor `requests` read, keeping what was read when it is small enough.

        When the tensors come to at most `keep_bytes` in all (and TensorFlow executes eagerly),
        those that `read` takes straight from a local V2 file are read here into their tensors
        while their crc32c is checked, and kept: `read` then returns them without reading the
        file again, so the bytes are read once. Larger checkpoints are checked here and read
        again by `read` (two passes, with memory bounded by the caller's batches).
        """
        names = sorted({r.key for r in requests})
        total = sum(self.tensors[name].nbytes for name in names)
        if not keep_bytes or total > keep_bytes or not self._reads_directly():
            self.verify(names, progress=progress)
            return
        whole = collections.Counter(r.key for r in requests if self._direct_entry(r) is not None)
        work = list(self.index.data_entries(names))
        total, done = sum(entry.size for _, entry in work), 0
        try:
            with _LocalData(self.index) as data:
                for name, entry in work:
                    if whole[name] and entry is self.index.records.get(name.encode("utf-8")):
                        self._kept[name] = [data.read_tensor(name, entry, self.tensors[name]), whole[name]]
                    else:
                        data.check(name, entry)
                    done += entry.size
                    if progress is not None:
                        progress(done, total)
        except BaseException:
            self._kept.clear()
            raise

    def slice_count(self, name: str) -> int:
        """How many slices a tensor TF1 saved partitioned has; 0 for one saved whole."""
        if self.index is not None:
            record = self.index.records.get(name.encode("utf-8"))
            return len(record.slices) if record is not None else 0
        return len(self.slices_of(name))

    def slices_of(self, name: str) -> list:
        """The slices (TensorSliceProto) of a tensor TF1 saved partitioned; [] for one saved whole."""
        if self.index is not None:
            entry = self.index.entries.get(name.encode("utf-8"))
            return list(entry.slices) if entry is not None else []
        if self._v1_slices is None:
            self._v1_slices = checkpoint_kinds.v1_slices(self.files)
        return list(self._v1_slices.get(name, []))

    def read(self, requests: Sequence["ReadRequest"]) -> List["tf.Tensor"]:
        """Reads the requested tensors (or slices); see `read_each`."""
        return list(self.read_each(requests))

    def read_each(self, requests: Sequence["ReadRequest"]) -> Iterator["tf.Tensor"]:
        """The requested tensors (or slices), in order, each checked against its crc32c.

        Executing eagerly, a whole tensor of 256 KiB or more of a local V2 checkpoint (numeric,
        saved whole, in this machine's byte order) is read with os.pread straight into the memory
        of a new tensor, its crc32c checked on each cache-hot chunk, when its turn comes: a caller
        that assigns each value before taking the next holds one of them at a time. Everything
        else (small tensors, slices, partitioned and string tensors, remote files, graph mode) is
        read with one RestoreV2 call for all of them, first; V1 checkpoints one tensor at a time.
        """
        if not requests:
            return
        if self.index is None:
            yield from [self._read_v1(request) for request in requests]
            return
        directly = self._reads_directly()
        direct = [self._direct_entry(r) if directly else None for r in requests]
        others = [r for r, entry in zip(requests, direct) if entry is None]
        restored = collections.deque(self._restore(others) if others else ())
        data = _LocalData(self.index) if len(others) < len(requests) else None
        try:
            for request, entry in zip(requests, direct):
                if entry is None:
                    yield restored.popleft()
                    continue
                kept = self._kept.get(request.key)
                if kept is not None:
                    kept[1] -= 1
                    if not kept[1]:
                        del self._kept[request.key]
                    yield kept[0]
                    continue
                yield data.read_tensor(request.key, entry, self.tensors[request.key])
        finally:
            if data is not None:
                data.close()

    def _reads_directly(self) -> bool:
        """Whether large whole tensors are read with os.pread into tensors (see `read_each`)."""
        return (self.index is not None and _tf().executing_eagerly() and file_access.is_local(self.prefix)
                and self.index.big_endian == (sys.byteorder == "big"))

    def _direct_entry(self, request: "ReadRequest") -> Optional["Entry"]:
        """The index entry of a request `read_each` reads with os.pread, else None: a whole tensor of
        _IN_PLACE_MIN_BYTES or more (smaller ones cost more in per-tensor overhead than in bytes, and
        one RestoreV2 call reads many of them cheaply)."""
        if request.slice_spec:
            return None
        entry = self.index.records.get(request.key.encode("utf-8"))
        if (entry is None or entry.slices or entry.dtype not in _DIRECT_DTYPES or entry.size < _IN_PLACE_MIN_BYTES
                or any(d >= 1 << 31 for d in entry.shape)):  # tf.raw_ops.Empty takes an int32 shape
            return None
        return entry if _in_place_ok() else None

    def _read_v1(self, request: "ReadRequest") -> "tf.Tensor":
        """A V1 tensor through one CheckpointReader, which opens the table files once: RestoreV2 reopens
        them and parses every tensor's metadata for each tensor it reads (70 ms a tensor on a
        5,000-tensor file). RestoreV2 reads only what that reader refuses: slices, partitioned tensors,
        and float16, complex and uint16 tensors."""
        info = self.tensors[request.key]
        if request.slice_spec or info.dtype_enum not in _CHECKPOINT_READER_DTYPES or self.slices_of(request.key):
            return self._restore([request])[0]
        tf, dtype = _tf(), info.dtype
        try:
            if self._v1_reader is None:
                self._v1_reader = tf.compat.v1.train.NewCheckpointReader(self.prefix)
            return tf.constant(self._v1_reader.get_tensor(request.key), dtype)
        except tf.errors.UnimplementedError:
            return self._restore([request])[0]
        except (tf.errors.OpError, IndexError, ValueError) as e:
            raise CorruptCheckpointError(
                "Reading %s from checkpoint %s failed: %s. The checkpoint's files are damaged (bit rot or a "
                "partial copy); copy the checkpoint again from its source."
                % (request.key, self.prefix, _first_line(e))) from None

    def _restore(self, requests: Sequence["ReadRequest"]) -> List["tf.Tensor"]:
        tf = _tf()
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


# The dtypes whose V1 tensors TensorFlow's CheckpointReader.get_tensor decodes ("Data type not
# supported" for float16, complex and uint16).
_CHECKPOINT_READER_DTYPES = frozenset((DT_FLOAT, DT_DOUBLE, DT_INT8, DT_INT16, DT_INT32, DT_INT64, DT_UINT8,
                                       DT_BOOL, DT_STRING))

# Tensors of these dtypes hold their memory as saved (no encoding): read_each reads them with os.pread.
_DIRECT_DTYPES = frozenset((DT_HALF, DT_BFLOAT16, DT_FLOAT, DT_DOUBLE, DT_INT8, DT_INT16, DT_INT32, DT_INT64,
                            DT_UINT8, DT_UINT16, DT_UINT32, DT_UINT64, DT_BOOL, DT_COMPLEX64, DT_COMPLEX128))
# Whole tensors from this size on are read with os.pread straight into a new tensor's memory; smaller
# ones with RestoreV2, which reads many in one call for less overhead per tensor (11 us vs 40 us).
_IN_PLACE_MIN_BYTES = 256 * 1024
_in_place_works: Optional[bool] = None


def _writable_memory(tensor: "tf.Tensor") -> Optional[np.ndarray]:
    """The memory of a CPU tensor just created by tf.raw_ops.Empty, as a writable flat uint8 array, or None.

    TensorFlow has no public way to fill a new tensor without a copy: `np.asarray(tensor)` shares
    its memory but is read-only. `EagerTensor._numpy()`, which it is made from, is the same memory,
    writable. The tensor is ours alone until it is returned, so nothing sees it change; whether the
    writes reach TensorFlow's buffer is tested once per process (`_in_place_ok`), and each view
    must be a writable view of memory it does not own, else the caller copies instead.
    """
    import numpy as np

    try:
        view = tensor._numpy()  # pylint: disable=protected-access
    except Exception:  # pylint: disable=broad-except
        return None
    if (not isinstance(view, np.ndarray) or not view.flags.writeable or view.flags.owndata
            or not view.flags.c_contiguous):
        return None
    return view.reshape(-1).view(np.uint8)


def _in_place_ok() -> bool:
    """Whether bytes written through `_writable_memory` are what TensorFlow's kernels then read."""
    global _in_place_works
    if _in_place_works is None:
        import numpy as np

        tf = _tf()
        try:
            with tf.device("CPU:0"):
                tensor = tf.raw_ops.Empty(shape=[4096], dtype=tf.int32, init=False)
            memory = _writable_memory(tensor)
            if memory is not None:
                memory.view(np.int32)[:] = np.arange(4096, dtype=np.int32)
                del memory
                with tf.device("CPU:0"):
                    total = int(tf.reduce_sum(tf.cast(tensor, tf.int64)).numpy())
                    ends = tf.gather(tensor, [0, 1, 4095]).numpy().tolist()
                _in_place_works = total == 4095 * 4096 // 2 and ends == [0, 1, 4095]
            else:
                _in_place_works = False
        except Exception:  # pylint: disable=broad-except
            _in_place_works = False
        if not _in_place_works:
            logging.info("keras_legacy_ckpt: reading checkpoint tensors through a copy (this TensorFlow's "
                         "tensors cannot be filled in place).")
    return _in_place_works


class _LocalData(DataFiles):
    """The data files of a local V2 checkpoint, read with os.pread into new tensors."""

    def read_tensor(self, name: str, entry: "Entry", info: "TensorInfo") -> "tf.Tensor":
        """A whole tensor saved unencoded (a _DIRECT_DTYPES entry): its bytes, checked, in a new CPU tensor
        (read into the tensor's own memory; through a numpy array and a copy if it cannot be written)."""
        tf = _tf()
        with tf.device("CPU:0"):
            tensor = tf.raw_ops.Empty(shape=info.shape, dtype=info.dtype, init=False)
        memory = _writable_memory(tensor)
        if memory is not None and memory.nbytes == entry.size:
            self.read_into(name, entry, memory)
            return tensor
        del tensor
        memory = aligned_empty(entry.size)
        self.read_into(name, entry, memory)
        with tf.device("CPU:0"):
            return tf.constant(memory.view(info.dtype.as_numpy_dtype).reshape(info.shape), info.dtype)


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
    return [(name, info.shape, info.dtype_name) for name, info in ckpt.tensors.items()]


def verify_checkpoint(checkpoint: "str | os.PathLike[str]", *, verbose: int = 1,
                      progress: Optional[Progress] = None) -> int:
    """Checks a checkpoint completely: its index and the crc32c of every tensor's bytes.

    Returns the number of tensors checked; raises CorruptCheckpointError naming the file
    and the damage, or CheckpointNotFoundError. Over 256 MiB, verbose=1 draws a progress bar on a
    terminal; `progress(bytes_done, bytes_total)`, if given, is called instead.
    """
    ckpt = CheckpointFile(checkpoint)
    with ProgressBar("verify", verbose) as bar:
        ckpt.verify(ckpt.tensors, progress=progress or bar)
    return len(ckpt.tensors)


def _first_line(error: BaseException) -> str:
    message = getattr(error, "message", None) or str(error) or type(error).__name__
    return message.strip().splitlines()[0] if message.strip() else type(error).__name__


def slice_spec(full_shape: Sequence[int], axis: int, start: int, length: int) -> str:
    dims = " ".join(str(d) for d in full_shape)
    parts = ["%d,%d" % (start, length) if i == axis else "-" for i in range(len(full_shape))]
    return "%s %s" % (dims, ":".join(parts))


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
