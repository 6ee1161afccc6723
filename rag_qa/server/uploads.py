"""Uploaded files: safe names, size limits, atomic saves. A client-supplied file name is reduced
to a plain base name, so no upload can ever be written outside the storage folder, and each upload
gets a folder of its own inside it."""

from __future__ import annotations

import os
import secrets
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


def save_uploads(uploads: list[tuple[BinaryIO, str]], folder: Path, budget: int) -> list[Path]:
    """Save (stream, safe name) pairs, each in a new folder of its own under `folder`
    (`folder/<random>/name`), at most `budget` bytes in all. Each is first written to a temporary
    file; only when every one has arrived within the limit are they moved into place, so a refused
    request leaves the folder untouched. Uploads never share a folder, so one never overwrites
    another, and a name a hidden document holds is no different from a new one."""
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
        targets = []
        for temp, (_, name) in zip(temps, uploads):
            target = folder / secrets.token_hex(8) / name
            target.parent.mkdir()
            os.replace(temp, target)
            targets.append(target)
        return targets
    finally:
        for temp in temps:
            Path(temp).unlink(missing_ok=True)
