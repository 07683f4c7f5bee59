"""What a path given as a TF1 checkpoint really is, and TF1's V1 checkpoint format.

`checkpoint_reader.resolve_checkpoint` uses this module to

* find V1 checkpoints (`Saver(write_version=SaverDef.V1)`: one table file per shard, no
  `.index`; the TF-slim model zoo publishes them as a single `model.ckpt` file), alone or in
  a directory, and their shards (`model.ckpt-0-?????-of-00003`);
* read a V1 checkpoint's slice metadata (which tensors TF1 saved in partitions);
* recognise what is not a TF1 checkpoint at all (a TF2 object checkpoint, a SavedModel, a
  Keras file, a lone MetaGraph) and say what to call instead;
* read a directory's `checkpoint` state file, including one that names absolute paths of
  the machine that trained it.

Existence checks go through `file_access` (no TensorFlow for local paths), listings and reads through
`tf.io.gfile`, so remote paths work.
TensorFlow is imported when first needed.
"""

from __future__ import annotations

import dataclasses
import os
import re
import struct
from typing import Dict, List, Optional, Sequence, Tuple

from keras_legacy_ckpt import file_access
from keras_legacy_ckpt._tf_protos import CheckpointState, TensorSliceProto
from keras_legacy_ckpt.errors import CheckpointNotFoundError, CorruptCheckpointError
from keras_legacy_ckpt.table_file import (BLOCK_TRAILER_SIZE, FOOTER_SIZE, TABLE_MAGIC, TableError, block_entries,
                                          checked_block, varint)

OBJECT_GRAPH_KEY = "_CHECKPOINTABLE_OBJECT_GRAPH"
_TABLE_MAGIC = struct.pack("<Q", TABLE_MAGIC)
_HDF5_MAGIC = b"\x89HDF\r\n\x1a\n"
_ZIP_MAGIC = b"PK\x03\x04"
_V1_SHARD = re.compile(r"^(.*)-(\d{5})-of-(\d{5})$")
_V1_PATTERN = re.compile(r"^(.*)-\?{5}-of-(\d{5})$")
# Files a directory listing never needs to open to know they are not V1 checkpoints.
_NOT_V1 = re.compile(r"(\.(index|meta|data-\d{5}-of-\d{5}|pb|pbtxt|txt|json|h5|hdf5|keras|tmp|py|md|vocab|model|zip|"
                     r"gz|tar)$|^checkpoint$|^events\.out\.tfevents\.|^\.)")
# At most this many unknown files of a directory are opened to look for V1 checkpoints.
_MAX_V1_PROBES = 64


def _tf():
    import tensorflow as tf

    return tf


def path_exists(path: str) -> bool:
    """file_access.exists, False when a remote file system cannot answer."""
    try:
        return file_access.exists(path)
    except OSError:  # an unreadable remote path: nothing there for us
        return False


def is_directory(path: str) -> bool:
    try:
        return file_access.isdir(path)
    except OSError:
        return False


def _glob(pattern: str) -> List[str]:
    return file_access.glob(pattern)


def same_path(a: str, b: str) -> bool:
    return a.rstrip("/") == b.rstrip("/")


def _head_and_tail(path: str, size: int = 16) -> Tuple[bytes, bytes, int]:
    """The first `size` bytes, the last 48 (a table footer) and the length of the file."""
    try:
        with file_access.open_reader(path) as reader:
            length = reader.size
            head = reader.pread(size, 0)
            tail = reader.pread(FOOTER_SIZE, length - FOOTER_SIZE) if length >= FOOTER_SIZE else b""
    except OSError:
        return b"", b"", 0
    return head, tail, length


def _starts_like_v1(head: bytes) -> bool:
    """A V1 file starts with its first table entry: key "" (0 shared, 0 new bytes), the value's
    length, then a SavedTensorSlices whose field 1 (meta, length-delimited: tag 0x0a) comes first.
    A V2 .index starts the same way, but its value is a BundleHeaderProto (tag 0x08)."""
    if len(head) < 4 or head[0] != 0 or head[1] != 0:
        return False
    pos = 2
    while pos < len(head) and head[pos] & 0x80:
        pos += 1
    return pos + 1 < len(head) and head[pos + 1] == 0x0A


