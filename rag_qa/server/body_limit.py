"""Request bodies that cannot outgrow their limit: an ASGI middleware that refuses a body from its
Content-Length before reading it, and counts the bytes of every body as it streams in, chunked or
not, answering 413 the moment the count passes the limit. So a chunked upload stops at the budget
(the multipart parser never spools more than that to a temporary file), and a multi-GB JSON body
is never read into memory.

Hand-written because the body is read by FastAPI's own request parsing: Starlette has no body-size
limit, and uvicorn's `--limit-*` options bound connections, not bytes."""

from __future__ import annotations

import json
import logging
import os
import shutil
import tempfile
from pathlib import Path
from typing import Any

Scope = dict[str, Any]
Receive = Any
Send = Any
DISK_FULL = "the server's disk is full; try again later or tell the operator"  # what a 507 says (the detail goes to the log)
log = logging.getLogger("rag_qa.server")


class BodyTooLarge(Exception):
    """Raised inside the app's `receive` when a body passes its limit."""


class BodyLimit:
    """Limit each POST/PUT/PATCH body: `upload_limit` bytes for `upload_path`, `json_limit` for the rest."""

    def __init__(self, app: Any, upload_path: str, upload_limit: int, json_limit: int, upload_folder: Path | None = None):
        self.app, self.upload_path, self.upload_limit, self.json_limit = app, upload_path, upload_limit, json_limit
        self.upload_folder = upload_folder

    def _limit(self, scope: Scope) -> tuple[int, str]:
        if scope["path"] == self.upload_path:
            return self.upload_limit, f"the upload limit is {self.upload_limit / 1e6:.1f} MB per request"
        return self.json_limit, f"a request body may have at most {self.json_limit // 1000} kB"

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["method"] not in ("POST", "PUT", "PATCH"):
            await self.app(scope, receive, send)
            return
        limit, rule = self._limit(scope)
        length = dict(scope["headers"]).get(b"content-length", b"")
        if length.isdigit() and int(length) > limit:
            await _refuse(send, f"the request is {int(length) / 1e6:.1f} MB; {rule}")
            return
        if length.isdigit() and scope["path"] == self.upload_path and (short := self._disk_short_of(int(length))):
            log.error("rag-qa: 507 for an upload: %s", short)
            await _refuse(send, DISK_FULL, 507)
            return
        received, exceeded, started = 0, False, False

        async def counted() -> dict[str, Any]:
            nonlocal received, exceeded
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > limit:
                    exceeded = True
                    raise BodyTooLarge()
            return message

        async def guarded(message: dict[str, Any]) -> None:
            nonlocal started
            if exceeded:
                return  # the app's answer to the broken-off body is replaced by the 413 below
            started = started or message["type"] == "http.response.start"
            await send(message)

        try:
            await self.app(scope, counted, guarded)
        except BodyTooLarge:
            pass
        if exceeded and not started:
            await _refuse(send, f"the request body passed {limit / 1e6:.1f} MB while streaming; {rule}")


    def _disk_short_of(self, length: int) -> str | None:
        """Why an upload of `length` bytes cannot fit (the parser spools it to the temporary folder,
        then it is saved in the upload folder), or None: for the server's log, never the caller.
        Found before reading: a full disk met half-way through the parser would only be its generic 400."""
        if self.upload_folder is None:
            return None
        needs: dict[int, tuple[str, int]] = {}
        for folder in (tempfile.gettempdir(), str(self.upload_folder)):
            device = os.stat(folder).st_dev
            needs[device] = (needs.get(device, (folder, 0))[0], needs.get(device, (folder, 0))[1] + length)
        for folder, needed in needs.values():
            free = shutil.disk_usage(folder).free
            if free < needed:
                return f"the disk holding {folder} has {free / 1e6:.1f} MB free; this upload needs {needed / 1e6:.1f} MB there: free some space and upload again"
        return None


async def _refuse(send: Send, message: str, status: int = 413) -> None:
    body = json.dumps({"error": message}).encode("utf-8")
    headers = [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode()), (b"connection", b"close")]
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": body})
