"""The HTTP API and web page over one open `RagQA`.

Models are loaded once, before the first request. The endpoints (`routes`) are routers that get
the `RagQA` and the limits injected, so requests are served concurrently: the stores are
thread-safe, and questions that arrive together are answered as one batch (`batching`). Every
error is JSON: `{"error": "..."}` with a 4xx status that says what to change; a 5xx says only
what the caller can do (paths, free space and hosts go to the server's log, `rag_qa.server`).
Who may call is checked (`gate.AuthGate`, `auth`) before a request's body is read.
"""

from __future__ import annotations

import logging
import sqlite3
import tempfile
from pathlib import Path

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException  # FastAPI's own subclasses it; FastAPI raises Starlette's (405, body errors)
from starlette.middleware.cors import CORSMiddleware
from starlette.middleware.trustedhost import TrustedHostMiddleware

from rag_qa import __version__
from rag_qa.access import AccessDenied
from rag_qa.config import ServerConfig
from rag_qa.errors import ChangedMeanwhile, NotFoundError, QuestionError, RagQAError, StoreUnavailable, storage_problem
from rag_qa.naming import UnknownSourceError
from rag_qa.pipeline import RagQA
from rag_qa.keys import KeyRing
from rag_qa.server.admin import keys
from rag_qa.server.batching import AskBatcher, AskTimeout, Overloaded
from rag_qa.server.auth import Guard
from rag_qa.server.body_limit import DISK_FULL, BodyLimit
from rag_qa.server.gate import AuthGate
from rag_qa.server.metrics import Metrics, monitoring
from rag_qa.server.observe import RequestIds
from rag_qa.server.lifecycle import Lifecycle
from rag_qa.server.rate import RateLimit
from rag_qa.server.routes import asking, documents, pages
from rag_qa.server.service import Service
from rag_qa.server.uploads import UploadRejected

MULTIPART_OVERHEAD = 64 * 1024  # form boundaries and headers around the uploaded bytes
FAILED = "the service failed; try again later or tell the operator (the server's log says why)"
DATABASE_FAILED = "the index's database failed; try again later or tell the operator (the server's log says why)"
UNREACHABLE = "the index's database cannot be reached; it may be restarting: retry in a few seconds"
log = logging.getLogger("rag_qa.server")


def _error(status: int, message: str, headers: dict[str, str] | None = None) -> JSONResponse:
    return JSONResponse({"error": message}, status_code=status, headers=headers)


def create_app(qa: RagQA, config: ServerConfig | None = None, lifecycle: Lifecycle | None = None) -> FastAPI:
    """The service over `qa` (which stays open for the app's lifetime; the caller closes it).
    `lifecycle` says whether it is ready (`rag-qa serve` warms the models after the port opens);
    without one the app is ready at once."""
    config = config if config is not None else ServerConfig()
    storage = Path(config.upload_dir).resolve()
    storage.mkdir(parents=True, exist_ok=True)
    app = FastAPI(
        title="rag-qa",
        version=__version__,
        description="Extractive question answering over your documents: exact quotes with their source, page and "
        "confidence, or an explicit 'no answer'.",
    )
    batcher = AskBatcher(qa, config.batch_wait_ms / 1000, config.max_batch, config.max_queue, config.ask_timeout_s)
    rate = RateLimit(config.rate_limit, qa.store, "rate:") if config.rate_limit else None  # counted in the store where replicas share it
    failures = RateLimit(config.auth_failures, qa.store, "failures:") if config.auth_failures else None
    app.state.service = Service(qa, config, storage, batcher, KeyRing(qa.store))
    app.state.lifecycle = lifecycle if lifecycle is not None else Lifecycle(ready=True)
    app.state.guard = Guard(config.auth, app.state.service.keys, rate, failures)
    routers = (pages, asking, documents, keys, monitoring)
    routes = [route for router in routers for route in router.routes]
    app.state.metrics = Metrics(app.state.service)  # /metrics (admin keys); the outermost middleware below counts requests
    app.state.service.batcher.on_batch = app.state.metrics.batch_read
    for router in routers:
        app.include_router(router)
    _add_error_handlers(app)
    upload_limit = app.state.service.upload_budget + MULTIPART_OVERHEAD
    app.add_middleware(BodyLimit, upload_path="/documents", upload_limit=upload_limit, json_limit=config.max_json_kb * 1000, upload_folder=storage)
    app.add_middleware(AuthGate, routes=routes)  # outside the body limit: a caller without the role is refused before a byte is read
    if config.cors_origins:  # off unless asked for: browsers then refuse other sites' calls
        app.add_middleware(
            CORSMiddleware, allow_origins=list(config.cors_origins), allow_methods=["GET", "POST", "DELETE"],
            allow_headers=["Authorization", "Content-Type"],
        )  # fmt: skip
    app.add_middleware(TrustedHostMiddleware, allowed_hosts=list(config.allowed_hosts))  # outermost: DNS rebinding gets 400
    app.add_middleware(RequestIds, metrics=app.state.metrics, routes=routes)  # observability: around all, every answer has an id
    return app


