"""Reads and checks the `.index` file of a TF2/TF1 V2 checkpoint (a "tensor bundle").

TensorFlow's own reader answers damaged files with bare `IndexError`s or generic
`OpError`s that do not say which file is broken. Parsing the index ourselves lets us
check every entry's shard, offset and size against the data files *before* anything
is read or assigned, and name the file and the problem when something is wrong.

The `.index` file is a LevelDB-style sorted table (TensorFlow's `core/lib/io/table`):
data blocks of prefix-compressed key/value entries, an index block pointing at them,
and a 48-byte footer ending in a magic number. Key "" holds a `BundleHeaderProto`;
every other key holds a `BundleEntryProto` (dtype, shape, shard, offset, size, crc32c).

Files are read through `file_access`: local paths (and file:// URLs) with `os.pread`, any other
scheme (gs://, ram://, ...) through `tf.io.gfile`.
"""

from __future__ import annotations

import dataclasses
import math
import struct
from typing import Dict, Iterable, Iterator, List, Optional, Tuple

import google_crc32c
from tensorflow.core.framework import types_pb2
from tensorflow.python.framework import dtypes as tf_dtypes
from tensorflow.core.protobuf import tensor_bundle_pb2

from keras_legacy_ckpt import file_access
from keras_legacy_ckpt.errors import CorruptCheckpointError, LegacyCheckpointError

_TABLE_MAGIC = 0xDB4775248B80FB57
_FOOTER_SIZE = 48
_BLOCK_TRAILER_SIZE = 5
_NO_COMPRESSION = 0
_CRC_MASK_DELTA = 0xA282EAD8
# dtypes whose bytes on disk are not the raw tensor memory, so no dtype-size rule applies.
_ENCODED_DTYPES = (types_pb2.DT_STRING, types_pb2.DT_VARIANT, types_pb2.DT_RESOURCE)


def data_file_path(prefix: str, shard: int, num_shards: int) -> str:
    return "%s.data-%05d-of-%05d" % (prefix, shard, num_shards)


def _mask(crc: int) -> int:
    return (((crc >> 15) | (crc << 17)) + _CRC_MASK_DELTA) & 0xFFFFFFFF


def masked_crc32c(data: bytes) -> int:
    return _mask(google_crc32c.value(data))


@dataclasses.dataclass(frozen=True)
class BundleIndex:
    """The parsed contents of a checkpoint's `.index` file."""

    prefix: str
    header: tensor_bundle_pb2.BundleHeaderProto
    entries: Dict[bytes, tensor_bundle_pb2.BundleEntryProto]

    @property
    def num_shards(self) -> int:
        return self.header.num_shards

    def data_files(self) -> List[str]:
        return [data_file_path(self.prefix, i, self.num_shards) for i in range(self.num_shards)]

    def data_entries(self, names: Iterable[str]) -> Iterator[Tuple[str, tensor_bundle_pb2.BundleEntryProto]]:
        """(name, entry) of the entries holding the data of tensors `names` (slices included)."""
        wanted = set(names)
        for key, entry in self.entries.items():
            name = slice_key_name(key)
            if name is None:
                name = key.decode("utf-8", "backslashreplace")
                if entry.slices and entry.size == 0:
                    continue
            if name in wanted:
                yield name, entry

    def verify(self, names: Iterable[str]) -> None:
        """Checks the crc32c of the data of tensors `names`, reading in bounded chunks.

        Raises CorruptCheckpointError naming the tensor and the data file on a mismatch.
        """
        readers: Dict[int, file_access.Reader] = {}
        try:
            for name, entry in self.data_entries(names):
                if entry.dtype in (types_pb2.DT_VARIANT, types_pb2.DT_RESOURCE):
                    continue  # checked by TensorFlow's reader; never model weights
                path = data_file_path(self.prefix, entry.shard_id, self.num_shards)
                if entry.shard_id not in readers:
                    readers[entry.shard_id] = file_access.open_reader(path)
                reader = readers[entry.shard_id]
                if entry.dtype == types_pb2.DT_STRING:
                    crc, done = _string_crc(reader, entry), entry.size
                else:
                    crc, done = 0, 0
                    for chunk in reader.chunks(entry.offset, entry.size):
                        crc = google_crc32c.extend(crc, chunk)
                        done += len(chunk)
                if done != entry.size or crc is None or _mask(crc) != entry.crc32c:
                    raise CorruptCheckpointError(
                        "Checkpoint data file %s is damaged: tensor %r (bytes %d..%d) fails its crc32c "
                        "check. Copy the checkpoint again from its source." % (path, name, entry.offset,
                                                                                entry.offset + entry.size))
        except OSError as e:
            raise CorruptCheckpointError("Cannot read checkpoint data of %s: %s." % (self.prefix, e)) from None
        finally:
            for reader in readers.values():
                reader.close()


