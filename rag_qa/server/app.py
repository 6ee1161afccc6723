"""The HTTP API and web page over one open `RagQA`.

Models are loaded once, before the first request. Endpoints are plain functions that FastAPI runs
in its thread pool, so requests are served concurrently: the stores are thread-safe, and the
embedder and reader let concurrent calls take turns on their model. Every error is JSON:
`{"error": "..."}` with a 4xx status that says what to change.
"""

from __future__ import annotations

from importlib import resources
from pathlib import Path
from typing import Any

from fastapi import FastAPI, File, HTTPException, Request, UploadFile
from fastapi.exceptions import RequestValidationError
from fastapi.responses import HTMLResponse, JSONResponse
from pydantic import BaseModel, Field

from rag_qa import __version__
from rag_qa.config import ServerConfig
from rag_qa.errors import NotFoundError, QuestionError, RagQAError
from rag_qa.pipeline import RagQA
from rag_qa.server.uploads import UploadRejected, check_suffix, safe_name, save_uploads

MULTIPART_OVERHEAD = 64 * 1024  # form boundaries and headers around the uploaded bytes


class Filters(BaseModel):
    sources: list[str] | None = Field(None, description="only answer from these documents (stored source or uploaded file name)")


class AskRequest(BaseModel):
    question: str = Field(..., description="the question, in plain language")
    top_k: int | None = Field(None, description="passages to read (default: the service's setting)")
    filters: Filters | None = None


def _error(status: int, message: str, **extra: Any) -> JSONResponse:
    return JSONResponse({"error": message, **extra}, status_code=status)


def create_app(qa: RagQA, config: ServerConfig | None = None) -> FastAPI:
    """The service over `qa` (which stays open for the app's lifetime; the caller closes it)."""
    config = config if config is not None else ServerConfig()
    storage = Path(config.upload_dir).resolve()
    storage.mkdir(parents=True, exist_ok=True)
    budget = int(config.max_upload_mb * 1_000_000)
    page = resources.files("rag_qa.server").joinpath("static/index.html").read_text("utf-8")
    app = FastAPI(
        title="rag-qa",
        version=__version__,
        description="Extractive question answering over your documents: exact quotes with their source, page and "
        "confidence, or an explicit 'no answer'.",
    )

    @app.exception_handler(RequestValidationError)
    def invalid_request(_: Request, exc: RequestValidationError) -> JSONResponse:
        problems = "; ".join(f"{'.'.join(str(p) for p in e['loc'][1:]) or 'body'}: {e['msg']}" for e in exc.errors())
        return _error(422, f"invalid request: {problems}")

    @app.exception_handler(HTTPException)
    def http_error(_: Request, exc: HTTPException) -> JSONResponse:
        return _error(exc.status_code, str(exc.detail))

    @app.exception_handler(UploadRejected)
    def rejected(_: Request, exc: UploadRejected) -> JSONResponse:
        return _error(exc.status, str(exc))

    @app.exception_handler(RagQAError)
    def rag_qa_error(_: Request, exc: RagQAError) -> JSONResponse:
        status = 422 if isinstance(exc, QuestionError) else 404 if isinstance(exc, NotFoundError) else 400
        return _error(status, str(exc))

    @app.middleware("http")
    async def refuse_large_bodies(request: Request, call_next: Any) -> Any:
        """Refuse an oversized upload from its Content-Length, before reading any of it."""
        length = request.headers.get("content-length")
        if request.method == "POST" and length and length.isdigit() and int(length) > budget + MULTIPART_OVERHEAD:
            return _error(413, f"the request is {int(length) / 1e6:.1f} MB; the upload limit is {config.max_upload_mb:g} MB")
        return await call_next(request)

    def stored_source(name: str) -> str:
        """A document's stored source from its stored name or its uploaded file name."""
        if qa.store.file_hash(name) is not None:
            return name
        uploaded = str(storage / safe_name(name)) if name.strip(" ./\\") else ""
        if uploaded and qa.store.file_hash(uploaded) is not None:
            return uploaded
        raise HTTPException(404, f"{name} is not indexed (GET /documents lists what is)")

    @app.get("/", response_class=HTMLResponse, include_in_schema=False)
    def web_page() -> str:
        return page

    @app.get("/health", summary="liveness and what the service holds")
    def health() -> dict[str, Any]:
        info = qa.info()
        return {
            "status": "ok",
            "version": __version__,
            "store": info.path,
            "files": info.files,
            "passages": info.passages,
            "embedder": qa.embedder.config.model,
            "reader": qa.reader.config.model,
        }

    @app.post("/ask", summary="answer a question from the indexed documents (or abstain)")
    def ask(request: AskRequest) -> dict[str, Any]:
        question = request.question.strip()
        if len(question) > config.max_question_chars:
            raise HTTPException(422, f"the question has {len(question)} characters; the limit is {config.max_question_chars}")
        top_k = request.top_k if request.top_k is not None else qa.retriever.config.top_k
        if not 1 <= top_k <= config.max_top_k:
            raise HTTPException(422, f"top_k must be between 1 and {config.max_top_k}, got {top_k}")
        names = request.filters.sources if request.filters else None
        sources = [stored_source(n) for n in names] if names is not None else None
        return qa.ask(question, top_k=top_k, sources=sources).to_dict()

    @app.post("/documents", summary="upload files and index them (per-file report, as `rag-qa index --json`)")
    def upload(files: list[UploadFile] = File(..., description="PDF, text, Markdown or HTML files")) -> dict[str, Any]:
        names = [safe_name(f.filename) for f in files]
        for name in names:
            check_suffix(name)
        if len(set(names)) != len(names):
            raise HTTPException(422, "two uploaded files have the same name")
        try:
            saved = save_uploads([(f.file, name) for f, name in zip(files, names)], storage, budget)
        except UploadRejected as exc:
            if exc.status == 413:
                raise UploadRejected(413, f"{exc}: at most {config.max_upload_mb:g} MB per request") from None
            raise
        report = qa.index([str(p) for p in saved]).to_dict()
        skipped = {s["path"] for s in report["files_skipped"]}
        for path in saved:
            if str(path) in skipped:
                path.unlink(missing_ok=True)  # nothing of it is indexed; do not keep it
        documents = [{"name": p.name, "source": str(p), "indexed": str(p) not in skipped} for p in saved]
        return {**report, "documents": documents}

    @app.get("/documents", summary="the indexed documents")
    def documents() -> dict[str, Any]:
        return {"documents": [{"name": Path(f["source"]).name, **f} for f in qa.store.files()]}

    @app.get("/documents/{source:path}/text", summary="the text that a document's answer offsets index (optionally one page)")
    def show(source: str, page: int | None = None) -> dict[str, Any]:
        return qa.show(stored_source(source), page).to_dict()

    @app.delete("/documents/{source:path}", summary="remove a document (stored source or uploaded file name)")
    def delete(source: str) -> dict[str, Any]:
        stored = stored_source(source)
        removed = qa.delete(stored)
        if Path(stored).parent == storage:
            Path(stored).unlink(missing_ok=True)
        return {"source": stored, "passages_removed": removed, "passages_total": qa.store.count()}

    return app
