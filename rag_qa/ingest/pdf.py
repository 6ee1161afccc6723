"""PDF text extraction with pypdf, run in a separate worker process under a time and memory limit.

pypdf has had many denial-of-service bugs on crafted files (endless loops, memory blow-ups). A
worker that hangs is killed after `timeout_s`; one that exceeds its address-space limit fails
alone. Either way the file is reported and the run goes on with a fresh worker.
"""

from __future__ import annotations

import multiprocessing as mp
import multiprocessing.connection
import resource
from collections.abc import Callable
from dataclasses import dataclass

PDF_MAGIC = b"%PDF-"


@dataclass(frozen=True)
class PdfPages:
    """Raw text of each page, in order (page 1 first)."""

    pages: tuple[str, ...]


class PdfError(Exception):
    """A PDF could not be read; the message is the user-facing reason."""


def extract_pages(path: str) -> PdfPages:
    """Read every page's text with pypdf, in this process (no guard: see `GuardedPdfReader`)."""
    with open(path, "rb") as handle:
        head = handle.read(1024)
    if PDF_MAGIC not in head:
        raise PdfError(f"not a PDF (no {PDF_MAGIC.decode()} header; starts with {head[:8]!r})")

    from pypdf import PdfReader
    from pypdf.errors import FileNotDecryptedError, LimitReachedError, PdfReadError

    try:
        reader = PdfReader(path, strict=False)
        if reader.is_encrypted and not reader.decrypt(""):
            raise PdfError("encrypted PDF; a password is required to read it")
        pages = tuple(page.extract_text() or "" for page in reader.pages)
    except FileNotDecryptedError:
        raise PdfError("encrypted PDF; a password is required to read it") from None
    except PdfError:
        raise
    except LimitReachedError as exc:
        raise PdfError(f"hostile or oversized PDF: a parser safety limit was reached ({exc})") from None
    except PdfReadError as exc:
        raise PdfError(f"malformed or truncated PDF ({exc})") from None
    except (ValueError, KeyError, TypeError, IndexError, AttributeError, AssertionError, OSError) as exc:
        raise PdfError(f"malformed PDF ({type(exc).__name__}: {exc})") from None
    if not pages:
        raise PdfError("PDF has no pages")
    return PdfPages(pages)


def _worker(connection: mp.connection.Connection, memory_limit_bytes: int, extract: Callable[[str], PdfPages]) -> None:
    """Worker loop: receive a path, send back pages or an error string, until told to stop."""
    resource.setrlimit(resource.RLIMIT_AS, (memory_limit_bytes, memory_limit_bytes))
    while True:
        path = connection.recv()
        if path is None:
            return
        try:
            connection.send(("ok", extract(path).pages))
        except PdfError as exc:
            connection.send(("error", str(exc)))
        except MemoryError:
            connection.send(("error", "PDF parsing exceeded the memory limit"))
        except RecursionError:
            connection.send(("error", "malformed PDF (object nesting too deep)"))
        except Exception as exc:  # a pypdf bug must not take down the run
            connection.send(("error", f"PDF parser failed ({type(exc).__name__}: {exc})"))


class GuardedPdfReader:
    """Extracts PDFs in a long-lived worker process, restarting it after a hang or crash.

    Use as a context manager so the worker is always stopped. `extract` (a module-level function,
    so the worker can import it) is replaceable for testing the guard itself.
    """

    def __init__(self, timeout_s: float = 120.0, memory_mb: int = 2048, extract: Callable[[str], PdfPages] = extract_pages):
        self.timeout_s = timeout_s
        self.memory_limit_bytes = memory_mb * 1024 * 1024
        self.extract_fn = extract
        self._process: mp.process.BaseProcess | None = None
        self._connection: mp.connection.Connection | None = None

    def __enter__(self) -> "GuardedPdfReader":
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def _start(self) -> None:
        context = mp.get_context("spawn")  # a fresh interpreter: no torch threads, small address space
        parent, child = context.Pipe()
        self._process = context.Process(target=_worker, args=(child, self.memory_limit_bytes, self.extract_fn), daemon=True)
        self._process.start()
        child.close()
        self._connection = parent

    def _kill(self) -> None:
        if self._process is not None:
            self._process.kill()
            self._process.join()
        if self._connection is not None:
            self._connection.close()
        self._process = self._connection = None

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

    def extract(self, path: str) -> PdfPages:
        """Pages of `path`; raises PdfError with the reason when the file cannot be read."""
        if self._process is None or not self._process.is_alive():
            self._kill()
            self._start()
        assert self._connection is not None
        self._connection.send(path)
        if not self._connection.poll(self.timeout_s):
            self._kill()
            raise PdfError(f"PDF parsing took longer than {self.timeout_s:g} s (hostile or broken file?)")
        try:
            status, payload = self._connection.recv()
        except (EOFError, OSError):
            self._kill()
            raise PdfError("PDF parser crashed (memory limit exceeded or a parser bug)") from None
        if status == "error":
            raise PdfError(payload)
        return PdfPages(tuple(payload))
