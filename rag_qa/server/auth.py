"""Who is calling, decided in this one module: the mode a service runs in, each request's bearer
key checked against the keys kept with the index, the role an endpoint needs (reader < editor <
admin: the `require(role)` it declares), the limit on failed key checks and each caller's rate.
`gate.AuthGate` applies the decision before a request's body is read; `require` hands the
endpoint what it decided.

Modes (`service_mode`); a service never falls back from keyed or closed to open:
- open: every caller reads every document without a key. Only while the index has never held a
  key (a revoked one counts) and the service listens on loopback (`ServerConfig.auth` "auto",
  which `startup_mode` picks for a loopback address only), or when the operator asked for it
  (`--no-auth`: auth "off", logged as a warning). Requests that change something still need an
  `Authorization: Bearer ...` header (any value): a cross-site form post cannot send one, and a
  cross-site fetch that does needs a CORS preflight, which this service never grants unless told to.
- keyed: the index holds an active key: a request that needs a role needs an active key of it.
- closed: keys exist but every one was revoked (or auth "keys" on an index without keys): every
  request that needs a role gets 401 saying how an admin makes a new key.

Failed key checks (a key that is malformed, unknown, mistyped or revoked) are limited per client
address (`ServerConfig.auth_failures`): beyond the limit every request from that address without a
valid key gets 429 until the window passes (a valid key still passes: others' failures, or forged
addresses, must not lock a user out). Each failure within the limit is written to the audit log with
the address and the key id the token names, never the token; those beyond it are not, and at most
`FAILURES_LOGGED` a minute from all addresses together (forged addresses cannot flood the log).
Once a process has seen a key (or the index records that it ever held one, `keys.EVER_KEYED`),
the service never serves without one again, even if the key records vanish.
"""

from __future__ import annotations

import functools
import ipaddress
import sys
import threading
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from fastapi import Depends, HTTPException, Request

from rag_qa import audit
from rag_qa.errors import RagQAError
from rag_qa.keys import ROLES, ApiKey, KeyRing
from rag_qa.server.rate import RateLimit

NEW_KEY = "an admin makes a new one on the server with `rag-qa keys create --role admin --index INDEX`"
NEEDS_KEY = "this service needs an API key: send `Authorization: Bearer KEY` (an admin creates keys with `rag-qa keys create`)"
NO_KEYS = f"this service needs an API key and none exists yet: {NEW_KEY}"
CLOSED = f"every API key of this service was revoked, so it answers no one until {NEW_KEY}"
INVALID = "the API key is not valid: unknown, revoked or mistyped"
NEEDS_HEADER = "requests that change the index need an `Authorization: Bearer` header (any value on an open service)"
CHALLENGE = {"WWW-Authenticate": "Bearer"}
FAILURES_LOGGED = "60/minute"  # failed key checks written to the audit log, from every address together
CALLER = "rag_qa.caller"  # where the gate leaves (caller, role checked) in a request's ASGI scope


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

    @property
    def name(self) -> str:
        """Who the audit log names: the key's name and id, or the client address on an open service."""
        return f"{self.key.name} ({self.key.id})" if self.key is not None else f"open service, from {self.address}"


def is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def startup_mode(host: str, no_auth: bool, has_keys: bool, allowed_hosts: Sequence[str] = ()) -> str:
    """The `ServerConfig.auth` that `rag-qa serve` runs with: "off" when asked for (said loudly);
    "auto" (open until the index holds its first key) only on a loopback address that serves
    loopback names alone; elsewhere, and behind a proxy (`--allowed-hosts` naming another host:
    the service is reached from the network through it), "keys", so an index whose keys vanish
    (an old backup or dump restored) is closed, never open. An index that never had a key is
    refused there: it could only start closed."""
    if no_auth:
        print(f"rag-qa: WARNING: --no-auth: anyone who can reach {host} may read every document, upload and delete", file=sys.stderr)
        return "off"
    if is_loopback(host) and all(is_loopback(name.strip("[]")) for name in allowed_hosts):
        if not has_keys:
            print(f"rag-qa: open service on loopback ({host}): no API keys in this index yet (`rag-qa keys create`)", file=sys.stderr)
        return "auto"
    if not has_keys:
        where = f"{host} for {', '.join(h for h in allowed_hosts if not is_loopback(h.strip('[]')))}" if is_loopback(host) else host
        raise RagQAError(
            f"refusing to serve on {where} without API keys: anyone on the network could read, upload and delete. Create one "
            "(`rag-qa keys create --role admin --index INDEX`), or pass --no-auth to run an open service on purpose"
        )
    return "keys"


def service_mode(auth: str, keys: KeyRing, keyed_before: bool = False) -> str:
    """"open", "keyed" or "closed" (see the module's docstring): open only when asked for, or in
    "auto" while the index has never held a key (`keyed_before`: this process has seen one)."""
    if auth == "off" or (auth == "auto" and not keyed_before and not keys.any_key()):
        return "open"
    return "keyed" if keys.any_active() else "closed"


