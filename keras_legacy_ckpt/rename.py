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

A V1 source (`Saver(write_version=SaverDef.V1)`: one table file, or `-?????-of-NNNNN` shards)
has no `.index` to rewrite and no raw data shards to share or copy: it is always streamed into a
V2 checkpoint, each tensor (each slice of a partitioned one) read through TensorFlow's V1 reader,
which checks the crc32c of the table blocks it reads, and re-encoded as TensorFlow's V2 writer would
(partitioned tensors stay partitioned, with the same slices).

Source and destination may each be local or on any file system `tf.io.gfile` opens (gs://, s3://,
hdfs://, ram://; see `file_access`). Zero-copy to or from a remote place cannot share the data
shards: they are copied (server-side on one GCS or S3 file system, else streamed in 16 MiB pieces);
only the names and the index change, never a tensor's bytes.

Everything is written under a temporary prefix next to the destination and moved into
place at the end, index last, so a crash never leaves a complete-looking partial output
(on GCS and S3, where a rename is a copy and a delete, the index still comes last).
The temporary names carry the writer's host and pid, so the next rename to the same
destination can delete what a killed one left (it can be as large as the checkpoint).
A `checkpoint` state file is only written when it is ours (see `_record_in_state_file`):
a training run's state file never starts pointing at a renamed copy.
"""

from __future__ import annotations

import dataclasses
import math
import os
import re
import socket
import struct
import sys
import uuid
import zlib
from typing import Callable, Dict, Iterable, List, Mapping, Optional, Sequence, Tuple

import google_crc32c
import numpy as np
from absl import logging
from google.protobuf import text_format

from keras_legacy_ckpt import _tf_protos as tensor_bundle_pb2
from keras_legacy_ckpt import checkpoint_kinds, dtypes, file_access
from keras_legacy_ckpt._tf_protos import DT_STRING, CheckpointState, TensorShapeProto
from keras_legacy_ckpt.assignment_map import NameMapping, compile_patterns, forward_mapper
from keras_legacy_ckpt.bundle_index import (BundleIndex, _mask, data_file_path, encode_index, encode_slice_key,
                                            read_bundle_index, rename_slice_key, slice_key_name, tensor_names)
from keras_legacy_ckpt.checkpoint_reader import CheckpointFile, ReadRequest, resolve_checkpoint
from keras_legacy_ckpt.errors import AssignmentMapError, CorruptCheckpointError, LegacyCheckpointError
from keras_legacy_ckpt.progress import Progress, ProgressBar
from keras_legacy_ckpt.warm_start_plan import resolved_shape

# TF1 saves optimizer slots and tf.train.ExponentialMovingAverage shadows as
# "<variable>/<suffix>", shaped like the variable: they must be transformed with it, or
# a resumed optimizer or EMA would pair transposed weights with untransposed state.
_SLOT_SUFFIXES = ("Adam", "Adam_1", "Momentum", "RMSProp", "RMSProp_1", "Adagrad", "ExponentialMovingAverage")
_STATE_FILE = "checkpoint"
# TF's reader skips "#" comment lines; TF's writers (Saver, CheckpointManager) drop them,
# so a state file a training job has rewritten is no longer ours.
_STATE_FILE_MARK = "# Written by keras_legacy_ckpt.rename_checkpoint; it lists renamed copies only.\n"
_DATA_OR_INDEX = r"\.(index|data-\d{5}-of-\d{5})"
_V1_SHARDS = re.compile(r"-\?{5}-of-\d{5}$")


@dataclasses.dataclass(frozen=True)
class RenamePlan:
    """What a rename will do: kept old -> new names, dropped names, per-tensor transforms.

    `index` is the source's `.index`; for a V1 source (`v1` set), the index a V2 checkpoint of the
    same tensors has, without data locations, and `v1_reads` says how to read each entry's data.
    """

    index: BundleIndex
    renames: Dict[str, str]
    dropped: List[str]
    transposes: Dict[str, Tuple[int, ...]]
    reshapes: Dict[str, Tuple[int, ...]]
    v1: Optional[CheckpointFile] = None
    v1_reads: Dict[bytes, ReadRequest] = dataclasses.field(default_factory=dict)

    @property
    def zero_copy_possible(self) -> bool:
        return self.v1 is None and not (self.dropped or self.transposes or self.reshapes)


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


def _with_slots(rules: Dict[str, Tuple[int, ...]], renames: Dict[str, str],
                sources_of: Dict[str, str]) -> Dict[str, Tuple[int, ...]]:
    """Extends `{new name: value}` rules to each variable's slot and EMA tensors.

    Slots are found by their source names (`<old>/Adam`), so they follow their variable
    whatever the mapping renamed them to; a rule that matches a slot's own name wins.
    """
    inherited: Dict[str, Tuple[int, ...]] = {}
    for new, value in rules.items():
        for suffix in _SLOT_SUFFIXES:
            slot = renames.get(sources_of[new] + "/" + suffix)
            if slot is not None:
                inherited[slot] = value
    return {**inherited, **rules}


def plan_rename(src: "str | os.PathLike[str]", mapping: NameMapping, *, exclude: Iterable[str] = (),
                transpose: Optional[Mapping[str, Sequence[int]]] = None,
                reshape: Optional[Mapping[str, Sequence[int]]] = None) -> RenamePlan:
    """Works out a rename without writing anything; raises for bad mappings and transforms."""
    prefix = resolve_checkpoint(src)
    v1: Optional[CheckpointFile] = None
    v1_reads: Dict[bytes, ReadRequest] = {}
    if file_access.exists(prefix + ".index"):  # what resolve_checkpoint calls a V2 checkpoint
        index = read_bundle_index(prefix)
    else:
        v1 = CheckpointFile(prefix)
        index, v1_reads = _v1_as_bundle(v1)
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
    transposes = _with_slots(_per_tensor_rules(transpose, renames.values(), "transpose"), renames, sources_of)
    reshapes = _with_slots(_per_tensor_rules(reshape, renames.values(), "reshape"), renames, sources_of)
    for new in set(transposes) | set(reshapes):
        resolved = _check_transform(index, sources_of[new], new, transposes.get(new), reshapes.get(new))
        if resolved is not None:
            reshapes[new] = resolved  # -1 resolved
    return RenamePlan(index, renames, dropped, transposes, reshapes, v1, v1_reads)


def _shape_proto(dims: Sequence[int]) -> TensorShapeProto:
    return TensorShapeProto(dim=[TensorShapeProto.Dim(size=d) for d in dims])


def _v1_as_bundle(ckpt: CheckpointFile) -> Tuple[BundleIndex, Dict[bytes, ReadRequest]]:
    """The entries TensorFlow's V2 writer makes for the tensors of V1 checkpoint `ckpt` (no data
    locations yet), and the read of each entry that holds data: a whole tensor, or one slice of a
    partitioned one (whose full-tensor entry lists its slices and holds no data, as in V2)."""
    header = tensor_bundle_pb2.BundleHeaderProto(num_shards=1)
    header.version.producer = 1  # TensorFlow's kTensorBundleVersion
    if sys.byteorder == "big":
        header.endianness = tensor_bundle_pb2.BundleHeaderProto.BIG
    entries: Dict[bytes, tensor_bundle_pb2.BundleEntryProto] = {}
    reads: Dict[bytes, ReadRequest] = {}
    for name, info in ckpt.tensors.items():
        key = name.encode("utf-8")
        dtype = info.dtype_enum
        item = dtypes.itemsize(dtype) or 1  # strings: a rough count, for batching
        entry = tensor_bundle_pb2.BundleEntryProto(dtype=dtype, shape=_shape_proto(info.shape))
        slices = ckpt.slices_of(name)
        entry.slices.extend(slices)
        entries[key] = entry
        if not slices:
            reads[key] = ReadRequest(name, "", info.nbytes)
        for part in slices:
            dims = [e.length if e.HasField("length") else full for e, full in zip(part.extent, info.shape)]
            slice_key = encode_slice_key(name, part)
            entries[slice_key] = tensor_bundle_pb2.BundleEntryProto(dtype=dtype, shape=_shape_proto(dims))
            spec = ":".join("%d,%d" % (e.start, e.length) if e.HasField("length") else "-" for e in part.extent)
            reads[slice_key] = ReadRequest(name, "%s %s" % (" ".join(map(str, info.shape)), spec),
                                           math.prod(dims) * item)
    return BundleIndex(ckpt.prefix, header, entries), reads


def _check_transform(index: BundleIndex, old: str, new: str, perm: Optional[Tuple[int, ...]],
                     shape: Optional[Tuple[int, ...]]) -> Optional[Tuple[int, ...]]:
    """Checks a tensor's transpose and reshape; returns the reshape's shape with a -1 resolved (or None)."""
    entry = index.entries[old.encode("utf-8")]
    dims = [d.size for d in entry.shape.dim]
    if entry.slices:
        raise AssignmentMapError("Tensor %r is partitioned (saved in slices); transposing or reshaping "
                                 "partitioned tensors is not supported." % old)
    if entry.dtype == DT_STRING:
        raise AssignmentMapError("Tensor %r holds strings; only numeric tensors can be transposed or reshaped." % old)
    if perm is not None:
        if sorted(perm) != list(range(len(dims))):
            raise AssignmentMapError("Transpose permutation %r for %r (renamed %r, shape %s) is not a permutation "
                                     "of its %d axes." % (perm, old, new, tuple(dims), len(dims)))
        dims = [dims[i] for i in perm]
    if shape is None:
        return None
    count = math.prod(dims)
    if list(shape).count(-1) > 1 or any(d < -1 for d in shape):
        raise AssignmentMapError("Cannot reshape %r (renamed %r) to %s: a shape has sizes >= 0 and at most one -1."
                                 % (old, new, tuple(shape)))
    resolved = resolved_shape(count, shape)
    if resolved is None:
        raise AssignmentMapError("Cannot reshape %r (renamed %r) of shape %s (%d elements) to %s: the element counts "
                                 "differ." % (old, new, tuple(dims), count, tuple(shape)))
    return resolved


def rename_checkpoint(src: "str | os.PathLike[str]", dst: "str | os.PathLike[str]", mapping: NameMapping, *,
                      dry_run: bool = False, exclude: Iterable[str] = (),
                      transpose: Optional[Mapping[str, Sequence[int]]] = None,
                      reshape: Optional[Mapping[str, Sequence[int]]] = None,
                      mode: str = "auto", overwrite: bool = False, verify: bool = False,
                      verbose: int = 1, progress: Optional[Progress] = None) -> Dict[str, str]:
    """Writes a copy of checkpoint `src` at prefix `dst` with its tensors renamed.

    ```python
    klc.rename_checkpoint("/old/model.ckpt-1000", "/new/model.ckpt", {"/": "backbone/"},
                          exclude=[r"/Adam(_1)?$", r"^beta[12]_power$"])
    ```

    Args:
        src: the source checkpoint (prefix, or a directory with a `checkpoint` state file): a local
            path, a file:// URL, or any path `tf.io.gfile` opens (gs://, s3://, hdfs://, ram://). A V1
            checkpoint (a `model.ckpt` table file, or `model.ckpt-?????-of-00002` shards, named by that
            pattern or by `model.ckpt`) is written as a V2 one.
        dst: the destination prefix, or a directory (existing, or a path ending in "/") to write
            `dst/<basename of the source prefix>` (of a sharded V1 source: without "-?????-of-N");
            local or remote, whatever `src` is. A V1 checkpoint at `dst` counts as an existing
            checkpoint there: replaced (its files removed) only with `overwrite=True`. The
            directory's `checkpoint` state file is made to name the copy only when no training
            run owns it: when it is absent and no other checkpoint is there, or was written by an
            earlier rename. A training run's state file (e.g. in the source's own directory) is
            never changed.
        mapping: a dict of exact names, a dict of scopes ending in "/" (`{"old/": "new/"}`),
            a list of `(regex, replacement)` rules, or a callable `name -> new name or None`.
            Names the mapping does not cover keep their own name; None drops a name.
        dry_run: only work out and return the renames.
        exclude: regexes (`re.search`) of source names to drop.
        transpose: `{regex on the new name: permutation}`, e.g. `{r"kernel$": (1, 0)}`. A rule for a
            variable also applies to its slot and EMA tensors (`<name>/Adam`, `/Adam_1`, `/Momentum`,
            `/RMSProp`, `/RMSProp_1`, `/Adagrad`, `/ExponentialMovingAverage`), whatever their new names.
        reshape: `{regex on the new name: new shape}`, extended to slots like `transpose`.
        mode: "zero_copy" (pure renames only), "stream", or "auto" (zero-copy when possible). Zero-copy
            shares the data shards only between two local paths; to, from or between remote places it
            copies them unchanged (server-side on one GCS or S3 file system, else streamed). A V1
            source is always streamed into a V2 checkpoint ("auto" streams; "zero_copy" raises).
        overwrite: replace an existing checkpoint at `dst`.
        verify: check the crc32c of every tensor that will be written before writing
            (reads all the data once; zero-copy and streaming copies do not decode it). For a
            V1 source: read every such tensor once through TensorFlow's reader, which checks
            the crc32c of each table block it reads.
        verbose: 1 draws a progress bar (on stderr, when it is a terminal) for checks and copies of more
            than 256 MiB; 0 never.
        progress: called as `progress(bytes_done, bytes_total)` while verifying and streaming, instead of
            the bar.

    Returns:
        `{old name: new name}` for every tensor written.
    """
    plan = plan_rename(src, mapping, exclude=exclude, transpose=transpose, reshape=reshape)
    if mode not in ("auto", "zero_copy", "stream"):
        raise ValueError("mode must be 'auto', 'zero_copy' or 'stream', got %r." % mode)
    if mode == "zero_copy" and plan.v1 is not None:
        raise LegacyCheckpointError(
            "Zero-copy mode cannot rename %s: it is a V1 checkpoint (Saver(write_version=SaverDef.V1)), whose "
            "tensors are stored in table files with their names, so there is no .index to rewrite and no data "
            "file to share. Use mode='stream' (or 'auto'): it writes a V2 checkpoint (.index and one .data file)."
            % plan.index.prefix)
    if mode == "zero_copy" and not plan.zero_copy_possible:
        raise AssignmentMapError("Zero-copy mode only renames: this rename also drops or transforms tensors. "
                                 "Use mode='stream' (or 'auto').")
    if dry_run:
        return dict(plan.renames)
    if verify:
        with ProgressBar("rename: crc32c check", verbose) as bar:
            if plan.v1 is not None:
                _verify_v1(plan)
            else:
                plan.index.verify(plan.renames, progress or bar)
    dst_prefix, replaced_v1 = _checked_destination(plan.index.prefix, os.fspath(dst), overwrite)
    writer = _write_zero_copy if mode == "zero_copy" or (mode == "auto" and plan.zero_copy_possible) else _write_streaming
    with ProgressBar("rename", verbose) as bar:
        _write_atomically(dst_prefix, lambda tmp: writer(plan, tmp, progress or bar), replaced_v1)
    return dict(plan.renames)


def _checked_destination(src_prefix: str, dst: str, overwrite: bool) -> Tuple[str, List[str]]:
    """(destination prefix, the files of a V1 checkpoint there that the new checkpoint replaces)."""
    # A sharded V1 source "model.ckpt-3-?????-of-00002" is the checkpoint "model.ckpt-3".
    src_base = _V1_SHARDS.sub("", src_prefix)
    into_directory = file_access.isdir(dst) or dst.endswith("/")
    if into_directory:
        dst = file_access.join(dst, file_access.basename(src_base))  # as `cp SRC DIR/` does
    dst_prefix = file_access.absolute(re.sub(_DATA_OR_INDEX + "$", "", dst))  # file:// -> a plain path
    if file_access.same_file(dst_prefix, src_prefix) or file_access.same_file(dst_prefix, src_base):
        where = " (the destination is the source's own directory)" if into_directory else ""
        raise LegacyCheckpointError("Refusing to write checkpoint %s over its own source%s; choose another "
                                    "destination prefix, e.g. %s_renamed." % (dst_prefix, where, dst_prefix))
    # A V2 checkpoint at a V1 checkpoint's name would take that name over: that is replacing it too.
    replaced_v1 = _v1_files_at(dst_prefix)
    if (file_access.exists(dst_prefix + ".index") or replaced_v1) and not overwrite:
        raise LegacyCheckpointError("Checkpoint %s already exists; pass overwrite=True (--overwrite) to "
                                    "replace it, or choose another destination prefix." % dst_prefix)
    try:
        file_access.makedirs(file_access.dirname(dst_prefix))
    except OSError as e:
        raise LegacyCheckpointError("Cannot create the directory of checkpoint %s: %s. Nothing was written."
                                    % (dst_prefix, e)) from None
    return dst_prefix, replaced_v1


def _v1_files_at(prefix: str) -> List[str]:
    """The files of the V1 checkpoint named `prefix` (a file, or "prefix-?????-of-N" shards), if any."""
    try:
        found = checkpoint_kinds.v1_checkpoint(prefix)
    except LegacyCheckpointError:  # a damaged-looking V1 file is still a checkpoint's file
        return [prefix]
    if found is None:
        return []
    return file_access.glob(found) if _V1_SHARDS.search(found) else [found]


def _write_atomically(dst_prefix: str, write: Callable[[str], BundleIndex], replaced: Sequence[str] = ()) -> None:
    directory = file_access.dirname(dst_prefix)
    _remove_stale_temporaries(dst_prefix)
    tmp_prefix = _temporary_prefix(dst_prefix)
    try:
        written = write(tmp_prefix)
        old_files = _checkpoint_files(dst_prefix)
        if dst_prefix + ".index" in old_files:
            # An old index must never sit next to new data: without an index the destination
            # is simply absent if we are killed before the new index is in place.
            file_access.remove(dst_prefix + ".index")
        new_files = []
        for shard in range(written.num_shards):
            final = data_file_path(dst_prefix, shard, written.num_shards)
            file_access.replace(data_file_path(tmp_prefix, shard, written.num_shards), final)
            new_files.append(final)
        file_access.replace(tmp_prefix + ".index", dst_prefix + ".index")  # last: the checkpoint is now complete
        file_access.sync_directory(directory)
        for stale in (set(old_files) | set(replaced)) - set(new_files) - {dst_prefix + ".index"}:
            file_access.remove(stale)
    except OSError as e:
        raise LegacyCheckpointError("Writing checkpoint %s failed: %s. Nothing was written; check the "
                                    "destination's free space and permissions." % (dst_prefix, e)) from None
    finally:
        for leftover in _checkpoint_files(tmp_prefix):
            try:
                file_access.remove(leftover)
            except OSError:
                pass
    _record_in_state_file(dst_prefix)


def _host_tag() -> str:
    # A hash keeps the name short (NAME_MAX) whatever the host name.
    return "%08x" % zlib.crc32(socket.gethostname().encode("utf-8"))


def _temporary_prefix(dst_prefix: str) -> str:
    """`.<name>.tmp-<host>-<pid>-<random>`: who wrote it, for `_remove_stale_temporaries`."""
    directory, base = file_access.dirname(dst_prefix), file_access.basename(dst_prefix)
    return file_access.join(directory, ".%s.tmp-%s-%d-%s" % (base, _host_tag(), os.getpid(), uuid.uuid4().hex[:8]))


def _temporary_name_pattern(base_pattern: str) -> str:
    """Regex of the files of `_temporary_prefix`es; groups: host, pid."""
    return r"\.%s\.tmp-([0-9a-f]{8})-(\d+)-[0-9a-f]{8}" % base_pattern + _DATA_OR_INDEX


def _remove_stale_temporaries(dst_prefix: str) -> None:
    """Deletes the temporaries a killed rename to `dst_prefix` left behind.

    Only files of a process of this host that no longer runs: a concurrent rename's
    files are in use, and another host's pid (a shared file system) means nothing here.
    """
    directory, base = file_access.dirname(dst_prefix), file_access.basename(dst_prefix)
    for match in _names_matching(directory, _temporary_name_pattern(re.escape(base))):
        if match.group(1) == _host_tag() and not _process_alive(int(match.group(2))):
            try:
                file_access.remove(file_access.join(directory, match.group(0)))
            except OSError:
                pass  # removed by a concurrent rename, or not ours to remove: harmless


def _process_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True  # another user's live process
    return True


def _names_matching(directory: str, pattern: str) -> List["re.Match[str]"]:
    try:
        names = file_access.listdir(directory)
    except OSError:
        return []
    regex = re.compile(pattern)
    return [match for match in map(regex.fullmatch, names) if match]


def _checkpoint_files(prefix: str) -> List[str]:
    directory, base = file_access.dirname(prefix), file_access.basename(prefix)
    return [file_access.join(directory, m.group(0))
            for m in _names_matching(directory, re.escape(base) + _DATA_OR_INDEX)]


def _other_checkpoints(directory: str, prefix: str) -> List[str]:
    """Prefixes of the checkpoints in `directory` other than `prefix` (temporaries aside), V1 files
    and shard patterns included."""
    temporary = re.compile(_temporary_name_pattern(".+"))
    found = [file_access.join(directory, m.group(1)) for m in _names_matching(directory, r"(.+)\.index")
             if file_access.join(directory, m.group(1)) != prefix and not temporary.fullmatch(m.group(0))]
    if found:
        return found
    try:
        names = file_access.listdir(directory)
    except OSError:
        return []
    return checkpoint_kinds.v1_candidates(directory, names)


def _record_in_state_file(prefix: str) -> None:
    """Makes `prefix` the latest checkpoint of its directory's `checkpoint` state file, if that file is ours.

    A state file belongs to the training run of its directory: a TF1 job restarted there
    resumes from the checkpoint it names (`tf.train.latest_checkpoint`). So only these are
    written: a state file that a rename wrote before (it starts with `_STATE_FILE_MARK`;
    a training job's Saver or CheckpointManager rewrites it without the mark, and then it
    is theirs), or a new one in a directory that holds no other checkpoint. Any other state
    file, and the absence of one next to other checkpoints (the source's own directory,
    say), is left as it is: the renamed copy is then loaded by its prefix.
    """
    directory = file_access.dirname(prefix)
    state_path = file_access.join(directory, _STATE_FILE)
    try:
        content = _read_text(state_path)
        owner = _state_owner(directory, prefix, content)
        if owner:
            logging.info("Left the checkpoint state of %s unchanged: %s belongs to a training run, which must not "
                         "resume from the renamed copy. Load the copy by its prefix %s.", directory, owner, prefix)
            return
        paths = [p for p in _listed_checkpoints(directory, content or "") if p != prefix] + [prefix]
        names = [p[len(directory) + 1:] if p.startswith(directory + "/") else p for p in paths]
        state = CheckpointState(model_checkpoint_path=names[-1], all_model_checkpoint_paths=names)
        file_access.atomic_write(state_path, (_STATE_FILE_MARK + text_format.MessageToString(state)).encode("utf-8"))
    except OSError as e:
        raise LegacyCheckpointError("Checkpoint %s was written, but its directory's state file %s could not be "
                                    "updated (%s); load the checkpoint by its prefix." % (prefix, state_path, e)) from None


def _read_text(path: str) -> Optional[str]:
    try:
        return file_access.read_file(path).decode("utf-8", errors="replace")
    except FileNotFoundError:
        return None


def _state_owner(directory: str, prefix: str, state_file: Optional[str]) -> Optional[str]:
    """What shows that a training run owns `directory`'s checkpoint state, or None if it is ours."""
    if state_file is None:
        others = _other_checkpoints(directory, prefix)
        return "its checkpoint %s" % others[0] if others else None
    return None if state_file.startswith(_STATE_FILE_MARK) else "its state file"


