"""Running a document parser in a separate worker process under a time and memory limit.

Parsers of complex formats (pypdf, pdfium, zip + XML for Word) have had many denial-of-service
bugs on crafted files: endless loops, memory blow-ups, crashes. A worker that hangs is killed
after `timeout_s`; one that exceeds its address-space limit or crashes fails alone. Either way the
caller gets a `ParseError` with a reason and the next call gets a fresh worker.
"""

from __future__ import annotations

import multiprocessing as mp
import multiprocessing.connection
import resource
from collections.abc import Callable
from typing import Any, TypeVar

T = TypeVar("T")


class ParseError(Exception):
    """A file could not be read; the message is the user-facing reason."""


def _worker(connection: mp.connection.Connection, memory_limit_bytes: int) -> None:
    """Worker loop: receive (function, arguments, what), send back its result or an error
    string, until told to stop."""
    resource.setrlimit(resource.RLIMIT_AS, (memory_limit_bytes, memory_limit_bytes))
    while True:
        request = connection.recv()
        if request is None:
            return
        function, args, what = request
        try:
            connection.send(("ok", function(*args)))
        except ParseError as exc:
            connection.send(("error", str(exc)))
        except MemoryError:
            connection.send(("error", f"{what} parsing exceeded the memory limit"))
        except RecursionError:
            connection.send(("error", f"malformed {what} (object nesting too deep)"))
        except Exception as exc:  # a parser bug must not take down the run
            connection.send(("error", f"{what} parser failed ({type(exc).__name__}: {exc})"))


class GuardedWorker:
    """Calls parser functions in a long-lived worker process, restarting it after a hang or crash.

    Use as a context manager so the worker is always stopped. Functions must be module-level (the
    worker imports them) and their results picklable. Not thread-safe: one call at a time.
    """

    def __init__(self, timeout_s: float = 120.0, memory_mb: int = 2048):
        self.timeout_s = timeout_s
        self.memory_limit_bytes = memory_mb * 1024 * 1024
        self._process: mp.process.BaseProcess | None = None
        self._connection: mp.connection.Connection | None = None

    def __enter__(self: Any) -> Any:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def _start(self) -> None:
        context = mp.get_context("spawn")  # a fresh interpreter: no torch threads, small address space
        parent, child = context.Pipe()
        process = context.Process(target=_worker, args=(child, self.memory_limit_bytes), daemon=True)
        try:
            process.start()
        finally:
            child.close()
        self._process, self._connection = process, parent

    def _kill(self) -> None:
        process, connection = self._process, self._connection
        self._process = self._connection = None
        if process is not None:
            process.kill()
            process.join()
        if connection is not None:
            try:
                connection.close()
            except OSError:  # closed already by a concurrent close() (stopping while a call runs)
                pass

    def close(self) -> None:
        """Stop the worker (politely if it is idle)."""
        if self._connection is not None:
            try:
                self._connection.send(None)
            except (BrokenPipeError, OSError):
                pass
            if self._process is not None:
                self._process.join(timeout=5)
        self._kill()

    def call(self, function: Callable[..., T], *args: Any, what: str = "PDF") -> T:
        """`function(*args)` in the worker; raises ParseError with the reason when it fails.
        `what` names the format in those reasons ("PDF parsing took longer than 120 s")."""
        if self._process is None or not self._process.is_alive():
            self._kill()
            self._start()
        connection = self._connection  # its own reference: close() from another thread may clear the field
        assert connection is not None
        connection.send((function, args, what))
        try:
            answered = connection.poll(self.timeout_s)
        except (EOFError, OSError):
            answered = True  # stopped meanwhile: recv() below says so
        if not answered:
            self._kill()
            raise ParseError(f"{what} parsing took longer than {self.timeout_s:g} s (hostile or broken file?)")
        try:
            status, payload = connection.recv()
        except (EOFError, OSError):
            self._kill()
            raise ParseError(f"{what} parser crashed (memory limit exceeded or a parser bug)") from None
        if status == "error":
            raise ParseError(payload)
        return payload