def v1_file_state(path: str) -> Optional[str]:
    """"v1" for an intact-looking V1 table file, "damaged" for one whose start says V1 but whose
    footer is gone (a truncated copy), None for anything else."""
    head, tail, _ = _head_and_tail(path)
    if not _starts_like_v1(head):
        return None
    return "v1" if tail[-8:] == _TABLE_MAGIC else "damaged"


def _is_file(path: str) -> bool:
    return path_exists(path) and not is_directory(path)


def v1_checkpoint(prefix: str) -> Optional[str]:
    """The V1 checkpoint that `prefix` names, as TensorFlow's reader takes it, or None.

    A single V1 file is its own path. A sharded V1 checkpoint is the pattern its Saver returns
    and writes in the state file ("model.ckpt-0-?????-of-00003"); that pattern, its base
    ("model.ckpt-0") or any one shard's file name give the pattern. A V1 file that looks
    truncated raises CorruptCheckpointError.
    """
    pattern = _V1_PATTERN.match(prefix)
    if pattern:
        shards = _glob(prefix)
        return prefix if shards and v1_file_state(shards[0]) == "v1" else None
    if _is_file(prefix):
        state = v1_file_state(prefix)
        if state == "damaged":
            raise CorruptCheckpointError(
                "%s is a TF1 V1 checkpoint file that is truncated or damaged: it starts like one, but its last "
                "bytes are not TensorFlow's table footer. Copy the checkpoint again from its source." % prefix)
        if state != "v1":
            return None
        shard = _V1_SHARD.match(prefix)
        if shard:
            return "%s-?????-of-%s" % (shard.group(1), shard.group(3))
        return prefix
    shards = [s for s in _glob(prefix + "-?????-of-?????") if _V1_SHARD.match(s)]
    counts = sorted({_V1_SHARD.match(s).group(3) for s in shards})
    if shards and v1_file_state(shards[0]) == "v1":
        return "%s-?????-of-%s" % (prefix, counts[-1])
    return None


def v1_shard_files(checkpoint: str) -> List[str]:
    """The files of a V1 checkpoint; a sharded one must have all its shards."""
    pattern = _V1_PATTERN.match(checkpoint)
    if not pattern:
        return [checkpoint]
    count = int(pattern.group(2))
    expected = ["%s-%05d-of-%05d" % (pattern.group(1), i, count) for i in range(count)]
    missing = [p for p in expected if not path_exists(p)]
    if missing:
        raise CorruptCheckpointError(
            "V1 checkpoint %s has %d shards, but %s %s missing. Copy every shard of the checkpoint."
            % (checkpoint, count, ", ".join(missing[:5]) + (" ..." if len(missing) > 5 else ""),
               "is" if len(missing) == 1 else "are"))
    return expected


def _first_table_entry(path: str) -> Tuple[bytes, bytes]:
    """The first key and value of a table file (a V1 shard's metadata), crc32c-checked."""
    with file_access.open_reader(path) as reader:
        length = reader.size
        footer = reader.pread(FOOTER_SIZE, length - FOOTER_SIZE)
        _, pos = varint(footer, 0)
        _, pos = varint(footer, pos)
        index_offset, pos = varint(footer, pos)
        index_size, _ = varint(footer, pos)

        def block(offset: int, size: int, what: str) -> bytes:
            return checked_block(reader.read(offset, size + BLOCK_TRAILER_SIZE), size, what, offset)

        index = block(index_offset, index_size, "index")
        _, pos = varint(index, 0)  # shared
        non_shared, pos = varint(index, pos)
        value_length, pos = varint(index, pos)
        handle = index[pos + non_shared:pos + non_shared + value_length]
        offset, hpos = varint(handle, 0)
        size, _ = varint(handle, hpos)
        data = block(offset, size, "data")
    for key, value in block_entries(data, "data"):
        return key, value
    raise TableError("the first data block is empty")


