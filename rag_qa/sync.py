"""Keeping an index in step with its folders: `rag-qa index PATHS --prune` (one command, because a
sync is an indexing run that also forgets what is gone: one walk, one report, the same crash
safety) and `--watch` (the same run again for each batch of file changes).

A run with `prune` removes the files the index holds under the given paths that the walk no
longer finds (deleted, moved away, or now excluded), and treats a new file whose content hash is
that of such a file as a move: its passages are re-pointed to the new name, keeping their vectors.
Every step is its own transaction (a rename, a removal, a group of indexed files), so a kill at any
moment leaves a consistent index and the same command again finishes the job.

A file counts as gone only where the walk can tell (fail closed: an unmounted share looks like a
deleted folder). Nothing is removed under a root that is missing or holds no file to index, under
a folder the walk could not read, under a subfolder that is there but empty now after holding
several files (or is a mount point) unless forced, or in a rag-qa index folder inside a walked one (its uploads); and
nothing under a root where more than `max_prune_share` of its indexed files would go, unless
forced. A removed document's access groups are kept by name for `tombstone_days` (`Tombstones`), so
a document that comes back gets them back instead of becoming readable by every key."""

from __future__ import annotations

import hashlib
import os
import threading
import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from pathlib import Path
from typing import Any

from rag_qa.config import IngestConfig
from rag_qa.errors import LoadError
from rag_qa.ingest.loaders import UnreadableFolder, file_hash, is_index_folder, source_name
from rag_qa.ingest.mail import attachments_of, file_of
from rag_qa.naming import display_name, within

QUIET_S = 1.0  # a changed file is read once it has held still this long (not half-way through a write)
TOMBSTONES = "tombstone/"  # metadata names of the groups kept for removed documents
REFUSALS = {  # why a sync kept files it did not find: what the report says
    "missing": "{where} is missing (moved, deleted, or a share not mounted): its {files} indexed file(s) are kept",
    "unreadable": "cannot read {where}: its {files} indexed file(s) are kept",
    "empty": "{where} holds no file to index (an unmounted share looks the same): its {files} indexed file(s) are kept; "
    "to remove them, prune the folder above it or `rag-qa delete` them",
    "emptied": "{where} is empty now (an unmounted share looks the same): its {files} indexed file(s) are kept; if they are "
    "gone for good, remove the empty folder and sync again, or run it again with --force",
    "share": "a sync would remove {files} of the {total} indexed files under {where}, more than the {share:.0%} allowed "
    "(--max-prune-share): nothing under it was removed; if they are gone for good, run it again with --force",
}


def refusal(why: str, path: str, files: int, **more: Any) -> dict[str, Any]:
    """One entry of a report's `prune_refused`: which folder, why, how many files were kept."""
    return {"path": path, "why": why, "files": files, "reason": REFUSALS[why].format(where=display_name(path), files=files, **more)}


def needs_force(refused: Iterable[dict[str, Any]]) -> list[dict[str, Any]]:
    """The refusals that `--force` would lift (too large a share, a subfolder emptied); the others hold regardless."""
    return [r for r in refused if r["why"] in ("share", "emptied")]


