"""`rename_checkpoint`: rename, drop, transpose or reshape the tensors of a TF1 checkpoint.

The migration guide's recipe (read every tensor, make a `tf.Variable` for each in a graph,
save with a Saver) holds the whole checkpoint in memory several times and cannot write a
graph over 2 GB. Here the data is never decoded unless a tensor is transformed:

* zero-copy mode (pure renames): a new `.index` file is written and the data shards are
  shared by hard link (or reflink, or copied when neither works). Its time does not
  depend on the checkpoint's size.
* streaming mode (drops, transposes, reshapes): one new data shard is written tensor by
  tensor, with untransformed bytes copied by the kernel (`os.copy_file_range`) and each
  transformed tensor decoded, changed and re-checksummed on its own. Memory stays within
  a small multiple of the largest tensor.

Everything is written under a temporary prefix next to the destination and moved into
place at the end, index last, so a crash never leaves a complete-looking partial output.
"""

from __future__ import annotations

import dataclasses
import fcntl
import os
import re
import shutil
import uuid
from typing import Callable, Dict, Iterable, List, Mapping, Optional, Sequence, Tuple

import numpy as np
import tensorflow as tf
from tensorflow.core.framework import tensor_shape_pb2
from tensorflow.core.protobuf import tensor_bundle_pb2
from tensorflow.python.checkpoint import checkpoint_management

from keras_legacy_ckpt.assignment_map import NameMapping, compile_patterns, forward_mapper
from keras_legacy_ckpt.bundle_index import (BundleIndex, data_file_path, encode_index, masked_crc32c,
                                            read_bundle_index, rename_slice_key, slice_key_name, tensor_names)
from keras_legacy_ckpt.checkpoint_reader import resolve_checkpoint
from keras_legacy_ckpt.errors import AssignmentMapError, CorruptCheckpointError, LegacyCheckpointError

Progress = Callable[[int, int], None]
_FICLONE = 0x40049409
_COPY_CHUNK = 64 * 1024 * 1024


@dataclasses.dataclass(frozen=True)
class RenamePlan:
    """What a rename will do: kept old -> new names, dropped names, per-tensor transforms."""

    index: BundleIndex
    renames: Dict[str, str]
    dropped: List[str]
    transposes: Dict[str, Tuple[int, ...]]
    reshapes: Dict[str, Tuple[int, ...]]

    @property
    def zero_copy_possible(self) -> bool:
        return not (self.dropped or self.transposes or self.reshapes)


def _per_tensor_rules(rules: Optional[Mapping[str, Sequence[int]]], names: Iterable[str],
                      what: str) -> Dict[str, Tuple[int, ...]]:
    """{regex on the new name: value} -> {new name: value} for the names a regex matches."""
    found: Dict[str, Tuple[int, ...]] = {}
    for pattern, value in (rules or {}).items():
        regex = compile_patterns([pattern], what)[0]
        for name in names:
            if regex.search(name):
                found[name] = tuple(int(v) for v in value)
    return found


def plan_rename(src: "str | os.PathLike[str]", mapping: NameMapping, *, exclude: Iterable[str] = (),
                transpose: Optional[Mapping[str, Sequence[int]]] = None,
                reshape: Optional[Mapping[str, Sequence[int]]] = None) -> RenamePlan:
    """Works out a rename without writing anything; raises for bad mappings and transforms."""
    index = read_bundle_index(resolve_checkpoint(src))
    rename = forward_mapper(mapping)
    excluded = compile_patterns(exclude, "exclude")
    renames: Dict[str, str] = {}
    dropped: List[str] = []
    sources_of: Dict[str, str] = {}
    for old in tensor_names(index):
        new = None if any(p.search(old) for p in excluded) else rename(old)
        if new is None:
            dropped.append(old)
            continue
        if not new or new.startswith("\x00"):
            raise AssignmentMapError("The mapping renames %r to the invalid name %r." % (old, new))
        if new in sources_of:
            raise AssignmentMapError(
                "The mapping renames both %r and %r to %r; a checkpoint holds one tensor per name. "
                "Drop one of them (exclude=[...] or map it to None) or give it another name."
                % (sources_of[new], old, new))
        sources_of[new] = old
        renames[old] = new
    transposes = _per_tensor_rules(transpose, renames.values(), "transpose")
    reshapes = _per_tensor_rules(reshape, renames.values(), "reshape")
    for new in set(transposes) | set(reshapes):
        _check_transform(index, sources_of[new], new, transposes.get(new), reshapes.get(new))
    return RenamePlan(index, renames, dropped, transposes, reshapes)


