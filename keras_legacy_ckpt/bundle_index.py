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

import collections.abc
import dataclasses
import math
import os
import struct
from typing import TYPE_CHECKING, Callable, Dict, Iterable, Iterator, List, Mapping, Optional, Sequence, Tuple

import google_crc32c

from keras_legacy_ckpt import file_access, table_file
from keras_legacy_ckpt import _tf_protos as tensor_bundle_pb2
from keras_legacy_ckpt._tf_protos import DT_INVALID, DT_RESOURCE, DT_STRING, DT_VARIANT
from keras_legacy_ckpt.dtypes import dtype_name, itemsize
from keras_legacy_ckpt.errors import CheckpointNotFoundError, CorruptCheckpointError, LegacyCheckpointError
from keras_legacy_ckpt.table_file import TableError as _Corrupt
from keras_legacy_ckpt.table_file import mask as _mask
from keras_legacy_ckpt.table_file import unmask as _unmask
from keras_legacy_ckpt.table_file import varint as _varint

BUNDLE_VERSION = 1  # TensorFlow's kTensorBundleVersion: a header asking for a newer reader is refused
if TYPE_CHECKING:
    import numpy as np  # imported where data is read: listing and checking an index never needs it

# dtypes whose bytes on disk are not the raw tensor memory, so no dtype-size rule applies.
_ENCODED_DTYPES = (DT_STRING, DT_VARIANT, DT_RESOURCE)


def data_file_path(prefix: str, shard: int, num_shards: int) -> str:
    return "%s.data-%05d-of-%05d" % (prefix, shard, num_shards)


@dataclasses.dataclass(frozen=True)
class BundleIndex:
    """The parsed contents of a checkpoint's `.index` file.

    `entries` holds each key's BundleEntryProto (what a writer copies and edits); `records` the same
    entries as plain `Entry` values, which listing, checking and reading use (a message's fields are
    slow to read from Python: 12 us for a shape, against 0.1 us).
    """

    prefix: str
    header: tensor_bundle_pb2.BundleHeaderProto
    entries: Mapping[bytes, tensor_bundle_pb2.BundleEntryProto]
    records: Dict[bytes, "Entry"] = dataclasses.field(default=None, compare=False, repr=False)

    def __post_init__(self) -> None:
        if self.records is None:  # an index made in memory (by rename): from its messages
            object.__setattr__(self, "records", {k: Entry.from_proto(e) for k, e in self.entries.items()})

    @property
    def num_shards(self) -> int:
        return self.header.num_shards

    @property
    def big_endian(self) -> bool:
        return self.header.endianness == tensor_bundle_pb2.BundleHeaderProto.BIG

    def data_files(self) -> List[str]:
        return [data_file_path(self.prefix, i, self.num_shards) for i in range(self.num_shards)]

    def data_entries(self, names: Iterable[str]) -> Iterator[Tuple[str, "Entry"]]:
        """(name, record) of the entries holding the data of tensors `names` (slices included)."""
        wanted = set(names)
        for key, entry in self.records.items():
            name = slice_key_name(key)
            if name is None:
                name = key.decode("utf-8", "backslashreplace")
                if entry.slices and entry.size == 0:
                    continue
            if name in wanted:
                yield name, entry

    def verify(self, names: Iterable[str], progress: Optional[Callable[[int, int], None]] = None) -> None:
        """Checks the crc32c of the data of tensors `names`; raises CorruptCheckpointError naming the tensor
        and the data file on a mismatch. Memory: one reused 1 MiB buffer. `progress(done, total)` is
        called with the bytes checked after each tensor."""
        work = list(self.data_entries(names))
        total, done = sum(entry.size for _, entry in work), 0
        with DataFiles(self) as data:
            for name, entry in work:
                data.check(name, entry)
                done += entry.size
                if progress is not None:
                    progress(done, total)


