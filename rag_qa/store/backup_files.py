"""The files of a folder index's backup, and a restore that either finishes or leaves nothing.

A backup holds what the index answers from besides SQLite: the manifest and saved metadata
(keys, scoring, OCR boxes), the originals kept inside the index folder (the service's uploads:
stored names are absolute paths, and `show` and the page view read those files), and a record of
the folder it was taken from. A restore copies all of it into a temporary folder beside the
target, re-points every name under the old index folder to the same place under the new one,
checks the result and only then renames the folder into place, so a restore that fails at any
step leaves neither the target nor the temporary folder, and the same restore can run again.

    >>> restore_folder(Path("backup"), Path("indexes/restored"), FaissStore.open)  # doctest: +SKIP
"""

from __future__ import annotations

import json
import os
import shutil
import sqlite3
import tempfile
import time
from collections.abc import Callable, Sequence
from contextlib import closing
from pathlib import Path
from typing import Any

from rag_qa.errors import IndexCorruptError, RagQAError, storage_problem
from rag_qa.store.writing import atomic_write, fsync_folder

RECORD = "backup.json"  # where the index was: not part of the restored index


def copy_metadata(index: Path, folder: Path) -> list[str]:
    """The manifest and the saved metadata (every JSON file of the index), copied into `folder`."""
    copied = []
    for path in sorted(index.rglob("*.json")):
        relative = path.relative_to(index)
        (folder / relative).parent.mkdir(parents=True, exist_ok=True)
        atomic_write(folder / relative, path.read_bytes())
        copied.append(str(relative))
    return copied


def copy_originals(index: Path, folder: Path, database: Path) -> list[str]:
    """The files inside the index folder that the documents of the database at `database` (the
    backup's snapshot) are read from, copied into `folder` at the same place. Documents kept
    elsewhere are not copied: their names stay valid wherever the index is restored."""
    root = index.resolve()
    with closing(sqlite3.connect(f"file:{database}?mode=ro", uri=True)) as db:
        sources = [source for (source,) in db.execute("SELECT source FROM files ORDER BY source")]
    copied = []
    for source in sources:
        path = Path(source)
        if not path.is_relative_to(root) or not path.is_file():  # elsewhere, gone, or a mail's attachment (`mail.eml#name`)
            continue
        relative = path.relative_to(root)
        (folder / relative).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(path, folder / relative)
        copied.append(str(relative))
    return copied


def write_record(index: Path, folder: Path) -> str:
    """Note which folder the backup was taken from, so a restore can re-point names inside it."""
    atomic_write(folder / RECORD, json.dumps({"index": str(index.resolve()), "taken_at": time.time()}, indent=2).encode("utf-8"))
    return RECORD


def moves_into(backup: Path, target: Path, sources: Sequence[str]) -> list[tuple[str, str]]:
    """How a restore at `target` renames stored names: each under the backed-up index folder goes
    to the same place under `target` (a backup made before the record was kept moves nothing)."""
    record = backup / RECORD
    old = json.loads(record.read_text("utf-8"))["index"] if record.is_file() else None
    new = str(target.resolve())
    if old is None or old == new:
        return []
    return [(source, new + source[len(old) :]) for source in sources if source.startswith(old + os.sep)]


def finish(copy: Path, backup: Path, target: Path, open_store: Callable[[Path], Any]) -> Any:
    """Open the copy (rebuilding FAISS from SQLite), re-point its names (vectors kept) and check
    it; returns its StoreInfo, or raises when it is not consistent."""
    store = open_store(copy)
    try:
        store.rename_sources(moves_into(backup, target, [f["source"] for f in store.files()]))
        store.flush()
        problems, info = store.check(), store.info()
    finally:
        store.close()
    if problems:
        raise IndexCorruptError(f"the restored index is not consistent: {'; '.join(problems)}")
    return info


def restore_folder(backup: Path, target: Path, open_store: Callable[[Path], Any]) -> Any:
    """Copy `backup` into a temporary folder beside `target`, open, re-point and check it there
    (`finish`, with `open_store`), then rename it to `target`. Any failure removes the temporary
    folder and leaves `target` as it was (absent, or empty). Returns the index's StoreInfo."""
    if target.exists() and (not target.is_dir() or any(target.iterdir())):
        raise RagQAError(f"{target} exists and is not empty: move it aside first (a restore never overwrites an index)")
    target.parent.mkdir(parents=True, exist_ok=True)
    temp = Path(tempfile.mkdtemp(dir=target.parent, prefix=f".{target.name}.restoring-"))
    try:
        shutil.copytree(backup, temp, dirs_exist_ok=True, ignore=lambda folder, names: [RECORD] if Path(folder) == backup else [])
        finished = finish(temp, backup, target, open_store)
        os.rename(temp, target)  # replaces an empty target; fails if another restore filled it meanwhile
        fsync_folder(target.parent)
    except BaseException as exc:
        shutil.rmtree(temp, ignore_errors=True)
        if isinstance(exc, OSError):
            why = storage_problem(exc, str(target.parent)) or str(exc)
            raise RagQAError(f"restoring {backup} to {target} failed ({why}); nothing was left at {target}: run the same restore again") from exc
        raise
    return finished
