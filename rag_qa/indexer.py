"""An ingestion run: files → documents → passages → vectors → store, with a per-file report.

Files are committed in groups (one SQLite transaction each) so embedding runs in full batches; a
run killed at any point loses at most the group in flight, and re-running finishes the job
(unchanged files are recognised by their content hash and skipped).
"""

from __future__ import annotations

import os
import sys
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field, replace
from typing import Any

import numpy as np

from rag_qa.config import IngestConfig
from rag_qa.embed import Embedder
from rag_qa.errors import ConfigError, LoadError
from rag_qa.ingest.chunking import chunk_document
from rag_qa.ingest.loaders import UNSUPPORTED, bytes_hash, discover, file_hash, load_document, unreadable
from rag_qa.ingest.formats import MAIL_SUFFIXES
from rag_qa.ingest.mail import attachments_of
from rag_qa.ingest.ocr import keep_recognised_words
from rag_qa.ingest.pdf import GuardedPdfReader
from rag_qa.ingest.text import clean_text
from rag_qa.records import Document, Passage
from rag_qa.store import Store
from rag_qa.sync import Pruner, Tombstones


@dataclass
class IndexReport:
    """The outcome of one `rag-qa index` run (its JSON output)."""

    files_indexed: int = 0
    files_unchanged: int = 0
    files_skipped: list[dict[str, str]] = field(default_factory=list)
    added: list[str] = field(default_factory=list)  # new files read (indexed once their group commits)
    changed: list[str] = field(default_factory=list)  # files read again because their content changed
    moved: list[dict[str, str]] = field(default_factory=list)  # {"from", "to"}: re-pointed, not re-embedded
    removed: list[str] = field(default_factory=list)  # gone from the walked paths (with prune)
    prune_refused: list[dict[str, Any]] = field(default_factory=list)  # kept though not found: {"path", "why", "files", "reason"} (see sync)
    groups_restored: list[dict[str, Any]] = field(default_factory=list)  # back under a pruned name, with its kept groups: {"source", "groups"}
    passages_added: int = 0
    passages_total: int = 0
    pages: int = 0
    attachments_indexed: int = 0  # mail attachments stored as documents of their own (`mail.eml#name`)
    ocr_pages: int = 0  # scanned pages read by OCR (their time is `seconds["ocr"]`, a part of "load")
    warnings: list[dict[str, str]] = field(default_factory=list)  # files indexed with parts unread: {"path", "reason"}
    seconds: dict[str, float] = field(default_factory=lambda: {"load": 0.0, "ocr": 0.0, "chunk": 0.0, "embed": 0.0, "store": 0.0})

    def skip(self, error: LoadError) -> None:
        self.files_skipped.append({"path": error.path, "reason": error.reason})

    def stored(self, documents: Iterable[Document]) -> None:
        """Count stored documents: files and mail attachments, their pages, OCR'd pages and warnings."""
        for document in documents:
            if document.attached_to is None:
                self.files_indexed += 1
            else:
                self.attachments_indexed += 1
            self.pages += len(document.page_starts)
            self.ocr_pages += len(document.ocr_pages)
            self.seconds["ocr"] += sum(page.seconds for page in document.ocr_pages)
            self.warnings += [{"path": document.source, "reason": reason} for reason in document.warnings]

    @property
    def files_unsupported(self) -> int:
        """How many of the skipped files no loader reads (they are in `files_skipped` too)."""
        return sum(s["reason"].startswith(UNSUPPORTED) for s in self.files_skipped)

    def to_dict(self) -> dict[str, Any]:
        return {
            "files_indexed": self.files_indexed,
            "files_unchanged": self.files_unchanged,
            "files_skipped": self.files_skipped,
            "files_unsupported": self.files_unsupported,
            "files_moved": len(self.moved),
            "files_removed": len(self.removed),
            "added": self.added,
            "changed": self.changed,
            "moved": self.moved,
            "removed": self.removed,
            "prune_refused": self.prune_refused,
            "groups_restored": self.groups_restored,
            "passages_added": self.passages_added,
            "passages_total": self.passages_total,
            "attachments_indexed": self.attachments_indexed,
            "pages": self.pages,
            "ocr_pages": self.ocr_pages,
            "warnings": self.warnings,
            "seconds": {k: round(v, 3) for k, v in self.seconds.items()},
        }


class _Timer:
    def __init__(self, report: IndexReport, stage: str):
        self.report, self.stage = report, stage

    def __enter__(self) -> None:
        self.start = time.perf_counter()

    def __exit__(self, *exc_info: object) -> None:
        self.report.seconds[self.stage] += time.perf_counter() - self.start


