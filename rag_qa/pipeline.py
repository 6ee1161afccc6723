"""The public facade: open an index, add documents, search it, ask it.

    >>> from rag_qa import RagQA
    >>> with RagQA.open("indexes/docs", reader="../shared/models/minilm-squad2-reader-v2") as qa:
    ...     report = qa.index(["data/"])
    ...     result = qa.ask("What is the late fee for a tool?")
    ...     print(result.best.text if result.best else "no answer")  # doctest: +SKIP
"""

from __future__ import annotations

import os
import re
import threading
from collections.abc import Callable, Iterator, Sequence
from dataclasses import replace
from pathlib import Path

from rag_qa.access import AccessDenied, check_regroup, readable_sources
from rag_qa.answer import combine
from rag_qa.cascade import read_in_stages
from rag_qa.config import (
    DEFAULT_RETRIEVAL_TEMPERATURE,
    EmbedderConfig,
    IndexSettings,
    IngestConfig,
    ReaderConfig,
    RetrievalConfig,
    ScoringConfig,
    with_answer_policy,
)
from rag_qa.document_views import DocumentViews
from rag_qa.embed import Embedder
from rag_qa.errors import ChangedMeanwhile, IndexMismatchError, NotFoundError, QuestionError
from rag_qa.indexer import IndexReport, index_paths
from rag_qa.ingest.loaders import source_name
from rag_qa.ingest.mail import attachments_of, file_of, is_attachment
from rag_qa.ingest.text import clean_text
from rag_qa.keys import check_groups
from rag_qa.naming import resolve_sources
from rag_qa.reader import PassageReading, Reader
from rag_qa.pages import PdfPageViewer
from rag_qa.records import Hits, QAResult, SearchHit
from rag_qa.retrieve import Retriever
from rag_qa.saved_scoring import scoring_for
from rag_qa.store import Store, StoreInfo, open_store

DEFAULT_INDEX = "indexes/default"
_SURROGATES = re.compile(r"[\ud800-\udfff]")
ASK_BATCH = 32  # questions per retrieval + reader batch


def checked_question(question: str) -> str:
    """The question with lone surrogates (undecodable input) made visible as U+FFFD; raises
    QuestionError when nothing is left to ask once control characters and whitespace are gone."""
    question = _SURROGATES.sub("\ufffd", question)
    if not clean_text(question):
        raise QuestionError("the question is empty; type a question")
    return question


