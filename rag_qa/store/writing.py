"""Writing a file so that readers, other writers and a crash or power loss see the old or the new
version, whole. The one way rag-qa replaces a file: the index's manifest, FAISS file and saved
metadata, and the ONNX cache's graphs and notes."""

from __future__ import annotations

import fcntl
import os
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

TEMP_SUFFIX = ".tmp"


def atomic_write(path: Path, data: bytes) -> None:
    """Replace `path` with `data`: a temporary file of its own in the same folder (a unique name,
    so two threads or processes never share one), fsync, rename over `path`, fsync of the folder."""
    handle, temp = tempfile.mkstemp(dir=path.parent, prefix=path.name + ".", suffix=TEMP_SUFFIX)
    try:
        with os.fdopen(handle, "wb") as out:
            out.write(data)
            out.flush()
            os.fsync(out.fileno())
        os.replace(temp, path)
    except BaseException:
        Path(temp).unlink(missing_ok=True)
        raise
    fsync_folder(path.parent)


def durable_replace(source: Path, target: Path) -> None:
    """Move a complete file that someone else wrote (an exported graph) into place: its bytes
    reach the disk before the rename, and the rename before this returns."""
    with open(source, "rb") as handle:
        os.fsync(handle.fileno())
    os.replace(source, target)
    fsync_folder(target.parent)


def fsync_folder(folder: Path) -> None:
    directory = os.open(folder, os.O_RDONLY)
    try:
        os.fsync(directory)
    finally:
        os.close(directory)


@contextmanager
def locked(lock_file: Path) -> Iterator[None]:
    """Hold the exclusive lock on `lock_file` (an index's writer lock, taken by a command that has
    no store open on the folder; a store holds its own, `FaissStore._file_lock`)."""
    handle = os.open(lock_file, os.O_RDWR | os.O_CREAT, 0o644)
    try:
        fcntl.flock(handle, fcntl.LOCK_EX)
        yield
    finally:
        os.close(handle)  # closing releases the lock