def v1_slices(files: Sequence[str]) -> Dict[str, list]:
    """{tensor name: [TensorSliceProto, ...]} of the tensors a V1 checkpoint saved in
    partitions (TF1 partitioned variables); tensors saved whole are left out."""
    from tensorflow.core.util import saved_tensor_slice_pb2

    slices: Dict[str, list] = {}
    for path in files:
        try:
            key, value = _first_table_entry(path)
            if key != b"":
                raise ValueError("the first entry is not the metadata")
            saved = saved_tensor_slice_pb2.SavedTensorSlices.FromString(value)
        except Exception as e:  # a damaged table or protobuf's DecodeError
            raise CorruptCheckpointError("V1 checkpoint file %s is damaged: cannot read its metadata (%s). Copy the "
                                         "checkpoint again from its source." % (path, e)) from None
        for tensor in saved.meta.tensor:  # as our TensorSliceProto, the class the V2 entries use
            slices.setdefault(tensor.name, []).extend(TensorSliceProto.FromString(part.SerializeToString())
                                                      for part in tensor.slice)
    return {name: parts for name, parts in slices.items()
            if len(parts) > 1 or any(e.start or e.HasField("length") for s in parts for e in s.extent)}


# --- what else a path can be -------------------------------------------------------------------


def _saved_model_message(directory: str) -> str:
    keras = path_exists(os.path.join(directory, "keras_metadata.pb"))
    message = ("%s is a SavedModel directory (it holds saved_model.pb), not a TF1 name-based checkpoint. Load it with "
               "tf.saved_model.load(%r)%s." % (directory, directory, " or, since Keras saved it, "
                                               "tf_keras.models.load_model(%r)" % directory if keras else ""))
    variables = os.path.join(directory, "variables", "variables")
    if path_exists(variables + ".index"):
        try:
            names = [n for n, _ in _tf().train.list_variables(variables)]
        except Exception:  # an unreadable variables checkpoint: the advice above stands
            names = [OBJECT_GRAPH_KEY]
        if OBJECT_GRAPH_KEY not in names:
            message += (" Its variables were saved by TF1 (name-based keys): to warm-start from them, pass %s as the "
                        "checkpoint." % variables)
    return message


def _keras_message(path: str, container: str) -> str:
    if path.endswith(".weights.h5"):  # weights only: load_model cannot read it
        return ("%s is a Keras weights file (%s), not a TF1 checkpoint. Load it into the built model with "
                "model.load_weights(%r)." % (path, container, path))
    return ("%s is a Keras %s file, not a TF1 checkpoint. Load the model with keras.models.load_model(%r) "
            "(tf_keras.models.load_model for a Keras 2 file), or its weights into a built model with "
            "model.load_weights(%r)." % (path, container, path, path))


def object_based_message(prefix: str) -> str:
    parent = os.path.dirname(os.path.dirname(prefix))
    if (prefix.rstrip("/").endswith("variables/variables")
            and path_exists(os.path.join(parent, "saved_model.pb"))):
        return ("%s is the variables checkpoint of the SavedModel %s: an object-based (TF2) checkpoint, not a TF1 "
                "name-based one. Load the SavedModel with tf.saved_model.load(%r)." % (prefix, parent, parent))
    return ("%s is an object-based (TF2) checkpoint, written by tf.train.Checkpoint or Keras' save_weights (it has "
            "a %s and keys like 'model/.../.ATTRIBUTES/VARIABLE_VALUE'), not a TF1 name-based checkpoint. Restore "
            "it with klc.restore_object_checkpoint(model, %r) or tf.train.Checkpoint(model=model).restore(%r) "
            "(model.load_weights(%r) if Keras' save_weights wrote it)." % (prefix, OBJECT_GRAPH_KEY, prefix, prefix,
                                                                           prefix))


def is_object_based(names: Sequence[str]) -> bool:
    """TF2's tf.train.Checkpoint keys: the object graph plus object paths ('.../.ATTRIBUTES/...').
    A checkpoint that also holds TF1 names is treated as name-based (those names can load)."""
    names = list(names)
    return OBJECT_GRAPH_KEY in names and all(n == OBJECT_GRAPH_KEY or "/.ATTRIBUTES/" in n or
                                             n.startswith(".ATTRIBUTES/") for n in names)


def refuse_other_kinds(path: str) -> None:
    """Raises CheckpointNotFoundError if `path` is a SavedModel or a Keras file."""
    if is_directory(path):
        if path_exists(os.path.join(path, "saved_model.pb")) or path_exists(os.path.join(path, "saved_model.pbtxt")):
            raise CheckpointNotFoundError(_saved_model_message(path))
        return
    name = path.rstrip("/").rpartition("/")[2]
    if name in ("saved_model.pb", "saved_model.pbtxt") and path_exists(path):
        raise CheckpointNotFoundError(_saved_model_message(os.path.dirname(path) or "."))
    if not path_exists(path):
        return
    head, _, _ = _head_and_tail(path, 8)
    if head.startswith(_HDF5_MAGIC) or (name.endswith((".h5", ".hdf5")) and not head):
        raise CheckpointNotFoundError(_keras_message(path, "HDF5 (.h5)"))
    if head.startswith(_ZIP_MAGIC) and (name.endswith(".keras") or _zip_is_keras(path)):
        raise CheckpointNotFoundError(_keras_message(path, ".keras (zip)"))