class DataFiles:
    """The data files of a V2 checkpoint, each opened on first use: an entry's bytes read in 1 MiB pieces
    (local files with os.pread into an aligned buffer, each piece's crc32c computed while it is in the
    CPU cache) and checked against its crc32c."""

    def __init__(self, index: BundleIndex) -> None:
        self.index = index
        self._readers: Dict[int, file_access.Reader] = {}
        self._buffer: Optional[np.ndarray] = None

    def __enter__(self) -> "DataFiles":
        return self

    def __exit__(self, *exc_info) -> None:
        self.close()

    def close(self) -> None:
        readers, self._readers = self._readers, {}
        for reader in readers.values():
            reader.close()

    def path(self, entry: "Entry") -> str:
        return data_file_path(self.index.prefix, entry.shard_id, self.index.num_shards)

    def reader(self, entry: "Entry") -> file_access.Reader:
        reader = self._readers.get(entry.shard_id)
        if reader is None:
            try:
                reader = self._readers[entry.shard_id] = file_access.open_reader(self.path(entry))
            except OSError as e:
                raise CorruptCheckpointError("Cannot read checkpoint data of %s: %s." % (self.index.prefix,
                                                                                        e)) from None
        return reader

    def damaged(self, name: str, entry: "Entry", detail: str = "fails its crc32c check") -> CorruptCheckpointError:
        return CorruptCheckpointError(
            "Checkpoint data file %s is damaged: tensor %r (bytes %d..%d) %s. Copy the checkpoint again from its "
            "source." % (self.path(entry), name, entry.offset, entry.offset + entry.size, detail))

    def read_into(self, name: str, entry: "Entry", out: Optional[np.ndarray]) -> None:
        """Reads the entry's bytes into `out` (a uint8 array of entry.size bytes; when None, through one
        reused buffer, to check them only) and checks their crc32c."""
        reader = self.reader(entry)
        if out is None and self._buffer is None:
            self._buffer = aligned_empty(IO_CHUNK)
        crc, done = 0, 0
        try:
            while done < entry.size:
                count = min(IO_CHUNK, entry.size - done)
                piece = self._buffer[:count] if out is None else out[done:done + count]
                got = _preadinto(reader, piece, entry.offset + done)
                if got <= 0:
                    break
                crc = google_crc32c.extend(crc, piece[:got])
                done += got
        except OSError as e:
            raise CorruptCheckpointError("Cannot read checkpoint data of %s: %s." % (self.index.prefix, e)) from None
        if done != entry.size or _mask(crc) != entry.crc32c:
            raise self.damaged(name, entry)

    def read_strings(self, name: str, entry: "Entry") -> List[bytes]:
        """A string tensor's (or slice's) elements, checked."""
        try:
            raw = self.reader(entry).read(entry.offset, entry.size)
        except OSError as e:
            raise CorruptCheckpointError("Cannot read checkpoint data of %s: %s." % (self.index.prefix, e)) from None
        strings, crc = decode_strings(raw, math.prod(entry.shape), self.index.big_endian)
        if strings is None or len(raw) != entry.size or _mask(crc) != entry.crc32c:
            raise self.damaged(name, entry)
        return strings

    def check(self, name: str, entry: "Entry") -> None:
        """Checks the crc32c of one entry's bytes (a tensor, or one slice of a partitioned one)."""
        if entry.dtype in (DT_VARIANT, DT_RESOURCE):
            return  # checked by TensorFlow's reader; never model weights
        if entry.dtype == DT_STRING:
            self.read_strings(name, entry)
        else:
            self.read_into(name, entry, None)


IO_CHUNK = 1 << 20  # bytes per read: each piece's crc32c is computed while it is in the CPU cache


def aligned_empty(nbytes: int) -> np.ndarray:
    """A uint8 array of `nbytes` starting on a 64-byte boundary: the kernel copies file data into
    unaligned memory several times slower (4.7x measured on AMD EPYC), and numpy's large arrays start
    16 bytes into a page."""
    import numpy as np

    raw = np.empty(nbytes + 64, np.uint8)
    start = -raw.ctypes.data % 64
    return raw[start:start + nbytes]


def _preadinto(reader: file_access.Reader, buffer: np.ndarray, offset: int) -> int:
    """Reads into `buffer` (a uint8 array) at `offset`: os.preadv straight into it for a local file; the
    count read."""
    fd = getattr(reader, "fd", None)
    if fd is not None and hasattr(os, "preadv"):
        return os.preadv(fd, [buffer], offset)
    import numpy as np

    chunk = reader.pread(len(buffer), offset)
    buffer[:len(chunk)] = np.frombuffer(chunk, np.uint8)
    return len(chunk)


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


class Entry:
    """A BundleEntryProto as plain Python values (read far faster than the message's fields): where a
    tensor's bytes are and what they hold. The same attribute names as the message, but `shape` is a tuple
    and each slice a tuple of (start, length) per dimension, length -1 for a whole dimension."""

    __slots__ = ("dtype", "shape", "shard_id", "offset", "size", "crc32c", "slices")

    def __init__(self) -> None:
        self.dtype = 0
        self.shape: Tuple[int, ...] = ()
        self.shard_id = self.offset = self.size = self.crc32c = 0
        # per slice, per dimension: (start, length), length -1 for the whole dimension
        self.slices: List[Tuple[Tuple[int, int], ...]] = []

    @classmethod
    def from_proto(cls, proto) -> "Entry":
        entry = cls()
        entry.dtype, entry.shard_id, entry.offset = proto.dtype, proto.shard_id, proto.offset
        entry.size, entry.crc32c = proto.size, proto.crc32c
        entry.shape = tuple(d.size for d in proto.shape.dim)
        entry.slices = [tuple((e.start, e.length if e.HasField("length") else -1) for e in s.extent)
                        for s in proto.slices]
        return entry


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