def _listed_checkpoints(directory: str, content: str) -> List[str]:
    """The absolute prefixes a state file of ours lists."""
    state = CheckpointState()
    try:
        text_format.Merge(content, state)
    except text_format.ParseError:
        return []  # our own file, damaged: it is rewritten with the new checkpoint alone
    return [file_access.absolute(file_access.join(directory, p)) for p in state.all_model_checkpoint_paths]


def _renamed_key(key: bytes, renames: Dict[str, str]) -> Optional[bytes]:
    sliced = slice_key_name(key)
    if sliced is not None:
        return rename_slice_key(key, renames[sliced]) if sliced in renames else None
    new = renames.get(key.decode("utf-8"))
    return new.encode("utf-8") if new is not None else None


def _write_zero_copy(plan: RenamePlan, tmp_prefix: str, progress: Optional[Progress]) -> BundleIndex:
    index = plan.index
    entries = {_renamed_key(k, plan.renames): e for k, e in index.entries.items()}
    for shard in range(index.num_shards):  # data shards are never modified afterwards: they may be shared
        file_access.share_file(data_file_path(index.prefix, shard, index.num_shards),
                               data_file_path(tmp_prefix, shard, index.num_shards))
    _write_index(tmp_prefix, index.header, entries)
    return BundleIndex(tmp_prefix, index.header, entries)