def _zip_is_keras(path: str) -> bool:
    import zipfile

    try:
        opened = (open(file_access.local_path(path), "rb") if file_access.is_local(path)
                  else _tf().io.gfile.GFile(path, "rb"))
        with opened as f, zipfile.ZipFile(f) as archive:
            names = set(archive.namelist())
    except Exception:  # not a readable zip: not a Keras file either
        return False
    return "config.json" in names and ("model.weights.h5" in names or "metadata.json" in names)


def missing_data_message(prefix: str) -> Optional[str]:
    """Why `prefix` is not a checkpoint when some of its files exist (a lone .meta, data
    without its .index), or None."""
    data = _glob(prefix + ".data-?????-of-?????")
    if data:
        return ("Checkpoint %s is incomplete: its data file(s) %s exist but %s.index does not. Copy the .index "
                "file along with the .data-* files." % (prefix, ", ".join(data[:3]), prefix))
    if path_exists(prefix + ".meta"):
        return ("%s is a MetaGraph (the graph definition a TF1 Saver writes beside its checkpoint), and its "
                "checkpoint data is missing: there is no %s.index and .data-* (V2 format) and no V1 file %s. A "
                ".meta file holds no variable values: copy the checkpoint's .index and .data-* files (or its V1 "
                "file) along with it." % (prefix + ".meta", prefix, prefix))
    return None


# --- the `checkpoint` state file ---------------------------------------------------------------


@dataclasses.dataclass
class StateFile:
    path: str
    latest: Optional[str]  # model_checkpoint_path as written
    problem: Optional[str]  # why it names nothing usable, when latest is None


def read_state_file(directory: str) -> Optional[StateFile]:
    """The directory's `checkpoint` state file (as written, paths not rewritten), or None."""
    from google.protobuf import text_format

    path = os.path.join(directory, "checkpoint")
    if not path_exists(path) or is_directory(path):
        return None
    try:
        text = file_access.read_file(path).decode("utf-8", "replace")
    except OSError as e:
        return StateFile(path, None, "its state file %s cannot be read (%s)" % (path, str(e).splitlines()[0]))
    state = CheckpointState()
    try:
        text_format.Merge(text, state)
    except text_format.ParseError as e:
        return StateFile(path, None, "its state file %s is not a CheckpointState (%s)" % (path, e))
    if not state.model_checkpoint_path:
        return StateFile(path, None, "its state file %s names no checkpoint" % path)
    return StateFile(path, state.model_checkpoint_path, None)


def is_absolute(path: str) -> bool:
    return path.startswith(("/", "\\")) or bool(re.match(r"^([a-zA-Z][a-zA-Z0-9+.-]*://|[a-zA-Z]:[\\/])", path))


def basename(path: str) -> str:
    """The last component of a path written on any machine (POSIX, Windows or a URL)."""
    return re.split(r"[\\/]", path.rstrip("/\\"))[-1]


def v1_candidates(directory: str, names: Sequence[str]) -> List[str]:
    """The V1 checkpoints among a directory's files (single files and shard patterns)."""
    found: List[str] = []
    seen_patterns = set()
    probes = 0
    for name in names:
        if _NOT_V1.search(name):
            continue
        shard = _V1_SHARD.match(name)
        key = "%s-?????-of-%s" % (shard.group(1), shard.group(3)) if shard else name
        if key in seen_patterns:
            continue
        seen_patterns.add(key)
        probes += 1
        if probes > _MAX_V1_PROBES:
            break
        path = os.path.join(directory, name)
        if v1_file_state(path) == "v1" and not is_directory(path):
            found.append(os.path.join(directory, key))
    return found


def natural_key(text: str):
    return [(0, int(p), "") if p.isdigit() else (1, 0, p) for p in re.split(r"(\d+)", text)]
