"""Ingestion on a Ray cluster (`rag-qa index --ray`): load, clean, chunk and embed run in Ray
actors on the cluster's nodes; the driver writes each file to the store in its own transaction.

Why this shape: embedding is about 90% of indexing time, and it is the part that scales with
machines. Each actor loads the embedder once and keeps a guarded parser worker, exactly as a local
run does, so a file gives the same passages (ids, text, offsets) and the same vectors. Files are
sent to the workers as bytes through Ray's object store (no shared file system needed), up to
`IngestConfig.max_file_mb` each; the driver hashes every file first, so unchanged files are
skipped without leaving the driver, as locally.

Faults (the pool of actors is `ray_pool.WorkerPool`): a worker that dies (its process killed, its
node lost) hands its files back to the queue, and the other workers, or a replacement started on a
free CPU, read them. Only a death with one file in flight counts a try against that file (at most
1 + WORKER_RETRIES): a worker that dies holding several cannot say which one it was reading (a
finished file's result can be lost with the worker), so those files become suspects and are each
sent again alone, to a worker with nothing else in flight. A file that kills its workers thus
cannot use up the tries of the files queued beside it. A worker's own
exception is reported with its message, not retried. The driver never waits unboundedly: each wait
is at most WAIT_S, and when no worker and no CPU is left, or nothing has finished for STALLED_S,
the files not done are reported as not indexed and the run ends. Actors clean their scratch
folders and are killed in every outcome (a killed worker's folder is removed by the next worker on
its machine). The store only ever sees whole files, each in one transaction with its content hash,
so a killed driver loses only the files in flight and the same command run again completes the
index.
"""

from __future__ import annotations

import logging
import os
import shutil
import socket
import sys
import tempfile
import time
from collections import Counter, deque
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np

from rag_qa.config import EmbedderConfig, IngestConfig
from rag_qa.errors import ConfigError, LoadError, RagQAError
from rag_qa.embed import Embedder
from rag_qa.indexer import GroupSetter, IndexReport, check_chunking, finish_sync, forget_dropped_attachments, write_files
from rag_qa.sync import Pruner
from rag_qa.ingest.loaders import bytes_hash, check_size, discover, file_hash, unreadable
from rag_qa.onnx_models import resolved_runtime
from rag_qa.ray_pool import IN_FLIGHT_PER_WORKER, LostWorker, WorkerPool
from rag_qa.records import Document, Passage
from rag_qa.store import Store

WORKER_RETRIES = 2  # a file whose worker dies while reading it is tried by another worker this many more times
WAIT_S = 10.0  # the driver's longest single wait for a result
STALLED_S = 600.0  # with no result for this long (workers waiting for CPUs that never come), the run gives up
SCRATCH_PREFIX = "rag-qa-ray-"  # then the worker's pid and start time: a later worker removes the folders of dead ones
NO_WORKER_LEFT = "no Ray worker is left to read it (the cluster has no CPU: nodes lost?)"
LOG = logging.getLogger(__name__)


def connect(address: str) -> Any:
    """The `ray` module, connected: `auto` joins the local Ray instance if one runs, else starts
    one; anything else is a cluster address (`host:port`, or `ray://host:10001` for Ray Client)."""
    try:
        import ray
    except ImportError:
        raise ConfigError("--ray needs Ray: pip install 'rag-qa[ray]'") from None
    if ray.is_initialized():
        return ray
    options = {"log_to_driver": False, "configure_logging": False}
    try:
        if address == "auto":
            try:
                ray.init(address="auto", **options)
            except ConnectionError:
                ray.init(**options)  # nothing to join: start a local instance for this run
        else:
            _check_reachable(address)
            ray.init(address=address, **options)
    except (ConnectionError, RuntimeError, ValueError) as exc:
        first_line = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise RagQAError(f"cannot reach the Ray cluster at {address}: {first_line}") from None
    return ray


def _check_reachable(address: str, timeout_s: float = 5.0) -> None:
    """Fail in seconds, with one line, where Ray itself would retry an unreachable address for minutes."""
    host, _, port = address.removeprefix("ray://").rpartition(":")
    if not host or not port.isdigit():
        raise ConfigError(f"a Ray address is host:port or ray://host:port, got {address!r}")
    try:
        socket.create_connection((host, int(port)), timeout=timeout_s).close()
    except OSError as exc:
        raise RagQAError(f"cannot reach the Ray cluster at {address}: {exc.strerror or exc}") from None


