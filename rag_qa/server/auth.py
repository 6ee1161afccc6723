"""Who is calling: each request's bearer key, checked against the keys kept with the index, and
the role each endpoint needs (reader < editor < admin), and each caller's rate limit.

Modes (`ServerConfig.auth`): "auto" needs a key once the index holds an active one (an open
service on loopback becomes a keyed one when an admin creates the first key); "keys" always needs
one; "off" is open. On an open service, requests that change something (upload, delete, keys)
still need an `Authorization: Bearer ...` header (any value): a cross-site form post cannot send
one, and a cross-site fetch that does needs a CORS preflight, which this service never grants
unless told to.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass

from fastapi import Depends, HTTPException, Request

from rag_qa.keys import ROLES, ApiKey

NEEDS_KEY = "this service needs an API key: send `Authorization: Bearer KEY` (an admin creates keys with `rag-qa keys create`)"
CHALLENGE = {"WWW-Authenticate": "Bearer"}


@dataclass(frozen=True)
class Caller:
    """The key a request came with, or None on an open service (which sees every document)."""

    key: ApiKey | None
    address: str = "-"  # the client's address, for the audit log and an open service's rate limit

    @property
    def groups(self) -> tuple[str, ...] | None:
        """The access groups the caller reads with: None (every document) on an open service and
        for admin keys, else the key's groups (documents without groups are readable by all)."""
        return None if self.key is None or self.key.role == "admin" else self.key.groups

    def may_assign(self, groups: tuple[str, ...]) -> bool:
        """An editor gives documents only groups its key holds (so cannot hide one from, or plant
        one in, a group it is not part of); admins and an open service give any."""
        return self.groups is None or set(groups) <= set(self.groups)

    @property
    def name(self) -> str:
        """Who the audit log names: the key's name and id, or the client address on an open service."""
        return f"{self.key.name} ({self.key.id})" if self.key is not None else f"open service, from {self.address}"


def bearer_token(request: Request) -> str | None:
    scheme, _, token = request.headers.get("authorization", "").partition(" ")
    if scheme.lower() != "bearer":
        return None
    return token.strip() or None


def identify(request: Request) -> Caller:
    """The caller of `request`, or 401 when the service needs a key and the request has no valid one."""
    service = request.app.state.service
    token, address = bearer_token(request), request.client.host if request.client else "-"
    if service.config.auth == "off":
        return Caller(None, address)
    if token is not None:
        key = service.keys.verify(token)
        if key is not None:
            return Caller(key, address)
    if service.config.auth == "auto" and not service.keys.any_active():
        return Caller(None, address)
    message = NEEDS_KEY if token is None else "the API key is not valid: unknown, revoked or mistyped"
    raise HTTPException(401, message, headers=CHALLENGE)


@functools.cache
def require(role: str) -> Depends:
    """A dependency that lets a request through only with a key of `role` or above (one object per
    role, so FastAPI runs it once per request however often an endpoint names it)."""
    if role not in ROLES:
        raise ValueError(role)

    def check(request: Request) -> Caller:
        caller = identify(request)
        rate = request.app.state.service.rate
        if rate is not None:
            rate.check(f"key:{caller.key.id}" if caller.key is not None else f"address:{caller.address}")
        if caller.key is None:
            if role != "reader" and bearer_token(request) is None:
                raise HTTPException(401, "requests that change the index need an `Authorization: Bearer` header (any value on an open service)", headers=CHALLENGE)
            return caller
        if not caller.key.may(role):
            raise HTTPException(403, f"the key {caller.key.name!r} has the role {caller.key.role}; this needs {role} or above")
        return caller

    return Depends(check)
