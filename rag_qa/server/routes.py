"""The service's endpoints, as routers over the `Service` that `create_app` puts in the app's state
(FastAPI dependencies hand it to each endpoint). Endpoints are plain functions that FastAPI runs in
its thread pool, so requests are served concurrently. They check requests and shape answers; who
may read or change a document is decided by the facade, which each call gives the caller's groups."""

from __future__ import annotations

import functools
from importlib import resources
from pathlib import Path
from typing import Any, Literal

from fastapi import APIRouter, Depends, File, Form, HTTPException, Query, Request, UploadFile
from fastapi.responses import HTMLResponse, JSONResponse, Response
from pydantic import BaseModel, Field

from rag_qa import __version__, audit
from rag_qa.errors import ConfigError, StoreUnavailable
from rag_qa.ingest.formats import SUPPORTED_SUFFIXES
from rag_qa.keys import check_groups
from rag_qa.pages import MAX_WIDTH, MIN_WIDTH
from rag_qa.server.auth import Caller, identify, require
from rag_qa.server.service import Service
from rag_qa.server.uploads import safe_name

__all__ = ["Service", "asking", "documents", "pages", "service"]

def service(request: Request) -> Service:
    return request.app.state.service


def access_groups(text: str) -> tuple[str, ...]:
    """Groups from a form's comma-separated field, or 422 naming the bad one."""
    try:
        return check_groups(text.split(","))
    except ConfigError as exc:
        raise HTTPException(422, str(exc)) from None


class Filters(BaseModel):
    sources: list[str] | None = Field(
        None, description="only answer from these documents: stored names, uploaded file names, folders or globs ('handbooks/**/*.pdf'); one that names nothing is a 404"
    )


class AskRequest(BaseModel):
    question: str = Field(..., description="the question, in plain language")
    top_k: int | None = Field(None, description="passages to read (default: the service's setting), and one more when a table row the question names ranks below them")
    filters: Filters | None = None


class SearchRequest(BaseModel):
    query: str = Field(..., description="what to look for")
    top_k: int | None = Field(None, description="passages to return (default: the service's setting), and one more when a table row the query names ranks below them")
    retrieval: Literal["dense", "bm25", "hybrid"] | None = Field(None, description="how to search (default: the service's `--retrieval`)")
    filters: Filters | None = None


class GroupsRequest(BaseModel):
    groups: list[str] = Field(..., description="keys holding any of these groups may read the document (and admin keys); [] for every key")


pages = APIRouter()
asking = APIRouter()
documents = APIRouter()


@pages.get("/", response_class=HTMLResponse, include_in_schema=False)
def web_page() -> str:
    return _web_page()


@functools.cache
def _web_page() -> str:
    page = resources.files("rag_qa.server").joinpath("static/index.html").read_text("utf-8")
    return page.replace("{{ACCEPTED_TYPES}}", ",".join(sorted(SUPPORTED_SUFFIXES)))  # the loaders' one list


@pages.get("/health", summary="liveness (no key needed; /ready says whether to send requests), and what the service holds that the key may read")
def health(request: Request, s: Service = Depends(service)) -> dict[str, Any]:
    try:
        caller = identify(request)
    except HTTPException:
        return {"status": "ok", "version": __version__}
    files = s.documents(caller)
    return {
        "status": "ok",
        "version": __version__,
        "store": s.qa.store.path if caller.groups is None else "-",
        "files": len(files),
        "passages": sum(f["passages"] for f in files),
        "embedder": s.qa.embedder.config.model,
        "reader": s.qa.reader.config.model,
    }


@pages.get("/ready", summary="readiness (no key needed): 200 when this replica can answer; 503 while it warms up, drains or cannot reach its index")
def ready(request: Request, s: Service = Depends(service)) -> JSONResponse:
    problem = request.app.state.lifecycle.not_ready()
    if problem is None:
        try:
            s.qa.answers()
        except StoreUnavailable:
            problem = "the index's database cannot be reached"
    if problem is not None:
        return JSONResponse({"status": "not ready", "error": problem}, status_code=503, headers={"Retry-After": "5"})
    return JSONResponse({"status": "ready"})


def _checked(text: str, top_k: int | None, filters: Filters | None, s: Service, caller: Caller) -> tuple[str, int, list[str] | None]:
    """The question or query, top_k and the stored sources its filter names among those the caller
    may read (None: no filter), or a 422/404 saying what is wrong. The facade, given the caller's
    groups, turns them into a source filter that the store applies inside its search, so `top_k`
    hits come back from what the caller may read."""
    text = text.strip()
    if len(text) > s.config.max_question_chars:
        raise HTTPException(422, f"the question has {len(text)} characters; the limit is {s.config.max_question_chars}")
    top_k = top_k if top_k is not None else s.qa.retriever.config.top_k
    if not 1 <= top_k <= s.config.max_top_k:
        raise HTTPException(422, f"top_k must be between 1 and {s.config.max_top_k}, got {top_k}")
    names = filters.sources if filters else None
    return text, top_k, s.filter_sources(names, caller) if names is not None else None  # the facade applies the caller's groups


