"""The embedded store: one folder with a manifest, a SQLite database and a FAISS index file.

SQLite is the source of truth (`sqlite_db`): passages, their vectors, files and a full-text table
change together in one transaction, and every transaction bumps a generation counter. The FAISS
file (`faiss_mirror`) is a search structure derived from SQLite; it records the generation it was
built at and is replaced atomically. If a process dies between a commit and the next FAISS save,
the next open sees the stale generation and rebuilds FAISS from SQLite. So a kill at any moment
leaves either the old or the new state, never a mix, and FAISS always matches SQLite.

This module is the facade: opening (manifest, compatibility), the writer lock, transactions that
keep the two in step, and the `PassageStore` methods. Only one process writes at a time (a lock
file); readers never block.

    >>> store = FaissStore.open("indexes/demo", IndexSettings(), dimension=384)
    >>> store.count()
    0
"""

from __future__ import annotations

import fcntl
import glob
import json
import os
import sqlite3
import threading
from collections.abc import Iterable, Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import numpy as np

from rag_qa.config import IndexSettings
from rag_qa.errors import ChangedMeanwhile, IndexCorruptError, ManifestUnreadable, RagQAError
from rag_qa.records import Document, Passage, SearchHit
from rag_qa.store.base import (  # what both stores share
    DuplicatePassageError, StoreBase, StoreInfo, check_compatible, check_dimension, check_policy, check_top_k,
    check_vector_count, new_manifest, unique_by_id,
)  # fmt: skip
from rag_qa.store.backup_files import copy_metadata, copy_originals, restore_folder, write_record
from rag_qa.store.faiss_events import FaissEvents
from rag_qa.store.faiss_mirror import Change, FaissMirror
from rag_qa.store.sqlite_db import PassageDatabase, connect, saved_manifest
from rag_qa.store.writing import TEMP_SUFFIX, atomic_write, locked

FORMAT_VERSION = 1
MANIFEST = "manifest.json"
DATABASE = "passages.sqlite3"
VECTORS = "vectors.faiss"
LOCK = "write.lock"


