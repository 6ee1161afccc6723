"""Originals that the index keeps (uploads on PostgreSQL), written to a private temporary folder
of this process when a page is shown: pdfium reads files, and a replica that did not receive an
upload has no copy of its own. Named by content, so a re-indexed file gets a new copy; at most
`keep` files are kept (the least recently used go first) and the folder goes with `close`."""

from __future__ import annotations

import os
import shutil
import tempfile
import threading
from collections import OrderedDict
from pathlib import Path


class SpooledOriginals:
    """A bounded, thread-safe folder of originals fetched from the index."""

    def __init__(self, keep: int = 32):
        self.keep = keep
        self._folder: Path | None = None
        self._files: OrderedDict[tuple[str, str], str] = OrderedDict()
        self._lock = threading.Lock()

    def path(self, source: str, content_hash: str) -> str | None:
        """The spooled copy of `source` as indexed with `content_hash`, if there is one."""
        with self._lock:
            path = self._files.get((source, content_hash))
            if path is not None:
                self._files.move_to_end((source, content_hash))
            return path

    def put(self, source: str, content_hash: str, original: bytes) -> str:
        """Write `original` (atomically, readable by this user only) and return its path."""
        with self._lock:
            if self._folder is None:
                self._folder = Path(tempfile.mkdtemp(prefix="rag-qa-originals-"))
            name = f"{len(self._files)}-{os.urandom(6).hex()}{Path(source).suffix.lower()}"
            handle, temp = tempfile.mkstemp(dir=self._folder, prefix=".part-")
            with os.fdopen(handle, "wb") as out:
                out.write(original)
            os.replace(temp, self._folder / name)
            self._files[(source, content_hash)] = str(self._folder / name)
            while len(self._files) > self.keep:
                _, old = self._files.popitem(last=False)
                Path(old).unlink(missing_ok=True)
            return str(self._folder / name)

    def close(self) -> None:
        with self._lock:
            if self._folder is not None:
                shutil.rmtree(self._folder, ignore_errors=True)
            self._folder, self._files = None, OrderedDict()