def _add_error_handlers(app: FastAPI) -> None:
    @app.exception_handler(RequestValidationError)
    def invalid_request(_: Request, exc: RequestValidationError) -> JSONResponse:
        problems = "; ".join(f"{'.'.join(str(p) for p in e['loc'][1:]) or 'body'}: {e['msg']}" for e in exc.errors())
        return _error(422, f"invalid request: {problems}")

    @app.exception_handler(HTTPException)
    def http_error(_: Request, exc: HTTPException) -> JSONResponse:
        # FastAPI reports a disk that fills while a (chunked) upload is spooled as "error parsing the body" (400)
        if isinstance(exc.__cause__, OSError) and (problem := storage_problem(exc.__cause__, f"the temporary folder {tempfile.gettempdir()}")):
            log.error("rag-qa: 507 for an upload: %s", problem)
            return _error(507, DISK_FULL)
        return _error(exc.status_code, str(exc.detail), exc.headers)

    @app.exception_handler(UploadRejected)
    def rejected(_: Request, exc: UploadRejected) -> JSONResponse:
        return _error(exc.status, str(exc))

    @app.exception_handler(Overloaded)
    def overloaded(_: Request, exc: Overloaded) -> JSONResponse:
        return _error(503, str(exc), {"Retry-After": "5"})

    @app.exception_handler(AskTimeout)
    def timed_out(_: Request, exc: AskTimeout) -> JSONResponse:
        return _error(504, str(exc), {"Retry-After": "30"})

    # 5xx answers say what the caller can do; what happened (paths, free space, hosts) goes to the server's log only
    @app.exception_handler(sqlite3.DatabaseError)
    def storage_failed(request: Request, exc: sqlite3.DatabaseError) -> JSONResponse:
        problem = storage_problem(exc, str(request.app.state.service.qa.store.path))
        log.error("rag-qa: 503 for %s %s: %s", request.method, request.url.path, problem or f"the index's database failed: {exc}")
        return _error(503, DATABASE_FAILED, {"Retry-After": "30"})

    @app.exception_handler(OSError)
    def disk_failed(request: Request, exc: OSError) -> JSONResponse:
        """A disk that fills while an upload is saved or indexed: 507; any other OS error a JSON 500."""
        problem = storage_problem(exc, str(request.app.state.service.qa.store.path))
        if problem:
            log.error("rag-qa: 507 for %s %s: %s", request.method, request.url.path, problem)
            return _error(507, DISK_FULL)
        log.error("rag-qa: 500 for %s %s", request.method, request.url.path, exc_info=exc)
        return _error(500, FAILED)

    @app.exception_handler(StoreUnavailable)
    def store_unavailable(request: Request, exc: StoreUnavailable) -> JSONResponse:
        log.error("rag-qa: 503 for %s %s: %s", request.method, request.url.path, exc)
        return _error(503, UNREACHABLE, {"Retry-After": "5"})

    @app.exception_handler(RagQAError)
    def rag_qa_error(_: Request, exc: RagQAError) -> JSONResponse:
        status = 422 if isinstance(exc, QuestionError) else 404 if isinstance(exc, (NotFoundError, UnknownSourceError)) else 403 if isinstance(exc, AccessDenied) else 409 if isinstance(exc, ChangedMeanwhile) else 400
        return _error(status, str(exc))