class FaissStore(StoreBase, FaissEvents):
    """Passages, their vectors and full text in one crash-safe folder. Open with `FaissStore.open`."""

    def __init__(self, path: Path, manifest: dict[str, Any], database: PassageDatabase, lock: int | None):
        self.path = path
        self.manifest = manifest
        self.settings = IndexSettings.from_dict(manifest["settings"])
        self._database = database
        self._lock = lock
        self._mutex = threading.RLock()  # one SQLite connection and FAISS copy, shared by threads
        self._lock_depth = 0  # how many `_file_lock` blocks of this handle are open (they nest)
        self._mirror = FaissMirror(path / VECTORS, self.settings.vector_index, database, lambda: self.dimension)
        self.recovered = self._mirror.recovered

    # ----------------------------------------------------------------- opening and closing
    @classmethod
    def open(
        cls,
        path: str | os.PathLike[str],
        settings: IndexSettings | None = None,
        dimension: int | None = None,
        read_only: bool = False,
        new_settings: IndexSettings | None = None,
    ) -> "FaissStore":
        """Open the index at `path`, creating it (with `settings`, else `new_settings`) when it does not exist.

        Raises IndexMismatchError when the index was built with another embedding model or
        dimension than the ones given, IndexCorruptError when the folder is not a readable index.
        """
        folder = Path(path)
        manifest_path = folder / MANIFEST
        if read_only and not manifest_path.exists():
            raise IndexCorruptError(f"{folder}: no rag-qa index here (missing {MANIFEST}); build one with `rag-qa index`")
        folder.mkdir(parents=True, exist_ok=True)
        lock = None if read_only else os.open(folder / LOCK, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            if lock is not None:
                fcntl.flock(lock, fcntl.LOCK_EX)  # set-up must not race another writer
            manifest = cls._read_or_create_manifest(manifest_path, settings or new_settings, dimension)
            check_compatible(str(folder), manifest, settings, dimension)
            if not read_only:
                for stale in folder.glob("*" + TEMP_SUFFIX):
                    stale.unlink()  # left by a writer that was killed mid-save
            store = cls(folder, manifest, PassageDatabase(connect(folder / DATABASE, read_only)), lock)
            if not read_only:
                store._database.keep_manifest_copy(manifest)  # what `check --repair` restores a damaged manifest from
        except BaseException:
            if lock is not None:
                os.close(lock)
            raise
        if lock is not None:
            fcntl.flock(lock, fcntl.LOCK_UN)
            try:
                store._move_old_audit_log()  # the first writable open moves it into the events table
            except BaseException:
                store.close()
                raise
        return store

    @staticmethod
    def _read_or_create_manifest(path: Path, settings: IndexSettings | None, dimension: int | None) -> dict[str, Any]:
        if path.exists():
            try:
                manifest = json.loads(path.read_text("utf-8"))
                IndexSettings.from_dict(manifest["settings"])
            except (ValueError, KeyError, RagQAError) as exc:
                what_to_do = (f"`rag-qa check --repair --index {path.parent}` restores it from the copy in the database" if saved_manifest(path.parent / DATABASE)
                              else "restore the index folder from a backup (`rag-qa restore`) or index the documents again")  # fmt: skip
                raise ManifestUnreadable(f"{path}: unreadable manifest ({exc}); {what_to_do}") from None
            if manifest.get("format_version") != FORMAT_VERSION:
                raise IndexCorruptError(
                    f"{path}: index format {manifest.get('format_version')} is not supported "
                    f"(this rag-qa reads format {FORMAT_VERSION}); rebuild the index"
                )
            return manifest
        manifest = new_manifest(settings, dimension, FORMAT_VERSION)
        atomic_write(path, json.dumps(manifest, indent=2).encode("utf-8"))
        return manifest

    def close(self) -> None:
        """Save pending FAISS changes and close the files."""
        if self._lock is not None:
            self.flush()
            with self._mutex:
                self._database.checkpoint()
            os.close(self._lock)
            self._lock = None
        self._database.close()

    @property
    def read_only(self) -> bool:
        return self._lock is None

    @property
    def dimension(self) -> int | None:
        return self.manifest["embedding"]["dimension"]

    def generation(self) -> int:
        return self._database.generation()

    # ----------------------------------------------------------------- writing
    @contextmanager
    def _file_lock(self) -> Iterator[None]:
        """Serialises writers across processes (SQLite alone cannot cover the FAISS file), and
        covers every file written into the folder, so the temp-file cleanup of an `open` (which
        holds it) never meets a live temp file. Blocks nest: only the outermost one unlocks."""
        if self._lock is None:
            raise RagQAError(f"{self.path} is open read-only")
        with self._mutex:  # the lock is this handle's, shared by its threads
            if self._lock_depth == 0:
                fcntl.flock(self._lock, fcntl.LOCK_EX)
            self._lock_depth += 1
            try:
                yield
            finally:
                self._lock_depth -= 1
                if self._lock_depth == 0:
                    fcntl.flock(self._lock, fcntl.LOCK_UN)

    def flush(self) -> None:
        """Save the FAISS index atomically if it changed since the last save."""
        if self.read_only:
            return
        with self._mutex, self._file_lock():
            self._mirror.save()

    @contextmanager
    def _transaction(self) -> Iterator[tuple[PassageDatabase, Change]]:
        """One atomic write: SQLite commits (bumping the generation), then FAISS mirrors it."""
        with self._mutex, self._file_lock():
            self._database.begin()
            try:
                self._mirror.sync()
                change = Change()
                yield self._database, change
                self._database.commit()
            except BaseException:
                self._database.rollback()
                raise
            self._mirror.apply(change)

    def _set_dimension(self, vectors: Iterable[np.ndarray | Sequence[float] | None]) -> None:
        """Record the vector dimension on first write; reject vectors of any other dimension."""
        size = check_dimension(str(self.path), self.dimension, vectors)
        if self.dimension is None and size is not None:
            self.manifest["embedding"]["dimension"] = size
            atomic_write(self.path / MANIFEST, json.dumps(self.manifest, indent=2).encode("utf-8"))
            self._database.keep_manifest_copy(self.manifest)

    def replace_files(self, files: Sequence[tuple[Document, list[Passage]]], vectors: np.ndarray, event: dict[str, Any] | None = None) -> int:
        """Atomically store new versions of files: each document (its text, hash and page starts)
        with its passages, `vectors` holding one row per passage in order. Old passages of those
        files are removed. Returns the number of passages added. `event` (the audit log's) is
        appended in the same transaction: no change without its event, no event without it."""
        check_vector_count(sum(len(passages) for _, passages in files), len(vectors))
        with self._transaction() as (db, change):
            self._set_dimension(vectors[:1])
            for document, passages in files:
                change.removed += db.delete_source_rows(document.source)
                for passage in passages:
                    vector = vectors[len(change.added)]
                    change.add(db.insert(passage, vector), vector)
                db.put_file(document, len(passages))
            if event is not None:
                db.append_event(event)
        return len(change.added)

    def delete_source(self, source: str, event: dict[str, Any] | None = None, expected: Sequence[str] | None = None) -> int:
        """Remove a file and all its passages; returns how many passages were removed. `event` is
        appended in the same transaction, when the file was there; with `expected`, ChangedMeanwhile
        unless the file still has exactly those groups (checked in the same transaction)."""
        with self._transaction() as (db, change):
            if expected is not None and not db.set_groups(source, expected, expected):  # a no-op that matches only those groups
                raise ChangedMeanwhile(f"{source} changed meanwhile; look again and retry")
            indexed = db.file_hash(source) is not None
            change.removed += db.delete_source_rows(source)
            db.delete_file(source)
            if event is not None and (indexed or change.removed):
                db.append_event(event)
        return len(change.removed)

    def write(self, passages: Sequence[Passage], vectors: Sequence[Any], policy: str = "fail") -> int:
        """Write passages by id with a duplicate policy ("fail", "skip" or "overwrite").
        Returns how many were written. With "fail", nothing is written if any id exists."""
        check_policy(policy)
        check_vector_count(len(passages), len(vectors))
        kept = unique_by_id(passages, vectors, policy)  # one vector per id: a repeated id left an orphan vector
        with self._transaction() as (db, change):
            self._set_dimension(vectors)
            for passage, vector in kept.values():
                existing = db.row_of_id(passage.id)
                if existing is not None and policy == "fail":
                    raise DuplicatePassageError(f"a passage with id {passage.id!r} already exists")
                if existing is not None and policy == "skip":
                    continue
                if existing is not None:
                    db.delete_rows([existing])
                    change.removed.append(existing)
                change.add(db.insert(passage, vector), vector)
        return len(change.added)

    def delete_ids(self, ids: Sequence[str]) -> int:
        """Remove passages by id (unknown ids are ignored); returns how many were removed."""
        with self._transaction() as (db, change):
            change.removed += [row for row in map(db.row_of_id, ids) if row is not None]
            db.delete_rows(change.removed)
        return len(change.removed)

    def update_meta(self, updates: dict[str, dict[str, Any]]) -> int:
        """Replace the metadata of passages by id: {id: new_meta}. Returns how many changed."""
        with self._transaction() as (db, _):
            return db.update_meta(updates)

    def rename_source(self, old: str, new: str) -> int:
        """A moved file: its passages and file row take the new name (passage ids follow it),
        keeping their vectors, in one transaction; returns how many passages moved."""
        return self.rename_sources([(old, new)])

    def rename_sources(self, moves: Sequence[tuple[str, str]]) -> int:
        """`rename_source` for many files (old name, new name) in one transaction."""
        with self._transaction() as (db, _):
            return sum(db.rename_source(old, new) for old, new in moves)

    def set_groups(self, source: str, groups: Sequence[str], event: dict[str, Any] | None = None, expected: Sequence[str] | None = None) -> bool:
        """Give an indexed file these access groups (none: every key may read it), without
        re-embedding; False when `source` is not indexed (or, with `expected`, no longer has
        exactly those groups). `event` is appended in the same transaction, when it changed."""
        with self._transaction() as (db, _):
            changed = db.set_groups(source, groups, expected)
            if changed and event is not None:
                db.append_event(event)
            return changed

    def repair(self) -> list[str]:
        """Rebuild what is derived from the passages: the full-text table and the FAISS file (from
        SQLite). Returns what was rebuilt; RagQAError when SQLite itself is damaged (nothing here
        can rebuild it: restore a backup, `rag-qa restore`)."""
        with self._mutex:
            damaged = self._database.integrity_problems()
        if damaged:
            raise IndexCorruptError(f"{self.path}: the SQLite database itself is damaged; restore a backup (`rag-qa restore`) or index the documents again")
        with self._transaction() as (db, change):
            db.rebuild_full_text()
            change.rebuild = True
        self.flush()
        return ["the full-text table, from the passages", f"{VECTORS}, from the vectors in SQLite"]

    @staticmethod
    def restore_manifest(location: str | os.PathLike[str]) -> bool:
        """Write the manifest of the index folder at `location` back from its copy in the database;
        False when there is no copy (an index made before copies were kept, or not a folder index)."""
        copy = saved_manifest(Path(location) / DATABASE) if Path(location, DATABASE).is_file() else None
        if copy is not None:
            with locked(Path(location) / LOCK):  # as every write into the folder (see `_file_lock`)
                atomic_write(Path(location) / MANIFEST, json.dumps(copy, indent=2).encode("utf-8"))
        return copy is not None

    def backup(self, target: str | os.PathLike[str]) -> list[str]:
        """Copy the index to the new folder `target` while it may be in use: SQLite's online backup
        API (a consistent snapshot, even with a writer running), the manifest, the saved metadata
        (keys, audit log, scoring), the originals kept inside the index folder (uploads) and where
        the index was (`backup_files`). The FAISS file is left out: opening the copy rebuilds it."""
        folder = Path(target)
        folder.mkdir(parents=True, exist_ok=False)
        copy = sqlite3.connect(folder / DATABASE)
        try:
            with self._mutex:
                self._database.db.backup(copy)
        finally:
            copy.close()
        originals = copy_originals(self.path, folder, folder / DATABASE)  # those the snapshot's documents name
        return [DATABASE, *copy_metadata(self.path, folder), *originals, write_record(self.path, folder)]

    @classmethod
    def restore(cls, backup: str | os.PathLike[str], target: str | os.PathLike[str]) -> StoreInfo:
        """Make the new folder `target` a copy of the folder `backup` made, or leave nothing there:
        built and checked in a temporary folder, then renamed into place (`backup_files`)."""
        cls.open(backup, read_only=True).close()  # a readable index: its manifest and database open
        return restore_folder(Path(backup), Path(target), cls.open)

    def clear(self) -> None:
        """Remove every passage and file."""
        with self._transaction() as (db, change):
            db.delete_everything()
            change.rebuild = True

    def write_metadata(self, name: str, data: dict[str, Any], event: dict[str, Any] | None = None) -> str:
        """Keep small JSON metadata with the index under `name` (such as the fitted scoring); returns where.
        Metadata are files here, outside SQLite's transactions: `event` (a key created or revoked)
        is appended first, then the file written. An event of a write that then failed is better
        than a write without its event."""
        path = self.path / f"{name}.json"  # a name "folder/item" is kept in a subfolder (the audit log's entries)
        with self._file_lock():  # an `open` elsewhere would otherwise remove the temp file under it
            if event is not None:
                self.append_event(event)
            path.parent.mkdir(exist_ok=True)
            atomic_write(path, json.dumps(data, indent=2).encode("utf-8"))
        return str(path)

    # ----------------------------------------------------------------- reading
    def read_metadata(self, name: str) -> dict[str, Any] | None:
        """Metadata saved with `write_metadata`, or None."""
        path = self.path / f"{name}.json"
        if not path.exists():
            return None
        try:
            return json.loads(path.read_text("utf-8"))
        except ValueError as exc:
            raise IndexCorruptError(f"{path}: unreadable ({exc})") from None

    def metadata_names(self, prefix: str) -> list[str]:
        """The names of the metadata saved with `write_metadata` that start with `prefix`, sorted."""
        found = self.path.glob(f"{glob.escape(prefix)}*.json")
        return sorted(str(path.relative_to(self.path).with_suffix("")) for path in found)

    def count(self) -> int:
        return self._database.count()

    def file_hash(self, source: str) -> str | None:
        """Content hash the file was indexed with, or None if it is not indexed."""
        return self._database.file_hash(source)

    def files(self) -> list[dict[str, Any]]:
        """Indexed files with their hash, page starts, passage count and access groups."""
        with self._mutex:
            return self._database.files()

    def visible_sources(self, groups: Sequence[str]) -> list[str]:
        """The indexed files a holder of `groups` may read: those without access groups and
        those with at least one of `groups`."""
        with self._mutex:
            return self._database.visible_sources(groups)

    def page_starts(self, source: str) -> tuple[int, ...]:
        return self._database.page_starts(source)

    def document_text(self, source: str) -> str | None:
        """The text that the file's passage and answer offsets index, or None when the file is not
        indexed (or was indexed before rag-qa kept the text)."""
        return self._database.document_text(source)

    def iter_passages(self, batch: int = 1000) -> Iterator[tuple[Passage, np.ndarray | None]]:
        """Every passage with its vector, in insertion order."""
        return self._database.iter_passages(batch)

    def search_many(
        self, queries: np.ndarray, top_k: int = 10, sources: Sequence[str] | None = None, ids: Sequence[str] | None = None
    ) -> list[list[SearchHit]]:
        """`search` for a batch of queries in one FAISS call."""
        check_top_k(top_k)
        with self._mutex:
            index = self._mirror.current()
            if index is None or len(index) == 0:
                return [[] for _ in queries]
            allowed = None
            if sources is not None:
                allowed = self._database.rows_where("source", sources)
            if ids is not None:
                by_id = self._database.rows_where("id", ids)
                allowed = by_id if allowed is None else np.intersect1d(allowed, by_id)
            if allowed is not None and len(allowed) == 0:
                return [[] for _ in queries]
            scores, rows = index.search(queries, top_k, allowed)
            found = self._database.passages_by_rows(sorted({int(r) for r in rows.ravel() if r >= 0}))
        return [
            [SearchHit(found[int(r)], float(s)) for s, r in zip(score_row, row_row) if r >= 0 and int(r) in found]
            for score_row, row_row in zip(scores, rows)
        ]

    def search_text(self, query: str, top_k: int = 10, sources: Sequence[str] | None = None) -> list[SearchHit]:
        """BM25 full-text retrieval over the FTS5 table (score: higher is better)."""
        with self._mutex:
            return self._database.search_text(query, top_k, sources)

    def passage_word_counts(self, words: Sequence[str], sources: Sequence[str] | None = None) -> tuple[int, list[int]]:
        """(passages searched, how many hold each word as `search_text` matches it), among `sources`' alone if given."""
        with self._mutex:
            return self._database.passage_word_counts(words, sources)

    # ----------------------------------------------------------------- reporting
    def info(self) -> StoreInfo:
        with self._mutex:
            index = self._mirror.current()
            files, passages = self._database.count_files(), self._database.count()
        embedding = self.manifest["embedding"]
        return StoreInfo(
            path=str(self.path),
            files=files,
            passages=passages,
            vectors=len(index) if index is not None else 0,
            embedding_model=embedding["model"],
            embedding_revision=embedding["revision"],
            dimension=embedding["dimension"],
            index_type=index.kind if index is not None else self.settings.vector_index.kind_for(0),
            format_version=self.manifest["format_version"],
        )

    def check(self) -> list[str]:
        """Consistency problems between the FAISS file, SQLite, the full-text table and the files
        table (an empty list means consistent). Reads the FAISS file from disk, as saved."""
        with self._mutex:
            database = self._database
            return database.integrity_problems() + self._mirror.file_problems(database.vector_rows()) + database.table_problems()