def _check_transform(index: BundleIndex, old: str, new: str, perm: Optional[Tuple[int, ...]],
                     shape: Optional[Tuple[int, ...]]) -> None:
    entry = index.entries[old.encode("utf-8")]
    dims = [d.size for d in entry.shape.dim]
    if entry.slices:
        raise AssignmentMapError("Tensor %r is partitioned (saved in slices); transposing or reshaping "
                                 "partitioned tensors is not supported." % old)
    if entry.dtype == tf.string.as_datatype_enum:
        raise AssignmentMapError("Tensor %r holds strings; only numeric tensors can be transposed or reshaped." % old)
    if perm is not None:
        if sorted(perm) != list(range(len(dims))):
            raise AssignmentMapError("Transpose permutation %r for %r (renamed %r, shape %s) is not a permutation "
                                     "of its %d axes." % (perm, old, new, tuple(dims), len(dims)))
        dims = [dims[i] for i in perm]
    if shape is not None and int(np.prod(shape, dtype=np.int64)) != int(np.prod(dims, dtype=np.int64)):
        raise AssignmentMapError("Cannot reshape %r (renamed %r) of shape %s to %s: the element counts differ."
                                 % (old, new, tuple(dims), tuple(shape)))


def rename_checkpoint(src: "str | os.PathLike[str]", dst: "str | os.PathLike[str]", mapping: NameMapping, *,
                      dry_run: bool = False, exclude: Iterable[str] = (),
                      transpose: Optional[Mapping[str, Sequence[int]]] = None,
                      reshape: Optional[Mapping[str, Sequence[int]]] = None,
                      mode: str = "auto", overwrite: bool = False, verify: bool = False,
                      progress: Optional[Progress] = None) -> Dict[str, str]:
    """Writes a copy of checkpoint `src` at prefix `dst` with its tensors renamed.

    ```python
    klc.rename_checkpoint("/old/model.ckpt-1000", "/new/model.ckpt", {"/": "backbone/"},
                          exclude=[r"/Adam(_1)?$", r"^beta[12]_power$"])
    ```

    Args:
        src: the source checkpoint (prefix, or a directory with a `checkpoint` state file).
        dst: the destination prefix; a `checkpoint` state file is written next to it.
        mapping: a dict of exact names, a dict of scopes ending in "/" (`{"old/": "new/"}`),
            a list of `(regex, replacement)` rules, or a callable `name -> new name or None`.
            Names the mapping does not cover keep their own name; None drops a name.
        dry_run: only work out and return the renames.
        exclude: regexes (`re.search`) of source names to drop.
        transpose: `{regex on the new name: permutation}`, e.g. `{r"kernel$": (1, 0)}`.
        reshape: `{regex on the new name: new shape}`.
        mode: "zero_copy" (pure renames only), "stream", or "auto" (zero-copy when possible).
        overwrite: replace an existing checkpoint at `dst`.
        verify: check the crc32c of every tensor that will be written before writing
            (reads all the data once; zero-copy and streaming copies do not decode it).
        progress: called as `progress(bytes_done, bytes_total)` while streaming.

    Returns:
        `{old name: new name}` for every tensor written.
    """
    plan = plan_rename(src, mapping, exclude=exclude, transpose=transpose, reshape=reshape)
    if mode not in ("auto", "zero_copy", "stream"):
        raise ValueError("mode must be 'auto', 'zero_copy' or 'stream', got %r." % mode)
    if mode == "zero_copy" and not plan.zero_copy_possible:
        raise AssignmentMapError("Zero-copy mode only renames: this rename also drops or transforms tensors. "
                                 "Use mode='stream' (or 'auto').")
    if dry_run:
        return dict(plan.renames)
    if verify:
        plan.index.verify(plan.renames)
    dst_prefix = _checked_destination(plan.index.prefix, os.fspath(dst), overwrite)
    writer = _write_zero_copy if mode == "zero_copy" or (mode == "auto" and plan.zero_copy_possible) else _write_streaming
    _write_atomically(dst_prefix, lambda tmp: writer(plan, tmp, progress))
    return dict(plan.renames)


