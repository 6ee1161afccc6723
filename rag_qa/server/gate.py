"""The key check, before a request's body is read: an ASGI middleware that finds the endpoint a
request is for and the role it needs (the `auth.require(role)` it declares), and lets the request
on only with a caller that `auth.Guard` allows. A refusal (401, 403, 429) is answered without
reading a byte of the body, so an upload from a caller who may not upload never reaches the
temporary folder or the upload folder. `create_app` puts it outside `BodyLimit`.

A middleware, because FastAPI reads (and spools) a request's body before it runs an endpoint's
dependencies: a check in a dependency alone comes after the upload is on the disk."""

from __future__ import annotations

import inspect
import logging
from collections.abc import Iterator, Sequence
from typing import Any

from starlette.concurrency import run_in_threadpool
from starlette.exceptions import HTTPException
from starlette.responses import JSONResponse
from starlette.datastructures import Headers
from starlette.requests import Request
from starlette.routing import BaseRoute, Match

from rag_qa.keys import ROLES
from rag_qa.server.auth import CALLER, bearer_token, client_address

Scope = dict[str, Any]
log = logging.getLogger("rag_qa.server")


class AuthGate:
    """Check the caller of every request to an endpoint that needs a role, before its body."""

    def __init__(self, app: Any, routes: Sequence[BaseRoute]):
        """`routes`: the app's endpoints, in the order the app includes them (its routers' routes)."""
        self.app = app
        self.roles = [(route, needed_role(route)) for route in routes]

    async def __call__(self, scope: Scope, receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        app = scope["app"]  # the FastAPI app (Starlette puts it in the scope before its middleware)
        role = self._role(scope)
        if role is None:  # the page, liveness, the API docs, and what no route serves (404, 405)
            await self.app(scope, receive, send)
            return
        try:
            caller = await run_in_threadpool(app.state.guard.caller, bearer_token(Headers(scope=scope)), client_address(scope), role)
        except Exception as exc:  # a refusal (answered as the app answers it), or the key check failing
            response = _answer(app, scope, exc) if isinstance(exc, HTTPException) else _check_failed(exc)
            response = await response if inspect.isawaitable(response) else response
            if scope["method"] in ("POST", "PUT", "PATCH"):
                response.headers["connection"] = "close"  # the unread body is not left for the next request
            await response(scope, receive, send)
            return
        scope[CALLER] = (caller, role)
        await self.app(scope, receive, send)

    def _role(self, scope: Scope) -> str | None:
        """The role the route serving `scope` needs (as the router picks it: the first full match).
        Should the app's router pick a route this missed, its `require` finds no caller and refuses."""
        for route, role in self.roles:
            if route.matches(scope)[0] is Match.FULL:
                return role
        return None


def needed_role(route: Any) -> str | None:
    """The highest role among the `require(role)` a route's dependencies declare (its router's too), or None."""
    roles = [role for call in _calls(getattr(route, "dependant", None)) if (role := getattr(call, "needs_role", None))]
    return max(roles, key=ROLES.index) if roles else None


def _calls(dependant: Any) -> Iterator[Any]:
    if dependant is None:
        return
    yield dependant.call
    for sub in dependant.dependencies:
        yield from _calls(sub)


def _check_failed(exc: Exception) -> JSONResponse:
    """A key check that failed (a damaged key record, a store down): 503 to a caller not yet known,
    with no path or detail in it (those go to the log)."""
    log.error("the key check failed: %s: %s", type(exc).__name__, exc)
    return JSONResponse({"error": "the service could not check the API key; try again later or tell the operator"}, status_code=503, headers={"Retry-After": "30"})


def _answer(app: Any, scope: Scope, exc: Exception) -> Any:
    """The response the app's own exception handler gives `exc` (JSON, with the app's wording); re-raised without one."""
    for kind in type(exc).__mro__:
        handler = app.exception_handlers.get(kind)
        if handler is not None:
            return handler(Request(scope), exc)
    raise exc