def parse_entry(buf: bytes, shapes: Dict[bytes, Tuple[int, ...]]) -> Entry:
    """A serialized BundleEntryProto (the hot loop of opening a checkpoint: one call per tensor).
    `shapes` caches parsed TensorShapeProtos by their bytes: checkpoints repeat a few shapes."""
    entry = Entry()
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
            pos += 1
            if value >= 0x80:  # a varint decoded inline: offsets and sizes take 2-5 bytes
                value &= 0x7F
                shift = 7
                while True:
                    byte = buf[pos]
                    pos += 1
                    value |= (byte & 0x7F) << shift
                    if byte < 0x80:
                        break
                    shift += 7
                    if shift > 63:
                        raise _Corrupt("a varint is longer than 10 bytes")
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


def decode_strings(raw: bytes, count: int, big_endian: bool) -> Tuple[Optional[List[bytes]], int]:
    """(the `count` strings, crc32c of the bytes as TensorFlow checks it) of a string tensor's data, or
    (None, 0) when the layout itself is broken. The data: `count` varint64 lengths, 4 bytes of masked
    crc32c of the lengths, the bytes. The entry's crc32c covers each length as a uint32 (a uint64 when
    larger) in the writer's byte order, then the 4 checksum bytes and the string bytes."""
    import numpy as np

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


def _describe(key: bytes) -> str:
    return key.decode("utf-8", "backslashreplace")


def tensor_names(index: BundleIndex) -> List[str]:
    """The (non-slice) tensor names, sorted; a name that is not UTF-8 is a clear error."""
    try:
        # Slice keys start with 0x00, which no tensor name does. (A table's keys are sorted already, so
        # sorting them is one linear pass.)
        return sorted(key.decode("utf-8") for key in index.records if key[:1] != _SLICE_KEY_PREFIX)
    except UnicodeDecodeError:
        bad = next(k for k in index.records if k[:1] != _SLICE_KEY_PREFIX and not _is_utf8(k))
        raise LegacyCheckpointError(
            "Checkpoint %s has a tensor whose name is not UTF-8 (%r); TensorFlow's Python checkpoint APIs "
            "cannot use it. Nothing was read or written." % (index.prefix, bad)) from None


def _is_utf8(key: bytes) -> bool:
    try:
        key.decode("utf-8")
        return True
    except UnicodeDecodeError:
        return False


def read_bundle_index(prefix: str) -> BundleIndex:
    """Parses `prefix.index` and checks its structure and every entry's location.

    Raises CorruptCheckpointError naming the file and the problem when the index is
    damaged, or when an entry points outside the data file that should hold it.
    """
    index_path = prefix + ".index"
    try:
        data = file_access.read_file(index_path)
    except FileNotFoundError:
        raise CheckpointNotFoundError("Checkpoint %s not found: there is no %s." % (prefix, index_path)) from None
    except OSError as e:
        raise CorruptCheckpointError("Cannot read checkpoint index %s: %s" % (index_path, e)) from e
    header = None
    raw: Dict[bytes, bytes] = {}
    records: Dict[bytes, Entry] = {}
    shapes: Dict[bytes, Tuple[int, ...]] = {}
    try:
        for key, value in table_file.table_entries(data):
            try:
                if key == b"":
                    header = tensor_bundle_pb2.BundleHeaderProto.FromString(value)
                    continue
                raw[key] = value
                records[key] = parse_entry(value, shapes)
            except Exception as e:  # protobuf's DecodeError has no stable import path; a truncated field
                raise _Corrupt("the entry of %r is not a valid %s (%s)" % (
                    _describe(key), "BundleEntryProto" if key else "BundleHeaderProto", e))
        if header is None:
            raise _Corrupt("it has no header entry")
        if header.num_shards <= 0:
            raise _Corrupt("its header says it has %d data shards" % header.num_shards)
        if header.version.min_consumer > BUNDLE_VERSION or BUNDLE_VERSION in header.version.bad_consumers:
            raise LegacyCheckpointError(
                "Checkpoint %s needs a newer reader: its format version asks for reader version %d or later (this "
                "reader is version %d, TensorFlow's checkpoint format since 2016)."
                % (prefix, header.version.min_consumer, BUNDLE_VERSION))
    except _Corrupt as e:
        raise CorruptCheckpointError(
            "Checkpoint index %s is damaged: %s. Copy the checkpoint again from its source; "
            "if you have no intact copy, the checkpoint cannot be used." % (index_path, e)) from None
    index = BundleIndex(prefix=prefix, header=header, entries=_Messages(raw), records=records)
    check_data_files(index)
    return index


