"""What the endpoints work with: the open index and models, the limits, the upload folder, and the
names the service adds to the ones `naming` takes (an upload's file name).

Where an upload lives: on PostgreSQL the index keeps its original (`RagQA.kept_originals`, written with
its passages), so every replica serves it and the upload folder only holds a file while it is
read; on the FAISS store it stays in the upload folder (by default inside the index folder).

Who may read or change a document is decided by the facade (`RagQA.readable_source`,
`readable_sources`, `documents`, `set_groups`, `delete`), which every method here calls with the
caller's groups; nothing here reads the store's documents directly. A document the caller may not
read is treated exactly as one that is not indexed: the same lookups, the same 404, the same
upload (each upload is kept in a folder of its own, so a hidden document's name never collides)."""

from __future__ import annotations

import os
import secrets
import shutil
import threading
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, BinaryIO

from fastapi import HTTPException

from rag_qa import audit
from rag_qa.access import AccessDenied, check_new_groups, check_regroup
from rag_qa.config import ServerConfig
from rag_qa.errors import ChangedMeanwhile, NotFoundError
from rag_qa.ingest.mail import file_of
from rag_qa.keys import KeyRing
from rag_qa.naming import resolve_sources, within
from rag_qa.pipeline import RagQA
from rag_qa.server.auth import Caller
from rag_qa.server.batching import AskBatcher
from rag_qa.server.uploads import UploadRejected, check_suffix, save_uploads


@dataclass(frozen=True)
class Upload:
    """One file of an upload request: where it goes and with which groups."""

    name: str
    groups: tuple[str, ...]
    replaces: str | None  # the stored source of the readable upload of this name it replaces
    replaced_groups: tuple[str, ...] = ()  # that upload's groups when the upload was planned


