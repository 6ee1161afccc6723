"""The service's endpoints, as routers over the `RagQA` and limits that `create_app` puts in the
app's state (FastAPI dependencies hand them to each endpoint). Endpoints are plain functions that
FastAPI runs in its thread pool, so requests are served concurrently."""

from __future__ import annotations

import functools
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import Any, Literal

from fastapi import APIRouter, Depends, File, Form, HTTPException, Query, Request, UploadFile
from fastapi.responses import HTMLResponse, Response
from pydantic import BaseModel, Field

from rag_qa import __version__, audit
from rag_qa.config import ServerConfig
from rag_qa.errors import ConfigError
from rag_qa.keys import KeyRing, check_groups
from rag_qa.naming import GLOB_CHARACTERS, resolve_sources
from rag_qa.pages import MAX_WIDTH, MIN_WIDTH
from rag_qa.pipeline import RagQA
from rag_qa.server.auth import Caller, identify, require
from rag_qa.server.batching import AskBatcher
from rag_qa.server.rate import RateLimit
from rag_qa.ingest.formats import SUPPORTED_SUFFIXES
from rag_qa.server.uploads import UploadRejected, check_suffix, safe_name, save_uploads


@dataclass(frozen=True)
class Service:
    """What the endpoints work with: the open index and models, the limits, the upload folder."""

    qa: RagQA
    config: ServerConfig
    storage: Path
    batcher: AskBatcher
    keys: KeyRing
    rate: RateLimit | None  # per key (or client address on an open service)

    @property
    def upload_budget(self) -> int:
        return int(self.config.max_upload_mb * 1_000_000)

    def stored_source(self, name: str, caller: Caller) -> str:
        """A document's stored source from its stored name or its uploaded file name; 404 when it
        is not indexed or the caller may not read it (the same answer: nothing reveals it exists)."""
        stored, named, uploaded = None, self.qa.stored_source(name), self.uploaded_as(name)  # named: a path from the service's folder
        if self.qa.store.file_hash(named) is not None:
            stored = named
        elif uploaded is not None and self.qa.store.file_hash(uploaded) is not None:
            stored = uploaded
        if stored is None or not self.readable(stored, caller):
            raise HTTPException(404, f"{name} is not indexed (GET /documents lists what is)")
        return stored

    def filter_sources(self, names: list[str], caller: Caller) -> list[str]:
        """The stored names a request's filter names (uploaded file names, and every form `naming`
        takes, relative to the service's folder) among those the caller may read; 404 for a name
        that matches none."""
        readable = [f["source"] for f in self.documents(caller)]
        known = set(readable)
        return resolve_sources([u if (u := self.uploaded_as(n)) in known else n for n in names], readable)

    def uploaded_as(self, name: str) -> str | None:
        """Where an upload of this file name is kept (None when it cannot be an upload's name)."""
        if GLOB_CHARACTERS & set(name):
            return None
        try:
            return str(self.storage / safe_name(name))
        except UploadRejected:
            return None

    def readable(self, source: str, caller: Caller) -> bool:
        return caller.groups is None or source in self.qa.store.visible_sources(caller.groups)

    def documents(self, caller: Caller) -> list[dict[str, Any]]:
        """The indexed documents the caller may read."""
        files = self.qa.store.files()
        if caller.groups is None:
            return files
        readable = set(self.qa.store.visible_sources(caller.groups))
        return [f for f in files if f["source"] in readable]


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
    top_k: int | None = Field(None, description="passages to read (default: the service's setting)")
    filters: Filters | None = None


class SearchRequest(BaseModel):
    query: str = Field(..., description="what to look for")
    top_k: int | None = Field(None, description="passages to return (default: the service's setting)")
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


@pages.get("/health", summary="liveness (no key needed), and what the service holds that the key may read")
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


def _checked(text: str, top_k: int | None, filters: Filters | None, s: Service, caller: Caller) -> tuple[str, int, list[str] | None]:
    """The question or query, top_k and the stored sources it may read (None: all), or a 422/404
    saying what is wrong. The caller's access groups become a source filter that the store applies
    inside its search, so `top_k` hits come back from what the caller may read."""
    text = text.strip()
    if len(text) > s.config.max_question_chars:
        raise HTTPException(422, f"the question has {len(text)} characters; the limit is {s.config.max_question_chars}")
    top_k = top_k if top_k is not None else s.qa.retriever.config.top_k
    if not 1 <= top_k <= s.config.max_top_k:
        raise HTTPException(422, f"top_k must be between 1 and {s.config.max_top_k}, got {top_k}")
    names = filters.sources if filters else None
    return text, top_k, s.filter_sources(names, caller) if names is not None else s.qa.visible(None, caller.groups)


@asking.post("/ask", summary="answer a question from the indexed documents (or abstain)")
def ask(request: AskRequest, caller: Caller = require("reader"), s: Service = Depends(service)) -> dict[str, Any]:
    question, top_k, sources = _checked(request.question, request.top_k, request.filters, s, caller)
    return s.batcher.ask(question, top_k=top_k, sources=sources).to_dict()


@asking.post("/search", summary="the passages `/ask` would read for a query (dense, bm25 or hybrid)")
def search(request: SearchRequest, caller: Caller = require("reader"), s: Service = Depends(service)) -> dict[str, Any]:
    query, top_k, sources = _checked(request.query, request.top_k, request.filters, s, caller)
    hits = s.qa.search(query, top_k, sources, request.retrieval)
    return {"query": query, "results": [h.to_dict() for h in hits]}