class _Messages(collections.abc.Mapping):
    """{key: BundleEntryProto} of an index read from disk, each message parsed when first looked up: listing,
    checking and reading use the records, and only writers (rename) need the messages."""

    def __init__(self, raw: Dict[bytes, bytes]) -> None:
        self._raw = raw
        self._parsed: Dict[bytes, tensor_bundle_pb2.BundleEntryProto] = {}

    def __getitem__(self, key: bytes) -> tensor_bundle_pb2.BundleEntryProto:
        message = self._parsed.get(key)
        if message is None:
            message = self._parsed[key] = tensor_bundle_pb2.BundleEntryProto.FromString(self._raw[key])
        return message

    def __iter__(self) -> Iterator[bytes]:
        return iter(self._raw)

    def __len__(self) -> int:
        return len(self._raw)

    def __contains__(self, key: object) -> bool:
        return key in self._raw


def _metadata_problem(entry: Entry) -> Optional[str]:
    """What is wrong with an entry's dtype, shape, slices and size, or None: they must agree, so that a
    damaged entry cannot make a reader allocate or read garbage."""
    shape = entry.shape
    size = itemsize(entry.dtype)
    if size is None or entry.dtype == DT_INVALID:
        return "has an unknown dtype (%d)" % entry.dtype
    if shape and min(shape) < 0:
        return "has a negative dimension in shape %s" % list(shape)
    if entry.slices:
        for extents in entry.slices:
            if len(extents) != len(shape):
                return "has slices whose rank differs from its shape %s" % list(shape)
            if any(start < 0 or length < -1 or (length >= 0 and start + length > dim)
                   for (start, length), dim in zip(extents, shape)):
                return "has a slice outside its shape %s" % list(shape)
        return None
    if entry.dtype not in _ENCODED_DTYPES and math.prod(shape) * size != entry.size:
        return "says shape %s of %s (%d bytes) but holds %d bytes" % (
            list(shape), dtype_name(entry.dtype), math.prod(shape) * size, entry.size)
    return None


def check_data_files(index: BundleIndex) -> None:
    """Checks every entry's metadata, and that its [offset, offset + size) lies inside its data shard."""
    sizes: List[Optional[int]] = []
    for path in index.data_files():
        try:
            sizes.append(file_access.size(path))
        except OSError:
            sizes.append(None)
    for key, entry in index.records.items():
        problem = _metadata_problem(entry)
        if problem:
            raise CorruptCheckpointError(
                "Checkpoint index %s.index is damaged: the entry of %r %s. Copy the checkpoint again from its "
                "source." % (index.prefix, _describe(key), problem))
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

def encode_index(header: tensor_bundle_pb2.BundleHeaderProto,
                 entries: Dict[bytes, tensor_bundle_pb2.BundleEntryProto]) -> bytes:
    """Serializes a bundle index as TensorFlow's table format (keys sorted, header at "")."""
    items = [(b"", header.SerializeToString())]
    items += [(key, entries[key].SerializeToString()) for key in sorted(entries)]
    return table_file.encode_table(items)


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


def _escaped_name(name: "str | bytes") -> bytes:
    """OrderedCode's escaping of a name inside a key: 0x00 -> 0x00 0xff, 0xff -> 0xff 0x00."""
    raw = name.encode("utf-8") if isinstance(name, str) else name
    if b"\x00" not in raw and b"\xff" not in raw:
        return raw
    return raw.replace(b"\xff", b"\xff\x00").replace(b"\x00", b"\x00\xff")


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


def slice_key(name: "str | bytes", extents: Sequence[Tuple[int, int]]) -> bytes:
    """The key under which a V2 bundle stores one slice of tensor `name`, given as (start, length) per
    dimension, length -1 for the whole dimension: TensorFlow's checkpoint::EncodeTensorNameSlice."""
    parts = [_SLICE_KEY_PREFIX, _escaped_name(name), _NAME_END, _ordered_unsigned(len(extents))]
    for start, length in extents:
        parts += [_ordered_signed(start), _ordered_signed(length)]
    return b"".join(parts)


def encode_slice_key(name: str, tensor_slice) -> bytes:
    """`slice_key` of slice `tensor_slice` (a TensorSliceProto: an extent without a length is a full one)."""
    return slice_key(name, [(e.start, e.length if e.HasField("length") else -1) for e in tensor_slice.extent])