class _Corrupt(Exception):
    """Internal: a format problem, turned into CorruptCheckpointError with the path."""


def _varint(buf: bytes, pos: int) -> Tuple[int, int]:
    result = 0
    shift = 0
    while True:
        if pos >= len(buf):
            raise _Corrupt("a varint runs past the end of its block")
        byte = buf[pos]
        pos += 1
        result |= (byte & 0x7F) << shift
        if not byte & 0x80:
            return result, pos
        shift += 7
        if shift > 63:
            raise _Corrupt("a varint is longer than 10 bytes")


def _read_block(data: bytes, offset: int, size: int, what: str) -> bytes:
    end = offset + size + _BLOCK_TRAILER_SIZE
    if offset < 0 or end > len(data) - _FOOTER_SIZE:
        raise _Corrupt(
            "the %s block (offset %d, size %d) lies outside the file (%d bytes): the file "
            "is truncated or its footer is damaged" % (what, offset, size, len(data)))
    contents = data[offset:offset + size]
    compression = data[offset + size]
    (stored_crc,) = struct.unpack_from("<I", data, offset + size + 1)
    if masked_crc32c(contents + bytes([compression])) != stored_crc:
        raise _Corrupt("the %s block at offset %d fails its crc32c check" % (what, offset))
    if compression != _NO_COMPRESSION:
        raise _Corrupt("the %s block uses compression type %d; TensorFlow writes checkpoint "
                       "indexes uncompressed" % (what, compression))
    return contents


def _block_entries(block: bytes, what: str) -> Iterator[Tuple[bytes, bytes]]:
    if len(block) < 4:
        raise _Corrupt("the %s block is too short to hold its restart array" % what)
    (num_restarts,) = struct.unpack_from("<I", block, len(block) - 4)
    limit = len(block) - 4 - 4 * num_restarts
    if limit < 0:
        raise _Corrupt("the %s block claims %d restart points, more than fit" % (what, num_restarts))
    pos = 0
    key = b""
    while pos < limit:
        shared, pos = _varint(block, pos)
        non_shared, pos = _varint(block, pos)
        value_length, pos = _varint(block, pos)
        if shared > len(key) or pos + non_shared + value_length > limit:
            raise _Corrupt("an entry of the %s block runs past the block's end" % what)
        key = key[:shared] + block[pos:pos + non_shared]
        pos += non_shared
        yield key, block[pos:pos + value_length]
        pos += value_length


def _parse_table(data: bytes) -> Iterator[Tuple[bytes, bytes]]:
    if len(data) < _FOOTER_SIZE:
        raise _Corrupt("the file has %d bytes, fewer than a table footer's %d" % (len(data), _FOOTER_SIZE))
    footer = data[-_FOOTER_SIZE:]
    (magic,) = struct.unpack_from("<Q", footer, _FOOTER_SIZE - 8)
    if magic != _TABLE_MAGIC:
        raise _Corrupt("the footer's magic number is wrong: this is not a checkpoint index, "
                       "or its end was cut off")
    pos = 0
    _, pos = _varint(footer, pos)  # metaindex offset: TensorFlow leaves the metaindex empty
    _, pos = _varint(footer, pos)
    index_offset, pos = _varint(footer, pos)
    index_size, pos = _varint(footer, pos)
    index_block = _read_block(data, index_offset, index_size, "index")
    previous_key = None
    for _, handle in _block_entries(index_block, "index"):
        block_offset, hpos = _varint(handle, 0)
        block_size, _ = _varint(handle, hpos)
        block = _read_block(data, block_offset, block_size, "data")
        for key, value in _block_entries(block, "data"):
            if previous_key is not None and key <= previous_key:
                raise _Corrupt("keys are out of order after %r" % previous_key[:80])
            previous_key = key
            yield key, value


