"""A replica's life, for the load balancer's probes: warming (the port is open and `/health`
answers, the models are still loading), ready, then draining (SIGTERM). `/ready` answers 200 only
when ready and the index answers, so a load balancer sends questions only to replicas that can
answer them.

A graceful stop, in order: SIGTERM makes `/ready` fail at once while the replica still serves;
after `drain_s` (long enough for the load balancer's next probe) it stops taking connections;
the questions and uploads in flight then get up to `stop_timeout_s` to finish (uvicorn's graceful
shutdown); then the process exits with status 0. A second SIGTERM or Ctrl-C skips the wait; a
third stops at once. A replica killed outright (`kill -9`) leaves no half upload: a document and
its passages (and, on PostgreSQL, its original) are stored in one transaction."""

from __future__ import annotations

import logging
import threading
from types import FrameType
from typing import Any

log = logging.getLogger("rag_qa.server")


class Lifecycle:
    """warming -> ready -> draining; thread-safe."""

    def __init__(self, ready: bool = False):
        self._state = "ready" if ready else "warming"
        self._problem: str | None = None
        self._lock = threading.Lock()

    @property
    def state(self) -> str:
        return self._state

    def not_ready(self) -> str | None:
        """Why this replica should get no requests now, or None."""
        if self._problem is not None:
            return self._problem
        return {"warming": "warming up: the models are loading", "draining": "draining: this replica is stopping"}.get(self._state)

    def warm_in_background(self, warm: Any) -> threading.Thread:
        """Run `warm()` (load the models) in a thread; ready when it returns."""
        thread = threading.Thread(target=self._warm, args=(warm,), name="rag-qa-warm-up", daemon=True)
        thread.start()
        return thread

    def _warm(self, warm: Any) -> None:
        try:
            warm()
        except Exception as exc:  # the replica stays alive and says why it is not ready
            log.error("rag-qa: the models could not be loaded: %s", exc, exc_info=exc)
            self._problem = f"the models could not be loaded ({type(exc).__name__}); the server's log says why"
            return
        with self._lock:
            if self._state == "warming":
                self._state = "ready"

    def drain(self) -> bool:
        """Stop being ready for good; False when already draining."""
        with self._lock:
            first, self._state = self._state != "draining", "draining"
            return first


def serve(app: Any, lifecycle: Lifecycle, drain_s: float, stop_timeout_s: float, **uvicorn_config: Any) -> None:
    """Run `app` with uvicorn until SIGTERM or Ctrl-C, stopping gracefully (see the module's docstring)."""
    import uvicorn

    class DrainingServer(uvicorn.Server):
        def handle_exit(self, sig: int, frame: FrameType | None) -> None:
            if lifecycle.drain():
                log.warning("rag-qa: signal %s: /ready now fails; taking no new connections in %.1f s, then finishing the requests in flight (at most %.0f s)", sig, drain_s, stop_timeout_s)
                timer = threading.Timer(drain_s, self._stop)
                timer.daemon = True
                timer.start()
            elif not self.should_exit:
                self._stop()
            else:
                self.force_exit = True

        def _stop(self) -> None:
            self.should_exit = True

    DrainingServer(uvicorn.Config(app, timeout_graceful_shutdown=stop_timeout_s, **uvicorn_config)).run()