class RagQA(DocumentViews):
    """An index on disk plus the models that read and write it. Models load on first use."""

    def __init__(
        self,
        store: Store,
        embedder: Embedder,
        ingest: IngestConfig | None = None,
        reader: Reader | None = None,
        retrieval: RetrievalConfig | None = None,
        scoring: ScoringConfig | None = None,
    ):
        self.store = store
        self.embedder = embedder
        self.ingest = ingest if ingest is not None else IngestConfig()
        self.reader = reader if reader is not None else Reader()
        self.retriever = Retriever(store, embedder, retrieval)
        self.scoring = scoring if scoring is not None else ScoringConfig()
        self.pages = PdfPageViewer()  # starts its worker on first use

    @classmethod
    def open(
        cls,
        path: str | os.PathLike[str] = DEFAULT_INDEX,
        settings: IndexSettings | None = None,
        ingest: IngestConfig | None = None,
        read_only: bool = False,
        reader: ReaderConfig | str | None = None,
        retrieval: RetrievalConfig | None = None,
        scoring: ScoringConfig | None = None,
        runtime: str | None = None,
        threads: int | None = None,
        spin: bool | None = None,
        answer_policy: str | None = None,
        embedder_bf16: bool | None = None,
    ) -> "RagQA":
        """Open (or create, with `settings`) the index at `path`: a folder, or a `postgresql://` URL.

        An existing index keeps the settings it was built with; passing settings with a different
        embedding model raises IndexMismatchError. `reader` is a ReaderConfig, or a model id or
        local folder (default: deepset/roberta-large-squad2). `runtime` ("auto", "torch" or "onnx")
        and `threads`, when given, run both models that way, as does `spin` (False: ONNX Runtime's idle
        threads sleep, for a process where other work shares the cores); how models run is never taken from the
        index. `scoring` defaults to the parameters `rag-qa calibrate` saved in the index for this
        reader, its precision and the retrieval mode, else to those rag-qa ships for the reader
        (the offline reader's), else to ScoringConfig(). A fit made with another answer cap
        (`max_answer_tokens`) sets the reader's cap, unless `reader` sets one other than the default.
        `answer_policy` ("careful", "balanced", "eager"), when given, replaces the scoring's answer
        threshold: when an answer is shown rather than "no answer". The embedder computes in bf16
        when `embedder_bf16` says so, else when the reader does (`ReaderConfig.bf16`).
        """
        if isinstance(reader, str):
            reader = ReaderConfig(model=reader)
        reader = reader if reader is not None else ReaderConfig()
        how = {"runtime": runtime or EmbedderConfig.runtime, "threads": threads, "spin": EmbedderConfig.spin if spin is None else spin}
        how["bf16"] = reader.bf16 if embedder_bf16 is None else embedder_bf16
        if runtime is not None:
            reader = replace(reader, runtime=runtime, threads=threads)
        if spin is not None:
            reader = replace(reader, spin=spin)
        store = open_store(path, settings, read_only=read_only)
        retrieval = retrieval if retrieval is not None else RetrievalConfig()
        if scoring is None:  # what `rag-qa calibrate` fitted, else what rag-qa ships for the reader, else the defaults
            scoring = scoring_for(store, reader, retrieval.mode)
        if answer_policy is not None:
            scoring = with_answer_policy(scoring, answer_policy)
        if scoring.max_answer_tokens is not None and reader.max_answer_tokens == ReaderConfig.max_answer_tokens:
            reader = replace(reader, max_answer_tokens=scoring.max_answer_tokens)  # the cap the scoring was fitted with
        embedder = Embedder(replace(store.settings.embedder, **how))
        return cls(store, embedder, ingest, Reader(reader), retrieval, scoring)

    def close(self) -> None:
        self.pages.close()
        self.store.close()

    def __enter__(self) -> "RagQA":
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def _check_embedder(self) -> None:
        """The loaded embedder must produce vectors of the index's dimension."""
        if self.store.dimension is not None and self.embedder.dimension != self.store.dimension:
            raise IndexMismatchError(
                f"{self.store.path} holds {self.store.dimension}-dimensional vectors but the embedder "
                f"{self.embedder.config.model!r} produces {self.embedder.dimension}"
            )

    def index(
        self, paths: Sequence[str | os.PathLike[str]], progress: bool = False, ray: str | None = None, groups: Sequence[str] | None = None,
        prune: bool = False, force: bool = False, keep_originals: bool = False,
    ) -> IndexReport:  # fmt: skip
        """Add or update files and folders; unreadable files are reported in the result. With
        `ray` ("auto" or a cluster address), loading, chunking and embedding run on a Ray
        cluster (the `ray` extra) and the result is the same as a local run's. `groups` gives
        every file of the run these access groups (unchanged files too); without it, files keep
        theirs (new files: none, readable by every key; a file back under a name a sync removed:
        the groups it had). With `prune`, the index mirrors `paths`: files gone from them are
        removed, and a moved file keeps its passages; what a sync refuses to remove (a missing,
        empty or unreadable folder; more than `ingest.max_prune_share` of a folder unless
        `force`) is kept and listed in the report's `prune_refused` (see `sync`). With
        `keep_originals`, a store that keeps originals (PostgreSQL) holds each file's bytes, so
        its pages can be shown wherever the index is open (the service's uploads)."""
        groups = check_groups(groups) if groups is not None else None
        if ray is not None:
            from rag_qa.distributed import connect, index_on_ray

            connect(ray)  # an unreachable cluster fails in seconds, before the models load
            self._check_embedder()
            return index_on_ray([str(p) for p in paths], self.store, self.embedder, self.ingest, ray, progress, groups, prune, force)
        self._check_embedder()
        return index_paths([str(p) for p in paths], self.store, self.embedder, self.ingest, progress, groups, prune, force=force, keep_originals=keep_originals)

    def watch(
        self, paths: Sequence[str | os.PathLike[str]], on_report: Callable[[IndexReport], None], stop: threading.Event | None = None,
        groups: Sequence[str] | None = None,
    ) -> None:  # fmt: skip
        """Keep the index mirroring `paths` (as `index(..., prune=True)`) now and after every batch of
        file changes, until `stop` is set; `on_report` gets each run's report (see `sync.watch`),
        a refused prune too (`prune_refused`): the watch keeps running, and never forces."""
        from rag_qa.sync import watch

        self._check_embedder()
        names = [str(p) for p in paths]
        groups = check_groups(groups) if groups is not None else None
        ignore = [str(self.store.path)] if isinstance(self.store.path, Path) else []

        def sync_once(hashes: Callable[[str], str]) -> IndexReport:
            return index_paths(names, self.store, self.embedder, self.ingest, False, groups, prune=True, hasher=hashes)

        watch(sync_once, names, on_report, ignore, stop)

    def set_groups(
        self, source: str | os.PathLike[str], groups: Sequence[str], caller: Sequence[str] | None = None, event: dict | None = None,
    ) -> str:  # fmt: skip
        """Give an indexed document these access groups without re-embedding it (none: readable
        by every key); returns its stored name. `caller` is the groups the caller acts with (None:
        an admin, the command line): it must be able to read the document (else NotFoundError, as
        for one not indexed) and may change groups only as `access.check_regroup` allows. A mail
        and its attachments change together: the attachments first, so a change cut short never
        shows an attachment to a key that may not read its mail (an attachment is readable only
        when its mail is too)."""
        name = self.readable_source(source, caller)
        new = check_groups(groups)
        parts = self._parts(name, caller, "change the groups of")
        for stored, current in parts.items():  # each part against its own groups (an older index may hold an attachment's apart)
            check_regroup(caller, current, new)
        for stored, current in parts.items():  # each only while it still has the groups checked (another caller may have changed them)
            if not self.store.set_groups(stored, new, event=event if stored == name else None, expected=current):
                raise ChangedMeanwhile(f"{stored} changed or went while its groups were being changed; look again and retry")
        return name

    def readable_sources(self, groups: Sequence[str] | None) -> list[str] | None:
        """The stored names a holder of `groups` may read (None for None: every document); see
        `access.readable_sources`. Every facade method below that names documents starts here."""
        return readable_sources(self.store, groups)

    def documents(self, groups: Sequence[str] | None) -> list[dict]:
        """The indexed documents (with hashes, page starts, passage counts, groups) a holder of
        `groups` may read."""
        files = self.store.files()
        readable = self.readable_sources(groups)
        if readable is None:
            return files
        shown = set(readable)
        return [f for f in files if f["source"] in shown]

    def visible(self, sources: Sequence[str] | None, groups: Sequence[str] | None) -> list[str] | None:
        """The stored names to search for a reader who holds `groups` (None: every document) and
        named `sources` (None: all it may read) in any form `naming` takes: a path, a folder, a
        glob. UnknownSourceError when one names nothing the reader may read (a hidden document is
        as if not indexed)."""
        readable = self.readable_sources(groups)
        if sources is None:
            return readable
        if readable is None and all(self.store.file_hash(s) is not None for s in sources):
            return list(sources)  # stored names already (evaluation filters by paragraph): no listing
        return resolve_sources(sources, readable if readable is not None else [f["source"] for f in self.store.files()])

    def search(
        self, query: str, top_k: int | None = None, sources: Sequence[str] | None = None, mode: str | None = None,
        groups: Sequence[str] | None = None,
    ) -> Hits:  # fmt: skip
        """The passages `ask` would read for `query`: the same retrieval (`mode` dense, bm25 or
        hybrid; default: this index's configured mode) and the same filters. An empty query
        raises QuestionError."""
        self._check_embedder()
        return self._retrieve([checked_question(query)], top_k, self.visible(sources, groups), groups, mode)[0]

    def ask(self, question: str, top_k: int | None = None, sources: Sequence[str] | None = None, groups: Sequence[str] | None = None) -> QAResult:
        """Answer one question from the indexed documents, or abstain explicitly. Any text is a
        question (it is cut to the reader's question length in tokens); an empty one raises
        QuestionError. With `groups`, only documents a holder of those access groups may read are
        searched: those without groups and those sharing one (the filter runs inside the index)."""
        return self.ask_many([question], top_k, sources, groups=groups)[0]

    def ask_many(
        self, questions: Sequence[str], top_k: int | None = None, sources: Sequence[str] | None = None, progress: bool = False,
        groups: Sequence[str] | None = None,
    ) -> list[QAResult]:  # fmt: skip
        """Answer many questions; retrieval and the reader run in batches across questions."""
        questions = [checked_question(q) for q in questions]
        found = self.retrieve_and_read(questions, top_k, sources, progress, groups, in_stages=self.reader.config.read_in_stages)
        return [self._combine(q, h, r) for q, h, r in found]

    def ask_each(
        self, questions: Sequence[str], top_k: int | None, sources_each: Sequence[Sequence[str] | None],
        groups_each: Sequence[Sequence[str] | None] | None = None,
    ) -> list[QAResult]:  # fmt: skip
        """Answer questions that each have their own source filter and reader's groups (the
        service's callers may read different documents): retrieval runs once per distinct filter,
        the reader once for all, so a batch of questions from keys of different groups stays one
        reader batch."""
        questions = [checked_question(q) for q in questions]
        self._check_embedder()
        groups_each = groups_each if groups_each is not None else [None] * len(questions)
        by_filter: dict[tuple[tuple[str, ...] | None, tuple[str, ...] | None], list[int]] = {}
        for i, (sources, groups) in enumerate(zip(sources_each, groups_each, strict=True)):
            key = (tuple(sources) if sources is not None else None, tuple(groups) if groups is not None else None)
            by_filter.setdefault(key, []).append(i)
        hits: list[list[SearchHit]] = [[] for _ in questions]
        for (sources, groups), members in by_filter.items():
            allowed = self.visible(sources, groups) if groups is not None else sources
            for i, found in zip(members, self._retrieve([questions[i] for i in members], top_k, allowed, groups)):
                hits[i] = found
        readings = self._read(questions, hits, self.reader.config.read_in_stages)
        return [self._combine(q, h, r) for q, h, r in zip(questions, hits, readings)]

    def retrieve_and_read(
        self, questions: Sequence[str], top_k: int | None = None, sources: Sequence[str] | None = None, progress: bool = False,
        groups: Sequence[str] | None = None, in_stages: bool = False,
    ) -> Iterator[tuple[str, list[SearchHit], list[PassageReading]]]:  # fmt: skip
        """(question, hits, readings) per question, before scoring: the expensive part, batched.
        Every passage is read (what a fit of the scoring needs), unless `in_stages` (`_read`)."""
        self._check_embedder()
        sources = self.visible(sources, groups)
        from tqdm import tqdm

        with tqdm(total=len(questions), desc="Reading", unit="q", disable=not progress) as bar:
            for first in range(0, len(questions), ASK_BATCH):
                batch = list(questions[first : first + ASK_BATCH])
                hits = self._retrieve(batch, top_k, sources, groups)
                readings = self._read(batch, hits, in_stages)
                yield from zip(batch, hits, readings)
                bar.update(len(batch))

    def _retrieve(
        self, questions: Sequence[str], top_k: int | None, allowed: Sequence[str] | None, groups: Sequence[str] | None, mode: str | None = None
    ) -> list[Hits]:  # fmt: skip
        """The retriever's hits among `allowed`, checked again against what a holder of `groups` may
        read once the passages and their neighbours' text are read: a document restricted
        meanwhile is left out, never shown (fail closed). Its passages also shaped the search
        (the words' rarity, BM25 relative to the best hit), so the search runs again without it."""
        found = self.retriever.retrieve(questions, top_k, allowed, mode)
        if groups is None:
            return found
        readable = set(self.readable_sources(groups) or ())
        if allowed is None or not readable.issuperset(allowed):
            narrowed = sorted(readable) if allowed is None else [s for s in allowed if s in readable]
            found = self.retriever.retrieve(questions, top_k, narrowed, mode)
        return [Hits((hit for hit in hits if hit.passage.source in readable), hits.word_rarity) for hits in found]

    def _read(self, questions: Sequence[str], hits: list[list[SearchHit]], in_stages: bool) -> list[list[PassageReading]]:
        """Each question's passages read: all of them, or `in_stages` only those that could change
        the top answer or the decision to answer under this scoring (`rag_qa.cascade`)."""
        if not in_stages:
            return self.reader.read(questions, [[h.passage.text for h in found] for found in hits])
        return read_in_stages(self.reader.read, questions, hits, self.scoring, self._temperature())[0]

    def _combine(self, question: str, hits: list[SearchHit], readings: list[PassageReading]) -> QAResult:
        return combine(question, hits, readings, self.scoring, self._temperature())

    def _temperature(self) -> float:
        """The retrieval temperature answers are scored with: the scoring's, else the retrieval mode's default."""
        temperature = self.scoring.retrieval_temperature
        return DEFAULT_RETRIEVAL_TEMPERATURE[self.retriever.config.mode] if temperature is None else temperature

    def stored_source(self, source: str | os.PathLike[str]) -> str:
        """The name a document is stored under, from that name or a path to the file."""
        name = str(source)
        if "\x00" in name:  # no stored name holds one (and a path or a database query cannot)
            return name
        return name if self.store.file_hash(name) is not None else source_name(name)

    def readable_source(self, source: str | os.PathLike[str], groups: Sequence[str] | None = None) -> str:
        """The stored name of `source` when a holder of `groups` may read it (None: anyone);
        NotFoundError, the same as for a document not indexed, when not. A hidden document and
        an absent one take the same path (the readable list first, then one membership test), so
        neither the answer nor the work done tells them apart."""
        name = self.stored_source(source)
        readable = self.readable_sources(groups)
        if "\x00" in name or (name not in readable if readable is not None else self.store.file_hash(name) is None):
            raise NotFoundError(f"{source} is not in the index (see `rag-qa info --files`)")
        return name

    def delete(
        self, source: str | os.PathLike[str], groups: Sequence[str] | None = None, event: dict | None = None,
        expected: Sequence[str] | None = None,
    ) -> int:  # fmt: skip
        """Remove a file's passages, a mail's attachments with it; `source` may be the stored name
        or a path to the file. A holder of `groups` must be able to read the file and every
        attachment (AccessDenied otherwise: it never removes what the caller may not read), and the
        file must still have the groups it was checked with (`expected`, else those read here:
        ChangedMeanwhile otherwise, decided in the delete's own transaction)."""
        name = self.readable_source(source, groups)
        parts = self._parts(name, groups, "delete")
        # first, with the event: attachments without their mail are read by no key with groups
        removed = self.store.delete_source(name, event=event, expected=expected if expected is not None else parts[name])
        return removed + sum(self.store.delete_source(stored) for stored in parts if stored != name)

    def _parts(self, name: str, groups: Sequence[str] | None, action: str) -> dict[str, list[str]]:
        """What changes with the readable document `name`, each with its groups now: its
        attachments, then itself. A mail and its attachments change together, so an attachment
        alone is refused, and so is a mail with an attachment the holder of `groups` may not read
        (AccessDenied, which names none)."""
        if is_attachment(name):
            raise AccessDenied(f"{name} is an attachment of {file_of(name)}: {action} the mail, and its attachments follow")
        files = {f["source"]: f["groups"] for f in self.store.files()}
        parts = {source: files[source] for source in attachments_of(name, files)} | {name: files.get(name, [])}
        readable = self.readable_sources(groups)
        if readable is not None and not set(parts) <= set(readable):
            raise AccessDenied(f"this key may not {action} {name}; an admin may")
        return parts

    def info(self) -> StoreInfo:
        return self.store.info()
