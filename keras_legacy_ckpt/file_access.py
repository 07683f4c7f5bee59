"""Where checkpoint files live: the one file layer behind every read and write of the library.

A path is *local* when it has no scheme or is a `file://` URL (`local_path` turns that into a plain
path, so it takes the fast path too). Local files use the operating system directly: `os.pread` in
bounded chunks, `os.copy_file_range`, hard links or reflinks to share data shards, and a temporary
file + fsync + `os.replace` to publish. Every other scheme (gs://, s3://, hdfs://, ram://, ...) goes
through `tf.io.gfile`; TensorFlow is imported in those branches only, so reading and writing local
files never needs it. Errors from TensorFlow's file systems (`tf.errors.OpError`) are raised as
`OSError` subclasses (`FileNotFoundError`, `PermissionError`, ...), so callers handle one kind.

What is atomic where: `replace` is `os.replace` locally (atomic, made durable by `sync_directory`)
and `tf.io.gfile.rename(overwrite=True)` elsewhere. On GCS and S3 a rename is a server-side copy
followed by a delete: each object appears whole or not at all, but the rename itself is not atomic,
and a killed process can leave the temporary name behind. Writers therefore write every file under
a temporary name and publish the one file that makes the result visible (a checkpoint's `.index`)
last, so a reader never sees a partial result on either side.
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import glob as _glob
import os
import re
import shutil
import uuid
from typing import Iterator, List, Union

from keras_legacy_ckpt.errors import CheckpointNotFoundError, CorruptCheckpointError

# One read, write or copy moves at most this much: Linux moves at most 0x7ffff000 bytes (just
# under 2 GiB) per call and Python returns the short count, so every transfer loops anyway. At
# 16 MiB malloc reuses the chunk buffers instead of mapping fresh pages, and a remote read or
# streamed copy holds at most this much in memory.
IO_CHUNK = 16 * 1024 * 1024
_FICLONE = 0x40049409  # ioctl: share the source's extents (btrfs, XFS)
_SCHEME = re.compile(r"^([A-Za-z][A-Za-z0-9+.-]*)://")

Path = Union[str, "os.PathLike[str]"]


# --- paths ----------------------------------------------------------------------------------------

def scheme(path: Path) -> str:
    """"gs" for "gs://bucket/x", "file" for "file:///x", "" for a plain path."""
    match = _SCHEME.match(os.fspath(path))
    return match.group(1).lower() if match else ""


def is_local(path: Path) -> bool:
    """True for plain paths and file:// URLs: the files this machine's kernel opens."""
    return scheme(path) in ("", "file")


def local_path(path: Path) -> str:
    """The plain path of a local path: "file:///data/x" and "file://localhost/data/x" -> "/data/x".

    As in TensorFlow's own file:// handling, the URL's host part is ignored, so that TensorFlow's
    readers and ours open the same file. Raises ValueError for a remote path.
    """
    path = os.fspath(path)
    kind = scheme(path)
    if kind == "":
        return path
    if kind != "file":
        raise ValueError("%s is not a local path" % path)
    rest = path[len("file://"):]
    slash = rest.find("/")
    return rest[slash:] if slash >= 0 else "/"


def _root_length(path: str) -> int:
    """Length of "gs://" of a remote path: what `dirname` and `rstrip("/")` must keep."""
    return len(scheme(path)) + 3


def join(directory: Path, *names: str) -> str:
    return os.path.join(os.fspath(directory), *names)  # "/"-separated: also right for URLs


def basename(path: Path) -> str:
    return os.path.basename(os.fspath(path))


def dirname(path: Path) -> str:
    """os.path.dirname, except that a remote path's dirname keeps its scheme ("ram://x" -> "ram://")."""
    path = os.fspath(path)
    head = os.path.dirname(path)
    if not is_local(path) and len(head) < _root_length(path):
        return path[:_root_length(path)]
    return head


def absolute(path: Path) -> str:
    """A canonical form for comparisons and state files: a plain absolute path when local (file://
    URLs included), the URL itself (without a trailing "/") when remote."""
    path = os.fspath(path)
    if is_local(path):
        return os.path.abspath(local_path(path))
    return path.rstrip("/") if len(path.rstrip("/")) >= _root_length(path) else path


def same_file(a: Path, b: Path) -> bool:
    """Whether `a` and `b` name the same file (symlinks resolved for local paths)."""
    if is_local(a) and is_local(b):
        return os.path.realpath(local_path(a)) == os.path.realpath(local_path(b))
    return not is_local(a) and not is_local(b) and absolute(a) == absolute(b)


