"""API keys for the service: who may call it, in which role, and which document groups they hold.

A key is `rq_<id>_<secret>`: the id names its record, the secret is 256 random bits. Records are
kept with the index (one metadata entry per key, so every replica of a service on one database
sees the same keys, and two admins creating keys at once never overwrite each other) and hold
only the key's SHA-256, compared in constant time (`hmac.compare_digest`).

Why SHA-256 from the standard library and not a password hash such as argon2: the secret is
generated here with 256 bits of entropy, so guessing it from its digest is out of reach without a
slow hash; argon2 exists to protect low-entropy human passwords and would add tens of
milliseconds of CPU to every request. The standard library's hashlib and hmac are as well kept as
libraries get.
"""

from __future__ import annotations

import hashlib
import hmac
import logging
import re
import secrets
import time
from collections.abc import Iterable
from dataclasses import asdict, dataclass, replace
from typing import Any

from rag_qa import audit
from rag_qa.errors import ConfigError, NotFoundError, RagQAError
from rag_qa.store.protocol import PassageStore

ROLES = ("reader", "editor", "admin")  # each role may do what the ones before it may
RECORD_PREFIX = "api-key-"
log = logging.getLogger("rag_qa.keys")
EVER_KEYED = "keys-ever-created"  # kept apart from the key records: a service whose records vanish stays keyed
_ID = r"[0-9a-f]{12}"
_TOKEN = re.compile(rf"rq_({_ID})_([A-Za-z0-9_-]{{43}})")
_GROUP = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,63}")


@dataclass(frozen=True)
class ApiKey:
    """A key's record (never the key itself)."""

    id: str
    name: str
    role: str
    groups: tuple[str, ...]  # the access groups whose documents the key may read
    created_at: float
    revoked_at: float | None = None
    sha256: str = ""

    @classmethod
    def from_record(cls, record: dict[str, Any]) -> ApiKey:
        """A key from its stored record (JSON keeps the groups as a list)."""
        return cls(**{**record, "groups": tuple(record["groups"])})

    def may(self, role: str) -> bool:
        """Whether this key may do what `role` may."""
        return ROLES.index(self.role) >= ROLES.index(role)

    def to_dict(self) -> dict[str, Any]:
        """What `keys list` and `GET /keys` show: everything but the digest."""
        return {name: value for name, value in asdict(self).items() if name != "sha256"} | {"groups": list(self.groups)}


def check_groups(groups: Iterable[str]) -> tuple[str, ...]:
    """Group names, sorted and unique; a name is letters, digits and `_ . -` (at most 64)."""
    names = sorted({g.strip() for g in groups if g.strip()})
    for name in names:
        if not _GROUP.fullmatch(name):
            raise ConfigError(f"group name {name!r}: use letters, digits, '_', '.' or '-' (at most 64, starting with a letter or digit)")
    return tuple(names)


def _digest(token: str) -> str:
    return hashlib.sha256(token.encode("utf-8")).hexdigest()


class KeyRing:
    """The keys kept with one index."""

    def __init__(self, store: PassageStore):
        self.store = store

    def create(self, role: str, groups: Iterable[str] = (), name: str | None = None, by: str | None = None) -> tuple[ApiKey, str]:
        """A new key: its record and the key itself, which is shown once and never stored. With
        `by` (who acts, for the audit log), its "create key" event is written with the record."""
        if role not in ROLES:
            raise ConfigError(f"role must be one of {', '.join(ROLES)}, got {role!r}")
        key_id = secrets.token_hex(6)
        token = f"rq_{key_id}_{secrets.token_urlsafe(32)}"
        record = ApiKey(key_id, (name or key_id).strip() or key_id, role, check_groups(groups), time.time(), None, _digest(token))
        if self.store.read_metadata(EVER_KEYED) is None:  # before the first record: a service that has had keys stays keyed
            self.store.write_metadata(EVER_KEYED, {"first_key_at": record.created_at})
        self._save(record, audit.event(by, "create key", f"{record.name} ({record.id})", role=record.role, groups=list(record.groups)) if by else None)
        return record, token

    def _save(self, record: ApiKey, event: dict[str, Any] | None = None) -> None:
        self.store.write_metadata(RECORD_PREFIX + record.id, asdict(record), event=event)

    def list(self) -> list[ApiKey]:
        """Every key, revoked ones included, oldest first."""
        records = [self.store.read_metadata(name) for name in self.store.metadata_names(RECORD_PREFIX)]
        keys = [ApiKey.from_record(r) for r in records if r is not None]
        return sorted(keys, key=lambda k: (k.created_at, k.id))

    def get(self, id_or_name: str) -> ApiKey:
        """A key by id, or by name when exactly one key has it."""
        record = self.store.read_metadata(RECORD_PREFIX + id_or_name) if re.fullmatch(_ID, id_or_name) else None
        if record is not None:
            return ApiKey.from_record(record)
        named = [k for k in self.list() if k.name == id_or_name]
        if len(named) != 1:
            raise NotFoundError(f"no key has the id or name {id_or_name!r}" if not named else f"{len(named)} keys are named {id_or_name!r}: revoke by id")
        return named[0]

    def revoke(self, id_or_name: str, by: str | None = None) -> ApiKey:
        """Revoke a key (its record stays, for the audit); revoking twice keeps the first time.
        With `by`, its "revoke key" event is written after the record: unlike other changes, a
        revocation holds even when its event cannot be written (a RagQAError then says so)."""
        key = self.get(id_or_name)
        if key.revoked_at is None:
            key = replace(key, revoked_at=time.time())
            self._save(key)  # first and alone: a revocation must hold even when its event cannot be written
        if by:
            try:
                self.store.append_event(audit.event(by, "revoke key", f"{key.name} ({key.id})"))
            except Exception as exc:  # the key is revoked; say loudly that the log misses it
                log.error("rag-qa: the key %s was revoked, but its audit event could not be written: %s", key.id, exc)
                raise RagQAError(f"the key {key.name!r} ({key.id}) is revoked, but the audit log could not record it: {exc}") from exc
        return key

    def any_active(self) -> bool:
        return any(k.revoked_at is None for k in self.list())

    def any_key(self) -> bool:
        """Whether this index ever held a key (a revoked one stays on record): once it has, the
        service never serves without one again (`server.auth.service_mode`)."""
        return self.store.read_metadata(EVER_KEYED) is not None or bool(self.store.metadata_names(RECORD_PREFIX))

    @staticmethod
    def token_id(token: str) -> str | None:
        """The key id a well-formed token names (what the audit log may say of a failed one), else None."""
        match = _TOKEN.fullmatch(token.strip())
        return match.group(1) if match else None

    def verify(self, token: str) -> ApiKey | None:
        """The active key that `token` is, or None (malformed, unknown, wrong secret or revoked)."""
        match = _TOKEN.fullmatch(token.strip())
        if match is None:
            return None
        record = self.store.read_metadata(RECORD_PREFIX + match.group(1))
        if record is None or not hmac.compare_digest(record["sha256"], _digest(token.strip())):
            return None
        key = ApiKey.from_record(record)
        return key if key.revoked_at is None else None
