"""Keeping an index in step with its folders: `rag-qa index PATHS --prune` (one command, because a
sync is an indexing run that also forgets what is gone: one walk, one report, the same crash
safety) and `--watch` (the same run again for each batch of file changes).

A run with `prune` removes the files the index holds under the given paths that the walk no
longer finds (deleted, moved away, or now excluded), and treats a new file whose content hash is
that of such a file as a move: its passages are re-pointed to the new name, keeping their vectors.
Every step is its own transaction (a rename, a removal, a group of indexed files), so a kill at any
moment leaves a consistent index and the same command again finishes the job."""

from __future__ import annotations

import os
import threading
from collections.abc import Callable, Sequence
from typing import Any

from rag_qa.ingest.loaders import file_hash, source_name
from rag_qa.ingest.mail import attachments_of, file_of
from rag_qa.naming import within

QUIET_S = 1.0  # a changed file is read once it has held still this long (not half-way through a write)


class Pruner:
    """What `prune` adds to an indexing run over `paths` whose walk found `found`."""

    def __init__(self, store: Any, paths: Sequence[str], found: Sequence[str], enabled: bool):
        roots = [source_name(p) for p in paths]
        on_disk = set(found)
        files = store.files() if enabled else []
        self.vanished = {f["source"]: f["content_hash"] for f in files if within(f["source"], roots) and file_of(f["source"]) not in on_disk}

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
        """Remove what is still vanished once the run has placed every move; returns the names."""
        removed = sorted(self.vanished)
        for source in removed:
            store.delete_source(source)
        self.vanished.clear()
        return removed


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