# --- TensorFlow's file systems (imported on first use of a remote path) ---------------------------

def tensorflow_for(what: str):
    """TensorFlow, imported for `what` ("reading gs://b/x", "V1 checkpoint /x"); when it cannot be imported,
    a CheckpointNotFoundError saying what needs it. Local V2 checkpoints never need it."""
    try:
        import tensorflow as tf
    except ImportError as e:
        raise CheckpointNotFoundError(
            "%s needs TensorFlow, which cannot be imported here (%s). Without TensorFlow this library reads V2 "
            "checkpoints (.index and .data-* files) on local disks; install TensorFlow for V1 checkpoints and for "
            "gs://, s3://, hdfs:// and other file systems, or copy the checkpoint to a local disk (converting a V1 "
            "one with klc.rename_checkpoint where TensorFlow is installed)." % (what, e)) from None
    return tf


def _gfile(path: str = "a remote path"):
    return tensorflow_for("Reading %s" % path).io.gfile


@contextlib.contextmanager
def _remote_errors(path: str) -> Iterator[None]:
    """Raises TensorFlow's file system errors as the matching OSError subclasses."""
    tf = tensorflow_for("Reading %s" % path)

    try:
        yield
    except tf.errors.OpError as e:
        kinds = ((tf.errors.NotFoundError, FileNotFoundError, errno.ENOENT),
                 (tf.errors.PermissionDeniedError, PermissionError, errno.EACCES),
                 (tf.errors.AlreadyExistsError, FileExistsError, errno.EEXIST))
        kind, code = next(((k, c) for t, k, c in kinds if isinstance(e, t)), (OSError, errno.EIO))
        message = (getattr(e, "message", "") or "").strip().splitlines()
        raise kind(code, message[0] if message else os.strerror(code), path) from None


def _ram_name(path: str) -> str:
    """The name that asks TF's ram:// file system about `path` as a directory only.

    That file system strips one trailing "/" from every name and calls any string prefix of a file
    name a directory: with "ram://d/model.ckpt-3.index" present, "ram://d/model.ckpt" "exists" and
    is a directory. Asking about "ram://d/model.ckpt//" asks about the names under "d/model.ckpt/".
    """
    return path.rstrip("/") + "//"


def _ram_isdir(path: str) -> bool:
    gfile = _gfile()
    name = path.rstrip("/")
    if len(name) < _root_length(path) or gfile.isdir(_ram_name(path)):
        return True  # the root, or a directory with something in it
    # An empty directory made by makedirs is its own entry (glob matches entries exactly).
    return not any(c in name for c in "*?[\\") and gfile.isdir(name) and name in gfile.glob(name)


# --- queries and whole files ----------------------------------------------------------------------

def exists(path: Path) -> bool:
    path = os.fspath(path)
    if is_local(path):
        return os.path.exists(local_path(path))
    with _remote_errors(path):
        if scheme(path) == "ram":
            return _ram_isdir(path) or (_gfile().exists(path) and not _gfile().isdir(path))
        return _gfile().exists(path)


def isdir(path: Path) -> bool:
    path = os.fspath(path)
    if is_local(path):
        return os.path.isdir(local_path(path))
    with _remote_errors(path):
        return _ram_isdir(path) if scheme(path) == "ram" else _gfile().isdir(path)


def listdir(path: Path) -> List[str]:
    """The names in directory `path` (a remote sub-directory's trailing "/" removed)."""
    path = os.fspath(path)
    if is_local(path):
        return os.listdir(local_path(path))
    with _remote_errors(path):
        names = _gfile().listdir(_ram_name(path) if scheme(path) == "ram" else path)
    return [name.rstrip("/") for name in names]


def glob(pattern: Path) -> List[str]:
    """The paths matching `pattern` (`*`, `?`, `[...]` in the last components), sorted; [] on errors."""
    pattern = os.fspath(pattern)
    if is_local(pattern):
        prefix = pattern[:len(pattern) - len(local_path(pattern))]  # keep a file:// URL's form
        return sorted(prefix + found for found in _glob.glob(local_path(pattern)))
    try:
        with _remote_errors(pattern):
            return sorted(_gfile().glob(pattern))
    except OSError:
        return []


def size(path: Path) -> int:
    """The size of file `path` in bytes; FileNotFoundError when there is none."""
    path = os.fspath(path)
    if is_local(path):
        return os.path.getsize(local_path(path))
    with _remote_errors(path):
        stat = _gfile().stat(path)
    if stat.is_directory:  # ram:// answers for any prefix of a file name
        raise FileNotFoundError(errno.ENOENT, "No such file (a directory)", path)
    return stat.length