def _checked_destination(src_prefix: str, dst: str, overwrite: bool) -> str:
    dst_prefix = os.path.abspath(re.sub(r"\.(index|data-\d{5}-of-\d{5})$", "", dst))
    if os.path.realpath(dst_prefix) == os.path.realpath(src_prefix):
        raise LegacyCheckpointError("Refusing to write checkpoint %s over its own source; choose another "
                                    "destination prefix." % dst_prefix)
    if os.path.exists(dst_prefix + ".index") and not overwrite:
        raise LegacyCheckpointError("Checkpoint %s already exists; pass overwrite=True (--overwrite) to "
                                    "replace it, or choose another destination prefix." % dst_prefix)
    os.makedirs(os.path.dirname(dst_prefix), exist_ok=True)
    return dst_prefix


def _write_atomically(dst_prefix: str, write: Callable[[str], BundleIndex]) -> None:
    directory = os.path.dirname(dst_prefix)
    tmp_prefix = os.path.join(directory, ".%s.tmp-%s" % (os.path.basename(dst_prefix), uuid.uuid4().hex[:12]))
    try:
        written = write(tmp_prefix)
        old_files = _checkpoint_files(dst_prefix)
        if dst_prefix + ".index" in old_files:
            # An old index must never sit next to new data: without an index the destination
            # is simply absent if we are killed before the new index is in place.
            os.remove(dst_prefix + ".index")
        new_files = []
        for shard in range(written.num_shards):
            final = data_file_path(dst_prefix, shard, written.num_shards)
            os.replace(data_file_path(tmp_prefix, shard, written.num_shards), final)
            new_files.append(final)
        os.replace(tmp_prefix + ".index", dst_prefix + ".index")  # last: the checkpoint is now complete
        _fsync_directory(directory)
        for stale in set(old_files) - set(new_files) - {dst_prefix + ".index"}:
            os.remove(stale)
    except OSError as e:
        raise LegacyCheckpointError("Writing checkpoint %s failed: %s. Nothing was written; check the "
                                    "destination's free space and permissions." % (dst_prefix, e)) from None
    finally:
        for leftover in _checkpoint_files(tmp_prefix):
            try:
                os.remove(leftover)
            except OSError:
                pass
    _add_to_state_file(dst_prefix)


