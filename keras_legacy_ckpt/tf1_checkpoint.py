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

import codecs
import difflib
import glob
import math
import os
import re
import struct
import sys
import threading
import weakref
from typing import Dict, Iterator, List, Optional, Sequence, Tuple

import google_crc32c
import ml_dtypes
import numpy as np

from keras_legacy_ckpt import file_access
from keras_legacy_ckpt.errors import CheckpointNotFoundError, CorruptCheckpointError, LegacyCheckpointError

__all__ = ["TF1Checkpoint", "open_checkpoint"]

# --- dtypes -------------------------------------------------------------------------------------------

# TensorFlow's DataType enum (types.proto) -> the numpy dtype `tf.as_dtype(enum).as_numpy_dtype` gives.
_STRING, _RESOURCE, _VARIANT = 7, 20, 21
_DTYPE_NAMES = {
    1: "float32", 2: "float64", 3: "int32", 4: "uint8", 5: "int16", 6: "int8", 7: "string", 8: "complex64",
    9: "int64", 10: "bool", 11: "qint8", 12: "quint8", 13: "qint32", 14: "bfloat16", 15: "qint16",
    16: "quint16", 17: "uint16", 18: "complex128", 19: "float16", 20: "resource", 21: "variant", 22: "uint32",
    23: "uint64", 24: "float8_e5m2", 25: "float8_e4m3fn", 26: "float8_e4m3fnuz", 27: "float8_e4m3b11fnuz",
    28: "float8_e5m2fnuz", 29: "int4", 30: "uint4", 31: "int2", 32: "uint2", 33: "float4_e2m1fn",
}


def _numpy_dtypes() -> Dict[int, np.dtype]:
    table = {
        1: np.float32, 2: np.float64, 3: np.int32, 4: np.uint8, 5: np.int16, 6: np.int8, 7: object,
        8: np.complex64, 9: np.int64, 10: np.bool_, 17: np.uint16, 18: np.complex128, 19: np.float16,
        22: np.uint32, 23: np.uint64,
        # TensorFlow's quantized types are these one-field records in numpy.
        11: [("qint8", np.int8)], 12: [("quint8", np.uint8)], 13: [("qint32", np.int32)],
        15: [("qint16", np.int16)], 16: [("quint16", np.uint16)],
    }
    for enum in (14, 24, 25, 26, 27, 28, 29, 30, 31, 32, 33):  # ml_dtypes: bfloat16, float8, int4, ...
        kind = getattr(ml_dtypes, _DTYPE_NAMES[enum], None)
        if kind is not None:
            table[enum] = kind
    return {enum: np.dtype(kind) for enum, kind in table.items()}


_NUMPY_DTYPES = _numpy_dtypes()

# --- the .index file: a table of (key, protobuf) entries -----------------------------------------------

_TABLE_MAGIC = 0xDB4775248B80FB57
_FOOTER_SIZE = 48
_BLOCK_TRAILER_SIZE = 5
_CRC_MASK_DELTA = 0xA282EAD8
_BUNDLE_VERSION = 1  # TensorFlow's kTensorBundleVersion: a header asking for a newer reader is refused
_READ_CHUNK = 1 << 20  # bytes per pread: crc32c and the copy into the array run on cache-hot bytes


class _Corrupt(Exception):
    """Internal: a format problem, raised as CorruptCheckpointError naming the file."""


def _mask(crc: int) -> int:
    return (((crc >> 15) | (crc << 17)) + _CRC_MASK_DELTA) & 0xFFFFFFFF


def _unmask(masked: int) -> int:
    rot = (masked - _CRC_MASK_DELTA) & 0xFFFFFFFF
    return ((rot >> 17) | (rot << 15)) & 0xFFFFFFFF


def _varint(buf, pos: int) -> Tuple[int, int]:
    result = shift = 0
    while True:
        if pos >= len(buf):
            raise _Corrupt("a varint runs past the end of its data")
        byte = buf[pos]
        pos += 1
        result |= (byte & 0x7F) << shift
        if not byte & 0x80:
            return result, pos
        shift += 7
        if shift > 63:
            raise _Corrupt("a varint is longer than 10 bytes")