class IngestWorker:
    """One Ray actor: the embedder (loaded once), its tokenizer and a guarded parser worker."""

    def __init__(self, embedder: EmbedderConfig, chunking: Any, ingest: IngestConfig):
        import torch

        from rag_qa.embed import Embedder
        from rag_qa.ingest.pdf import GuardedPdfReader

        torch.set_num_threads(1)  # each actor holds one CPU of the cluster
        self.embedder = Embedder(embedder)
        self.embedder.warm_up()
        self.chunking, self.ingest = chunking, ingest
        self.guard = GuardedPdfReader(ingest.pdf_timeout_s, ingest.pdf_memory_mb)
        self.scratch = tempfile.mkdtemp(prefix=f"{SCRATCH_PREFIX}{os.getpid()}-{_started(os.getpid())}-")
        _remove_orphaned_scratch()

    def pid(self) -> int:
        return os.getpid()

    def close(self) -> None:
        """Stop the parser worker and remove the scratch folder (before the driver kills the actor)."""
        self.guard.close()
        shutil.rmtree(self.scratch, ignore_errors=True)

    def process(self, source: str, data: bytes, content_hash: str) -> tuple[list[tuple[Document, list[Passage]]], np.ndarray] | str:
        """The file's documents (a mail's attachments are their own) with their passages, and
        the passages' vectors; or the reason the file cannot be indexed."""
        from rag_qa.indexer import embed_passages
        from rag_qa.ingest.chunking import chunk_document
        from rag_qa.ingest.loaders import load_document

        copy = Path(self.scratch, "file" + Path(source).suffix.lower())
        copy.write_bytes(data)
        try:
            document = load_document(str(copy), self.ingest, self.guard, content_hash)
        except LoadError as error:
            return error.reason
        finally:
            copy.unlink(missing_ok=True)
        document = renamed(document, str(copy), source)
        files = [(part, chunk_document(part, self.embedder.tokenizer, self.chunking)) for part in document.with_attachments()]
        return files, embed_passages(self.embedder, [p for _, passages in files for p in passages])


def _remove_orphaned_scratch() -> None:
    """Remove the scratch folders of workers on this machine whose process is gone (killed mid-file)."""
    for folder in Path(tempfile.gettempdir()).glob(f"{SCRATCH_PREFIX}*-*"):
        pid, started = (folder.name.removeprefix(SCRATCH_PREFIX).split("-") + ["0"])[:2]  # (earlier versions: no start time)
        if pid.isdigit() and not _alive(int(pid), started if started.isdigit() else "0"):
            shutil.rmtree(folder, ignore_errors=True)


def _proc_stat(pid: int) -> list[str]:
    """The fields of /proc/PID/stat after the command name (state first, start time at 19)."""
    return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()


def _started(pid: int) -> str:
    """When process `pid` started (clock ticks since boot; "0" without /proc): with the pid it names
    one process, though pids are reused (a busy machine wraps around 32768 in minutes)."""
    try:
        return _proc_stat(pid)[19]
    except (OSError, IndexError):
        return "0"


def _alive(pid: int, started: str) -> bool:
    """Whether process `pid`, started at `started`, runs (a killed one its parent has not reaped
    yet, a zombie, does not; nor does a new process that was given the same pid)."""
    try:
        fields = _proc_stat(pid)
        return fields[0] != "Z" and (started == "0" or fields[19] == started)
    except FileNotFoundError:
        return False
    except OSError:  # no /proc: ask the kernel
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return False
        except PermissionError:  # another user's process
            pass
        return True


def index_on_ray(
    paths: list[str], store: Store, embedder: Embedder, config: IngestConfig, address: str = "auto", progress: bool = False,
    groups: tuple[str, ...] | None = None, prune: bool = False, force: bool = False,
) -> IndexReport:  # fmt: skip
    """Index files and folders into `store` with the cluster's workers; the same report as a
    local run (`index_paths`). `embedder` is the driver's: the workers load the same model."""
    check_chunking(store, embedder)
    ray = connect(address)
    report = IndexReport()
    files, problems = discover(paths, config)
    for problem in problems:
        report.skip(problem)
    regroup, pruner = GroupSetter(store, groups), Pruner(store, paths, files, prune, problems, config, force)
    todo = list(_changed_files(files, store, config, report, regroup, pruner))
    if todo:
        _run(ray, todo, store, embedder.config, config, report, progress, regroup)
    finish_sync(store, report, regroup, pruner)
    order = {path: i for i, path in enumerate(files)}  # the report lists files as a local run does, not as they finished
    report.files_skipped.sort(key=lambda s: order.get(s["path"], -1))
    report.added.sort(key=lambda path: order.get(path, -1))
    report.changed.sort(key=lambda path: order.get(path, -1))
    store.flush()
    report.passages_total = store.count()
    return report


def _changed_files(
    files: list[str], store: Store, config: IngestConfig, report: IndexReport, regroup: GroupSetter, pruner: Pruner
) -> Iterator[tuple[str, str]]:
    """(path, content hash) of each file that is new or changed; the rest counted, re-pointed (moves) or reported."""
    for path in files:
        try:
            check_size(path, os.path.getsize(path), config)  # here too: the bytes travel to a worker
            content_hash = file_hash(path)
        except LoadError as error:
            report.skip(error)
            continue
        except OSError as exc:
            report.skip(unreadable(path, exc))
            continue
        known = store.file_hash(path)
        if known == content_hash:
            report.files_unchanged += 1
            regroup.unchanged(path)
        elif known is None and (old := pruner.moved_here(store, path, content_hash)) is not None:
            report.moved.append({"from": old, "to": path})
            regroup.unchanged(path)
        else:
            yield path, content_hash


