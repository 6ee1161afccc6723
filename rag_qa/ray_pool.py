"""The driver's pool of Ray ingestion actors for `rag-qa index --ray`.

Why the driver keeps the pool itself instead of letting Ray restart actors: a restarted actor waits
for a CPU on a live node, and when its node is gone and the rest of the cluster is busy it waits
forever, holding the files queued on it. Here an actor is never restarted (`max_restarts=0`). When
one is lost (its process killed, its node gone), the pool gives its files back to the driver's
queue and starts a replacement only where the cluster has a free CPU; the files then go to whichever
worker has room. A worker gets files only once it is placed and ready, so nothing waits on a worker
that may never start.
"""

from __future__ import annotations

import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

IN_FLIGHT_PER_WORKER = 2  # files sent ahead to each worker: keeps it busy, bounds object-store memory
LOOK_EVERY_S = 2.0  # how often the pool asks the cluster for free CPUs while it could use more workers


@dataclass
class Worker:
    actor: Any
    ready: bool = False
    files: deque[tuple[Any, str]] = field(default_factory=deque)  # (result reference, path), in the order sent: the first is being read


@dataclass
class LostWorker:
    """The outcome of a file whose worker died (process killed, node lost) while holding it."""

    reason: str


class WorkerPool:
    """Actors started by `start()`, one per free CPU, and the results they owe."""

    def __init__(self, ray: Any, start: Callable[[], Any]):
        self.ray, self.start = ray, start
        self.workers: list[Worker] = []
        self.waiting: dict[Any, tuple[Worker, str | None]] = {}  # reference -> (worker, path); no path: the worker's ready check
        self.looked = float("-inf")

    def top_up(self, wanted: int) -> None:
        """Start workers on free CPUs until there are `wanted` (one per file left at most)."""
        if len(self.workers) >= wanted or any(not w.ready for w in self.workers) or time.monotonic() - self.looked < LOOK_EVERY_S:
            return  # enough, or some still starting (their CPUs may not show as taken yet), or looked a moment ago
        self.looked = time.monotonic()
        total = self.cluster_cpus()
        try:
            free = int(self.ray.available_resources().get("CPU", 0))
        except Exception:  # the cluster itself is unreachable: nothing can be started
            return
        if not self.workers and total >= 1:
            free = max(free, 1)  # busy with other work: one worker waits for a CPU (the driver's stall bound applies)
        for _ in range(max(0, min(wanted - len(self.workers), free, total - len(self.workers)))):
            worker = Worker(self.start())
            self.workers.append(worker)
            self.waiting[worker.actor.pid.remote()] = (worker, None)

    def cluster_cpus(self) -> int:
        """CPUs on the cluster's live nodes (0 when the cluster cannot be reached)."""
        try:
            return int(self.ray.cluster_resources().get("CPU", 0))
        except Exception:
            return 0

    def alive(self) -> bool:
        return bool(self.workers)

    def with_room(self) -> list[Worker]:
        return [w for w in self.workers if w.ready and len(w.files) < IN_FLIGHT_PER_WORKER]

    def in_flight(self) -> int:
        """Files sent and not yet collected (a lost worker's finished results included)."""
        return sum(path is not None for _, path in self.waiting.values())

    def submit(self, worker: Worker, path: str, data: bytes, content_hash: str) -> None:
        reference = worker.actor.process.remote(path, data, content_hash)
        worker.files.append((reference, path))
        self.waiting[reference] = (worker, path)

    def wait(self, timeout_s: float) -> Any | None:
        """The next finished reference, or None after `timeout_s`."""
        if not self.waiting:
            time.sleep(timeout_s)
            return None
        done, _ = self.ray.wait(list(self.waiting), num_returns=1, timeout=timeout_s)
        return done[0] if done else None

    def collect(self, reference: Any) -> tuple[Worker, str, Any] | None:
        """(worker, path, result) for a file's reference: the worker's result, the reason the worker
        gave up on it (a string), or LostWorker. None for a ready check (the worker gets files now)."""
        from ray.exceptions import RayError, RayTaskError

        worker, path = self.waiting[reference]
        try:
            result = self.ray.get(reference)
        except RayTaskError as exc:  # the worker's own exception: it would raise again, so no retry
            result = f"the Ray worker failed on it ({_first_line(getattr(exc, 'cause', None) or exc)}); run the command again to retry"
        except RayError as exc:  # the worker is gone
            if path is None:
                self.lose(worker)  # lost before it was ready: it held no files
                return None
            return worker, path, LostWorker(_first_line(exc))
        del self.waiting[reference]
        if path is None:
            worker.ready = True
            return None
        worker.files = deque(f for f in worker.files if f[0] != reference)
        return worker, path, result

    def lose(self, worker: Worker) -> list[str]:
        """Forget a dead worker; the files it had not finished, the one it was reading first.
        Results it finished before it died stay owed and are collected as usual."""
        finished = {r for r, _ in worker.files if self._finished(r)}
        lost = [(r, path) for r, path in worker.files if r not in finished]
        for reference, _ in lost:
            del self.waiting[reference]
        self.waiting = {r: (w, p) for r, (w, p) in self.waiting.items() if w is not worker or p is not None}  # its ready check
        worker.files = deque(f for f in worker.files if f[0] in finished)
        self.workers.remove(worker)
        self.ray.kill(worker.actor)
        self.looked = float("-inf")  # look for a free CPU for a replacement at once
        return [path for _, path in lost]

    def _finished(self, reference: Any) -> bool:
        """The worker finished this file (a result, or its own exception) before it died."""
        from ray.exceptions import RayError, RayTaskError

        if not self.ray.wait([reference], timeout=0)[0]:
            return False
        try:
            self.ray.get(reference)
        except RayTaskError:
            return True
        except RayError:
            return False
        return True

    def abandon(self) -> list[str]:
        """Stop waiting for every file in flight; their paths."""
        paths = [path for _, path in self.waiting.values() if path is not None]
        for worker in self.workers:
            worker.files.clear()
        self.waiting = {r: (w, p) for r, (w, p) in self.waiting.items() if p is None}
        return paths

    def stop(self, timeout_s: float) -> None:
        """Let each ready actor remove its scratch folder (bounded), then end every actor."""
        try:
            ready = [w.actor.close.remote() for w in self.workers if w.ready]
            if ready:
                self.ray.wait(ready, num_returns=len(ready), timeout=timeout_s)
        finally:
            for worker in self.workers:
                self.ray.kill(worker.actor)
            self.workers.clear()
            self.waiting.clear()


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return f"{type(exc).__name__}: {text.splitlines()[0] if text else ''}"[:300]