def _read_block(data: bytes, offset: int, size: int, what: str) -> bytes:
    if offset < 0 or offset + size + _BLOCK_TRAILER_SIZE > len(data) - _FOOTER_SIZE:
        raise _Corrupt("the %s block (offset %d, size %d) lies outside the file (%d bytes): the file is truncated "
                       "or its footer is damaged" % (what, offset, size, len(data)))
    trailer = offset + size
    (stored,) = struct.unpack_from("<I", data, trailer + 1)
    if _mask(google_crc32c.value(data[offset:trailer + 1])) != stored:
        raise _Corrupt("the %s block at offset %d fails its crc32c check" % (what, offset))
    if data[trailer] != 0:
        raise _Corrupt("the %s block uses compression type %d; TensorFlow writes checkpoint indexes "
                       "uncompressed" % (what, data[trailer]))
    return data[offset:trailer]


def _block_entries(block: bytes, what: str) -> Iterator[Tuple[bytes, bytes]]:
    if len(block) < 4:
        raise _Corrupt("the %s block is too short to hold its restart array" % what)
    (restarts,) = struct.unpack_from("<I", block, len(block) - 4)
    limit = len(block) - 4 - 4 * restarts
    if limit < 0:
        raise _Corrupt("the %s block claims %d restart points, more than fit" % (what, restarts))
    pos, key = 0, b""
    while pos < limit:
        shared, pos = _varint(block, pos)
        fresh, pos = _varint(block, pos)
        length, pos = _varint(block, pos)
        if shared > len(key) or pos + fresh + length > limit:
            raise _Corrupt("an entry of the %s block runs past the block's end" % what)
        key = key[:shared] + block[pos:pos + fresh]
        pos += fresh
        yield key, block[pos:pos + length]
        pos += length


def _table_entries(data: bytes) -> Iterator[Tuple[bytes, bytes]]:
    """The (key, value) pairs of a table file, in order, every block's crc32c checked."""
    if len(data) < _FOOTER_SIZE:
        raise _Corrupt("the file has %d bytes, fewer than a table footer's %d" % (len(data), _FOOTER_SIZE))
    footer = data[-_FOOTER_SIZE:]
    if struct.unpack_from("<Q", footer, _FOOTER_SIZE - 8)[0] != _TABLE_MAGIC:
        raise _Corrupt("the footer's magic number is wrong: this is not a checkpoint index, or its end was cut off")
    _, pos = _varint(footer, 0)  # the metaindex handle: TensorFlow leaves the metaindex empty
    _, pos = _varint(footer, pos)
    index_offset, pos = _varint(footer, pos)
    index_size, _ = _varint(footer, pos)
    previous = None
    for _, handle in _block_entries(_read_block(data, index_offset, index_size, "index"), "index"):
        offset, hpos = _varint(handle, 0)
        size, _ = _varint(handle, hpos)
        for key, value in _block_entries(_read_block(data, offset, size, "data"), "data"):
            if previous is not None and key <= previous:
                raise _Corrupt("keys are out of order after %r" % previous[:80])
            previous = key
            yield key, value


# --- protobuf wire format: BundleHeaderProto and BundleEntryProto ---------------------------------------

def _signed64(value: int) -> int:
    return value - (1 << 64) if value >= 1 << 63 else value


def _fields(buf: bytes) -> Iterator[Tuple[int, int, object]]:
    """(field number, wire type, value) of a serialized message: ints for varints and fixed-size fields,
    bytes for length-delimited ones."""
    pos, end = 0, len(buf)
    while pos < end:
        tag = buf[pos]
        if tag < 0x80:
            pos += 1
        else:
            tag, pos = _varint(buf, pos)
        wire = tag & 7
        if wire == 0:
            value = buf[pos] if pos < end else 0x80
            if value < 0x80:
                pos += 1
            else:
                value, pos = _varint(buf, pos)
        elif wire == 2:
            length, pos = _varint(buf, pos)
            if pos + length > end:
                raise _Corrupt("a field runs past the end of its message")
            value = buf[pos:pos + length]
            pos += length
        elif wire == 5:
            if pos + 4 > end:
                raise _Corrupt("a field runs past the end of its message")
            (value,) = struct.unpack_from("<I", buf, pos)
            pos += 4
        elif wire == 1:
            if pos + 8 > end:
                raise _Corrupt("a field runs past the end of its message")
            (value,) = struct.unpack_from("<Q", buf, pos)
            pos += 8
        else:
            raise _Corrupt("wire type %d is not used by checkpoint protos" % wire)
        yield tag >> 3, wire, value