def _fsync_directory(directory: str) -> None:
    """Makes the renames durable (a power loss must not bring the old names back)."""
    fd = os.open(directory, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _checkpoint_files(prefix: str) -> List[str]:
    directory, base = os.path.split(prefix)
    try:
        names = os.listdir(directory)
    except OSError:
        return []
    pattern = re.compile(re.escape(base) + r"\.(index|data-\d{5}-of-\d{5})$")
    return [os.path.join(directory, n) for n in names if pattern.match(n)]


def _add_to_state_file(prefix: str) -> None:
    directory = os.path.dirname(prefix)
    state = tf.train.get_checkpoint_state(directory)
    paths = list(state.all_model_checkpoint_paths) if state else []
    paths = [p for p in paths if os.path.abspath(os.path.join(directory, p)) != prefix] + [prefix]
    # The non-deprecated spelling of tf.compat.v1.train.update_checkpoint_state (atomic write).
    checkpoint_management.update_checkpoint_state_internal(
        directory, prefix, all_model_checkpoint_paths=paths, save_relative_paths=True)


def _renamed_key(key: bytes, renames: Dict[str, str]) -> Optional[bytes]:
    sliced = slice_key_name(key)
    if sliced is not None:
        return rename_slice_key(key, renames[sliced]) if sliced in renames else None
    new = renames.get(key.decode("utf-8"))
    return new.encode("utf-8") if new is not None else None


def _share_file(src: str, dst: str) -> None:
    """Hard link, else reflink, else copy: the data shards are never modified afterwards."""
    try:
        os.link(src, dst)
        return
    except OSError:
        pass
    with open(src, "rb") as fin, open(dst, "wb") as fout:
        try:
            fcntl.ioctl(fout.fileno(), _FICLONE, fin.fileno())
            return
        except OSError:
            pass
    shutil.copyfile(src, dst)


def _write_zero_copy(plan: RenamePlan, tmp_prefix: str, progress: Optional[Progress]) -> BundleIndex:
    index = plan.index
    entries = {_renamed_key(k, plan.renames): e for k, e in index.entries.items()}
    for shard in range(index.num_shards):
        _share_file(data_file_path(index.prefix, shard, index.num_shards),
                    data_file_path(tmp_prefix, shard, index.num_shards))
    _write_index(tmp_prefix, index.header, entries)
    return BundleIndex(tmp_prefix, index.header, entries)


def _copy_range(src_fd: int, dst_fd: int, offset: int, size: int) -> None:
    done = 0
    while done < size:
        count = min(_COPY_CHUNK, size - done)
        try:
            copied = os.copy_file_range(src_fd, dst_fd, count, offset + done)
        except OSError:
            copied = os.write(dst_fd, os.pread(src_fd, count, offset + done))
        if copied <= 0:
            raise CorruptCheckpointError("Unexpected end of checkpoint data at offset %d." % (offset + done))
        done += copied


def _transformed_bytes(plan: RenamePlan, src_fd: int, old: str, new: str,
                       entry: tensor_bundle_pb2.BundleEntryProto) -> Tuple[bytes, List[int]]:
    raw = os.pread(src_fd, entry.size, entry.offset)
    if len(raw) != entry.size or masked_crc32c(raw) != entry.crc32c:
        raise CorruptCheckpointError("Tensor %r in checkpoint %s fails its crc32c check: the data file is "
                                     "damaged. Copy the checkpoint again from its source." % (old, plan.index.prefix))
    dtype = tf.dtypes.as_dtype(entry.dtype).as_numpy_dtype
    array = np.frombuffer(raw, dtype=np.dtype(dtype).newbyteorder("<")).reshape([d.size for d in entry.shape.dim])
    if new in plan.transposes:
        array = np.transpose(array, plan.transposes[new])
    if new in plan.reshapes:
        array = array.reshape(plan.reshapes[new])
    return np.ascontiguousarray(array).tobytes(), list(array.shape)


def _write_streaming(plan: RenamePlan, tmp_prefix: str, progress: Optional[Progress]) -> BundleIndex:
    index = plan.index
    header = tensor_bundle_pb2.BundleHeaderProto()
    header.CopyFrom(index.header)
    header.num_shards = 1
    work = sorted((new_key, key) for key, new_key in
                  ((k, _renamed_key(k, plan.renames)) for k in index.entries) if new_key is not None)
    total = sum(index.entries[k].size for _, k in work)
    entries: Dict[bytes, tensor_bundle_pb2.BundleEntryProto] = {}
    sources = [os.open(p, os.O_RDONLY) for p in index.data_files()]
    out_fd = os.open(data_file_path(tmp_prefix, 0, 1), os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
    try:
        offset = done = 0
        for new_key, key in work:
            entry = tensor_bundle_pb2.BundleEntryProto()
            entry.CopyFrom(index.entries[key])
            if entry.slices and entry.size == 0:
                entries[new_key] = entry  # the full-tensor entry of a partitioned tensor holds no data
                continue
            new_name = new_key.decode("utf-8") if slice_key_name(new_key) is None else None
            if new_name in plan.transposes or new_name in plan.reshapes:
                data, shape = _transformed_bytes(plan, sources[entry.shard_id], key.decode("utf-8"), new_name, entry)
                os.write(out_fd, data)
                entry.shape.CopyFrom(tensor_shape_pb2.TensorShapeProto(
                    dim=[tensor_shape_pb2.TensorShapeProto.Dim(size=d) for d in shape]))
                entry.crc32c = masked_crc32c(data)
                entry.size = len(data)
            else:
                _copy_range(sources[entry.shard_id], out_fd, entry.offset, entry.size)
            entry.shard_id = 0
            entry.offset = offset
            offset += entry.size
            entries[new_key] = entry
            done += index.entries[key].size
            if progress is not None:
                progress(done, total)
        os.fsync(out_fd)
    finally:
        os.close(out_fd)
        for fd in sources:
            os.close(fd)
    _write_index(tmp_prefix, header, entries)
    return BundleIndex(tmp_prefix, header, entries)


def _write_index(prefix: str, header, entries) -> None:
    with open(prefix + ".index", "wb") as f:
        f.write(encode_index(header, entries))
        f.flush()
        os.fsync(f.fileno())
