"""Micro-batching of concurrent questions: requests that arrive within a short wait of each other
are answered by one `ask_many` call, so query embedding, retrieval and the reader's forward
passes run once for the whole group. On 2 cores, one batch of windows from 8 questions keeps the
matrix kernels busier than 8 small batches taking turns on the model."""

from __future__ import annotations

import queue
import threading
import time
from collections.abc import Sequence
from concurrent.futures import Future
from dataclasses import dataclass, field

from rag_qa.pipeline import RagQA, checked_question
from rag_qa.records import QAResult


@dataclass
class _Request:
    question: str
    top_k: int | None
    sources: tuple[str, ...] | None
    result: Future[QAResult] = field(default_factory=Future)

    @property
    def group(self) -> tuple[int | None, tuple[str, ...] | None]:
        """Requests share an `ask_many` call only when they ask for the same passages."""
        return self.top_k, self.sources


class AskBatcher:
    """Answers questions from many threads, gathering those that arrive within `max_wait_s` of the
    first (at most `max_batch`) into one batch. One worker thread runs the batches."""

    def __init__(self, qa: RagQA, max_wait_s: float = 0.01, max_batch: int = 32):
        self.qa, self.max_wait_s, self.max_batch = qa, max_wait_s, max_batch
        self._queue: queue.Queue[_Request] = queue.Queue()
        self._worker = threading.Thread(target=self._serve, name="rag-qa-ask-batcher", daemon=True)
        self._worker.start()

    def ask(self, question: str, top_k: int | None = None, sources: Sequence[str] | None = None) -> QAResult:
        """What `RagQA.ask` returns; a bad question raises here, in the caller's thread, alone."""
        request = _Request(checked_question(question), top_k, tuple(sources) if sources is not None else None)
        self._queue.put(request)
        return request.result.result()

    def _serve(self) -> None:
        while True:
            for group in self._groups(self._gather()):
                self._answer(group)

    def _gather(self) -> list[_Request]:
        batch = [self._queue.get()]
        deadline = time.monotonic() + self.max_wait_s
        while len(batch) < self.max_batch:
            try:
                batch.append(self._queue.get(timeout=max(0.0, deadline - time.monotonic())))
            except queue.Empty:
                break
        return batch

    @staticmethod
    def _groups(batch: list[_Request]) -> list[list[_Request]]:
        groups: dict[tuple[int | None, tuple[str, ...] | None], list[_Request]] = {}
        for request in batch:
            groups.setdefault(request.group, []).append(request)
        return list(groups.values())

    def _answer(self, group: list[_Request]) -> None:
        top_k, sources = group[0].group
        try:
            results = self.qa.ask_many([r.question for r in group], top_k, sources)
        except BaseException as exc:  # every waiting request gets the error, and the worker lives on
            for request in group:
                request.result.set_exception(exc)
            return
        for request, result in zip(group, results, strict=True):
            request.result.set_result(result)