@documents.post("/documents", summary="upload files and index them (per-file report, as `rag-qa index --json`)")
def upload(
    files: list[UploadFile] = File(..., description=f"files of the types rag-qa reads: {', '.join(sorted(SUPPORTED_SUFFIXES))}"),
    replace: bool = Form(False, description="replace earlier uploads of the same names (otherwise 409)"),
    groups: str = Form("", description="comma-separated access groups: only keys holding one may read the files. Empty: "
                       "an editor key's own groups (none for an editor without groups: every key reads them); a replaced file keeps its groups"),
    caller: Caller = require("editor"),
    s: Service = Depends(service),
) -> dict[str, Any]:  # fmt: skip
    names = [safe_name(f.filename) for f in files]
    for name in names:
        check_suffix(name)
    if len(set(names)) != len(names):
        raise HTTPException(422, "two uploaded files have the same name")
    assigned = access_groups(groups) or caller.groups or None  # None: a replaced file keeps its groups, a new one has none
    if assigned is not None and not caller.may_assign(assigned):
        raise HTTPException(403, f"the key {caller.key.name!r} may give documents only its own groups ({', '.join(caller.groups or ())})")
    for name in names:
        existing = str(s.storage / name)
        if s.qa.store.file_hash(existing) is not None and not s.readable(existing, caller):
            raise UploadRejected(409, f"{name} was uploaded before; upload it under another name")  # and it is not the caller's to replace
    try:
        saved = save_uploads([(f.file, name) for f, name in zip(files, names)], s.storage, s.upload_budget, replace)
    except UploadRejected as exc:
        if exc.status == 413:
            raise UploadRejected(413, f"{exc}: at most {s.config.max_upload_mb:g} MB per request") from None
        raise
    report = s.qa.index([str(p) for p in saved], groups=assigned).to_dict()
    skipped = {item["path"] for item in report["files_skipped"]}
    for path in saved:
        if str(path) in skipped:
            path.unlink(missing_ok=True)  # nothing of it is indexed; do not keep it
    uploaded = [{"name": p.name, "source": str(p), "indexed": str(p) not in skipped} for p in saved]
    for item in uploaded:
        audit.record(s.qa.store, caller.name, "upload", item["source"], indexed=item["indexed"], replace=replace, groups=list(assigned or ()))
    if caller.groups is not None:
        report["passages_total"] = sum(f["passages"] for f in s.documents(caller))  # no total that counts hidden ones
    return {**report, "documents": uploaded}


@documents.get("/documents", summary="the indexed documents the key may read")
def list_documents(caller: Caller = require("reader"), s: Service = Depends(service)) -> dict[str, Any]:
    return {"documents": [{"name": Path(f["source"]).name, **f} for f in s.documents(caller)]}


@documents.get("/documents/{source:path}/text", summary="the text that a document's answer offsets index (optionally one page)")
def show(source: str, page: int | None = None, caller: Caller = require("reader"), s: Service = Depends(service)) -> dict[str, Any]:
    return s.qa.show(s.stored_source(source, caller), page).to_dict()


@documents.put("/documents/{source:path}/groups", summary="change which keys may read a document (no re-embedding)")
def set_groups(source: str, request: GroupsRequest, caller: Caller = require("editor"), s: Service = Depends(service)) -> dict[str, Any]:
    stored = s.stored_source(source, caller)
    try:
        groups = check_groups(request.groups)
    except ConfigError as exc:
        raise HTTPException(422, str(exc)) from None
    if not caller.may_assign(groups) or not groups and caller.groups is not None:
        raise HTTPException(403, f"the key {caller.key.name!r} may give documents only its own groups ({', '.join(caller.groups or ())})")
    s.qa.set_groups(stored, groups)
    audit.record(s.qa.store, caller.name, "set groups", stored, groups=list(groups))
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
    tag = f'"{s.qa.store.file_hash(stored)}-{page}-{width}"'
    headers = {"ETag": tag, "Cache-Control": "no-cache"}  # revalidate: a re-indexed file gets a new tag
    if request.headers.get("if-none-match") == tag:
        return Response(status_code=304, headers=headers)
    return Response(s.qa.page_image(stored, page, width), media_type="image/png", headers=headers)


@documents.get("/documents/{source:path}/boxes", summary="where characters [start, end) of a PDF's text are on its pages")
def boxes(
    source: str, start: int = Query(..., ge=0), end: int = Query(..., ge=0), caller: Caller = require("reader"), s: Service = Depends(service)
) -> dict[str, Any]:
    stored = s.stored_source(source, caller)
    pages = len(s.qa.store.page_starts(stored))
    return {"source": stored, "start": start, "end": end, "pages": pages, "boxes": [b.to_dict() for b in s.qa.boxes(stored, start, end)]}


@documents.delete("/documents/{source:path}", summary="remove a document (stored source or uploaded file name)")
def delete(source: str, caller: Caller = require("editor"), s: Service = Depends(service)) -> dict[str, Any]:
    stored = s.stored_source(source, caller)
    removed = s.qa.delete(stored)
    audit.record(s.qa.store, caller.name, "delete", stored, passages=removed)
    if Path(stored).parent == s.storage:
        Path(stored).unlink(missing_ok=True)
    return {"source": stored, "passages_removed": removed, "passages_total": sum(f["passages"] for f in s.documents(caller))}