def index_paths(
    paths: list[str],
    store: Store,
    embedder: Embedder,
    config: IngestConfig | None = None,
    progress: bool = False,
    groups: tuple[str, ...] | None = None,
    prune: bool = False,
    hasher: Callable[[str], str] = file_hash,
    force: bool = False,
    keep_originals: bool = False,
) -> IndexReport:
    """Index files and folders into `store`. Unreadable files are reported, never fatal. With
    `groups`, every file gets those access groups (stored with its passages, in one transaction);
    without, a file back under a name a sync removed gets the groups it had. With `prune`, the
    index mirrors the paths, within the limits in `sync` (`force` lifts the share limit; the
    report's `prune_refused` says what was kept and why). `hasher` hashes a file (a watcher
    passes one that remembers unchanged files). With `keep_originals`, a store that keeps
    originals (PostgreSQL) gets each file's bytes with its passages (the service's uploads)."""
    config = config if config is not None else IngestConfig()
    chunking = check_chunking(store, embedder)
    report = IndexReport()
    files, problems = discover(paths, config)
    for problem in problems:
        report.skip(problem)
    regroup = GroupSetter(store, groups)
    pruner = Pruner(store, paths, files, prune, problems, config, force)
    pending = _PendingFiles(store, embedder, report, config.commit_passages)
    last_flush = time.monotonic()

    from tqdm import tqdm

    bar = tqdm(files, desc="Indexing", unit="file", disable=not progress, file=sys.stderr)
    with GuardedPdfReader(config.pdf_timeout_s, config.pdf_memory_mb) as pdf_reader:
        for path in bar:
            try:
                content_hash, known = hasher(path), store.file_hash(path)
                if known == content_hash:
                    report.files_unchanged += 1
                    regroup.unchanged(path)
                    continue
                if known is None and (old := pruner.moved_here(store, path, content_hash)) is not None:
                    report.moved.append({"from": old, "to": path})
                    regroup.unchanged(path)
                    continue
                with _Timer(report, "load"):
                    document = regroup.loaded(load_document(path, config, pdf_reader, content_hash, _ocr_progress(bar, path)))
                if keep_originals and store.keeps_originals:
                    document = with_original(document, path)
                (report.added if known is None else report.changed).append(path)
            except LoadError as error:
                report.skip(error)
                continue
            except OSError as exc:
                report.skip(unreadable(path, exc))
                continue
            forget_dropped_attachments(store, document, known)
            for part in document.with_attachments():
                with _Timer(report, "chunk"):
                    passages = chunk_document(part, embedder.tokenizer, chunking)
                pending.add(part, passages)
            if time.monotonic() - last_flush > config.save_interval_s:
                with _Timer(report, "store"):
                    store.flush()
                last_flush = time.monotonic()
            bar.set_postfix(passages=report.passages_added + pending.passages, skipped=len(report.files_skipped))
    pending.commit()
    with _Timer(report, "store"):
        finish_sync(store, report, regroup, pruner)
        store.flush()
    report.passages_total = store.count()
    return report


def with_original(document: Document, path: str) -> Document:
    """`document` with its file's bytes, checked to be the bytes that were read (LoadError if the
    file changed meanwhile: a page view must show what the passages quote)."""
    with open(path, "rb") as handle:
        data = handle.read()
    if bytes_hash(path, data) != document.content_hash:
        raise LoadError(path, "the file changed while it was being indexed; send it again")
    return replace(document, original=data)


def finish_sync(store: Store, report: IndexReport, regroup: "GroupSetter", pruner: Pruner) -> None:
    """Once every file is committed: clear the tombstones of documents that came back, then
    remove what is gone (as far as the pruner may)."""
    report.groups_restored = regroup.settle()
    report.removed = pruner.remove_vanished(store)
    report.prune_refused = pruner.refused


def forget_dropped_attachments(store: Store, document: Document, known: str | None) -> None:
    """A changed mail's attachments that it no longer carries leave the index (in their own
    transaction: the worst a kill can do is forget them before the mail's new version is stored)."""
    if known is None or not document.source.lower().endswith(tuple(MAIL_SUFFIXES)):
        return
    kept = {part.source for part in document.attachments}
    for source in stored_attachments(store, document.source):
        if source not in kept:
            store.delete_source(source)


def stored_attachments(store: Store, mail: str) -> list[str]:
    """The documents stored as attachments of the mail stored as `mail`."""
    return attachments_of(mail, [f["source"] for f in store.files()])


def _ocr_progress(bar: Any, path: str) -> Callable[[int, int], None]:
    """Shows a file's OCR on the progress bar, page by page (a scanned book takes minutes)."""

    def show(number: int, total: int) -> None:
        bar.set_postfix_str(f"OCR {os.path.basename(path)}: scanned page {number} of {total}")

    return show


