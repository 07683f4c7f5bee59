"""TensorFlow's table file format (`core/lib/io/table`): a checkpoint's `.index` file and a V1 shard.

A LevelDB-style sorted table: data blocks of prefix-compressed key/value entries, each followed by
a compression byte and a masked crc32c; an index block pointing at the data blocks; and a 48-byte
footer ending in a magic number. Reading checks every block's crc32c; writing lays blocks out as
TensorFlow's `table::TableBuilder` does, so an index we write for the same entries is byte-for-byte
the one TensorFlow writes. No TensorFlow, no protobuf: keys and values are bytes.
"""

from __future__ import annotations

import struct
from typing import Iterable, Iterator, Tuple

import google_crc32c

TABLE_MAGIC = 0xDB4775248B80FB57
FOOTER_SIZE = 48
BLOCK_TRAILER_SIZE = 5
_NO_COMPRESSION = 0
_CRC_MASK_DELTA = 0xA282EAD8


class TableError(Exception):
    """A format problem in a table file; callers raise it as CorruptCheckpointError naming the file."""


def mask(crc: int) -> int:
    """TensorFlow's masked crc32c (crc32c::Mask), as stored in tables and bundle entries."""
    return (((crc >> 15) | (crc << 17)) + _CRC_MASK_DELTA) & 0xFFFFFFFF


def unmask(masked: int) -> int:
    rot = (masked - _CRC_MASK_DELTA) & 0xFFFFFFFF
    return ((rot >> 17) | (rot << 15)) & 0xFFFFFFFF


def masked_crc32c(data: bytes) -> int:
    return mask(google_crc32c.value(data))


# --- reading -------------------------------------------------------------------------------------

def varint(buf, pos: int) -> Tuple[int, int]:
    result = 0
    shift = 0
    while True:
        if pos >= len(buf):
            raise TableError("a varint runs past the end of its block")
        byte = buf[pos]
        pos += 1
        result |= (byte & 0x7F) << shift
        if not byte & 0x80:
            return result, pos
        shift += 7
        if shift > 63:
            raise TableError("a varint is longer than 10 bytes")


def read_block(data: bytes, offset: int, size: int, what: str) -> bytes:
    """The contents of the block at [offset, offset + size) of table `data`, its trailer checked."""
    if offset < 0 or size < 0 or offset + size + BLOCK_TRAILER_SIZE > len(data) - FOOTER_SIZE:
        raise TableError("the %s block (offset %d, size %d) lies outside the file (%d bytes): the file is truncated "
                         "or its footer is damaged" % (what, offset, size, len(data)))
    return checked_block(data[offset:offset + size + BLOCK_TRAILER_SIZE], size, what, offset)


def checked_block(raw: bytes, size: int, what: str, offset: int) -> bytes:
    """The contents of a block read with its trailer (`size` + 5 bytes): the compression byte must say
    none, and the masked crc32c must match."""
    if len(raw) != size + BLOCK_TRAILER_SIZE:
        raise TableError("the %s block at offset %d runs past the end of the file" % (what, offset))
    (stored,) = struct.unpack_from("<I", raw, size + 1)
    if mask(google_crc32c.value(raw[:size + 1])) != stored:
        raise TableError("the %s block at offset %d fails its crc32c check" % (what, offset))
    if raw[size] != _NO_COMPRESSION:
        raise TableError("the %s block uses compression type %d; TensorFlow writes checkpoint indexes "
                         "uncompressed" % (what, raw[size]))
    return raw[:size]


def block_entries(block: bytes, what: str) -> Iterator[Tuple[bytes, bytes]]:
    if len(block) < 4:
        raise TableError("the %s block is too short to hold its restart array" % what)
    (num_restarts,) = struct.unpack_from("<I", block, len(block) - 4)
    limit = len(block) - 4 - 4 * num_restarts
    if limit < 0:
        raise TableError("the %s block claims %d restart points, more than fit" % (what, num_restarts))
    pos = 0
    key = b""
    while pos < limit:
        shared, pos = varint(block, pos)
        non_shared, pos = varint(block, pos)
        value_length, pos = varint(block, pos)
        if shared > len(key) or pos + non_shared + value_length > limit:
            raise TableError("an entry of the %s block runs past the block's end" % what)
        key = key[:shared] + block[pos:pos + non_shared]
        pos += non_shared
        yield key, block[pos:pos + value_length]
        pos += value_length


def table_entries(data: bytes) -> Iterator[Tuple[bytes, bytes]]:
    """The (key, value) pairs of a whole table file, in order, every block's crc32c checked."""
    if len(data) < FOOTER_SIZE:
        raise TableError("the file has %d bytes, fewer than a table footer's %d" % (len(data), FOOTER_SIZE))
    footer = data[-FOOTER_SIZE:]
    (magic,) = struct.unpack_from("<Q", footer, FOOTER_SIZE - 8)
    if magic != TABLE_MAGIC:
        raise TableError("the footer's magic number is wrong: this is not a checkpoint index, "
                       "or its end was cut off")
    pos = 0
    _, pos = varint(footer, pos)  # metaindex offset: TensorFlow leaves the metaindex empty
    _, pos = varint(footer, pos)
    index_offset, pos = varint(footer, pos)
    index_size, pos = varint(footer, pos)
    index_block = read_block(data, index_offset, index_size, "index")
    previous_key = None
    for _, handle in block_entries(index_block, "index"):
        block_offset, hpos = varint(handle, 0)
        block_size, _ = varint(handle, hpos)
        block = read_block(data, block_offset, block_size, "data")
        for key, value in block_entries(block, "data"):
            if previous_key is not None and key <= previous_key:
                raise TableError("keys are out of order after %r" % previous_key[:80])
            previous_key = key
            yield key, value


# --- writing -------------------------------------------------------------------------------------

BLOCK_SIZE = 256 * 1024  # TensorFlow's table::Options default block_size
_RESTART_INTERVAL = 16


def encode_varint(value: int) -> bytes:
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
        self.buffer += encode_varint(shared) + encode_varint(len(key) - shared) + encode_varint(len(value))
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
    return encode_varint(offset) + encode_varint(size)


def encode_table(items: Iterable[Tuple[bytes, bytes]]) -> bytes:
    """A table file holding `items` ((key, value) pairs in increasing key order)."""
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
        if block.size_estimate() >= BLOCK_SIZE:
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
    footer += b"\x00" * (FOOTER_SIZE - 8 - len(footer)) + struct.pack("<Q", TABLE_MAGIC)
    out.extend(footer)
    return bytes(out)