class Pruner:
    """What `prune` adds to an indexing run over `paths` whose walk found `found` and could not
    read the folders among `skipped`; `force` lifts the share limit of `config.max_prune_share`."""

    def __init__(
        self, store: Any, paths: Sequence[str], found: Sequence[str], enabled: bool, skipped: Sequence[LoadError] = (),
        config: IngestConfig | None = None, force: bool = False,
    ) -> None:  # fmt: skip
        config = config if config is not None else IngestConfig()
        self.max_share, self.keep_days, self.force = config.max_prune_share, config.tombstone_days, force
        self.vanished: dict[str, str] = {}  # name -> content hash of what the walk no longer finds
        self.groups: dict[str, list[str]] = {}  # their access groups, for the tombstones
        self.totals: dict[str, int] = {}  # root -> indexed files under it (for the share)
        self.refused: list[dict[str, Any]] = []
        self.roots: list[str] = []
        if enabled:
            self._look(store, paths, found, skipped)

    def _look(self, store: Any, paths: Sequence[str], found: Sequence[str], skipped: Sequence[LoadError]) -> None:
        roots = sorted({source_name(p) for p in paths})
        indexed = [f for f in store.files() if within(f["source"], roots)]
        closed = closed_folders(paths, found, skipped)
        kept = dict.fromkeys(closed, 0)
        on_disk = set(found)
        index_folders: dict[Path, bool] = {}
        for f in indexed:
            source = f["source"]
            if file_of(source) in on_disk:
                continue
            area = next((folder for folder in closed if within(source, [folder])), None)
            if area is not None:
                kept[area] += file_of(source) == source  # files, not their mails' attachments
            elif not inside_index_folder(source, roots, index_folders):
                self.vanished[source], self.groups[source] = f["content_hash"], f["groups"]
        self.refused = [refusal(closed[area], area, files) for area, files in kept.items() if files]
        self.roots = roots
        files = [f["source"] for f in indexed if file_of(f["source"]) == f["source"]]
        self.totals = {root: sum(within(f, [root]) for f in files) for root in roots if root not in closed}

    def _keep_emptied(self, kept_roots: Sequence[str]) -> None:
        """Keep what vanished (moves placed) from a folder that is still there but empty now, when
        that was several files or the folder is a mount point: a share unmounted below a synced
        folder looks exactly so. One file deleted from its folder goes as usual; `force` lifts this."""
        emptied: dict[str, list[str]] = {}
        for source in self.vanished:
            if not within(source, kept_roots) and (folder := emptied_folder(source, self.roots)) is not None:
                emptied.setdefault(folder, []).append(source)
        for folder, sources in emptied.items():
            files = sum(file_of(source) == source for source in sources)
            if files > 1 or os.path.ismount(folder):
                for source in sources:
                    del self.vanished[source]
                self.refused.append(refusal("emptied", folder, files))

    def moved_here(self, store: Any, path: str, content_hash: str) -> str | None:
        """If the new file `path` has the content of a vanished file, re-point that file's
        passages to `path` (no re-embedding) and return its old name."""
        old = next((source for source, known in self.vanished.items() if known == content_hash), None)
        if old is None:
            return None
        for source in [old, *attachments_of(old, self.vanished)]:  # a mail moves with its attachments
            store.rename_source(source, path + source[len(old) :])
            del self.vanished[source]
        return old

    def remove_vanished(self, store: Any) -> list[str]:
        """Remove what is still vanished once the run has placed every move, except under a root
        where that is more than the share (decided before anything is removed; see `refused`).
        Each removed document's groups are kept as a tombstone first (a kill between the two
        leaves a tombstone of a document still indexed, which nothing reads). Returns the names."""
        over = self._over_share()
        if not self.force:
            self._keep_emptied(over)
        removed = sorted(source for source in self.vanished if not within(source, over))
        if removed:
            tombstones = Tombstones(store)
            for source in removed:
                tombstones.keep(source, self.groups[source], self.keep_days)
                store.delete_source(source)
        self.vanished.clear()
        return removed

    def _over_share(self) -> list[str]:
        """The roots where the vanished files (moves placed) are more than the share, unless forced."""
        over = []
        for root, total in self.totals.items():
            gone = sum(file_of(source) == source and within(source, [root]) for source in self.vanished)
            if gone > self.max_share * total and not self.force:
                over.append(root)
                self.refused.append(refusal("share", root, gone, total=total, share=self.max_share))
        return over


def closed_folders(paths: Sequence[str], found: Sequence[str], skipped: Sequence[LoadError]) -> dict[str, str]:
    """{folder: why} for the paths a walk cannot tell what is gone from: roots that are missing or
    hold no file to index, and folders (roots too) it could not read."""
    unreadable = {problem.path: "unreadable" for problem in skipped if isinstance(problem, UnreadableFolder)}
    closed: dict[str, str] = {}
    for path in paths:
        root = source_name(path)
        if not os.path.exists(path):
            closed[root] = "missing"
        elif os.path.isdir(path) and root not in unreadable and not any(within(file, [root]) for file in found):
            closed[root] = "empty"
    return {**closed, **unreadable}


def folders_up_to_root(source: str, roots: Sequence[str]) -> Iterator[Path]:
    """The folders holding `source`'s file, innermost first, up to (not including) the innermost
    of `roots` that holds it."""
    root = max((r for r in roots if within(source, [r])), key=len)
    folder = Path(file_of(source)).parent
    while str(folder) != root and within(str(folder), [root]):
        yield folder
        folder = folder.parent


def emptied_folder(source: str, roots: Sequence[str]) -> str | None:
    """The nearest folder below `source`'s root that held it and is still there, when it is empty
    now or a mount point, else None (a folder that is gone, or still holds other files, says the
    file is gone)."""
    folder = next((f for f in folders_up_to_root(source, roots) if f.is_dir()), None)
    if folder is None:
        return None
    try:
        empty = not any(os.scandir(folder))
    except OSError:
        return str(folder)  # cannot tell: keep
    return str(folder) if empty or os.path.ismount(folder) else None


def inside_index_folder(source: str, roots: Sequence[str], seen: dict[Path, bool]) -> bool:
    """Whether `source` lies in a rag-qa index folder (its uploads) below the innermost root
    holding it: the walk does not enter index folders, so not finding it says nothing. `seen`
    remembers the folders looked at during one run."""
    for folder in folders_up_to_root(source, roots):
        if folder not in seen:
            seen[folder] = is_index_folder(folder)
        if seen[folder]:
            return True
    return False