def _read_checksummed(reader: file_access.Reader, size: int, offset: int) -> Tuple[np.ndarray, int]:
    """`size` bytes at `offset` (fewer only at the end of the file) and their masked crc32c,
    read and hashed a chunk at a time."""
    buffer = np.empty(size, dtype=np.uint8)  # not zero-filled: every byte kept is read
    crc = done = 0
    for chunk in reader.chunks(offset, size):
        buffer[done:done + len(chunk)] = np.frombuffer(chunk, dtype=np.uint8)
        crc = google_crc32c.extend(crc, chunk)
        done += len(chunk)
    return buffer[:done], _mask(crc)


def _write_checksummed(writer: file_access.Writer, data: np.ndarray) -> int:
    """Writes the bytes of `data` (uint8, 1-D) a chunk at a time; returns their masked crc32c."""
    crc = 0
    for start in range(0, len(data), file_access.IO_CHUNK):
        chunk = data[start:start + file_access.IO_CHUNK].tobytes()  # the C crc32c takes bytes, not writable buffers
        crc = google_crc32c.extend(crc, chunk)
        writer.write(chunk)
    return _mask(crc)


def _transformed(plan: RenamePlan, new: str, array: np.ndarray) -> np.ndarray:
    if new in plan.transposes:
        array = np.transpose(array, plan.transposes[new])
    if new in plan.reshapes:
        array = array.reshape(plan.reshapes[new])
    return array