def _run(
    ray: Any, todo: list[tuple[str, str]], store: Store, embedder: EmbedderConfig, config: IngestConfig, report: IndexReport, progress: bool,
    regroup: GroupSetter,
) -> None:  # fmt: skip
    from tqdm import tqdm

    how = replace(embedder, runtime=resolved_runtime(embedder.runtime), threads=1)  # every worker runs the model the same way
    actor = ray.remote(num_cpus=1, max_restarts=0)(IngestWorker)  # the driver re-queues a lost worker's files itself
    pool = WorkerPool(ray, lambda: actor.remote(how, store.settings.chunking, config))
    try:
        with tqdm(total=len(todo), desc="Indexing on Ray", unit="file", disable=not progress, file=sys.stderr) as bar:
            _feed(pool, [path for path, _ in todo], store, config, report, bar, regroup)
    finally:  # in every outcome: no actor and no scratch folder is left behind
        pool.stop(WAIT_S)


def _feed(pool: WorkerPool, paths: list[str], store: Store, config: IngestConfig, report: IndexReport, bar: Any, regroup: GroupSetter) -> None:
    """Hand files to workers as they have room (a pull model), store results as they come, put a lost
    worker's files back in the queue; every wait is bounded."""
    queue: deque[str] = deque(paths)
    attempts: Counter[str] = Counter()
    suspects: set[str] = set()  # in flight with others on a worker that died: sent again alone
    last_flush = last_progress = time.monotonic()

    def finished(path: str, error: LoadError | None = None) -> None:
        if error is not None:
            report.skip(error)
        bar.update(1)
        bar.set_postfix(passages=report.passages_added, skipped=len(report.files_skipped))

    while queue or pool.in_flight():
        pool.top_up(wanted=len(queue) + pool.in_flight())
        if not pool.alive():  # no worker left and the cluster has no CPU to start one on
            for path in queue:
                finished(path, LoadError(path, f"{NO_WORKER_LEFT}; run the command again to retry"))
            return
        for worker in pool.with_room():
            while queue and len(worker.files) < IN_FLIGHT_PER_WORKER and not _isolated(worker, queue[0], suspects):
                path = queue.popleft()
                try:
                    data = Path(path).read_bytes()
                except OSError as exc:  # gone or unreadable since it was hashed
                    finished(path, unreadable(path, exc))
                    continue
                pool.submit(worker, path, data, bytes_hash(path, data))  # the bytes hashed are the bytes parsed
        done = pool.wait(WAIT_S)
        if done is None:
            if pool.cluster_cpus() < 1:
                why = NO_WORKER_LEFT
            elif time.monotonic() - last_progress > STALLED_S:
                why = f"no Ray worker finished it within {STALLED_S:g} s (workers waiting for a CPU?)"
            else:
                continue
            for path in [*pool.abandon(), *queue]:
                finished(path, LoadError(path, f"{why}; run the command again to retry"))
            return
        last_progress = time.monotonic()
        outcome = pool.collect(done)
        if outcome is None:  # a worker became ready
            continue
        worker, path, result = outcome
        if isinstance(result, LostWorker):
            unfinished = pool.lose(worker)
            if len(unfinished) == 1:  # alone in flight: it was the one being read
                attempts[unfinished[0]] += 1
                if attempts[unfinished[0]] >= 1 + WORKER_RETRIES:
                    why = f"its Ray worker died each of {attempts[unfinished[0]]} times it read it alone ({result.reason}); run the command again to retry"
                    finished(unfinished[0], LoadError(unfinished[0], why))
                    unfinished = []
            else:
                suspects.update(unfinished)
            queue.extendleft(reversed(unfinished))
            LOG.warning("rag-qa: a Ray worker was lost (%s); %d of its files go back to the queue", result.reason, len(unfinished))
            continue
        finished(path, _store_result(result, path, store, report, regroup))
        if time.monotonic() - last_flush > config.save_interval_s:
            store.flush()
            last_flush = time.monotonic()


def _isolated(worker: Any, path: str, suspects: set[str]) -> bool:
    """Whether `path` must wait for another worker: a suspect goes only to a worker with nothing in
    flight, and nothing goes to a worker reading a suspect."""
    in_flight = [p for _, p in worker.files]
    return bool(in_flight) and (path in suspects or any(p in suspects for p in in_flight))


def _store_result(result: Any, path: str, store: Store, report: IndexReport, regroup: GroupSetter) -> LoadError | None:
    """Write one file's result in its own transaction, or say why there is none."""
    if isinstance(result, str):
        return LoadError(path, result)
    files, vectors = result
    files = [(regroup.loaded(document), passages) for document, passages in files]
    document = files[0][0]
    known = store.file_hash(document.source)
    (report.added if known is None else report.changed).append(path)
    started = time.perf_counter()
    forget_dropped_attachments(store, document, known)
    write_files(store, files, vectors, report)
    report.seconds["store"] += time.perf_counter() - started  # the driver's share: it bounds how many nodes help
    return None


def renamed(document: Document, copy: str, source: str) -> Document:
    """A document read from a worker's copy of a file, named as the file (its attachments too)."""
    attachments = tuple(replace(a, source=source + a.source[len(copy) :], attached_to=source) for a in document.attachments)
    return replace(document, source=source, attachments=attachments)
