"""`export_safetensors`: a TF1 checkpoint as one `.safetensors` file, streamed one tensor at a time.

```python
import keras_legacy_ckpt as klc

klc.export_safetensors("/old/model.ckpt-1000", "/new/model.safetensors", {"/": "backbone/"},
                       exclude=[r"/Adam(_1)?$", r"^beta[12]_power$", r"^global_step$"])
```

The file is written here, not by `safetensors.numpy.save_file` (which needs every tensor in memory at
once): the names, dtypes and shapes that the mapping, `exclude` and the transforms give are planned first
(`rename.plan_rename`: the same rules as `rename_checkpoint`, slot tensors following their variable's
transform), which fixes every tensor's place in the file, so the header can be written before any data.
Each tensor is then read with `open_checkpoint` (crc32c checked; a partitioned variable comes back whole),
transformed in numpy, and appended. Memory is one tensor (two while it is transposed).

The layout is the one safetensors' own writer makes for the same tensors: an 8-byte little-endian header
length, the header (compact JSON, `__metadata__` first, then the tensors in file order, padded with spaces
to a multiple of 8 bytes), then the data, little-endian, tensors ordered by dtype (8-byte types first, so
every tensor is aligned to its item size) and then by name. For the same tensors and metadata the file is
byte for byte what `safetensors.numpy.save_file` writes.

Everything goes to a temporary file next to the destination (`.<name>.tmp-<host>-<pid>-<random>`), which is
fsynced and renamed into place; on any failure it is removed, so the destination is either absent (or its
old content) or complete. The temporary file of a killed export is removed by the next export to the same
destination on the same machine.
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import os
import re
import struct
import sys
import uuid
from typing import Dict, Iterable, List, Mapping, Optional, Sequence, Tuple

import numpy as np

from keras_legacy_ckpt import file_access
from keras_legacy_ckpt.errors import LegacyCheckpointError
from keras_legacy_ckpt.progress import Progress, ProgressBar
from keras_legacy_ckpt.tf1_checkpoint import TF1Checkpoint, open_checkpoint

__all__ = ["export_safetensors"]


# TensorFlow dtype name -> safetensors dtype, in the order safetensors' writer lays tensors out (its Dtype
# enum, descending): larger item sizes first, so each tensor's offset is a multiple of its item size.
_SAFETENSORS_DTYPES = {
    "uint64": "U64", "int64": "I64", "float64": "F64", "float32": "F32", "uint32": "U32", "int32": "I32",
    "bfloat16": "BF16", "float16": "F16", "uint16": "U16", "int16": "I16", "float8_e4m3fn": "F8_E4M3",
    "float8_e5m2": "F8_E5M2", "int8": "I8", "uint8": "U8", "bool": "BOOL",
}
_LAYOUT_RANK = {name: rank for rank, name in enumerate(_SAFETENSORS_DTYPES)}
_MAX_HEADER = 100_000_000  # safetensors refuses to read a larger header
_V1_SHARDS = re.compile(r"-\?{5}-of-\d{5}$")
_DATA_OR_INDEX = re.compile(r"\.(index|data-\d{5}-of-\d{5})$")


@dataclasses.dataclass(frozen=True)
class _Tensor:
    old: str
    new: str
    dtype: str  # TensorFlow's name
    shape: Tuple[int, ...]
    begin: int
    end: int


@dataclasses.dataclass(frozen=True)
class _Layout:
    header: bytes  # the length prefix, the JSON and its padding
    tensors: List[_Tensor]  # in file order

    @property
    def data_bytes(self) -> int:
        return self.tensors[-1].end if self.tensors else 0


def _transformed_shape(shape: Tuple[int, ...], perm: Optional[Sequence[int]],
                       reshape: Optional[Sequence[int]]) -> Tuple[int, ...]:
    """The shape `rename._transformed` gives a tensor of `shape` (numpy's transpose, then reshape)."""
    if perm is not None:
        shape = tuple(shape[i] for i in perm)
    if reshape is not None:
        dims = [int(d) for d in reshape]
        if -1 in dims:
            known = 1
            for d in dims:
                if d != -1:
                    known *= d
            count = 1
            for d in shape:
                count *= d
            dims[dims.index(-1)] = count // known if known else 0
        shape = tuple(dims)
    return tuple(int(d) for d in shape)


def _unsupported_error(prefix: str, refused: List[Tuple[str, str]]) -> LegacyCheckpointError:
    shown = ", ".join("%r (%s)" % item for item in refused[:20])
    if len(refused) > 20:
        shown += ", ... and %d more" % (len(refused) - 20)
    example = "^%s$" % re.escape(refused[0][0])
    return LegacyCheckpointError(
        "Cannot export checkpoint %s to safetensors: safetensors has no dtype for %d of its tensors: %s. "
        "safetensors holds bool, int and uint of 8-64 bits, float16/32/64, bfloat16 and float8 "
        "(e4m3fn, e5m2); strings, complex and quantized tensors it cannot hold. Leave them out with "
        "exclude=[...] (CLI: --exclude REGEX), e.g. exclude=[%r]. Nothing was written."
        % (prefix, len(refused), shown, example))


def _plan_layout(ckpt: TF1Checkpoint, plan, metadata: Optional[Mapping[str, str]]) -> _Layout:
    """Every exported tensor's dtype, shape and byte range, and the header; raises (naming them all) for
    tensors safetensors cannot hold."""
    refused: List[Tuple[str, str]] = []
    items = []
    for old, new in plan.renames.items():
        dtype = ckpt.dtype_name(old)
        if dtype not in _SAFETENSORS_DTYPES:
            refused.append((old, dtype))
            continue
        if new == "__metadata__":
            raise LegacyCheckpointError(
                "Cannot export tensor %r as %r: that name is the safetensors header's metadata entry. Map it to "
                "another name." % (old, new))
        shape = _transformed_shape(tuple(ckpt.shape(old)), plan.transposes.get(new), plan.reshapes.get(new))
        items.append((_LAYOUT_RANK[dtype], new, old, dtype, shape, ckpt.dtype(old).itemsize))
    if refused:
        raise _unsupported_error(ckpt.prefix, refused)
    items.sort(key=lambda item: (item[0], item[1].encode("utf-8")))  # safetensors: by dtype, then name bytes
    tensors, offset = [], 0
    for _, new, old, dtype, shape, size in items:
        for d in shape:
            size *= d
        tensors.append(_Tensor(old, new, dtype, shape, offset, offset + size))
        offset += size
    header: Dict[str, object] = {}
    if metadata is not None:
        if not isinstance(metadata, Mapping) or not all(isinstance(k, str) and isinstance(v, str)
                                                         for k, v in metadata.items()):
            raise TypeError("metadata must be a dict of str to str (safetensors' __metadata__), got %r." % (metadata,))
        header["__metadata__"] = dict(metadata)
    for t in tensors:
        header[t.new] = {"dtype": _SAFETENSORS_DTYPES[t.dtype], "shape": list(t.shape),
                         "data_offsets": [t.begin, t.end]}
    text = json.dumps(header, separators=(",", ":"), ensure_ascii=False).encode("utf-8")
    text += b" " * (-len(text) % 8)  # as safetensors pads: the data starts 8-byte aligned
    if len(text) > _MAX_HEADER:
        raise LegacyCheckpointError("The safetensors header for %d tensors would be %d bytes; safetensors reads "
                                    "headers of at most %d bytes. Export fewer tensors per file (exclude=[...])."
                                    % (len(tensors), len(text), _MAX_HEADER))
    return _Layout(struct.pack("<Q", len(text)) + text, tensors)


def _little_endian_bytes(array: np.ndarray) -> np.ndarray:
    """The array's elements in C order as little-endian bytes (uint8, 1-D); a copy only when needed."""
    array = np.ascontiguousarray(array)
    if sys.byteorder == "big" and array.dtype.itemsize > 1:
        array = array.view("u%d" % array.dtype.itemsize).byteswap()
    return array.reshape(-1).view(np.uint8)


# --- the destination --------------------------------------------------------------------------------

def _host_tag() -> str:
    from keras_legacy_ckpt.rename import _host_tag as host_tag

    return host_tag()


def _temporary_path(dst: str) -> str:
    """`.<name>.tmp-<host>-<pid>-<random>` next to `dst`: who wrote it, for `_remove_stale_temporaries`."""
    return file_access.join(file_access.dirname(dst), ".%s.tmp-%s-%d-%s" % (
        file_access.basename(dst), _host_tag(), os.getpid(), uuid.uuid4().hex[:8]))


def _remove_stale_temporaries(dst: str) -> None:
    """Deletes the temporary files that a killed export to `dst` on this machine left (their process is
    gone); a running export's file, or another host's, is left alone."""
    from keras_legacy_ckpt.rename import _process_alive

    directory = file_access.dirname(dst)
    pattern = re.compile(r"\.%s\.tmp-([0-9a-f]{8})-(\d+)-[0-9a-f]{8}" % re.escape(file_access.basename(dst)))
    try:
        names = file_access.listdir(directory)
    except OSError:
        return
    for match in filter(None, map(pattern.fullmatch, names)):
        if match.group(1) == _host_tag() and not _process_alive(int(match.group(2))):
            with contextlib.suppress(OSError):
                file_access.remove(file_access.join(directory, match.group(0)))


def _checked_destination(src_prefix: str, dst: str, overwrite: bool) -> str:
    """The file to write: `dst`, or `dst/<source prefix's basename>.safetensors` for a directory."""
    if file_access.isdir(dst) or dst.endswith("/"):
        dst = file_access.join(dst, file_access.basename(_V1_SHARDS.sub("", src_prefix)) + ".safetensors")
    dst = file_access.absolute(dst)
    own = _DATA_OR_INDEX.sub("", dst)
    if file_access.same_file(dst, src_prefix) or (own != dst and file_access.same_file(own, src_prefix)):
        raise LegacyCheckpointError("Refusing to write %s: it is a file of the source checkpoint %s. Choose "
                                    "another destination, e.g. %s.safetensors." % (dst, src_prefix, src_prefix))
    if file_access.exists(dst) and not overwrite:
        raise LegacyCheckpointError("%s already exists; pass overwrite=True (--overwrite) to replace it, or choose "
                                    "another destination." % dst)
    try:
        file_access.makedirs(file_access.dirname(dst))
    except OSError as e:
        raise LegacyCheckpointError("Cannot create the directory of %s: %s. Nothing was written." % (dst, e)) from None
    return dst


def _write(ckpt: TF1Checkpoint, plan, layout: _Layout, dst: str, progress: Optional[Progress]) -> None:
    from keras_legacy_ckpt.rename import _transformed

    _remove_stale_temporaries(dst)
    temporary = _temporary_path(dst)
    writer: Optional[file_access.Writer] = None
    published = False
    try:
        writer = file_access.open_writer(temporary)
        writer.write(layout.header)
        done, total = 0, layout.data_bytes
        for tensor in layout.tensors:
            array = _transformed(plan, tensor.new, ckpt.read(tensor.old))
            data = _little_endian_bytes(array)
            if tuple(array.shape) != tensor.shape or len(data) != tensor.end - tensor.begin:
                raise LegacyCheckpointError(  # the planned header must describe the data exactly
                    "Tensor %r (exported as %r) read as %s %s, but the plan says %s %s; nothing was written."
                    % (tensor.old, tensor.new, array.dtype, tuple(array.shape), tensor.dtype, tensor.shape))
            writer.write(data)
            del array, data
            done += tensor.end - tensor.begin
            if progress is not None:
                progress(done, total)
        closing, writer = writer, None
        closing.close()  # durable (fsync locally) before the rename publishes it
        file_access.replace(temporary, dst)
        published = True
    except OSError as e:
        raise LegacyCheckpointError("Writing %s failed: %s. Nothing was written; check the destination's free "
                                    "space and permissions." % (dst, e)) from None
    finally:
        if writer is not None:
            writer.discard()
        if not published:
            with contextlib.suppress(OSError):
                file_access.remove(temporary)
    try:
        file_access.sync_directory(file_access.dirname(dst))  # the new name survives a power loss
    except OSError as e:
        raise LegacyCheckpointError("%s was written, but its directory could not be synced (%s): after a power "
                                    "loss it may be missing." % (dst, e)) from None


def export_safetensors(src: "str | os.PathLike[str]", dst: "str | os.PathLike[str]", mapping=None, *,
                       exclude: Iterable[str] = (), transpose: Optional[Mapping[str, Sequence[int]]] = None,
                       reshape: Optional[Mapping[str, Sequence[int]]] = None, overwrite: bool = False,
                       metadata: Optional[Mapping[str, str]] = None, verbose: int = 1,
                       progress: Optional[Progress] = None) -> Dict[str, str]:
    """Writes the tensors of TF1 checkpoint `src` to the safetensors file `dst`, one tensor at a time.

    ```python
    klc.export_safetensors("/old/model.ckpt-1000", "/new/model.safetensors", {"/": "backbone/"},
                           exclude=[r"/Adam(_1)?$", r"^beta[12]_power$"])
    safetensors.numpy.load_file("/new/model.safetensors")   # {"backbone/net/hidden/kernel": ..., ...}
    ```

    Args:
        src: a TF1 checkpoint, as everywhere in keras_legacy_ckpt: a prefix, one of its files, or a
            directory; local, file://, or any path tf.io.gfile opens; V2 or V1.
        dst: the file to write (local or remote), or a directory (existing, or ending in "/"), which gets
            `<source prefix's basename>.safetensors`.
        mapping, exclude, transpose, reshape: as for `rename_checkpoint` (the same planner): a dict of names
            or of scopes ending in "/", a list of (regex, replacement) rules or a callable; names it does
            not cover keep their name; None or an `exclude` regex drops a name; `transpose` / `reshape`
            ({regex on the new name: permutation / shape}) also apply to the variable's optimizer slots and
            EMA copy. Partitioned variables are exported whole (one tensor; they cannot be transformed).
        overwrite: replace an existing file at `dst` (atomically: a failed export leaves it as it was).
        metadata: optional `{str: str}` for the header's `__metadata__`.
        verbose: 1 draws a progress bar (on stderr, when it is a terminal) for exports of more than
            256 MiB; 0 never.
        progress: called as `progress(bytes_done, bytes_total)` after each tensor, instead of the bar.

    Returns:
        `{old name: new name}` of every tensor written.

    Raises:
        LegacyCheckpointError: a tensor safetensors has no dtype for (strings, complex, quantized; all of
            them are named, and nothing is written), an existing `dst` without `overwrite`, or a failed
            write (nothing is left at `dst`, no temporary file either). AssignmentMapError for bad
            mappings or transforms, CorruptCheckpointError for a damaged source.
    """
    return dict(_export(src, dst, mapping, exclude=exclude, transpose=transpose, reshape=reshape,
                        overwrite=overwrite, metadata=metadata, verbose=verbose, progress=progress).renames)


@dataclasses.dataclass(frozen=True)
class _Exported:
    """What an export wrote (for the CLI's report)."""

    path: str
    renames: Dict[str, str]
    dropped: List[str]
    file_bytes: int


def _export(src, dst, mapping, *, exclude, transpose, reshape, overwrite, metadata, verbose=1,
            progress=None) -> _Exported:
    from keras_legacy_ckpt.rename import plan_rename

    with open_checkpoint(src) as ckpt, ProgressBar("export", verbose) as bar:
        progress = progress or bar
        plan = plan_rename(ckpt.prefix, mapping, exclude=exclude, transpose=transpose, reshape=reshape)
        layout = _plan_layout(ckpt, plan, metadata)
        target = _checked_destination(ckpt.prefix, os.fspath(dst), overwrite)
        _write(ckpt, plan, layout, target, progress)
    return _Exported(target, dict(plan.renames), list(plan.dropped), len(layout.header) + layout.data_bytes)
