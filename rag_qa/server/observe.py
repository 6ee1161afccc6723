"""Each request's id, its access log line and its metrics (`RequestIds`, the app's outermost
middleware), and the service's JSON logs (`--log-format json`: `JsonFormatter`, `log_config`).

A request's id is the caller's `X-Request-ID` when it is a safe token (a proxy or a client that
made one can then follow its request here), else a new one. It is kept in `audit.REQUEST_ID` while
the request is answered, so audit events and log lines written for the request name it, and it
is sent back in the response's `X-Request-ID`, errors included.

The standard `logging` module writes the JSON: no new dependency (structlog would add one for
what a twenty-line Formatter does), and uvicorn's own loggers take the same configuration."""

from __future__ import annotations

import json
import logging
import re
import time
import uuid
from collections.abc import Sequence
from datetime import datetime, timezone
from typing import Any

from starlette.routing import BaseRoute, Match

from rag_qa.audit import REQUEST_ID
from rag_qa.server.auth import client_address
from rag_qa.server.metrics import Metrics

UNMATCHED = "unmatched"  # the route label of a URL that no route serves
SAFE_ID = re.compile(r"[A-Za-z0-9._:-]{1,128}")
FAILED = b'{"error":"the service failed; try again later or tell the operator (the server\'s log says why)"}'
access_log = logging.getLogger("rag_qa.server.access")


def request_id(headers: list[tuple[bytes, bytes]]) -> str:
    """The caller's X-Request-ID when it is a safe token (1-128 of A-Z a-z 0-9 . _ : -), else a new one."""
    given = next((value for name, value in headers if name.lower() == b"x-request-id"), None)
    text = given.decode("latin-1") if given is not None else ""
    return text if SAFE_ID.fullmatch(text) else uuid.uuid4().hex


class RequestIds:
    """Give every HTTP request an id (in `audit.REQUEST_ID` while it is answered, and in the
    response's X-Request-ID), count and time it (`Metrics`), and log one access line for it."""

    def __init__(self, app: Any, metrics: Metrics | None = None, routes: Sequence[BaseRoute] = ()) -> None:
        """`routes`: the app's endpoints (as `gate.AuthGate` gets them), to name the route of a
        request answered before the router ran (a refusal by the gate or the body limit)."""
        self.app, self.metrics, self.routes = app, metrics, routes

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        rid, started = request_id(scope["headers"]), time.perf_counter()
        token = REQUEST_ID.set(rid)
        state: dict[str, Any] = {"status": 500, "started": False, "done": False}

        def finish() -> None:  # before the last byte goes out: a caller that has its answer finds it counted
            if not state["done"]:
                state["done"] = True
                self._record(scope, route_template(scope, self.routes), state["status"], time.perf_counter() - started, rid)

        async def with_id(message: dict[str, Any]) -> None:
            if message["type"] == "http.response.start":
                state["status"], state["started"] = message["status"], True
                headers = [(k, v) for k, v in message.get("headers", []) if k.lower() != b"x-request-id"]
                message = {**message, "headers": [*headers, (b"x-request-id", rid.encode())]}
            elif message["type"] == "http.response.body" and not message.get("more_body", False):
                finish()
            await send(message)

        in_progress = self.metrics.in_progress.labels(route_template(scope, self.routes)) if self.metrics is not None else None
        if in_progress is not None:
            in_progress.inc()
        try:
            await self.app(scope, receive, with_id)
        except Exception:
            if not state["started"]:  # no response yet: a JSON 500 that carries the id (the server logs the error)
                await _failed(with_id)
            raise
        finally:
            finish()
            REQUEST_ID.reset(token)
            if in_progress is not None:
                in_progress.dec()

    def _record(self, scope: dict[str, Any], route: str, status: int, seconds: float, rid: str) -> None:
        if self.metrics is not None:
            self.metrics.request(route, scope["method"], status, seconds)
        fields = {"method": scope["method"], "route": route, "status": status, "duration_ms": round(seconds * 1000, 1), "client": client_address(scope)}
        access_log.info("%s %s %s %.1f ms from %s", fields["method"], route, status, fields["duration_ms"], fields["client"], extra={"fields": fields, "request_id": rid})


def route_template(scope: dict[str, Any], routes: Sequence[BaseRoute]) -> str:
    """The path of the route that serves `scope`, with its parameters (`/documents/{source:path}`):
    the one the router picked (it leaves it in the scope), else, for a request answered before
    routing, the first of the app's own routes and `routes` that matches (fully, else all but the
    method: a 405), else UNMATCHED. Never the URL itself: a label takes as many values as the app
    has routes."""
    picked = getattr(scope.get("route"), "path", None)
    if isinstance(picked, str):
        return picked
    partial = None
    for route in [*scope["app"].router.routes, *routes]:
        path = getattr(route, "path", None)
        if not isinstance(path, str):  # (a router included as a whole, in newer FastAPI: `routes` names its endpoints)
            continue
        match, _ = route.matches(scope)
        if match is Match.FULL:
            return path
        if match is Match.PARTIAL and partial is None:
            partial = path
    return partial or UNMATCHED


async def _failed(send: Any) -> None:
    headers = [(b"content-type", b"application/json"), (b"content-length", str(len(FAILED)).encode())]
    await send({"type": "http.response.start", "status": 500, "headers": headers})
    await send({"type": "http.response.body", "body": FAILED})


class JsonFormatter(logging.Formatter):
    """One JSON object per line: time (ISO 8601, UTC), level, logger, message, the request's id
    while one is answered, a record's `fields` (the access log's), and the traceback if any."""

    def format(self, record: logging.LogRecord) -> str:
        entry: dict[str, Any] = {
            "time": datetime.fromtimestamp(record.created, timezone.utc).isoformat(timespec="milliseconds").replace("+00:00", "Z"),
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
        }
        rid = getattr(record, "request_id", None) or REQUEST_ID.get()
        if rid is not None:
            entry["request_id"] = rid
        entry.update({k: v for k, v in (getattr(record, "fields", None) or {}).items() if k not in entry})
        if record.exc_info:
            entry["exc_info"] = self.formatException(record.exc_info)
        elif record.exc_text:
            entry["exc_info"] = record.exc_text
        if record.stack_info:
            entry["stack_info"] = self.formatStack(record.stack_info)
        return json.dumps(entry, ensure_ascii=False, default=str)


def log_config(level: str) -> dict[str, Any]:
    """A `logging.config.dictConfig` (and uvicorn `log_config`) that writes every log record as JSON
    to stderr: rag_qa's and uvicorn's at `level`, other libraries' warnings. uvicorn's access log is
    left out: `RequestIds` logs each request, with its id and route."""
    level = level.upper()
    return {
        "version": 1,
        "disable_existing_loggers": False,
        "formatters": {"json": {"()": JsonFormatter}},
        "handlers": {"stderr": {"class": "logging.StreamHandler", "formatter": "json", "stream": "ext://sys.stderr"}},
        "root": {"handlers": ["stderr"], "level": "WARNING"},
        "loggers": {
            "rag_qa": {"level": level},
            "uvicorn": {"level": level},
            "uvicorn.access": {"level": "WARNING", "propagate": False},
        },
    }