def _transformed_bytes(plan: RenamePlan, reader: file_access.Reader, old: str, new: str,
                       entry: tensor_bundle_pb2.BundleEntryProto) -> Tuple[np.ndarray, List[int]]:
    """The transformed tensor's bytes (uint8, 1-D) and shape; memory: the source bytes, plus a copy
    when transposed."""
    raw, crc = _read_checksummed(reader, entry.size, entry.offset)
    if len(raw) != entry.size or crc != entry.crc32c:
        raise CorruptCheckpointError("Tensor %r in checkpoint %s fails its crc32c check: the data file is "
                                     "damaged. Copy the checkpoint again from its source." % (old, plan.index.prefix))
    array = raw.view(dtypes.NUMPY[entry.dtype].newbyteorder("<")).reshape([d.size for d in entry.shape.dim])
    array = _transformed(plan, new, array)
    return np.ascontiguousarray(array).reshape(-1).view(np.uint8), list(array.shape)


class _V1Reader:
    """Reads the tensors of a V1 checkpoint one at a time (a partitioned one a slice at a time),
    through CheckpointFile.read; TensorFlow checks the crc32c of every table block it reads."""

    def __init__(self, plan: RenamePlan) -> None:
        self.plan = plan

    def read(self, key: bytes) -> np.ndarray:
        return np.asarray(self.plan.v1.read([self.plan.v1_reads[key]])[0].numpy())


