"""Managing API keys over HTTP, and the audit log (admins only): what `rag-qa keys` and `rag-qa audit` do."""

from __future__ import annotations

from typing import Any, Literal

from fastapi import APIRouter, Depends, Query
from pydantic import BaseModel, Field

from rag_qa import audit
from rag_qa.server.auth import Caller, require
from rag_qa.server.routes import Service, service

keys = APIRouter(dependencies=[require("admin")])


class NewKey(BaseModel):
    role: Literal["reader", "editor", "admin"] = Field(..., description="reader: ask, search, read documents; editor: also upload and delete; admin: also manage keys")
    groups: list[str] = Field(default_factory=list, description="access groups whose documents the key may read (documents without groups are visible to every key)")
    name: str | None = Field(None, description="who or what the key is for (shown in lists and the audit log)")


@keys.post("/keys", summary="create a key: the response holds the key itself, shown this once")
def create_key(request: NewKey, caller: Caller = require("admin"), s: Service = Depends(service)) -> dict[str, Any]:
    record, token = s.keys.create(request.role, request.groups, request.name, by=caller.name)  # with its audit event
    return {"key": token, **record.to_dict()}


@keys.get("/keys", summary="the keys (never the keys themselves)")
def list_keys(s: Service = Depends(service)) -> dict[str, Any]:
    return {"keys": [k.to_dict() for k in s.keys.list()]}


@keys.delete("/keys/{key_id}", summary="revoke a key (by id or unique name); it stops working at once, on every replica")
def revoke_key(key_id: str, caller: Caller = require("admin"), s: Service = Depends(service)) -> dict[str, Any]:
    key = s.keys.revoke(key_id, by=caller.name)
    return key.to_dict()


@keys.get("/audit", summary="who uploaded, deleted, changed groups or managed keys, and when: a page of events, oldest first")
def audit_log(
    last: int = Query(audit.DEFAULT_PAGE, ge=1, le=audit.MAX_PAGE, description="events per page"),
    before: int | None = Query(None, ge=1, description="only events older than this id: the `next` of the newer page"),
    s: Service = Depends(service),
) -> dict[str, Any]:
    """The newest `last` events older than `before`; `next` is the `before` of the older page
    (null at the first event). One bounded query per page, however long the log."""
    events, older = audit.page(s.qa.store, last, before)
    return {"events": events, "next": older}