class _Entry:
    """A BundleEntryProto: where a tensor's bytes are and what they hold."""

    __slots__ = ("dtype", "shape", "shard_id", "offset", "size", "crc32c", "slices")

    def __init__(self) -> None:
        self.dtype = 0
        self.shape: Tuple[int, ...] = ()
        self.shard_id = self.offset = self.size = self.crc32c = 0
        # per slice, per dimension: (start, length), length -1 for the whole dimension
        self.slices: List[Tuple[Tuple[int, int], ...]] = []


def _parse_shape(buf: bytes) -> Tuple[int, ...]:
    dims = []
    for field, wire, value in _fields(buf):
        if field == 2 and wire == 2:  # Dim
            size = 0
            for dim_field, dim_wire, dim_value in _fields(value):
                if dim_field == 1 and dim_wire == 0:
                    size = _signed64(dim_value)
            dims.append(size)
        elif field == 3 and wire == 0 and value:
            raise _Corrupt("a tensor's shape has unknown rank")
    return tuple(dims)


def _parse_slice(buf: bytes) -> Tuple[Tuple[int, int], ...]:
    extents = []
    for field, wire, value in _fields(buf):
        if field == 1 and wire == 2:  # Extent: start, and length unless the whole dimension
            start, length = 0, -1
            for extent_field, extent_wire, extent_value in _fields(value):
                if extent_wire == 0 and extent_field == 1:
                    start = _signed64(extent_value)
                elif extent_wire == 0 and extent_field == 2:
                    length = _signed64(extent_value)
            extents.append((start, length))
    return tuple(extents)


def _parse_entry(buf: bytes, shapes: Dict[bytes, Tuple[int, ...]]) -> _Entry:
    """A serialized BundleEntryProto (the hot loop of opening a checkpoint: one call per tensor).
    `shapes` caches parsed TensorShapeProtos by their bytes: checkpoints repeat a few shapes."""
    entry = _Entry()
    pos, end = 0, len(buf)
    while pos < end:
        tag = buf[pos]
        if tag < 0x80:
            pos += 1
        else:
            tag, pos = _varint(buf, pos)
        wire, field = tag & 7, tag >> 3
        if wire == 0:
            value = buf[pos]  # an IndexError here is a truncated entry: the caller reports it
            if value < 0x80:
                pos += 1
            else:
                value, pos = _varint(buf, pos)
            if field == 1:
                entry.dtype = value
            elif field == 3:
                entry.shard_id = _signed64(value)
            elif field == 4:
                entry.offset = _signed64(value)
            elif field == 5:
                entry.size = _signed64(value)
        elif wire == 2:
            length = buf[pos]
            if length < 0x80:
                pos += 1
            else:
                length, pos = _varint(buf, pos)
            stop = pos + length
            if stop > end:
                raise _Corrupt("a field runs past the end of its message")
            if field == 2:
                raw = buf[pos:stop]
                shape = shapes.get(raw)
                if shape is None:
                    shape = shapes[raw] = _parse_shape(raw)
                entry.shape = shape
            elif field == 7:
                entry.slices.append(_parse_slice(buf[pos:stop]))
            pos = stop
        elif wire == 5:
            if pos + 4 > end:
                raise _Corrupt("a field runs past the end of its message")
            if field == 6:
                entry.crc32c = int.from_bytes(buf[pos:pos + 4], "little")
            pos += 4
        elif wire == 1:
            pos += 8
            if pos > end:
                raise _Corrupt("a field runs past the end of its message")
        else:
            raise _Corrupt("wire type %d is not used by checkpoint protos" % wire)
    return entry


def _parse_header(buf: bytes) -> Tuple[int, bool]:
    """(num_shards, big-endian?) of a BundleHeaderProto; refuses a format newer than ours."""
    num_shards, big_endian, min_consumer, bad_consumers = 0, False, 0, []
    for field, wire, value in _fields(buf):
        if field == 1 and wire == 0:
            num_shards = _signed64(value)
        elif field == 2 and wire == 0:
            big_endian = value == 1
        elif field == 3 and wire == 2:  # VersionDef
            for version_field, version_wire, version_value in _fields(value):
                if version_field == 2 and version_wire == 0:
                    min_consumer = _signed64(version_value)
                elif version_field == 3 and version_wire == 0:
                    bad_consumers.append(_signed64(version_value))
                elif version_field == 3 and version_wire == 2:  # packed
                    pos = 0
                    while pos < len(version_value):
                        consumer, pos = _varint(version_value, pos)
                        bad_consumers.append(_signed64(consumer))
    if min_consumer > _BUNDLE_VERSION or _BUNDLE_VERSION in bad_consumers:
        raise LegacyCheckpointError(
            "needs a newer reader: its format version asks for reader version %d or later (this reader is "
            "version %d, TensorFlow's checkpoint format since 2016)" % (min_consumer, _BUNDLE_VERSION))
    return num_shards, big_endian


