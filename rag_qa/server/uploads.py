"""Uploaded files: safe names, size limits, atomic saves. A client-supplied file name is reduced
to a plain base name, so no upload can ever be written outside the storage folder."""

from __future__ import annotations

import os
import tempfile
from pathlib import Path
from typing import BinaryIO

from rag_qa.ingest.formats import SUPPORTED_SUFFIXES
from rag_qa.naming import plain_file_name

CHUNK_BYTES = 1 << 20


class UploadRejected(Exception):
    """An upload breaks a limit; `status` is the HTTP status to answer with."""

    def __init__(self, status: int, message: str):
        super().__init__(message)
        self.status = status


def safe_name(client_name: str | None) -> str:
    """A client's file name made safe to store under (`naming.plain_file_name`)."""
    name = plain_file_name(client_name)
    if name is None:
        raise UploadRejected(400, f"{client_name!r} is not a usable file name")
    return name


def check_suffix(name: str) -> None:
    """Only the kinds of file the loaders can read are accepted."""
    if Path(name).suffix.lower() not in SUPPORTED_SUFFIXES:
        raise UploadRejected(415, f"{name}: unsupported file type; upload one of {', '.join(sorted(SUPPORTED_SUFFIXES))}")


def save_uploads(uploads: list[tuple[BinaryIO, str]], folder: Path, budget: int, replace: bool = False) -> list[Path]:
    """Save (stream, safe name) pairs into `folder`, at most `budget` bytes in all. Each is first
    written to a temporary file; only when every one has arrived within the limit are they moved
    into place, so a refused request leaves the folder (and older versions) untouched. A name that
    is already there is refused (409) unless `replace`: placed with a hard link, which fails when
    the name exists, so two uploads racing for one name cannot both win."""
    temps: list[str] = []
    try:
        for stream, name in uploads:
            if (folder / name).resolve().parent != folder.resolve():
                raise UploadRejected(400, f"{name!r} would be stored outside the upload folder")
            handle, temp = tempfile.mkstemp(dir=folder, prefix=".upload-")
            temps.append(temp)
            with os.fdopen(handle, "wb") as out:
                while chunk := stream.read(CHUNK_BYTES):
                    budget -= len(chunk)
                    if budget < 0:
                        raise UploadRejected(413, f"{name}: the upload is larger than the limit")
                    out.write(chunk)
    except BaseException:
        for temp in temps:
            Path(temp).unlink(missing_ok=True)
        raise
    targets = [folder / name for _, name in uploads]
    if replace:
        for temp, target in zip(temps, targets):
            os.replace(temp, target)
        return targets
    placed: list[Path] = []
    try:
        for temp, target in zip(temps, targets):
            os.link(temp, target)
            placed.append(target)
    except FileExistsError:
        for target in placed:
            target.unlink(missing_ok=True)
        raise UploadRejected(409, f"{target.name} was uploaded before; send replace=true to replace it") from None
    finally:
        for temp in temps:
            Path(temp).unlink(missing_ok=True)
    return targets