def _string_crc(reader: file_access.Reader, entry: tensor_bundle_pb2.BundleEntryProto) -> Optional[int]:
    """The checksum TensorFlow stores for a string tensor, or None if its layout is broken.

    A string tensor is stored as varint64 lengths, a 4-byte checksum of the lengths, then
    the bytes; the entry's crc32c covers each length as a little-endian uint32 (uint64 when
    larger), the 4 checksum bytes, and the string bytes.
    """
    raw = reader.read(entry.offset, entry.size)
    count = math.prod(dim.size for dim in entry.shape.dim)
    crc, pos, total = 0, 0, 0
    try:
        for _ in range(count):
            length, pos = _varint(raw, pos)
            total += length
            crc = google_crc32c.extend(crc, struct.pack("<I" if length <= 0xFFFFFFFF else "<Q", length))
    except _Corrupt:
        return None
    if len(raw) != pos + 4 + total:
        return None
    return google_crc32c.extend(crc, raw[pos:])


def _describe(key: bytes) -> str:
    return key.decode("utf-8", "backslashreplace")


def tensor_names(index: BundleIndex) -> List[str]:
    """The (non-slice) tensor names, sorted; a name that is not UTF-8 is a clear error."""
    names = []
    for key in index.entries:
        if slice_key_name(key) is not None:
            continue
        try:
            names.append(key.decode("utf-8"))
        except UnicodeDecodeError:
            raise LegacyCheckpointError(
                "Checkpoint %s has a tensor whose name is not UTF-8 (%r); TensorFlow's Python checkpoint APIs "
                "cannot use it. Nothing was read or written." % (index.prefix, key)) from None
    return sorted(names)


def read_bundle_index(prefix: str) -> BundleIndex:
    """Parses `prefix.index` and checks its structure and every entry's location.

    Raises CorruptCheckpointError naming the file and the problem when the index is
    damaged, or when an entry points outside the data file that should hold it.
    """
    index_path = prefix + ".index"
    try:
        data = file_access.read_file(index_path)
    except OSError as e:
        raise CorruptCheckpointError("Cannot read checkpoint index %s: %s" % (index_path, e)) from e
    header = tensor_bundle_pb2.BundleHeaderProto()
    entries: Dict[bytes, tensor_bundle_pb2.BundleEntryProto] = {}
    try:
        found_header = False
        for key, value in _parse_table(data):
            if key == b"":
                header.ParseFromString(value)
                found_header = True
                continue
            entry = tensor_bundle_pb2.BundleEntryProto()
            try:
                entry.ParseFromString(value)
            except Exception as e:  # protobuf's DecodeError has no stable import path
                raise _Corrupt("the entry of %r is not a valid BundleEntryProto (%s)" % (_describe(key), e))
            entries[key] = entry
        if not found_header:
            raise _Corrupt("it has no header entry")
        if header.num_shards <= 0:
            raise _Corrupt("its header says it has %d data shards" % header.num_shards)
    except _Corrupt as e:
        raise CorruptCheckpointError(
            "Checkpoint index %s is damaged: %s. Copy the checkpoint again from its source; "
            "if you have no intact copy, the checkpoint cannot be used." % (index_path, e)) from None
    index = BundleIndex(prefix=prefix, header=header, entries=entries)
    check_data_files(index)
    return index


def _check_entry_metadata(index: BundleIndex, key: bytes, entry: tensor_bundle_pb2.BundleEntryProto) -> None:
    """dtype, shape and size must agree, so a damaged entry cannot make a reader allocate garbage."""
    problem = None
    dims = [d.size for d in entry.shape.dim]
    try:
        dtype = tf_dtypes.as_dtype(entry.dtype)
    except (TypeError, ValueError):
        dtype = None
    if dtype is None or entry.dtype == types_pb2.DT_INVALID or entry.dtype >= 100:
        problem = "has an unknown dtype (%d)" % entry.dtype
    elif any(d < 0 for d in dims):
        problem = "has a negative dimension in shape %s" % dims
    elif entry.slices:
        if len(dims) and any(len(s.extent) != len(dims) for s in entry.slices):
            problem = "has slices whose rank differs from its shape %s" % dims
        elif any(e.start < 0 or (e.HasField("length") and (e.length < 0 or e.start + e.length > d))
                 for s in entry.slices for e, d in zip(s.extent, dims)):
            problem = "has a slice outside its shape %s" % dims
    elif entry.dtype not in _ENCODED_DTYPES:
        count = math.prod(dims)
        if count * dtype.size != entry.size:
            problem = "says shape %s of %s (%d bytes) but holds %d bytes" % (dims, dtype.name, count * dtype.size,
                                                                           entry.size)
    if problem:
        raise CorruptCheckpointError(
            "Checkpoint index %s.index is damaged: the entry of %r %s. Copy the checkpoint again from its "
            "source." % (index.prefix, _describe(key), problem))