# --- slice keys (TensorFlow's checkpoint::EncodeTensorNameSlice, strings::OrderedCode) -------------------

_SIGNED_HEADER = ((0, 0), (0x80, 0), (0xC0, 0), (0xE0, 0), (0xF0, 0), (0xF8, 0), (0xFC, 0), (0xFE, 0), (0xFF, 0),
                  (0xFF, 0x80), (0xFF, 0xC0))


def _ordered_unsigned(value: int) -> bytes:
    body = value.to_bytes((value.bit_length() + 7) // 8, "big") if value else b""
    return bytes([len(body)]) + body


def _ordered_signed(value: int) -> bytes:
    magnitude = ~value if value < 0 else value
    if magnitude < 64:
        return bytes([(0x80 ^ value) & 0xFF])
    length = magnitude.bit_length() // 7 + 1  # n bytes hold numbers of up to 7n - 1 bits
    raw = bytearray((value & 0xFFFFFFFFFFFFFFFF).to_bytes(8, "big"))
    raw[:0] = b"\xff\xff" if value < 0 else b"\x00\x00"
    encoded = raw[10 - length:]
    encoded[0] ^= _SIGNED_HEADER[length][0]
    encoded[1] ^= _SIGNED_HEADER[length][1]
    return bytes(encoded)


def _slice_key(name: bytes, extents: Sequence[Tuple[int, int]]) -> bytes:
    """The table key of one saved slice of tensor `name`."""
    escaped = name if b"\x00" not in name and b"\xff" not in name else _escape_name(name)
    parts = [b"\x00", escaped, b"\x00\x01", _ordered_unsigned(len(extents))]
    for start, length in extents:
        parts += [_ordered_signed(start), _ordered_signed(length)]
    return b"".join(parts)


def _escape_name(name: bytes) -> bytes:
    out = bytearray()
    for byte in name:
        if byte == 0:
            out += b"\x00\xff"
        elif byte == 0xFF:
            out += b"\xff\x00"
        else:
            out.append(byte)
    return bytes(out)


# --- strings --------------------------------------------------------------------------------------------

def _decode_strings(raw: bytes, count: int, big_endian: bool) -> Tuple[Optional[List[bytes]], int]:
    """(the `count` strings, crc32c of the bytes as TensorFlow checks it) of a string tensor's data, or
    (None, 0) when the layout itself is broken. The data: `count` varint64 lengths, 4 bytes of masked
    crc32c of the lengths, the bytes. The entry's crc32c covers each length as a uint32 (a uint64 when
    larger) in the writer's byte order, then the 4 checksum bytes and the string bytes."""
    data = np.frombuffer(raw, dtype=np.uint8)
    if count and len(data) >= count and not (data[:count] & 0x80).any():
        lengths = data[:count].astype(np.uint64)  # every length < 128: one byte each (the common case)
        pos = count
    else:
        values, pos = [], 0
        try:
            for _ in range(count):
                length, pos = _varint(raw, pos)
                values.append(length)
        except _Corrupt:
            return None, 0
        lengths = np.array(values, dtype=np.uint64)
    total = int(lengths.sum()) if count else 0
    if len(raw) != pos + 4 + total:
        return None, 0
    order = ">" if big_endian else "<"
    if not count or int(lengths.max()) <= 0xFFFFFFFF:
        crc = google_crc32c.value(lengths.astype(order + "u4").tobytes())
    else:
        crc = 0
        for length in lengths.tolist():
            crc = google_crc32c.extend(crc, struct.pack(order + ("I" if length <= 0xFFFFFFFF else "Q"), length))
    (stored,) = struct.unpack_from(order + "I", raw, pos)
    if _unmask(stored) != crc:
        return None, 0
    crc = google_crc32c.extend(crc, raw[pos:])
    base = pos + 4
    ends = np.cumsum(lengths, dtype=np.uint64)
    strings = [raw[base + start:base + end] for start, end in zip((ends - lengths).tolist(), ends.tolist())]
    return strings, crc


# --- resolving a path without TensorFlow ---------------------------------------------------------------

_FILE_SUFFIX = re.compile(r"\.(index|meta|data-\d{5}-of-\d{5})$")
_STATE_FIELD = re.compile(
    rb"""(?m)^[ \t]*model_checkpoint_path[ \t]*:[ \t]*("(?:[^"\\\n]|\\.)*"|'(?:[^'\\\n]|\\.)*')""")


def _read_state_file(directory: str) -> Optional[Tuple[str, Optional[str]]]:
    """(state file path, model_checkpoint_path or None) of a local directory's `checkpoint` file, or None.

    The file is a text-format CheckpointState; only model_checkpoint_path is needed (the last one wins,
    as in protobuf's text_format.Merge). Its strings are C-escaped, non-ASCII bytes as octal escapes."""
    path = os.path.join(directory, "checkpoint")
    if not os.path.isfile(path):
        return None
    try:
        with open(path, "rb") as f:
            text = f.read()
    except OSError:
        return path, None
    found = _STATE_FIELD.findall(text)
    if not found:
        return path, None
    try:
        value = codecs.escape_decode(found[-1][1:-1])[0]
    except ValueError:
        return path, None
    return path, value.decode("utf-8", "surrogateescape") or None


def _is_absolute(path: str) -> bool:
    return path.startswith(("/", "\\")) or bool(re.match(r"^([a-zA-Z][a-zA-Z0-9+.-]*://|[a-zA-Z]:[\\/])", path))


def _last_component(path: str) -> str:
    return re.split(r"[\\/]", path.rstrip("/\\"))[-1]


def _v2_at(prefix: str) -> bool:
    return os.path.isfile(prefix + ".index")


def _index_prefixes(directory: str) -> List[str]:
    try:
        names = os.listdir(directory)
    except OSError:
        return []
    return sorted(os.path.join(directory, name[:-len(".index")]) for name in names if name.endswith(".index"))


def _directory_checkpoint(directory: str) -> Optional[str]:
    """The V2 checkpoint a local directory means (what checkpoint_reader.resolve_checkpoint finds), or None
    when only TensorFlow's resolution can say what the directory holds or what is wrong with it."""
    from absl import logging  # here: absl's import is a tenth of this module's

    state = _read_state_file(directory)
    if state is not None:
        state_path, named = state
        if named is None:
            return None
        if not _is_absolute(named):
            candidates = [(os.path.join(directory, named), None)]
        elif os.path.realpath(os.path.dirname(named)) == os.path.realpath(directory):
            candidates = [(named, None)]
        else:  # written on another machine or in another directory: the copy here is the one meant
            candidates = [(os.path.join(directory, _last_component(named)), "here"), (named, "there")]
        for candidate, where in candidates:
            if _v2_at(candidate):
                if where == "here":
                    logging.info("Checkpoint state file %s names %s, a path where the checkpoint was written; "
                                 "using %s, the checkpoint of that name in %s.", state_path, named, candidate,
                                 directory)
                elif where == "there":
                    logging.info("Checkpoint state file %s names %s outside %s; using it.", state_path, named,
                                 directory)
                return candidate
        return None
    found = _index_prefixes(directory)
    if len(found) == 1:
        logging.info("Checkpoint directory %s has no 'checkpoint' state file; using the only checkpoint in it, %s.",
                     directory, found[0])
        return found[0]
    return None


def _something_at(path: str, prefix: str) -> bool:
    """Whether any file a checkpoint path could mean exists (a V1 file or shard, a lone .meta, data files
    without their .index, ...): then TensorFlow's resolution is asked, for V1 or for its error message."""
    if os.path.lexists(path) or os.path.lexists(prefix) or os.path.lexists(prefix + ".meta"):
        return True
    escaped = glob.escape(prefix)
    patterns = [escaped + ".data-?????-of-?????", escaped + "-?????-of-?????"]
    if glob.has_magic(path):
        patterns.append(path)  # a V1 shard pattern: "model.ckpt-0-?????-of-00003"
    return any(glob.glob(pattern) for pattern in patterns)


def _not_found(path: str, prefix: str) -> CheckpointNotFoundError:
    directory = os.path.dirname(prefix) or "."
    close = difflib.get_close_matches(prefix, _index_prefixes(directory)[-1000:], n=3)
    hint = (" Did you mean: %s?" % ", ".join(close)) if close else (
        " Pass a prefix like .../model.ckpt-1000 (the .index and .data-* files' common start) "
        "or a directory with a 'checkpoint' state file.")
    return CheckpointNotFoundError("Checkpoint %s not found: there is no %s.index.%s" % (path, prefix, hint))


def _resolve_with_tensorflow(path: str, local_problem: Optional[str]) -> Tuple[str, str]:
    """(prefix, "V2" or "V1") as checkpoint_reader.resolve_checkpoint finds it (every kind of path, every
    file system, its error messages). Raises CheckpointNotFoundError when TensorFlow is not installed."""
    try:
        from keras_legacy_ckpt import checkpoint_reader  # imports TensorFlow
    except ImportError as e:
        raise CheckpointNotFoundError(
            "%s is not a V2 checkpoint this reader can open without TensorFlow (%s), and TensorFlow, which reads "
            "remote file systems and V1 checkpoints and names what else a path is, cannot be imported (%s)."
            % (path, local_problem or "a remote path", e)) from None
    prefix = checkpoint_reader.resolve_checkpoint(path)
    return prefix, ("V2" if file_access.exists(prefix + ".index") else "V1")


def _resolve(path: str) -> Tuple[str, str]:
    """(prefix, "V2" or "V1") of the checkpoint `path` names, without TensorFlow for local V2 checkpoints."""
    if not file_access.is_local(path):
        return _resolve_with_tensorflow(path, None)
    local = file_access.local_path(path)
    prefix = _FILE_SUFFIX.sub("", local)
    if not local.endswith("/") and _v2_at(prefix):
        return prefix, "V2"
    if os.path.isdir(local):
        if any(os.path.exists(os.path.join(local, n)) for n in ("saved_model.pb", "saved_model.pbtxt")):
            raise CheckpointNotFoundError(
                "%s is a SavedModel directory, not a TF1 name-based checkpoint: load it with tf.saved_model.load(%r). "
                "To read the tensors of its variables, open %s." % (local, local,
                                                                    os.path.join(local, "variables", "variables")))
        found = _directory_checkpoint(local)
        if found is not None:
            return found, "V2"
        problem = "a directory without a V2 checkpoint its state file names, or with several and no state file"
    elif _something_at(local, prefix):
        problem = "there is no %s.index" % prefix
    else:
        raise _not_found(path, prefix)
    return _resolve_with_tensorflow(path, problem)


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
        index_path = self.prefix + ".index"
        try:
            data = file_access.read_file(index_path)
        except FileNotFoundError:
            raise CheckpointNotFoundError("Checkpoint %s not found: there is no %s." % (self.prefix,
                                                                                        index_path)) from None
        except OSError as e:
            raise CorruptCheckpointError("Cannot read checkpoint index %s: %s" % (index_path, e)) from None
        entries: Dict[bytes, _Entry] = {}
        shapes: Dict[bytes, Tuple[int, ...]] = {}
        header = None
        try:
            for key, value in _table_entries(data):
                if key == b"":
                    header = _parse_header(value)
                    continue
                try:
                    entries[key] = _parse_entry(value, shapes)
                except (_Corrupt, IndexError, struct.error) as e:
                    raise _Corrupt("the entry of %r is not a valid BundleEntryProto (%s)" % (_describe(key), e))
            if header is None:
                raise _Corrupt("it has no header entry")
            if header[0] <= 0:
                raise _Corrupt("its header says it has %d data shards" % header[0])
        except LegacyCheckpointError as e:
            raise LegacyCheckpointError("Checkpoint %s %s." % (index_path, e)) from None
        except (_Corrupt, IndexError, struct.error) as e:
            raise CorruptCheckpointError(
                "Checkpoint index %s is damaged: %s. Copy the checkpoint again from its source; if you have no "
                "intact copy, the checkpoint cannot be used." % (index_path, e)) from None
        self._num_shards, big_endian = header
        self._swap = big_endian != (sys.byteorder == "big")
        self._big_endian = big_endian
        self.files = [index_path] + [self._data_path(i) for i in range(self._num_shards)]
        slice_keys = set()
        for key, entry in entries.items():
            for extents in entry.slices:
                slice_keys.add(_slice_key(key, extents))
        self._entries = entries
        self._names: Dict[str, bytes] = {
            key.decode("utf-8", "surrogateescape"): key for key in entries if key not in slice_keys}
        self._check_locations()

    def _open_v1(self) -> None:
        import tensorflow as tf

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

    def _check_locations(self) -> None:
        """Every entry's dtype, shape, size and place in its data file must agree, so that a damaged index
        fails at open, naming the file, and no read can allocate or read garbage."""
        sizes: List[Optional[int]] = []
        for shard in range(self._num_shards):
            try:
                sizes.append(file_access.size(self._data_path(shard)))
            except OSError:
                sizes.append(None)
        for key, entry in self._entries.items():
            problem = None
            dtype = _NUMPY_DTYPES.get(entry.dtype)
            if entry.dtype <= 0 or entry.dtype >= 100:
                problem = "has an invalid dtype (%d)" % entry.dtype
            elif entry.shape and min(entry.shape) < 0:
                problem = "has a negative dimension in shape %s" % list(entry.shape)
            elif entry.slices:
                rank = len(entry.shape)
                for extents in entry.slices:
                    if len(extents) != rank:
                        problem = "has slices whose rank differs from its shape %s" % list(entry.shape)
                    elif any(start < 0 or length < -1 or (length >= 0 and start + length > dim)
                             for (start, length), dim in zip(extents, entry.shape)):
                        problem = "has a slice outside its shape %s" % list(entry.shape)
                if problem is None:
                    continue  # a partitioned tensor: its bytes are in its slices' entries
            elif dtype is not None and entry.dtype != _STRING:
                expected = math.prod(entry.shape) * dtype.itemsize
                if expected != entry.size:
                    problem = "says shape %s of %s (%d bytes) but holds %d bytes" % (
                        list(entry.shape), _DTYPE_NAMES[entry.dtype], expected, entry.size)
            if problem:
                raise CorruptCheckpointError(
                    "Checkpoint index %s.index is damaged: the entry of %r %s. Copy the checkpoint again from its "
                    "source." % (self.prefix, _describe(key), problem))
            if not 0 <= entry.shard_id < self._num_shards:
                raise CorruptCheckpointError(
                    "Checkpoint index %s.index is damaged: tensor %r names data shard %d, but the checkpoint has %d "
                    "shard(s). Copy the checkpoint again from its source." % (self.prefix, _describe(key),
                                                                             entry.shard_id, self._num_shards))
            shard_size = sizes[entry.shard_id]
            if shard_size is None:
                raise CorruptCheckpointError("Checkpoint data file %s is missing (tensor %r lives there). Copy every "
                                             "%s.data-* file along with the .index file." % (
                                                 self._data_path(entry.shard_id), _describe(key), self.prefix))
            if entry.offset < 0 or entry.size < 0 or entry.offset + entry.size > shard_size:
                path = self._data_path(entry.shard_id)
                raise CorruptCheckpointError(
                    "Checkpoint data file %s is truncated or does not belong to this index: tensor %r needs bytes "
                    "%d..%d but the file has %d bytes. Copy the checkpoint again from its source."
                    % (path, _describe(key), entry.offset, entry.offset + entry.size, shard_size))

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

    def _damaged(self, what: str, entry: _Entry, detail: str = "fails its crc32c check") -> CorruptCheckpointError:
        return CorruptCheckpointError(
            "Checkpoint data file %s is damaged: tensor %s (bytes %d..%d) %s. Copy the checkpoint again from its "
            "source." % (self._data_path(entry.shard_id), what, entry.offset, entry.offset + entry.size, detail))

    def _read_bytes(self, entry: _Entry, out: Optional[memoryview], what: str) -> Tuple[Optional[bytes], int]:
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

    def _read_entry(self, what: str, entry: _Entry, dtype: np.dtype, out: Optional[np.ndarray] = None) -> np.ndarray:
        """One saved tensor (or slice): into `out` (a C-contiguous array of its shape) or a new array."""
        if entry.dtype == _STRING:
            raw, crc = self._read_bytes(entry, None, what)
            count = math.prod(entry.shape)
            strings, crc = _decode_strings(raw, count, self._big_endian)
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

    def _read_partitioned(self, name: str, key: bytes, entry: _Entry, dtype: np.dtype) -> np.ndarray:
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