def makedirs(path: Path) -> None:
    path = os.fspath(path)
    if is_local(path):
        os.makedirs(local_path(path), exist_ok=True)
    else:
        with _remote_errors(path):
            _gfile().makedirs(path)


def remove(path: Path) -> None:
    path = os.fspath(path)
    if is_local(path):
        os.remove(local_path(path))
    else:
        with _remote_errors(path):
            _gfile().remove(path)


def replace(src: Path, dst: Path) -> None:
    """Moves file `src` to `dst`, replacing it: atomic locally; on GCS and S3 a copy and a delete."""
    src, dst = os.fspath(src), os.fspath(dst)
    if is_local(src) != is_local(dst):
        raise ValueError("Cannot move %s to %s: one is local, the other is not." % (src, dst))
    if is_local(src):
        os.replace(local_path(src), local_path(dst))
    else:
        with _remote_errors(src):
            _gfile().rename(src, dst, overwrite=True)


def sync_directory(path: Path) -> None:
    """Makes the renames in local directory `path` durable (a power loss must not bring old names
    back); remote file systems have no such step."""
    path = os.fspath(path)
    if not is_local(path):
        return
    fd = os.open(local_path(path), os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def read_file(path: Path) -> bytes:
    path = os.fspath(path)
    if is_local(path):
        with open(local_path(path), "rb") as f:
            return f.read()
    with _remote_errors(path), _gfile().GFile(path, "rb") as f:
        return f.read()


def write_file(path: Path, data: bytes) -> None:
    """Creates or truncates file `path` with `data`, durably (fsync) when local."""
    writer = open_writer(path)
    try:
        writer.write(data)
    except BaseException:
        writer.discard()
        raise
    writer.close()


def atomic_write(path: Path, data: bytes) -> None:
    """Replaces file `path` with `data`: written under a temporary name next to it, then moved over
    it (atomic locally; see `replace` for GCS and S3). Readers see the old or the new content."""
    path = os.fspath(path)
    temporary = join(dirname(path), ".%s.tmp-%s" % (basename(path), uuid.uuid4().hex[:12]))
    try:
        write_file(temporary, data)
        replace(temporary, path)
    except BaseException:
        with contextlib.suppress(OSError):
            remove(temporary)
        raise
    sync_directory(dirname(path))


# --- reading at offsets ---------------------------------------------------------------------------

class Reader:
    """A file opened for reads at given offsets, like `os.pread`; a context manager."""

    def __init__(self, path: str) -> None:
        self.path = path

    @property
    def size(self) -> int:
        raise NotImplementedError

    def pread(self, count: int, offset: int) -> bytes:
        """Up to `count` bytes at `offset`, in one call (fewer, or b"" at the end of the file)."""
        raise NotImplementedError

    def chunks(self, offset: int, size: int) -> Iterator[bytes]:
        """The bytes [offset, offset + size) in pieces of at most IO_CHUNK bytes; ends early at the
        end of the file (callers compare the count with what they expected)."""
        done = 0
        while done < size:
            chunk = self.pread(min(IO_CHUNK, size - done), offset + done)
            if not chunk:
                return
            yield chunk
            done += len(chunk)

    def read(self, offset: int, size: int) -> bytes:
        """The bytes [offset, offset + size), fewer only at the end of the file."""
        return b"".join(self.chunks(offset, size))

    def close(self) -> None:
        raise NotImplementedError

    def __enter__(self) -> "Reader":
        return self

    def __exit__(self, *exc_info) -> None:
        self.close()


class _LocalReader(Reader):
    def __init__(self, path: str) -> None:
        super().__init__(path)
        self.fd = os.open(local_path(path), os.O_RDONLY)

    @property
    def size(self) -> int:
        return os.fstat(self.fd).st_size

    def pread(self, count: int, offset: int) -> bytes:
        return os.pread(self.fd, count, offset)

    def close(self) -> None:
        if self.fd >= 0:
            os.close(self.fd)
            self.fd = -1


class _RemoteReader(Reader):
    def __init__(self, path: str) -> None:
        super().__init__(path)
        with _remote_errors(path):
            self.file = _gfile().GFile(path, "rb")
            self._size = self.file.size()

    @property
    def size(self) -> int:
        return self._size

    def pread(self, count: int, offset: int) -> bytes:
        if offset >= self._size or count <= 0:
            return b""  # GFile raises when seeking past the end
        with _remote_errors(self.path):
            self.file.seek(offset)
            return self.file.read(count)

    def close(self) -> None:
        with _remote_errors(self.path):
            self.file.close()


def open_reader(path: Path) -> Reader:
    path = os.fspath(path)
    return _LocalReader(path) if is_local(path) else _RemoteReader(path)


# --- writing --------------------------------------------------------------------------------------

class Writer:
    """A new file written front to back. `close()` makes it durable (fsync locally; on remote file
    systems the upload completes there); `discard()` closes it after a failure, without syncing."""

    def __init__(self, path: str) -> None:
        self.path = path

    def write(self, data) -> None:
        """Writes all of `data` (bytes-like)."""
        raise NotImplementedError

    def close(self) -> None:
        raise NotImplementedError

    def discard(self) -> None:
        raise NotImplementedError


class _LocalWriter(Writer):
    def __init__(self, path: str) -> None:
        super().__init__(path)
        self.fd = os.open(local_path(path), os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)

    def write(self, data) -> None:
        view, done = memoryview(data).cast("B"), 0
        while done < len(view):
            written = os.write(self.fd, view[done:done + IO_CHUNK])
            if written <= 0:
                raise OSError(errno.EIO, "a write made no progress", self.path)
            done += written

    def close(self) -> None:
        try:
            os.fsync(self.fd)
        finally:
            self.discard()

    def discard(self) -> None:
        if self.fd >= 0:
            os.close(self.fd)
            self.fd = -1


class _RemoteWriter(Writer):
    def __init__(self, path: str) -> None:
        super().__init__(path)
        with _remote_errors(path):
            if scheme(path) == "ram" and _gfile().exists(path) and not _gfile().isdir(path):
                _gfile().remove(path)  # ram:// appends to an existing file opened for writing
            self.file = _gfile().GFile(path, "wb")
            self.file.write(b"")  # GFile creates the file at its first write: even an empty one must exist

    def write(self, data) -> None:
        view = memoryview(data).cast("B")
        with _remote_errors(self.path):
            for start in range(0, len(view), IO_CHUNK):  # GFile takes bytes: copy a chunk at a time
                self.file.write(view[start:start + IO_CHUNK].tobytes())

    def close(self) -> None:
        with _remote_errors(self.path):
            self.file.close()

    def discard(self) -> None:
        with contextlib.suppress(Exception):
            self.file.close()  # what was written stays under its (temporary) name for the caller to remove


def open_writer(path: Path) -> Writer:
    """Creates (or truncates) file `path` for writing."""
    path = os.fspath(path)
    return _LocalWriter(path) if is_local(path) else _RemoteWriter(path)


def copy_range(reader: Reader, writer: Writer, offset: int, size: int) -> None:
    """Appends bytes [offset, offset + size) of `reader` to `writer`: in the kernel
    (`os.copy_file_range`) when both are local, else in IO_CHUNK pieces through memory."""
    if isinstance(reader, _LocalReader) and isinstance(writer, _LocalWriter):
        done = 0
        while done < size:
            count = min(IO_CHUNK, size - done)
            try:
                copied = os.copy_file_range(reader.fd, writer.fd, count, offset + done)
            except OSError:  # not supported between these file systems: read and write instead
                copied = os.write(writer.fd, os.pread(reader.fd, count, offset + done))
            if copied <= 0:
                raise CorruptCheckpointError("Unexpected end of %s at offset %d." % (reader.path, offset + done))
            done += copied
        return
    done = 0
    for chunk in reader.chunks(offset, size):
        writer.write(chunk)
        done += len(chunk)
    if done != size:
        raise CorruptCheckpointError("Unexpected end of %s at offset %d." % (reader.path, offset + done))


def share_file(src: Path, dst: Path) -> None:
    """Makes new file `dst` hold the bytes of `src` as cheaply as the two places allow.

    Both local: a hard link, else a reflink, else a kernel copy, so neither file may be modified
    afterwards (checkpoint data shards never are). Both on one remote file system:
    `tf.io.gfile.copy` (a server-side copy on GCS and S3). Otherwise (local <-> remote, or two
    schemes): a streamed copy, IO_CHUNK bytes at a time.
    """
    src, dst = os.fspath(src), os.fspath(dst)
    if is_local(src) and is_local(dst):
        src, dst = local_path(src), local_path(dst)
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
        return
    if scheme(src) == scheme(dst):
        with _remote_errors(src):
            _gfile().copy(src, dst, overwrite=True)
        return
    with open_reader(src) as reader:
        writer = open_writer(dst)
        try:
            copy_range(reader, writer, 0, reader.size)
        except BaseException:
            writer.discard()
            raise
        writer.close()