def check_data_files(index: BundleIndex) -> None:
    """Checks that every entry's [offset, offset + size) lies inside its data shard."""
    sizes: List[Optional[int]] = []
    for path in index.data_files():
        try:
            sizes.append(file_access.size(path))
        except OSError:
            sizes.append(None)
    for key, entry in index.entries.items():
        _check_entry_metadata(index, key, entry)
        if entry.slices and entry.size == 0:
            continue  # a partitioned tensor: its data lives in the per-slice entries
        if not 0 <= entry.shard_id < index.num_shards:
            raise CorruptCheckpointError(
                "Checkpoint index %s.index is damaged: tensor %r names data shard %d, but the "
                "checkpoint has %d shard(s). Copy the checkpoint again from its source."
                % (index.prefix, _describe(key), entry.shard_id, index.num_shards))
        shard_size = sizes[entry.shard_id]
        path = data_file_path(index.prefix, entry.shard_id, index.num_shards)
        if shard_size is None:
            raise CorruptCheckpointError(
                "Checkpoint data file %s is missing (tensor %r lives there). Copy every "
                "%s.data-* file along with the .index file." % (path, _describe(key), index.prefix))
        if entry.offset < 0 or entry.size < 0 or entry.offset + entry.size > shard_size:
            raise CorruptCheckpointError(
                "Checkpoint data file %s is truncated or does not belong to this index: tensor "
                "%r needs bytes %d..%d but the file has %d bytes. Copy the checkpoint again "
                "from its source." % (path, _describe(key), entry.offset,
                                      entry.offset + entry.size, shard_size))


# --- writing -----------------------------------------------------------------------------

_BLOCK_SIZE = 256 * 1024  # TensorFlow's table::Options default block_size
_RESTART_INTERVAL = 16


def _encode_varint(value: int) -> bytes:
    out = bytearray()
    while value >= 0x80:
        out.append((value & 0x7F) | 0x80)
        value >>= 7
    out.append(value)
    return bytes(out)


class _BlockBuilder:
    def __init__(self, restart_interval: int = _RESTART_INTERVAL) -> None:
        self.restart_interval = restart_interval
        self.buffer = bytearray()
        self.restarts = [0]
        self.counter = 0
        self.last_key = b""

    def add(self, key: bytes, value: bytes) -> None:
        shared = 0
        if self.counter < self.restart_interval:
            limit = min(len(key), len(self.last_key))
            while shared < limit and key[shared] == self.last_key[shared]:
                shared += 1
        else:
            self.restarts.append(len(self.buffer))
            self.counter = 0
        self.buffer += _encode_varint(shared) + _encode_varint(len(key) - shared) + _encode_varint(len(value))
        self.buffer += key[shared:] + value
        self.last_key = key
        self.counter += 1

    def finish(self) -> bytes:
        tail = b"".join(struct.pack("<I", r) for r in self.restarts) + struct.pack("<I", len(self.restarts))
        return bytes(self.buffer) + tail

    def size_estimate(self) -> int:
        return len(self.buffer) + 4 * len(self.restarts) + 4


def _shortest_separator(start: bytes, limit: bytes) -> bytes:
    """LevelDB's BytewiseComparator::FindShortestSeparator: a short key in [start, limit)."""
    common = 0
    while common < min(len(start), len(limit)) and start[common] == limit[common]:
        common += 1
    if common < min(len(start), len(limit)):
        byte = start[common]
        if byte < 0xFF and byte + 1 < limit[common]:
            return start[:common] + bytes([byte + 1])
    return start


def _short_successor(key: bytes) -> bytes:
    """LevelDB's BytewiseComparator::FindShortSuccessor: a short key >= `key`."""
    for i, byte in enumerate(key):
        if byte != 0xFF:
            return key[:i] + bytes([byte + 1])
    return key


def _block_with_trailer(contents: bytes) -> bytes:
    return contents + bytes([_NO_COMPRESSION]) + struct.pack("<I", masked_crc32c(contents + bytes([_NO_COMPRESSION])))


def _handle(offset: int, size: int) -> bytes:
    return _encode_varint(offset) + _encode_varint(size)