def bearer_token(headers: Mapping[str, str]) -> str | None:
    scheme, _, token = headers.get("authorization", "").partition(" ")
    if scheme.lower() != "bearer":
        return None
    return token.strip() or None


def client_address(scope: Mapping[str, Any]) -> str:
    client = scope.get("client")
    return client[0] if client else "-"


@dataclass(frozen=True)
class Guard:
    """What decides who calls, as `create_app` sets it up (app.state.guard)."""

    auth: str  # ServerConfig.auth
    keys: KeyRing
    rate: RateLimit | None  # requests per key (per client address on an open service)
    failures: RateLimit | None  # failed key checks per client address
    logged_failures: RateLimit = field(init=False)  # from all addresses together (every replica's, on PostgreSQL)
    keyed: threading.Event = field(default_factory=threading.Event)  # set once a key was seen: never open again

    def __post_init__(self) -> None:  # counted where the keys are kept, as `create_app` counts the other limits
        object.__setattr__(self, "logged_failures", RateLimit(FAILURES_LOGGED, self.keys.store, "logged:"))

    def caller(self, token: str | None, address: str, role: str | None) -> Caller:
        """The caller of a request that needs `role` (None: only who it is, as for /health), or an
        HTTPException: 401 (no valid key), 403 (a key below `role`), 429 (over a limit)."""
        if self.auth == "off":
            return self._open(token, address, role)
        key = self.keys.verify(token) if token is not None else None
        if key is None:
            mode = service_mode(self.auth, self.keys, self.keyed.is_set())
            if mode == "open":
                return self._open(token, address, role)
            self.keyed.set()
            if self.failures is not None and self.failures.blocked(address):
                raise self._too_many_failures(address)
            raise self._refusal(token, address, mode)
        self.keyed.set()
        if role is not None and not key.may(role):
            raise HTTPException(403, f"the key {key.name!r} has the role {key.role}; this needs {role} or above")
        if self.rate is not None:
            self.rate.check(f"key:{key.id}")
        return Caller(key, address)

    def _open(self, token: str | None, address: str, role: str | None) -> Caller:
        if role is not None and self.rate is not None:
            self.rate.check(f"address:{address}")
        if role not in (None, "reader") and token is None:
            raise HTTPException(401, NEEDS_HEADER, headers=CHALLENGE)
        return Caller(None, address)

    def _refusal(self, token: str | None, address: str, mode: str) -> HTTPException:
        closed = CLOSED if self.keys.any_key() else NO_KEYS
        if token is None:
            return HTTPException(401, NEEDS_KEY if mode == "keyed" else closed, headers=CHALLENGE)
        if not self._count_failure(token, address):
            return self._too_many_failures(address)
        return HTTPException(401, INVALID if mode == "keyed" else f"{INVALID}; {closed}", headers=CHALLENGE)

    def _count_failure(self, token: str, address: str) -> bool:
        """Count a failed key check from `address` and write it to the audit log; False (and not
        written) when it is beyond the limit."""
        if self.failures is not None and not self.failures.hit(address):
            return False
        if self.logged_failures.hit("all"):  # a flood from many (forged) addresses cannot grow the log without bound
            audit.record(self.keys.store, f"unauthenticated caller from {address}", "failed key check", self.keys.token_id(token) or "-", address=address)
        return True

    def _too_many_failures(self, address: str) -> HTTPException:
        assert self.failures is not None
        wait = self.failures.wait(address)
        message = (f"too many failed key checks from {address} (the limit is {self.failures.rule}): every request from this "
                   f"address without a valid key gets 429 for the next {wait} s")  # fmt: skip
        return HTTPException(429, message, headers={"Retry-After": str(wait)})


def identify(request: Request) -> Caller:
    """The caller of a request to an endpoint that needs no role (/health), or 401/429."""
    return request.app.state.guard.caller(bearer_token(request.headers), client_address(request.scope), None)


@functools.cache
def require(role: str) -> Depends:
    """A dependency that declares the role an endpoint needs (`role` or above) and hands it the
    caller that `gate.AuthGate` let through for it (one object per role, so FastAPI runs it once
    per request however often an endpoint names it). The gate reads the role from here: the one
    place it is written."""
    if role not in ROLES:
        raise ValueError(role)

    def check(request: Request) -> Caller:
        caller, checked = request.scope.get(CALLER, (None, None))
        if checked is None or ROLES.index(checked) < ROLES.index(role):  # the gate did not run for this route: refuse
            raise HTTPException(500, "the service's key check did not run for this request")
        return caller

    check.needs_role = role  # type: ignore[attr-defined]
    return Depends(check)