def _verify_v1(plan: RenamePlan) -> None:
    """Reads every tensor (or slice) that the rename writes once, dropping each: TensorFlow checks the
    crc32c of every table block it reads, so what would fail while writing fails before."""
    reader = _V1Reader(plan)
    for key in sorted(plan.v1_reads):
        if _renamed_key(key, plan.renames) is not None:
            reader.read(key)


def _string_tensor_crc(writer: file_access.Writer, values: np.ndarray) -> Tuple[int, int]:
    """Writes a string tensor as TensorFlow's V2 writer does: the lengths as varints, a masked crc32c
    of the lengths, then the bytes. Returns (size, masked crc32c); the crc32c covers each length as a
    little-endian uint32 (uint64 if larger), the length checksum, then the bytes."""
    items = [bytes(v) for v in values.reshape(-1)]
    lengths = bytearray()
    crc = 0
    for item in items:
        n = len(item)
        while n >= 0x80:
            lengths.append((n & 0x7F) | 0x80)
            n >>= 7
        lengths.append(n)
        crc = google_crc32c.extend(crc, struct.pack("<I" if len(item) <= 0xFFFFFFFF else "<Q", len(item)))
    checksum = struct.pack("<I", _mask(crc))
    crc = google_crc32c.extend(crc, checksum)
    writer.write(bytes(lengths) + checksum)
    size = len(lengths) + len(checksum)
    pending: List[bytes] = []
    pending_size = 0
    for item in items + [None]:
        if item is None or pending_size + len(item) > file_access.IO_CHUNK:
            chunk = b"".join(pending)
            crc = google_crc32c.extend(crc, chunk)
            writer.write(chunk)
            size += len(chunk)
            pending, pending_size = [], 0
        if item is not None:
            pending.append(item)
            pending_size += len(item)
    return size, _mask(crc)