class GroupSetter:
    """What `--groups` does to each file of a run: a loaded file carries the groups into its
    transaction; an unchanged file gets them without re-embedding (only when they differ).
    Without `--groups`, a new file under a name a sync removed gets the groups kept for it
    (`sync.Tombstones`), never none: the run's groups win over kept ones."""

    def __init__(self, store: Store, groups: tuple[str, ...] | None):
        self.store, self.groups = store, groups
        self.current = {f["source"]: tuple(f["groups"]) for f in store.files()} if groups is not None else {}
        self.tombstones = Tombstones(store)
        self.returned: dict[str, tuple[str, ...] | None] = {}  # loaded under a tombstone's name -> the kept groups it got (None: the run's)

    def loaded(self, document: Document) -> Document:
        groups = {part.source: self._groups_for(part.source, document.source) for part in document.with_attachments()}
        if all(g is None for g in groups.values()):
            return document
        # a mail's attachments are read by whoever reads it
        attachments = tuple(a if groups[a.source] is None else replace(a, groups=groups[a.source]) for a in document.attachments)
        return replace(document, groups=groups[document.source], attachments=attachments)

    def _groups_for(self, source: str, mail: str) -> tuple[str, ...] | None:
        """The groups a loaded document (or a mail's attachment) is stored with; None keeps the index's."""
        if self.groups is not None:
            if self.tombstones.kept(source):
                self.returned[source] = None
            return self.groups
        kept = self.tombstones.groups_of(source) or (self.tombstones.groups_of(mail) if source != mail else None)
        if kept is not None:
            self.returned[source] = kept
        return kept

    def settle(self) -> list[dict[str, Any]]:
        """After the run's last commit (a kill before leaves the tombstones: fail closed), clear the
        tombstones of the documents that came back; returns those given their kept groups."""
        stored = [source for source in self.returned if self.store.file_hash(source) is not None]
        for source in stored:
            self.tombstones.clear(source)
        return [{"source": s, "groups": list(g)} for s, g in self.returned.items() if g is not None and s in stored]

    def unchanged(self, source: str) -> None:
        if self.groups is None:
            return
        for stored in [source, *attachments_of(source, self.current)]:
            if self.current.get(stored) != self.groups:
                self.store.set_groups(stored, self.groups)


def check_chunking(store: Store, embedder: Embedder) -> Any:
    """The index's chunking settings, when the embedder can read passages that long."""
    chunking = store.settings.chunking
    if chunking.max_tokens > embedder.max_tokens:
        raise ConfigError(
            f"chunking max_tokens {chunking.max_tokens} exceeds the embedder's limit of {embedder.max_tokens} tokens"
        )
    return chunking


def add_documents(
    documents: Iterable[Document], store: Store, embedder: Embedder, commit_passages: int = 256, progress: bool = False
) -> int:
    """Chunk, embed and store already-loaded documents (for corpora that are not files, such as
    SQuAD paragraphs). Returns the number of passages added."""
    from tqdm import tqdm

    report = IndexReport()
    pending = _PendingFiles(store, embedder, report, commit_passages)
    for document in tqdm(list(documents), desc="Indexing", unit="doc", disable=not progress, file=sys.stderr):
        if store.file_hash(document.source) != document.content_hash:
            pending.add(document, chunk_document(document, embedder.tokenizer, store.settings.chunking))
    pending.commit()
    store.flush()
    return report.passages_added


def embed_passages(embedder: Embedder, passages: list[Passage]) -> np.ndarray:
    """The passages' vectors: the model reads each passage with its lines re-flowed."""
    return embedder.embed([clean_text(p.text, join_lines=True) for p in passages])


class _PendingFiles:
    """Chunked documents waiting to be embedded and stored together: once they hold
    `commit_passages` passages, one embedding batch and one store transaction take them all (full
    batches; a kill loses at most this group)."""

    def __init__(self, store: Store, embedder: Embedder, report: IndexReport, commit_passages: int):
        self.store, self.embedder, self.report, self.commit_passages = store, embedder, report, commit_passages
        self.files: list[tuple[Document, list[Passage]]] = []

    @property
    def passages(self) -> int:
        return sum(len(passages) for _, passages in self.files)

    def add(self, document: Document, passages: list[Passage]) -> None:
        self.files.append((document, passages))
        if self.passages >= self.commit_passages:
            self.commit()

    def commit(self) -> None:
        if not self.files:
            return
        with _Timer(self.report, "embed"):
            vectors = embed_passages(self.embedder, [p for _, passages in self.files for p in passages])
        with _Timer(self.report, "store"):
            write_files(self.store, self.files, vectors, self.report)
        self.files = []


def write_files(store: Store, files: list[tuple[Document, list[Passage]]], vectors: np.ndarray, report: IndexReport) -> None:
    """Store read documents with their passages and vectors in one transaction (the words of their
    OCR'd pages first, so the page view finds them), and count them in `report`."""
    keep_recognised_words(store, [document for document, _ in files])
    report.passages_added += store.replace_files(files, vectors)
    report.stored(document for document, _ in files)