def tombstone_name(source: str) -> str:
    """The metadata name of the tombstone of the document stored as `source`."""
    return TOMBSTONES + hashlib.sha256(source.encode("utf-8")).hexdigest()


class Tombstones:
    """The access groups of documents a sync removed, kept by name as metadata with the index
    (both stores) until `keep_until`: a document that comes back under its name (a share mounted
    again, a file restored) gets them back rather than becoming readable by every key."""

    def __init__(self, store: Any):
        self.store = store
        self.names = set(store.metadata_names(TOMBSTONES))
        self.read: dict[str, tuple[str, ...] | None] = {}

    def keep(self, source: str, groups: Sequence[str], days: float) -> None:
        """Keep the groups of `source`, removed now; a removal without groups clears an older tombstone."""
        if not groups:
            self.clear(source)
            return
        now = time.time()
        self.store.write_metadata(tombstone_name(source), {"source": source, "groups": list(groups), "removed_at": now, "keep_until": now + days * 86400})

    def kept(self, source: str) -> bool:
        """Whether a tombstone (live or not) is recorded under the name of `source`."""
        return tombstone_name(source) in self.names

    def groups_of(self, source: str) -> tuple[str, ...] | None:
        """The groups kept for `source` while it is not in the index and they have not expired."""
        if source not in self.read:
            self.read[source] = self._live(source) if self.kept(source) and self.store.file_hash(source) is None else None
        return self.read[source]

    def _live(self, source: str) -> tuple[str, ...] | None:
        kept = self.store.read_metadata(tombstone_name(source)) or {}
        if kept.get("source") != source or not kept.get("groups") or kept.get("keep_until", 0) <= time.time():
            return None  # cleared, expired (ignored), or another name's
        return tuple(kept["groups"])

    def clear(self, source: str) -> None:
        """Forget the groups kept for `source` (it is back, or was removed without groups)."""
        if self.kept(source):
            self.store.write_metadata(tombstone_name(source), {"source": source, "cleared_at": time.time()})


class HashCache:
    """File hashes remembered by size and modification time: a watcher walks its folders again
    after every change without reading the unchanged files again."""

    def __init__(self) -> None:
        self._known: dict[str, tuple[tuple[int, int], str]] = {}

    def __call__(self, path: str) -> str:
        stat = os.stat(path)
        key = (stat.st_size, stat.st_mtime_ns)
        known = self._known.get(path)
        if known is None or known[0] != key:
            known = (key, file_hash(path))
            self._known[path] = known
        return known[1]


def settle(paths: Sequence[str], quiet_s: float, stop: threading.Event) -> None:
    """Wait until none of `paths` has changed size or modification time for `quiet_s` seconds,
    so a file that is still being written is read once, whole."""

    def snapshot() -> dict[str, tuple[int, int]]:
        found = {}
        for path in paths:
            try:
                stat = os.stat(path)
            except OSError:
                continue  # gone again: the sync sees that
            found[path] = (stat.st_size, stat.st_mtime_ns)
        return found

    last = snapshot()
    while not stop.wait(quiet_s):
        now = snapshot()
        if now == last:
            return
        last = now


def watch(
    sync_once: Callable[[HashCache], Any], paths: Sequence[str], on_report: Callable[[Any], None], ignore: Sequence[str] = (),
    stop: threading.Event | None = None, quiet_s: float = QUIET_S,
) -> None:  # fmt: skip
    """Sync now, then after each batch of changes under `paths` until `stop` is set (or Ctrl-C).
    watchfiles (a maintained watcher on the operating system's file events, chosen over polling
    ourselves) gathers a burst of events into one batch; each batch waits for its files to hold
    still, then runs one sync. Changes under `ignore` (the index's own folder) and hidden files
    are not events."""
    import watchfiles

    stop = stop if stop is not None else threading.Event()
    roots = [source_name(p) for p in ignore]

    def wanted(_: Any, path: str) -> bool:
        return not within(path, roots) and not any(part.startswith(".") for part in path.split(os.sep))

    hashes = HashCache()
    on_report(sync_once(hashes))
    # a batch closes after a second without events (so a burst, or a file being written, stays one
    # batch) or after ten seconds of them; then its files must hold still (settle)
    quiet_ms = int(quiet_s * 1000)
    for changes in watchfiles.watch(*paths, watch_filter=wanted, step=quiet_ms, debounce=10 * quiet_ms, stop_event=stop, raise_interrupt=False):
        settle(sorted({path for _, path in changes}), quiet_s, stop)
        if stop.is_set():
            return
        on_report(sync_once(hashes))