def _write_v1_tensor(plan: RenamePlan, reader: _V1Reader, out: file_access.Writer, key: bytes,
                     new_name: Optional[str], entry: tensor_bundle_pb2.BundleEntryProto) -> None:
    """Writes one V1 tensor (or slice) at the end of `out` and fills `entry`'s size, crc32c and shape."""
    array = reader.read(key)
    if entry.dtype == DT_STRING:
        entry.size, entry.crc32c = _string_tensor_crc(out, array)
        return
    array = _transformed(plan, new_name, array)
    data = np.ascontiguousarray(array).reshape(-1).view(np.uint8)
    entry.crc32c = _write_checksummed(out, data)
    entry.size = len(data)
    entry.shape.CopyFrom(_shape_proto(array.shape))


def _source_bytes(plan: RenamePlan, key: bytes) -> int:
    return plan.v1_reads[key].nbytes if plan.v1 is not None else plan.index.entries[key].size


def _write_streaming(plan: RenamePlan, tmp_prefix: str, progress: Optional[Progress]) -> BundleIndex:
    index = plan.index
    header = tensor_bundle_pb2.BundleHeaderProto()
    header.CopyFrom(index.header)
    header.num_shards = 1
    work = sorted((new_key, key) for key, new_key in
                  ((k, _renamed_key(k, plan.renames)) for k in index.entries) if new_key is not None)
    total = sum(_source_bytes(plan, k) for _, k in work if not index.entries[k].slices)
    entries: Dict[bytes, tensor_bundle_pb2.BundleEntryProto] = {}
    sources: List[file_access.Reader] = []
    v1_reader = _V1Reader(plan) if plan.v1 is not None else None
    out = None
    try:
        if v1_reader is None:
            sources.extend(file_access.open_reader(p) for p in index.data_files())
        out = file_access.open_writer(data_file_path(tmp_prefix, 0, 1))
        offset = done = 0
        for new_key, key in work:
            entry = tensor_bundle_pb2.BundleEntryProto()
            entry.CopyFrom(index.entries[key])
            if entry.slices and entry.size == 0:
                entries[new_key] = entry  # the full-tensor entry of a partitioned tensor holds no data
                continue
            new_name = new_key.decode("utf-8") if slice_key_name(new_key) is None else None
            if v1_reader is not None:
                _write_v1_tensor(plan, v1_reader, out, key, new_name, entry)
            elif new_name in plan.transposes or new_name in plan.reshapes:
                data, shape = _transformed_bytes(plan, sources[entry.shard_id], key.decode("utf-8"), new_name, entry)
                entry.crc32c = _write_checksummed(out, data)
                entry.shape.CopyFrom(_shape_proto(shape))
                entry.size = len(data)
            else:
                file_access.copy_range(sources[entry.shard_id], out, entry.offset, entry.size)
            entry.shard_id = 0
            entry.offset = offset
            offset += entry.size
            entries[new_key] = entry
            done += _source_bytes(plan, key)
            if progress is not None:
                progress(done, total)
        out.close()  # durable (fsync) before the index that makes it visible
        out = None
    finally:
        if out is not None:
            out.discard()
        for reader in sources:
            reader.close()
    _write_index(tmp_prefix, header, entries)
    return BundleIndex(tmp_prefix, header, entries)


def _write_index(prefix: str, header, entries) -> None:
    file_access.write_file(prefix + ".index", encode_index(header, entries))