@asking.post("/ask", summary="answer a question from the indexed documents (or abstain)")
def ask(request: AskRequest, caller: Caller = require("reader"), s: Service = Depends(service)) -> dict[str, Any]:
    question, top_k, sources = _checked(request.question, request.top_k, request.filters, s, caller)
    return s.batcher.ask(question, top_k=top_k, sources=sources, groups=caller.groups).to_dict()


@asking.post("/search", summary="the passages `/ask` would read for a query (dense, bm25 or hybrid)")
def search(request: SearchRequest, caller: Caller = require("reader"), s: Service = Depends(service)) -> dict[str, Any]:
    query, top_k, sources = _checked(request.query, request.top_k, request.filters, s, caller)
    hits = s.qa.search(query, top_k, sources, request.retrieval, caller.groups)
    return {"query": query, "results": [h.to_dict() for h in hits]}


@documents.post("/documents", summary="upload files and index them (per-file report, as `rag-qa index --json`)")
def upload(
    request: Request,
    files: list[UploadFile] = File(..., description=f"files of the types rag-qa reads: {', '.join(sorted(SUPPORTED_SUFFIXES))}"),
    replace: bool = Form(False, description="replace earlier uploads of the same names that the key may read (otherwise 409)"),
    groups: str = Form("", description="comma-separated access groups: only keys holding one may read the files. Empty: a new "
                       "file gets an editor key's own groups (none for an editor without groups: every key reads it); a replaced file keeps its groups"),
    caller: Caller = require("editor"),
    s: Service = Depends(service),
) -> dict[str, Any]:  # fmt: skip
    named = [(f.file, safe_name(f.filename)) for f in files]
    report = s.upload(named, access_groups(groups) or None, replace, caller)
    request.app.state.metrics.ingested(report)  # ingestion pages and failures (server/metrics.py)
    return report


@documents.get("/documents", summary="the indexed documents the key may read")
def list_documents(caller: Caller = require("reader"), s: Service = Depends(service)) -> dict[str, Any]:
    return {"documents": [{"name": Path(f["source"]).name, **f} for f in s.documents(caller)]}


@documents.get("/documents/{source:path}/text", summary="the text that a document's answer offsets index (optionally one page)")
def show(source: str, page: int | None = None, caller: Caller = require("reader"), s: Service = Depends(service)) -> dict[str, Any]:
    return s.qa.show(s.stored_source(source, caller), page, caller.groups).to_dict()


@documents.put("/documents/{source:path}/groups", summary="change which keys may read a document (no re-embedding)")
def set_groups(source: str, request: GroupsRequest, caller: Caller = require("editor"), s: Service = Depends(service)) -> dict[str, Any]:
    stored = s.stored_source(source, caller)
    try:
        groups = check_groups(request.groups)
    except ConfigError as exc:
        raise HTTPException(422, str(exc)) from None
    s.qa.set_groups(stored, groups, caller.groups, event=audit.event(caller.name, "set groups", stored, groups=list(groups)))
    return {"source": stored, "groups": list(groups)}


@documents.get(
    "/documents/{source:path}/pages/{page}.png",
    summary="a page of an indexed PDF as a PNG image",
    response_class=Response,
    responses={200: {"content": {"image/png": {}}}},
)
def page_image(
    source: str, page: int, request: Request, width: int = Query(1000, ge=MIN_WIDTH, le=MAX_WIDTH),
    caller: Caller = require("reader"), s: Service = Depends(service),
) -> Response:  # fmt: skip
    stored = s.stored_source(source, caller)
    tag = f'"{s.qa.content_hash(stored, caller.groups)}-{page}-{width}"'
    headers = {"ETag": tag, "Cache-Control": "no-cache"}  # revalidate: a re-indexed file gets a new tag
    if request.headers.get("if-none-match") == tag:
        return Response(status_code=304, headers=headers)
    return Response(s.qa.page_image(stored, page, width, caller.groups), media_type="image/png", headers=headers)


@documents.get("/documents/{source:path}/boxes", summary="where characters [start, end) of a PDF's text are on its pages")
def boxes(
    source: str, start: int = Query(..., ge=0), end: int = Query(..., ge=0), caller: Caller = require("reader"), s: Service = Depends(service)
) -> dict[str, Any]:
    stored = s.stored_source(source, caller)
    shown = s.qa.show(stored, None, caller.groups)
    return {"source": stored, "start": start, "end": end, "pages": shown.pages, "boxes": [b.to_dict() for b in s.qa.boxes(stored, start, end, caller.groups)]}


@documents.delete("/documents/{source:path}", summary="remove a document (stored source or uploaded file name)")
def delete(source: str, caller: Caller = require("editor"), s: Service = Depends(service)) -> dict[str, Any]:
    return s.delete(source, caller)