@dataclass(frozen=True)
class Service:
    """What the endpoints work with (the app's state): the open index and models, the limits, the
    upload folder, the batcher and the keys (the rate limits are `auth.Guard`'s)."""

    qa: RagQA
    config: ServerConfig
    storage: Path
    batcher: AskBatcher
    keys: KeyRing
    _naming: threading.Condition = field(default_factory=threading.Condition)
    _in_flight: set[str] = field(default_factory=set)  # names being uploaded now: a request for one of them waits its turn

    @property
    def upload_budget(self) -> int:
        return int(self.config.max_upload_mb * 1_000_000)

    def not_indexed(self, name: str) -> HTTPException:
        """The one answer for a document that is not indexed or that the caller may not read."""
        return HTTPException(404, f"{name} is not indexed (GET /documents lists what is)")

    def stored_source(self, name: str, caller: Caller) -> str:
        """A readable document's stored source from its stored name, a path from the service's
        folder, or its uploaded file name; 404 otherwise (hidden or absent alike)."""
        try:
            return self.qa.readable_source(name, caller.groups)
        except NotFoundError:
            pass
        found = [f["source"] for f in self.uploads(self.qa.documents(caller.groups)).get(name, [])]
        if len(found) > 1:
            raise HTTPException(409, f"{len(found)} uploaded documents are named {name}; name one by its source: {', '.join(found)}")
        if not found:
            raise self.not_indexed(name)
        return found[0]

    def uploads(self, documents: list[dict[str, Any]]) -> dict[str, list[dict[str, Any]]]:
        """Which of `documents` are uploads, by their file name (an upload's name: its file's)."""
        root, named, kept = str(self.storage), {}, self.qa.kept_originals()  # kept by the index: uploaded through any replica (only `documents` are looked at)
        for document in documents:
            if document["source"] in kept or within(document["source"], [root]):
                named.setdefault(os.path.basename(document["source"]), []).append(document)
        return named

    def filter_sources(self, names: list[str], caller: Caller) -> list[str]:
        """The stored names a request's filter names (uploaded file names, and every form `naming`
        takes, relative to the service's folder) among those the caller may read; 404 for a name
        that matches none."""
        readable = self.qa.documents(caller.groups)
        uploads = self.uploads(readable)
        patterns = [p for n in names for p in ([f["source"] for f in uploads[n]] if n in uploads else [n])]
        return resolve_sources(patterns, [f["source"] for f in readable])

    def documents(self, caller: Caller) -> list[dict[str, Any]]:
        return self.qa.documents(caller.groups)

    # ----------------------------------------------------------------- uploads
    def plan_uploads(self, names: list[str], assigned: tuple[str, ...] | None, replace: bool, caller: Caller) -> list[Upload]:
        """Each file's groups and the upload it replaces, checked before anything is written: a
        name the caller can read was uploaded before (409 unless `replace`); a hidden one is as if
        absent. A new file gets `assigned`, else the key's own groups; a replaced one keeps its
        groups unless given others, and only as `access` allows."""
        plan, uploads = [], self.uploads(self.qa.documents(caller.groups))
        for name in names:
            check_suffix(name)
            existing = uploads.get(name, [])
            if len(existing) > 1:
                raise UploadRejected(409, f"{len(existing)} uploaded documents are named {name}; delete all but one first")
            if existing and not replace:
                raise UploadRejected(409, f"{name} was uploaded before; send replace=true to replace it")
            if existing:
                old = tuple(existing[0]["groups"])
                groups = assigned if assigned is not None else old
                check_regroup(caller.groups, old, groups)
                plan.append(Upload(name, groups, existing[0]["source"], old))
            else:
                groups = assigned if assigned is not None else tuple(caller.groups or ())
                check_new_groups(caller.groups, groups)
                plan.append(Upload(name, groups, None))
        return plan

    def upload(self, files: list[tuple[BinaryIO, str]], assigned: tuple[str, ...] | None, replace: bool, caller: Caller) -> dict[str, Any]:
        """Save and index uploaded files, each in a folder of its own. A replaced upload is removed
        only once its new version is indexed: a new version that cannot be read leaves the old one
        (its file and its passages) as it was."""
        names = [name for _, name in files]
        if len(set(names)) != len(names):
            raise HTTPException(422, "two uploaded files have the same name")
        with self._naming:  # (waiting, not refusing: a refusal would tell that someone uploads that name now)
            self._naming.wait_for(lambda: not self._in_flight & set(names))
            plan = self.plan_uploads(names, assigned, replace, caller)
            self._in_flight.update(names)
        try:
            report, uploaded = self._save_and_index(files, plan, caller)
        finally:
            with self._naming:
                self._in_flight.difference_update(names)
                self._naming.notify_all()
        if caller.groups is not None:
            report["passages_total"] = sum(f["passages"] for f in self.documents(caller))  # no total that counts hidden ones
        return {**report, "documents": uploaded}

    def _save_and_index(self, files: list[tuple[BinaryIO, str]], plan: list[Upload], caller: Caller) -> tuple[dict[str, Any], list[dict[str, Any]]]:
        saved = save_uploads(files, self.storage, self.upload_budget)
        try:
            for item, path in zip(plan, saved):  # before the change: an upload is never in the index without its event
                audit.record(self.qa.store, caller.name, "upload", str(path), replace=item.replaces, groups=list(item.groups))
        except BaseException:
            for path in saved:
                remove_upload(path, self.storage)
            raise
        pending = f"pending.{secrets.token_hex(8)}"  # a group no key holds: a new version waits unread until it takes its place
        report = merged([
            self.qa.index([str(path)], groups=(pending,) if item.replaces else item.groups, keep_originals=True).to_dict() for item, path in zip(plan, saved)
        ])  # fmt: skip
        skipped, kept = {entry["path"] for entry in report["files_skipped"]}, self.qa.kept_originals()
        uploaded = []
        for item, path in zip(plan, saved):
            indexed, replaced = str(path) not in skipped, None
            if indexed and item.replaces is not None:
                replaced = self._replace(item, path, caller)
                if replaced is None:  # the old upload changed or went meanwhile: the new version goes, unread
                    self.qa.delete(str(path))
                    indexed = False
                    report["files_skipped"].append({"path": str(path), "reason": f"{item.name} was not replaced: it changed meanwhile, or this key may not remove all of it; look again and retry"})
            if not indexed:
                remove_upload(path, self.storage)  # nothing of it is indexed; do not keep it
                audit.record(self.qa.store, caller.name, "upload not indexed", str(path))
            elif str(path) in kept:
                remove_upload(path, self.storage)  # the index holds it, for every replica: the copy here was only read
            uploaded.append({"name": item.name, "source": str(path), "indexed": indexed, "replaced": replaced})
        return report, uploaded

    def _replace(self, item: Upload, new: Path, caller: Caller) -> str | None:
        """Put the new version of an upload (indexed in a pending group) in the old one's place:
        delete the old one, in a transaction that checks it still has the groups it was planned
        with and that the caller may still read it, then give the new version its groups. None,
        keeping the old one, when it changed meanwhile."""
        assert item.replaces is not None
        try:
            self.qa.delete(item.replaces, caller.groups, audit.event(caller.name, "delete", item.replaces, replaced_by=str(new)), item.replaced_groups)
        except (NotFoundError, AccessDenied, ChangedMeanwhile):
            return None
        remove_upload(Path(file_of(item.replaces)), self.storage)
        self.qa.set_groups(str(new), item.groups)  # (between the two, neither version is read: fail closed)
        return item.replaces

    def delete(self, name: str, caller: Caller) -> dict[str, Any]:
        stored = self.stored_source(name, caller)
        removed = self.qa.delete(stored, caller.groups, event=audit.event(caller.name, "delete", stored))
        remove_upload(Path(stored), self.storage)
        return {"source": stored, "passages_removed": removed, "passages_total": sum(f["passages"] for f in self.documents(caller))}


def remove_upload(path: Path, storage: Path) -> None:
    """Remove an uploaded file and its own folder (nothing outside the upload folder)."""
    if not within(str(path), [str(storage)]) or path == storage:
        return
    path.unlink(missing_ok=True)
    if path.parent != storage and within(str(path.parent), [str(storage)]):
        shutil.rmtree(path.parent, ignore_errors=True)


def merged(reports: list[dict[str, Any]]) -> dict[str, Any]:
    """Several indexing reports as one: counts added, lists joined, timings summed."""
    total: dict[str, Any] = {}
    for report in reports:
        for key, value in report.items():
            if isinstance(value, dict):
                total[key] = {k: total.get(key, {}).get(k, 0) + v for k, v in value.items()}
            elif isinstance(value, list):
                total[key] = total.get(key, []) + value
            elif key == "passages_total":
                total[key] = value  # the index's total after the last run
            else:
                total[key] = total.get(key, 0) + value
    return total
