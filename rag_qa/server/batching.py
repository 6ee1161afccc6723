"""Micro-batching of concurrent questions: the requests that queue up while a batch is answered
(and those arriving within `max_wait_s` of the first, if it is above 0) are answered by one
`ask_each` call, so query embedding, retrieval and the reader's forward passes run once for the
whole group (retrieval once per distinct source filter: callers whose keys read different
documents still share the reader's batch). On 2 cores one question's passages already fill the
reader's batches, so 8 questions in one batch gain only their shared per-request work (1.0-1.2x the
answers per CPU second, measured); a wait of 0 (the service's default) adds no latency to a lone
question.

Failure stays with its request: when a batch raises, each of its questions is answered alone, so
only the bad one fails; a worker thread that died is replaced on the next question; the queue is
bounded (a full queue refuses at once: `Overloaded`), and no caller waits longer than its timeout
(`AskTimeout`). `on_batch`, when given, is told the size of each batch answered (the service's
metrics), before its callers get their answers: a caller that has its answer sees it counted."""

from __future__ import annotations

import logging
import queue
import threading
import time
from collections.abc import Callable, Sequence
from concurrent.futures import Future
from dataclasses import dataclass, field

from rag_qa.errors import RagQAError
from rag_qa.pipeline import RagQA, checked_question
from rag_qa.records import QAResult

log = logging.getLogger("rag_qa.server")


class Overloaded(RagQAError):
    """Too many questions are waiting: the caller should retry a little later (HTTP 503)."""


class AskTimeout(RagQAError):
    """A question waited longer than the service's timeout (HTTP 504)."""


@dataclass
class _Request:
    question: str
    top_k: int | None
    sources: tuple[str, ...] | None
    groups: tuple[str, ...] | None  # the caller's access groups (None: every document)
    result: Future[QAResult] = field(default_factory=Future)



def _names(names: Sequence[str] | None) -> tuple[str, ...] | None:
    return tuple(names) if names is not None else None


class AskBatcher:
    """Answers questions from many threads: those waiting in the queue when a batch starts (and,
    with `max_wait_s` > 0, those arriving within it of the first), at most `max_batch`, form one
    batch. One worker thread runs the batches."""

    def __init__(
        self, qa: RagQA, max_wait_s: float = 0.0, max_batch: int = 32, max_queue: int = 256, timeout_s: float = 120.0,
        on_batch: Callable[[int, int], None] | None = None,
    ) -> None:  # fmt: skip
        """`on_batch(questions, passages)`: called from the worker for each batch answered, with its
        questions and the passages they asked retrieval for (top_k each)."""
        self.qa, self.max_wait_s, self.max_batch, self.timeout_s = qa, max_wait_s, max_batch, timeout_s
        self.on_batch = on_batch
        self._queue: queue.Queue[_Request] = queue.Queue(maxsize=max_queue)
        self._worker_lock = threading.Lock()
        self._worker: threading.Thread | None = None
        self._ensure_worker()

    @property
    def queue_depth(self) -> int:
        """Questions waiting for the worker now (not those of the batch it is answering)."""
        return self._queue.qsize()

    def _ensure_worker(self) -> None:
        """Start the worker thread, or a new one if the last one died."""
        with self._worker_lock:
            if self._worker is None or not self._worker.is_alive():
                self._worker = threading.Thread(target=self._serve, name="rag-qa-ask-batcher", daemon=True)
                self._worker.start()

    def ask(
        self, question: str, top_k: int | None = None, sources: Sequence[str] | None = None, groups: Sequence[str] | None = None,
    ) -> QAResult:  # fmt: skip
        """What `RagQA.ask` returns for a holder of `groups`; a bad question raises here, in the caller's thread, alone."""
        request = _Request(checked_question(question), top_k, _names(sources), _names(groups))
        self._ensure_worker()
        try:
            self._queue.put_nowait(request)
        except queue.Full:
            raise Overloaded(f"{self._queue.maxsize} questions are already waiting; retry in a few seconds") from None
        try:
            return request.result.result(timeout=self.timeout_s)
        except TimeoutError:
            raise AskTimeout(f"the question was not answered within {self.timeout_s:g} s; the service is busy") from None

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
        """Requests share an `ask_each` call when they read the same number of passages."""
        groups: dict[int | None, list[_Request]] = {}
        for request in batch:
            groups.setdefault(request.top_k, []).append(request)
        return list(groups.values())

    def _answer(self, group: list[_Request]) -> None:
        try:
            results = self.qa.ask_each([r.question for r in group], group[0].top_k, [r.sources for r in group], [r.groups for r in group])
        except BaseException as exc:  # the worker lives on; with several questions, find the bad one
            if len(group) == 1:
                group[0].result.set_exception(exc)
            else:
                for request in group:
                    self._answer([request])
            return
        self._counted(group)
        for request, result in zip(group, results, strict=True):
            request.result.set_result(result)

    def _counted(self, group: list[_Request]) -> None:
        """Tell `on_batch` about a batch answered; a failing hook is logged, never the callers' failure."""
        if self.on_batch is None:
            return
        try:
            default = self.qa.retriever.config.top_k
            self.on_batch(len(group), sum(r.top_k if r.top_k is not None else default for r in group))  # (questions of a batch may ask for different top_k)
        except Exception:
            log.exception("the ask batcher's on_batch hook failed")