def encode_index(header: tensor_bundle_pb2.BundleHeaderProto,
                 entries: Dict[bytes, tensor_bundle_pb2.BundleEntryProto]) -> bytes:
    """Serializes a bundle index as TensorFlow's table format (keys sorted, header at "")."""
    items = [(b"", header.SerializeToString())]
    items += [(key, entries[key].SerializeToString()) for key in sorted(entries)]
    out = bytearray()
    index = _BlockBuilder(restart_interval=1)
    block = _BlockBuilder()
    pending_handle = None
    last_key = b""

    def flush() -> bytes:
        nonlocal block
        contents = block.finish()
        handle = _handle(len(out), len(contents))
        out.extend(_block_with_trailer(contents))
        block = _BlockBuilder()
        return handle

    # The same block layout as TensorFlow's table::TableBuilder, so that an index we write
    # for the same entries is byte-for-byte the one TensorFlow writes.
    for key, value in items:
        if pending_handle is not None:
            index.add(_shortest_separator(last_key, key), pending_handle)
            pending_handle = None
        block.add(key, value)
        last_key = key
        if block.size_estimate() >= _BLOCK_SIZE:
            pending_handle = flush()
    if block.counter:
        pending_handle = flush()
    if pending_handle is not None:
        index.add(_short_successor(last_key), pending_handle)
    metaindex = _BlockBuilder().finish()
    metaindex_handle = _handle(len(out), len(metaindex))
    out.extend(_block_with_trailer(metaindex))
    index_contents = index.finish()
    index_handle = _handle(len(out), len(index_contents))
    out.extend(_block_with_trailer(index_contents))
    footer = metaindex_handle + index_handle
    footer += b"\x00" * (_FOOTER_SIZE - 8 - len(footer)) + struct.pack("<Q", _TABLE_MAGIC)
    out.extend(footer)
    return bytes(out)


# Keys of a partitioned tensor's slices: "\x00" + OrderedCode-escaped name + "\x00\x01" + extents.
_SLICE_KEY_PREFIX = b"\x00"
_NAME_END = b"\x00\x01"


def slice_key_name(key: bytes) -> Optional[str]:
    """The tensor name inside a slice key, or None if `key` is a plain tensor name."""
    if not key.startswith(_SLICE_KEY_PREFIX):
        return None
    end = key.find(_NAME_END, 1)
    if end < 0:
        return None
    escaped = key[1:end]
    return escaped.replace(b"\x00\xff", b"\x00").replace(b"\xff\x00", b"\xff").decode("utf-8")


def _escaped_name(name: str) -> bytes:
    return name.encode("utf-8").replace(b"\xff", b"\xff\x00").replace(b"\x00", b"\x00\xff")


def rename_slice_key(key: bytes, new_name: str) -> bytes:
    end = key.find(_NAME_END, 1)
    return _SLICE_KEY_PREFIX + _escaped_name(new_name) + key[end:]


def _ordered_unsigned(value: int) -> bytes:
    """OrderedCode::WriteNumIncreasing: a length byte, then the big-endian bytes (0 -> b"\\x00")."""
    raw = value.to_bytes((value.bit_length() + 7) // 8, "big")
    return bytes([len(raw)]) + raw


# OrderedCode's kLengthToHeaderBits: the header bits of the first two bytes of an encoding of n bytes.
_SIGNED_HEADER_BITS = ((0, 0), (0x80, 0), (0xC0, 0), (0xE0, 0), (0xF0, 0), (0xF8, 0), (0xFC, 0), (0xFE, 0),
                       (0xFF, 0), (0xFF, 0x80), (0xFF, 0xC0))


def _ordered_signed(value: int) -> bytes:
    """OrderedCode::WriteSignedNumIncreasing for an int64 `value`."""
    magnitude = ~value if value < 0 else value
    if magnitude < 64:
        return bytes([(0x80 ^ value) & 0xFF])
    length = (magnitude.bit_length() + 7) // 7  # kBitsToLength[Log2Floor64(x) + 1]
    sign = 0xFF if value < 0 else 0
    encoded = bytearray([sign, sign]) + (value & 0xFFFFFFFFFFFFFFFF).to_bytes(8, "big")
    encoded = encoded[len(encoded) - length:]
    encoded[0] ^= _SIGNED_HEADER_BITS[length][0]
    encoded[1] ^= _SIGNED_HEADER_BITS[length][1]
    return bytes(encoded)


def encode_slice_key(name: str, tensor_slice) -> bytes:
    """The key under which a V2 bundle stores slice `tensor_slice` (a TensorSliceProto) of tensor `name`:
    TensorFlow's checkpoint::EncodeTensorNameSlice (an extent without a length is a full one, -1)."""
    key = _SLICE_KEY_PREFIX + _escaped_name(name) + _NAME_END + _ordered_unsigned(len(tensor_slice.extent))
    for extent in tensor_slice.extent:
        key += _ordered_signed(extent.start) + _ordered_signed(extent.length if extent.HasField("length") else -1)
    return key
