"""What the service is doing, for Prometheus: `GET /metrics` in its text format (or OpenMetrics, when
the scraper asks for it), written by the official `prometheus-client`.

Each app has its own `CollectorRegistry` (`Metrics`), never the library's global one: several apps
in one process (tests, notebooks) count apart. Requests are counted by route template (the route's
path with its parameters, `/documents/{source:path}/text`), never by the URL asked for, so a label
takes as many values as the app has routes; a URL no route serves is "unmatched", a method that
HTTP does not define "other". The queue depth and the index's size are read when a scrape asks for
them. The counts cover every document of every group, so on a keyed service only an admin key may
read them (`require("admin")`, checked by the gate before the endpoint runs)."""

from __future__ import annotations

import logging
from collections.abc import Iterator, Mapping
from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import Response
from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram
from prometheus_client.exposition import choose_encoder
from prometheus_client.metrics_core import GaugeMetricFamily, Metric

from rag_qa.server.auth import Caller, require

METHODS = frozenset({"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"})
TIMED = {("POST", "/ask"): "ask", ("POST", "/search"): "search", ("POST", "/documents"): "upload"}
SECONDS = (0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 20.0, 30.0, 60.0)  # a cached answer .. a large upload
BATCH_SIZES = (1, 2, 4, 8, 16, 32, 64, 128, 256)  # questions per reader batch (ServerConfig.max_batch: 32 by default)
log = logging.getLogger("rag_qa.server")


class Metrics:
    """The app's metrics, in a registry of its own (`registry`), over the service it watches."""

    def __init__(self, service: Any) -> None:
        """`service`: the app's `Service` (its batcher's queue and its store are read at scrape time)."""
        self.registry = registry = CollectorRegistry()
        self.requests = Counter("rag_qa_http_requests", "HTTP requests answered, by route template, method and status",
                                ["route", "method", "status"], registry=registry)
        self.latency = Histogram("rag_qa_request_duration_seconds", "time to answer an ask, search or upload request (any status)",
                                 ["operation"], buckets=SECONDS, registry=registry)
        self.batch_questions = Histogram("rag_qa_reader_batch_questions", "questions answered together in one reader batch",
                                         buckets=BATCH_SIZES, registry=registry)
        self.passages = Counter("rag_qa_reader_passages_requested", "passages the questions answered asked for (top_k each): about what the reader "
                                "read (fewer from a small or filtered index, one more where a named table row ranks below)", registry=registry)
        self.ingest_files = Counter("rag_qa_ingest_files", "uploaded files by outcome: indexed, or failed (not indexed: unreadable, empty, not replaced)",
                                    ["outcome"], registry=registry)
        self.in_progress = Gauge("rag_qa_requests_in_progress", "requests being answered now, by route template (a draining replica's fall to 0)",
                                 ["route"], registry=registry)
        self.ingest_pages = Counter("rag_qa_ingest_pages", "pages of the uploaded files indexed", registry=registry)
        self.registry.register(_Live(service))
        for operation in TIMED.values():
            self.latency.labels(operation)  # each operation shows from the first scrape (at 0)
        for outcome in ("indexed", "failed"):
            self.ingest_files.labels(outcome)

    def request(self, route: str, method: str, status: int, seconds: float) -> None:
        """Count a request answered (the route template, from `route_template`)."""
        method = method if method in METHODS else "other"
        self.requests.labels(route, method, str(status)).inc()
        operation = TIMED.get((method, route))
        if operation is not None:
            self.latency.labels(operation).observe(seconds)

    def batch_read(self, questions: int, passages: int) -> None:
        """`AskBatcher.on_batch`: a batch of questions answered, and the passages they asked for (an
        answer, `QAResult`, does not say how many passages were read: only those it quotes)."""
        self.batch_questions.observe(questions)
        self.passages.inc(passages)

    def ingested(self, report: Mapping[str, Any]) -> None:
        """Count what an upload's report (`Service.upload`'s answer) says: each uploaded file indexed
        or not, and the pages read."""
        indexed = sum(bool(d["indexed"]) for d in report["documents"])
        self.ingest_files.labels("indexed").inc(indexed)
        self.ingest_files.labels("failed").inc(len(report["documents"]) - indexed)
        self.ingest_pages.inc(report["pages"])


class _Live:
    """Values read when a scrape asks: the ask queue's depth and the index's size. A store that
    cannot be read leaves the index's gauges out of that scrape (the rest still answers)."""

    def __init__(self, service: Any) -> None:
        self.service = service

    def describe(self) -> Iterator[Metric]:
        yield from self._families()

    def collect(self) -> Iterator[Metric]:
        queue, documents, passages = self._families()
        queue.add_metric([], self.service.batcher.queue_depth)
        yield queue
        try:
            indexed = self.service.qa.documents(None)  # (the facade's list, every group: /metrics is for admins)
            documents.add_metric([], len(indexed))
            passages.add_metric([], sum(f["passages"] for f in indexed))
        except Exception as exc:  # the store is down or damaged: said by its own errors; the scrape still answers
            log.warning("the metrics leave out the index's size: %s: %s", type(exc).__name__, exc)
            return
        yield documents
        yield passages

    @staticmethod
    def _families() -> tuple[GaugeMetricFamily, GaugeMetricFamily, GaugeMetricFamily]:
        return (
            GaugeMetricFamily("rag_qa_ask_queue_depth", "questions waiting for the reader (not those of the batch being answered)"),
            GaugeMetricFamily("rag_qa_index_documents", "documents in the index, of every group (a mail's attachments count as documents)"),
            GaugeMetricFamily("rag_qa_index_passages", "passages in the index, of every group"),
        )


monitoring = APIRouter()


@monitoring.get(
    "/metrics", summary="the service's metrics in Prometheus' text format (admin keys: the counts cover every group)",
    response_class=Response, responses={200: {"content": {"text/plain": {}}}},
)  # fmt: skip
def scrape(request: Request, _: Caller = require("admin")) -> Response:
    encoder, content_type = choose_encoder(request.headers.get("accept", ""))
    return Response(encoder(request.app.state.metrics.registry), media_type=content_type)
